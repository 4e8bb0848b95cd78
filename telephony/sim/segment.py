"""The bot's audio as the caller hears it: a run of voiced frames is an utterance, a pause ends it."""

from __future__ import annotations

from dataclasses import dataclass

from telephony.frames import SAMPLE_WIDTH
from telephony.sim.audio import frame_rms

BOT_VOICE_RMS = 30.0
"""A bot frame whose RMS (16-bit scale) is above this is speech; the gateway's silence frames are zeros."""
UTTERANCE_GAP_S = 0.3
"""Silence that ends a bot utterance, seconds of audio."""


@dataclass(frozen=True, slots=True)
class Utterance:
    """One stretch of bot speech."""

    start: float
    """Arrival of its first voiced frame, seconds since connect."""
    duration: float
    """Audio from the first to the end of the last voiced frame, seconds."""
    last_at: float | None = None
    """Arrival of its last voiced frame, seconds since connect (when the caller last heard it)."""


class UtteranceSegmenter:
    """Bot frames in, utterances out: a voiced frame starts one, ``gap_s`` of silence ends it."""

    def __init__(
        self, rate: int, *, threshold: float = BOT_VOICE_RMS, gap_s: float = UTTERANCE_GAP_S
    ) -> None:
        self._rate = rate
        self._threshold = threshold
        self._gap_samples = round(gap_s * rate)
        self._start: float | None = None
        self._last_at: float | None = None
        self._voiced_samples = 0
        """Samples from the utterance's first voiced frame to the end of its last voiced one."""
        self._silent_samples = 0
        """Samples of silence since the last voiced frame."""
        self.last_voiced = False
        """The last frame fed was speech."""

    @property
    def active(self) -> bool:
        """An utterance is in progress."""
        return self._start is not None

    def feed(self, t: float, pcm: bytes) -> tuple[float | None, Utterance | None]:
        """Add one frame received at ``t``; return (start time if one began, utterance if one ended)."""
        samples = len(pcm) // SAMPLE_WIDTH
        voiced = self.last_voiced = frame_rms(pcm) > self._threshold
        began: float | None = None
        ended: Utterance | None = None
        if voiced:
            if self._start is None:
                self._start = t
                self._voiced_samples = 0
                began = t
            else:
                self._voiced_samples += self._silent_samples
            self._voiced_samples += samples
            self._silent_samples = 0
            self._last_at = t
        elif self._start is not None:
            self._silent_samples += samples
            if self._silent_samples >= self._gap_samples:
                ended = self._close()
        return began, ended

    def close(self) -> Utterance | None:
        """End the utterance in progress (call over)."""
        return self._close() if self._start is not None else None

    def _close(self) -> Utterance:
        assert self._start is not None
        utterance = Utterance(self._start, self._voiced_samples / self._rate, self._last_at)
        self._start = None
        self._voiced_samples = 0
        self._silent_samples = 0
        return utterance
