"""What a simulated call produced and how it reads: per-turn latency, the timeline, the summary.

:class:`CallResult` is what :meth:`CallerSimulator.run` returns and what the end-to-end tests assert on;
:meth:`CallResult.summary` and :func:`format_event` are the text the CLI prints.
"""

from __future__ import annotations

import statistics
import textwrap
import uuid
from dataclasses import dataclass, field

from telephony.audiosocket import RATE_KINDS
from telephony.sim.segment import Utterance
from telephony.sim.turns import Turn

ENDED_BOT_HANGUP = "bot hung up (hangup frame)"
ENDED_WE_HUNG_UP = "we hung up"
ENDED_SOCKET_CLOSED = "socket closed by the gateway"
ENDED_PROTOCOL = "protocol error"
ENDED_ABORTED = "simulator stopped"
LATE_GAP_S = 0.04
"""A bot frame later than this after the previous one is late (twice the 20 ms frame)."""


@dataclass(slots=True)
class TurnResult:
    """What happened in one turn; times are seconds since connect."""

    index: int
    turn: Turn
    started: float | None = None
    """First voiced frame sent / text injected / first key sent."""
    ended: float | None = None
    """End of caller speech: last voiced frame sent / text injected / last key sent."""
    reply_at: float | None = None
    """First voiced bot frame received after ``ended``."""
    skipped: bool = False
    """The call ended before this turn."""

    @property
    def latency(self) -> float | None:
        """End of caller speech to first bot audio, seconds."""
        if self.ended is None or self.reply_at is None:
            return None
        return self.reply_at - self.ended


@dataclass(frozen=True, slots=True)
class TranscriptEntry:
    """One line of the gateway's transcript stream."""

    t: float
    """Seconds since connect (from the entry's unix time)."""
    who: str
    """``caller``, ``bot`` or ``system``."""
    text: str


@dataclass(frozen=True, slots=True)
class Event:
    """One line of the timeline."""

    t: float
    """Seconds since connect."""
    side: str
    """``caller``, ``bot`` or ``call``."""
    text: str


@dataclass(slots=True)
class CallResult:
    """Everything the simulated call produced."""

    call_id: uuid.UUID
    rate: int
    """Hertz."""
    events: list[Event] = field(default_factory=list)
    turns: list[TurnResult] = field(default_factory=list)
    utterances: list[Utterance] = field(default_factory=list)
    transcript: list[TranscriptEntry] = field(default_factory=list)
    ended_by: str | None = None
    bot_errors: list[int | None] = field(default_factory=list)
    """Codes of error frames (0xff) the bot sent (``None`` when it sent no code)."""
    protocol_error: str | None = None
    frames_received: int = 0
    """Bot audio frames."""
    frames_by_rate: dict[int, int] = field(default_factory=dict)
    """Bot audio frames by the rate their kind says (Hertz): one entry on a call that stays at its rate."""
    audio_received_s: float = 0.0
    """Seconds of bot audio received."""
    first_frame_at: float | None = None
    last_frame_at: float | None = None
    last_frame_s: float = 0.0
    late_frames: int = 0
    """Bot frames arriving more than ``LATE_GAP_S`` after the one before (the gateway sends every 20 ms)."""
    max_frame_gap_s: float = 0.0
    """The longest wait between two bot frames, seconds."""
    """Duration of the last frame received, seconds."""
    duration_s: float = 0.0
    """Connect to close, seconds."""
    wall_start: float = 0.0
    """Unix time of the connect (time 0 of the call's other times), to line them up with logs."""
    redis_ok: bool = False
    """The transcript stream could be read."""
    greeting_at: float | None = None
    """First voiced bot frame of the call, seconds since connect."""
    bot_audio: bytearray = field(default_factory=bytearray)
    """Everything the bot sent, 16-bit mono at ``rate``."""

    @property
    def latencies(self) -> list[float]:
        """Per-turn latencies, for turns that got a reply."""
        return [t.latency for t in self.turns if t.latency is not None]

    @property
    def latency_p50(self) -> float | None:
        """Median latency, seconds."""
        return statistics.median(self.latencies) if self.latencies else None

    @property
    def latency_max(self) -> float | None:
        """Worst latency, seconds."""
        return max(self.latencies) if self.latencies else None

    @property
    def pacing_ratio(self) -> float | None:
        """Seconds of bot audio received per second of wall time, first to last frame (1.0 = real time)."""
        if self.first_frame_at is None or self.last_frame_at is None:
            return None
        wall = self.last_frame_at - self.first_frame_at + self.last_frame_s
        return self.audio_received_s / wall if wall > 0 else None

    def bot_said(self) -> list[str]:
        """The bot's lines from the transcript stream."""
        return [e.text for e in self.transcript if e.who == "bot"]

    def summary(self) -> str:
        """Per-turn latencies, p50/max, how the call ended and the pacing check, as text."""
        kind = RATE_KINDS[self.rate]
        lines = [f"call {self.call_id}  {self.rate} Hz (kind 0x{kind:02x})  {self.duration_s:.1f} s"]
        if self.greeting_at is not None:
            lines.append(f"  greeting   first bot audio {self.greeting_at:.2f} s after connect")
        for tr in self.turns:
            label = textwrap.shorten(tr.turn.label, 48, placeholder='…"')
            if tr.skipped:
                status = "skipped (call over)"
            elif tr.latency is not None:
                status = f"latency {tr.latency:.2f} s"
            else:
                status = "no bot reply"
            lines.append(f"  turn {tr.index:<4} {label:<50} {status}")
        if self.latencies:
            lines.append(
                f"  latency    p50 {self.latency_p50:.2f} s, max {self.latency_max:.2f} s"
                f" ({len(self.latencies)} of {len(self.turns)} turns answered)"
            )
        lines.append(f"  ended      {self.ended_by or 'unknown'}")
        for code in self.bot_errors:
            lines.append(f"  bot error  frame 0xff, code {'none' if code is None else f'0x{code:02x}'}")
        if self.protocol_error:
            lines.append(f"  protocol   {self.protocol_error}")
        ratio = self.pacing_ratio
        if ratio is not None and self.first_frame_at is not None and self.last_frame_at is not None:
            wall = self.last_frame_at - self.first_frame_at + self.last_frame_s
            lines.append(
                f"  pacing     {self.frames_received} bot frames, {self.audio_received_s:.2f} s of audio"
                f" in {wall:.2f} s wall (ratio {ratio:.3f})"
            )
        else:
            lines.append("  pacing     no bot audio received")
        if not self.redis_ok:
            lines.append("  transcript not available (Redis unreachable or disabled)")
        return "\n".join(lines)


def format_event(event: Event, width: int = 46) -> str:
    """A timeline line: caller events in the left column, bot events in the right one."""
    stamp = f"{event.t:8.2f}  "
    if event.side == "caller":
        wrapped = textwrap.wrap(event.text, width) or [""]
        return "\n".join((stamp if i == 0 else " " * len(stamp)) + part for i, part in enumerate(wrapped))
    if event.side == "bot":
        wrapped = textwrap.wrap(event.text, width + 12) or [""]
        pad = " " * (width + 2)
        return "\n".join(
            (stamp if i == 0 else " " * len(stamp)) + pad + part for i, part in enumerate(wrapped)
        )
    return f"{stamp}── {event.text}"
