"""Typed frames: what crosses the telephony edge into a call, and the bot's audio out.

The AudioSocket codec turns wire bytes into these frozen, slotted dataclasses and back; the server delivers
them to a call through one entry point (``CallHandler.on_frame``). Units are part of the attribute docs;
audio always carries its rate, sample width and channel count.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    """A finished caller utterance: from the recogniser, typed on the keypad, or injected after the recogniser
    (the simulator's text frames, kind 0x40)."""

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
class Hangup:
    """The call ended."""

    by: str
    """``caller`` (hangup frame or socket closed) or ``bot``."""


@dataclass(frozen=True, slots=True)
class PeerError:
    """The peer reported an error (AudioSocket kind 0xff), or sent what Asterisk never would."""

    code: int | None
    """Error code byte, when one was sent (``None``: none sent, or a protocol violation on our side)."""


InboundFrame = AudioIn | Dtmf | Transcript | Hangup | PeerError
"""Everything the telephony edge delivers to a call, through ``CallHandler.on_frame``."""
