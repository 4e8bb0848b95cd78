"""Typed frames that move through a call.

Everything that crosses a boundary inside Attendant is one of these frozen, slotted dataclasses: the
telephony edge turns wire bytes into them, the per-call session consumes and produces them. Units are
part of the attribute docs; audio always carries its rate, sample width and channel count.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FRAME_MS = 20
"""Length of one telephony frame, milliseconds."""

SAMPLE_WIDTH = 2
"""Bytes per sample for signed-linear 16-bit audio."""


def frame_bytes(rate: int, ms: int = FRAME_MS, width: int = SAMPLE_WIDTH, channels: int = 1) -> int:
    """Bytes in ``ms`` milliseconds of PCM at ``rate`` Hertz."""
    return rate * ms // 1000 * width * channels


@dataclass(frozen=True, slots=True)
class _Audio:
    """Signed-linear PCM with its format."""

    pcm: bytes
    """Signed-linear little-endian samples."""
    rate: int
    """Sample rate, Hertz."""
    width: int = SAMPLE_WIDTH
    """Bytes per sample."""
    channels: int = 1
    """Interleaved channels."""

    @property
    def duration_ms(self) -> float:
        """Length of the audio, milliseconds."""
        return len(self.pcm) * 1000 / (self.rate * self.width * self.channels)


@dataclass(frozen=True, slots=True)
class AudioIn(_Audio):
    """Caller audio, as received from the carrier."""


@dataclass(frozen=True, slots=True)
class AudioOut(_Audio):
    """Bot audio, ready for the carrier."""


@dataclass(frozen=True, slots=True)
class Transcript:
    """A finished caller utterance (from the recogniser, or injected text)."""

    text: str
    """What the caller said, lower case as the recogniser emits it."""
    confidence: float | None = None
    """Mean word confidence 0..1 when the recogniser reports it."""
    source: str = "asr"
    """``asr``, ``dtmf`` or ``inject``."""


@dataclass(frozen=True, slots=True)
class Dtmf:
    """One keypad press."""

    digit: str
    """One of ``0-9 * # A-D``."""


@dataclass(frozen=True, slots=True)
class BargeIn:
    """The caller started speaking while the bot was talking."""


@dataclass(frozen=True, slots=True)
class Hangup:
    """The call ended."""

    by: str
    """``caller`` (hangup frame or socket closed) or ``bot``."""


@dataclass(frozen=True, slots=True)
class HandoffRequested:
    """The dialogue asks for a live agent."""

    reason: str
    """Why: ``requested``, ``no-match``, ``verification-failed``, ``technical``, ..."""
    skill: str = "general"
    """Agent skill needed."""
    context: Mapping[str, Any] = field(default_factory=dict)
    """Everything the bot learned (slots, intent, verified flag)."""
