"""What the caller does, one turn at a time: speak (Piper), play a WAV, inject text, or press keys."""

from __future__ import annotations

from dataclasses import dataclass

from telephony.audiosocket import DTMF_DIGITS

TURN_KINDS = ("say", "wav", "text", "dtmf", "audio")


@dataclass(frozen=True, slots=True)
class Turn:
    """One thing the caller does."""

    kind: str
    """``say`` (Piper), ``wav`` (a path), ``text`` (injected), ``dtmf`` (keys), ``audio`` (``pcm`` given)."""
    value: str
    """The text, path or keys; for ``audio`` a label."""
    pcm: bytes | None = None
    """For ``audio``: 16-bit mono PCM at the call rate."""
    barge_s: float | None = None
    """Talk over the bot: start this many seconds after the bot began its reply (or the greeting) instead of
    waiting for it to finish."""

    def __post_init__(self) -> None:
        if self.kind not in TURN_KINDS:
            raise ValueError(f"unknown turn kind {self.kind!r}")
        if self.kind == "dtmf" and (not self.value or any(d not in DTMF_DIGITS for d in self.value)):
            raise ValueError(f"DTMF keys must be from {''.join(sorted(DTMF_DIGITS))}")
        if self.kind == "audio" and self.pcm is None:
            raise ValueError("an audio turn needs pcm")
        if self.barge_s is not None and self.barge_s < 0:
            raise ValueError("barge_s must not be negative")
        if self.kind == "text" and not self.value.strip():
            raise ValueError("empty text")

    @property
    def label(self) -> str:
        """How the timeline shows it."""
        if self.kind == "say":
            return f'says "{self.value}"'
        if self.kind == "wav":
            return f"plays {self.value}"
        if self.kind == "text":
            return f'injects "{self.value}"'
        if self.kind == "dtmf":
            return f"keys {self.value}"
        return f"plays {self.value}"
