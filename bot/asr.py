"""Speech recognition: one shared Vosk model, one recogniser per call, decoding in worker threads.

The model is loaded once per folder (lazily, with a lock per key). Each call gets a :class:`VoskStream`
that resamples the carrier's audio to the model's rate (``bot.audio``, stateful so there are no seams between
frames) and feeds Kaldi. Every method of the stream is blocking and must run in a worker thread: Vosk's
calls release the GIL, so decoding several calls in parallel really uses the cores.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bot.audio import StreamResampler

log = logging.getLogger(__name__)


class AsrError(Exception):
    """The recogniser failed; the call carries on without it (keypad) or goes to a person."""


@dataclass(frozen=True, slots=True)
class AsrUpdate:
    """What one chunk of audio changed."""

    final: str | None
    """A finished utterance (endpoint reached), or ``None``."""
    partial: str
    """Words recognised so far in the current utterance (empty when none)."""
    confidence: float | None = None
    """Mean word confidence of ``final``."""


class AsrStream(Protocol):
    """A per-call recogniser (blocking methods; run them in a worker)."""

    def accept(self, pcm: bytes, rate: int) -> AsrUpdate:
        """Feed 16-bit mono PCM at ``rate`` Hertz."""
        ...

    def flush(self) -> AsrUpdate:
        """Force the end of the current utterance."""
        ...

    def close(self) -> None:
        """Free the recogniser."""
        ...


def model_sample_rate(model_dir: Path) -> int:
    """The rate a Vosk model's features expect (``--sample-frequency`` in ``conf/mfcc.conf``, else 16 kHz)."""
    conf = model_dir / "conf" / "mfcc.conf"
    try:
        text = conf.read_text(encoding="utf-8")
    except OSError:
        return 16000
    match = re.search(r"--sample-frequency=(\d+)", text)
    return int(match.group(1)) if match else 16000


class VoskEngine:
    """A loaded Vosk model; hands out per-call streams."""

    _lock = threading.Lock()
    _models: dict[Path, Any] = {}
    _key_locks: dict[Path, threading.Lock] = {}

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir.resolve()
        self.rate = model_sample_rate(self.model_dir)
        """The model's sample rate, Hertz."""
        self._model = self._load(self.model_dir)

    @classmethod
    def _load(cls, path: Path) -> Any:
        with cls._lock:
            key_lock = cls._key_locks.setdefault(path, threading.Lock())
        with key_lock:
            model = cls._models.get(path)
            if model is None:
                import vosk

                vosk.SetLogLevel(-1)
                if not (path / "am").is_dir() and not (path / "final.mdl").exists():
                    raise AsrError(f"{path} does not look like a Vosk model folder")
                model = vosk.Model(str(path))
                cls._models[path] = model
                log.info("vosk model loaded from %s", path)
            return model

    def stream(self) -> VoskStream:
        """A fresh recogniser for one call."""
        return VoskStream(self._model, self.rate)


class VoskStream:
    """One call's recogniser."""

    def __init__(self, model: Any, model_rate: int) -> None:
        import vosk

        self._rec = vosk.KaldiRecognizer(model, model_rate)
        self._rec.SetWords(True)
        self._model_rate = model_rate
        self._to_model_rate = StreamResampler(model_rate)
        self._partial = ""

    def accept(self, pcm: bytes, rate: int) -> AsrUpdate:
        """Feed audio; report a final utterance when Vosk's endpointer fires."""
        data = self._to_model_rate(pcm, rate)
        try:
            done = self._rec.AcceptWaveform(data)
        except Exception as exc:
            raise AsrError(f"vosk rejected audio: {exc}") from exc
        if done:
            return self._final(self._rec.Result())
        partial = json.loads(self._rec.PartialResult()).get("partial", "")
        self._partial = partial
        return AsrUpdate(final=None, partial=partial)

    def flush(self) -> AsrUpdate:
        """End the utterance now (used when the caller talks past the longest utterance)."""
        return self._final(self._rec.FinalResult())

    def _final(self, raw: str) -> AsrUpdate:
        result = json.loads(raw)
        self._partial = ""
        text = str(result.get("text", "")).strip()
        words = result.get("result") or []
        conf = float(np.mean([w.get("conf", 0.0) for w in words])) if words else None
        return AsrUpdate(final=text or None, partial="", confidence=conf)

    def close(self) -> None:
        """Drop the Kaldi recogniser."""
        self._rec = None
