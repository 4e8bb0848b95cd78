"""A telephone line's echo: the bot's own voice coming back in the caller's audio, attenuated and late.

Every bot frame the caller receives is kept; each caller frame sent ``delay`` later carries it mixed in at
``gain_db`` (negative: quieter). Frame counts, not clock time, set the delay, as on a line where both sides
run on the same 20 ms clock; if frames bunch up (a late burst), the oldest beyond the delay are dropped so the
echo never lags more than intended.
"""

from __future__ import annotations

import collections

import numpy as np

from telephony.frames import FRAME_MS

ECHO_SLACK_FRAMES = 3
"""Frames the delay line may grow past the delay before the oldest are dropped."""


class EchoPath:
    """The bot's voice, ``gain_db`` down and ``delay_s`` late, mixed into the caller's frames."""

    def __init__(self, gain_db: float = -10.0, delay_s: float = 0.06) -> None:
        self.gain = 10 ** (gain_db / 20)
        self.delay_frames = max(0, round(delay_s * 1000 / FRAME_MS))
        self._line: collections.deque[bytes] = collections.deque()
        self._primed = False

    def heard(self, pcm: bytes) -> None:
        """A bot frame received (16-bit mono at the call rate)."""
        self._line.append(pcm)
        if not self._primed and len(self._line) > self.delay_frames:
            self._primed = True
        limit = self.delay_frames + ECHO_SLACK_FRAMES
        while len(self._line) > limit:
            self._line.popleft()

    def mix(self, pcm: bytes) -> bytes:
        """``pcm`` (one caller frame) with the echo due now added in; unchanged while nothing is due."""
        if not self._primed or not self._line or len(self._line) < self.delay_frames:
            return pcm  # nothing due yet (start of call, or the bot's frames are late)
        echo = self._line.popleft()
        if not any(echo):
            return pcm
        ours = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        theirs = np.frombuffer(echo, dtype="<i2").astype(np.float64) * self.gain
        n = min(len(ours), len(theirs))
        ours[:n] += theirs[:n]
        return bytes(np.clip(np.round(ours), -32768, 32767).astype("<i2").tobytes())
