"""Sample-rate conversion of 16-bit mono PCM (soxr, high quality)."""

from __future__ import annotations

from typing import Any

import numpy as np
import soxr


def resample(pcm: bytes, rate_in: int, rate_out: int) -> bytes:
    """Resample a whole buffer."""
    if rate_in == rate_out or not pcm:
        return pcm
    samples = np.frombuffer(pcm, dtype=np.int16)
    out = soxr.resample(samples, rate_in, rate_out, quality="HQ")
    return np.asarray(out, dtype=np.int16).tobytes()


class StreamResampler:
    """Resample a stream chunk by chunk to ``out_rate`` with no seams between chunks.

    Keeps filter state between calls, so one instance serves one stream (one call); if the input rate changes,
    the state starts over. The high-quality filter holds back its delay (about 66 ms for 8 → 16 kHz) until
    more audio arrives; for speech recognition that is trailing silence.
    """

    def __init__(self, out_rate: int) -> None:
        self.out_rate = out_rate
        """Hertz."""
        self._stream: Any = None
        self._in_rate = 0

    def __call__(self, pcm: bytes, rate: int) -> bytes:
        """The next chunk, at ``out_rate``."""
        if rate == self.out_rate:
            return pcm
        if self._stream is None or rate != self._in_rate:
            self._stream = soxr.ResampleStream(rate, self.out_rate, 1, dtype="int16", quality="HQ")
            self._in_rate = rate
        out = self._stream.resample_chunk(np.frombuffer(pcm, dtype=np.int16))
        return np.asarray(out, dtype=np.int16).tobytes()
