"""Voice activity and end of utterance, on the clock.

Inbound audio is not guaranteed to be continuous (a Local channel sends nothing while the caller is silent),
so the end of an utterance cannot wait for silence frames: :class:`Endpointer` is pure state driven by two
calls, :meth:`Endpointer.frame` for each frame's speech/no-speech verdict and :meth:`Endpointer.tick` on a
timer, both given the current time. A missing frame counts as silence. The recogniser's own endpointer may
finish an utterance earlier; this one guarantees it finishes.

The per-frame verdict comes from the WebRTC VAD (``webrtcvad-wheels``), which takes 10/20/30 ms frames at 8,
16, 32 or 48 kHz.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True, slots=True)
class EndpointerConfig:
    """Timings, seconds."""

    speech_start_s: float = 0.06
    """Voiced time within ``start_window_s`` that opens an utterance."""
    start_window_s: float = 0.2
    """Window for ``speech_start_s``."""
    trailing_silence_s: float = 0.6
    """Silence (or no frames at all) after speech that ends an utterance."""
    max_utterance_s: float = 15.0
    """An utterance longer than this is ended regardless."""
    barge_in_s: float = 0.3
    """Continuous-ish speech while the bot talks that counts as the caller interrupting."""


class Event(Enum):
    """What the endpointer decided."""

    START = "start"
    END = "end"


class Endpointer:
    """Start and end of caller utterances from per-frame VAD verdicts and a clock."""

    def __init__(self, config: EndpointerConfig | None = None) -> None:
        self.config = config or EndpointerConfig()
        self.in_utterance = False
        self._voiced: list[tuple[float, float]] = []  # (time, seconds voiced) within the start window
        self._started_at = 0.0
        self._last_speech_at = 0.0
        self._speech_run_s = 0.0
        self._last_frame_at: float | None = None

    @property
    def speech_run_s(self) -> float:
        """Voiced seconds in the current utterance (drives barge-in)."""
        return self._speech_run_s

    def frame(self, now: float, voiced: bool, duration_s: float) -> Event | None:
        """One frame's verdict at time ``now``. Returns START when an utterance opens."""
        c = self.config
        self._last_frame_at = now
        if not self.in_utterance:
            if voiced:
                self._voiced.append((now, duration_s))
            self._voiced = [(t, d) for t, d in self._voiced if now - t <= c.start_window_s]
            if sum(d for _, d in self._voiced) >= c.speech_start_s:
                self.in_utterance = True
                self._started_at = now
                self._last_speech_at = now
                self._speech_run_s = sum(d for _, d in self._voiced)
                self._voiced.clear()
                return Event.START
            return None
        if voiced:
            self._last_speech_at = now
            self._speech_run_s += duration_s
        return self._check(now)

    def tick(self, now: float) -> Event | None:
        """Timer: ends an utterance after trailing silence even when no frames arrive."""
        if not self.in_utterance:
            return None
        return self._check(now)

    def _check(self, now: float) -> Event | None:
        c = self.config
        if now - self._last_speech_at >= c.trailing_silence_s or now - self._started_at >= c.max_utterance_s:
            self.reset()
            return Event.END
        return None

    def reset(self) -> None:
        """Forget the current utterance (the recogniser finished it, or the call moved on)."""
        self.in_utterance = False
        self._voiced.clear()
        self._speech_run_s = 0.0


class WebRtcVad:
    """Frame classifier backed by the WebRTC VAD."""

    RATES = (8000, 16000, 32000, 48000)

    def __init__(self, aggressiveness: int = 2) -> None:
        import webrtcvad

        self._vad = webrtcvad.Vad(aggressiveness)

    def is_speech(self, pcm: bytes, rate: int) -> bool:
        """Verdict for one 10, 20 or 30 ms frame; other sizes or rates are judged in 20 ms slices."""
        if rate not in self.RATES:
            raise ValueError(f"WebRTC VAD does not take {rate} Hz")
        step = rate * 20 // 1000 * 2
        if len(pcm) in (step // 2, step, step * 3 // 2):
            return bool(self._vad.is_speech(pcm, rate))
        slices = [pcm[i : i + step] for i in range(0, len(pcm) - step + 1, step)]
        return any(self._vad.is_speech(s, rate) for s in slices)
