"""Speech recognition: one shared Vosk model, one recogniser per call, decoding in worker threads.

The model is loaded once per folder (lazily, with a lock per key). Each call gets a :class:`VoskStream`
that resamples the carrier's audio to the model's rate (``bot.audio``, stateful so there are no seams between
frames) and feeds Kaldi. Every method of the stream is blocking and must run in a worker thread: Vosk's
calls release the GIL, so decoding several calls in parallel really uses the cores.

Recognisers are kept between calls (:class:`VoskEngine`'s pool). A model with a lookahead graph
(``HCLr.fst`` + ``Gr.fst``, as the small Vosk models have) composes the two on the fly and caches the states
it has visited inside each recogniser: a fresh one decodes its first utterances 3-5 times slower than one that
has already heard some speech (0.5 against 0.1 core-seconds per second of audio with the Korean test model).
A call's recogniser is finalised when the call ends (no words or partial result carry over, and Vosk
rebuilds its feature pipeline, the call's audio features and speaker adaptation, before the next audio) and
handed to the next call; the pool keeps at most ``keep`` idle ones and retires each after ``reuse_max``
calls, which bounds the memory their caches hold.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
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


KEEP_IDLE = 16
"""Idle recognisers kept for the next calls (each holds its graph cache, tens of MB once warm)."""
REUSE_MAX = 200
"""Calls one recogniser serves before it is dropped (its cache only grows)."""


class VoskEngine:
    """A loaded Vosk model; hands out per-call streams, reusing warm recognisers (module docstring)."""

    _lock = threading.Lock()
    _models: dict[Path, Any] = {}
    _key_locks: dict[Path, threading.Lock] = {}

    def __init__(self, model_dir: Path, *, keep: int = KEEP_IDLE, reuse_max: int = REUSE_MAX) -> None:
        self.model_dir = model_dir.resolve()
        self.rate = model_sample_rate(self.model_dir)
        """The model's sample rate, Hertz."""
        self._model = self._load(self.model_dir)
        self.keep = keep
        self.reuse_max = reuse_max
        self._idle: list[_Recogniser] = []
        self._pool_lock = threading.Lock()
        self.created = 0
        """Recognisers made so far (the rest of the streams reused one)."""

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
        """A recogniser for one call: the warmest idle one, else a new one. Blocking (a worker thread)."""
        with self._pool_lock:
            rec = self._idle.pop() if self._idle else None
        if rec is None:
            rec = self._new()
        return VoskStream(rec, self.rate, self._give_back)

    @property
    def idle(self) -> int:
        """Recognisers waiting for a call."""
        return len(self._idle)

    def _new(self) -> _Recogniser:
        import vosk

        kaldi = vosk.KaldiRecognizer(self._model, self.rate)
        kaldi.SetWords(True)
        with self._pool_lock:
            self.created += 1
        return _Recogniser(kaldi)

    def _give_back(self, rec: _Recogniser) -> None:
        """A call is done with ``rec``: reset it and keep it for the next call, unless it is worn out or the
        pool is full."""
        rec.uses += 1
        if rec.uses >= self.reuse_max:
            return
        try:
            # Finalised, Vosk drops the feature pipeline (the call's audio features and speaker adaptation)
            # at the next audio: a short silence makes sure it is finalised whatever state the call left.
            rec.kaldi.AcceptWaveform(b"\0" * (self.rate // 50 * 2))
            rec.kaldi.FinalResult()
        except Exception:  # a recogniser that cannot be reset is not handed to anyone
            log.warning("a recogniser could not be reset; dropped")
            return
        with self._pool_lock:
            if len(self._idle) < self.keep:
                self._idle.append(rec)


@dataclass(slots=True)
class _Recogniser:
    """A Kaldi recogniser and how many calls it has served."""

    kaldi: Any
    uses: int = 0


class VoskStream:
    """One call's recogniser. Its methods may run in different worker threads, never at the same time: a
    call hung up while a decode is in flight closes (and hands on) the recogniser only after that decode."""

    def __init__(
        self, rec: _Recogniser, model_rate: int, give_back: Callable[[_Recogniser], None] | None = None
    ) -> None:
        self._held: _Recogniser | None = rec
        self._give_back = give_back
        self._model_rate = model_rate
        self._to_model_rate = StreamResampler(model_rate)
        self._partial = ""
        self._failed = False
        self._busy = threading.Lock()

    def _kaldi(self) -> Any:
        if self._held is None:
            raise AsrError("the recogniser of this call is closed")
        return self._held.kaldi

    def accept(self, pcm: bytes, rate: int) -> AsrUpdate:
        """Feed audio; report a final utterance when Vosk's endpointer fires."""
        with self._busy:
            rec = self._kaldi()
            data = self._to_model_rate(pcm, rate)
            try:
                done = rec.AcceptWaveform(data)
            except Exception as exc:
                self._failed = True
                raise AsrError(f"vosk rejected audio: {exc}") from exc
            if done:
                return self._final(rec.Result())
            partial = json.loads(rec.PartialResult()).get("partial", "")
            self._partial = partial
            return AsrUpdate(final=None, partial=partial)

    def flush(self) -> AsrUpdate:
        """End the utterance now (used when the caller talks past the longest utterance)."""
        with self._busy:
            return self._final(self._kaldi().FinalResult())

    def _final(self, raw: str) -> AsrUpdate:
        result = json.loads(raw)
        self._partial = ""
        text = str(result.get("text", "")).strip()
        words = result.get("result") or []
        conf = float(np.mean([w.get("conf", 0.0) for w in words])) if words else None
        return AsrUpdate(final=text or None, partial="", confidence=conf)

    def close(self) -> None:
        """The call is done: the recogniser goes back to the engine's pool (reset there), or is dropped after
        a failure. Closing twice is harmless."""
        with self._busy:
            rec, self._held = self._held, None
        if rec is not None and self._give_back is not None and not self._failed:
            self._give_back(rec)
