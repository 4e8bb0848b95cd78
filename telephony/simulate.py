"""Caller simulator: plays Asterisk's part of an AudioSocket call against the gateway, on a real TCP socket.

``python -m telephony.simulate --say "what is my balance" --text "yes" --dtmf 1234# --out bot.wav``

It connects like the ``AudioSocket()`` dialplan app (8 kHz, kind ``0x10``) or like
``Dial(AudioSocket/host:port/uuid/c(slin16))`` (``--rate 16000``, kind ``0x12``), sends the call UUID, waits
for the bot's greeting, then runs the turns in the order given on the command line:

``--say TEXT``   speech synthesised with Piper at the call rate and streamed
``--wav FILE``   any WAV (PCM 8/16/24/32-bit, float, A-law, mu-law; any rate and channel count), converted to
                 mono 16-bit and resampled with soxr to the call rate
``--text TEXT``  text injected after the recogniser (kind ``0x40``, the gateway's test extension)
``--dtmf KEYS``  keypad frames about 100 ms apart

Audio goes out in 20 ms frames paced against the monotonic clock on an absolute schedule (frame *n* is due at
``start + n * 20 ms``, so late wake-ups never add up to drift). Like a normal channel it keeps sending silence
frames between turns; ``--no-silence`` behaves like an Asterisk Local channel and sends nothing while the
caller is quiet. The bot's frames are read concurrently: a bot *utterance* is a run of frames above a small
RMS threshold, ended by 300 ms of silence frames. The bot's words come from the Redis stream
``attendant:call:<uuid>:transcript`` the gateway writes (fields ``who``, ``text``, ``t``).

For every turn the latency is *end of caller speech* (last voiced frame sent, text injected, last key sent) to
*first voiced bot frame received*. After the last turn and its reply the simulator hangs up (kind ``0x00``)
unless the bot hung up first.

:class:`CallerSimulator` and :class:`CallResult` are the importable API the end-to-end tests drive.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import socket
import statistics
import struct
import sys
import textwrap
import time
import uuid
import wave
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from bot.audio import resample
from telephony.audiosocket import (
    DTMF_DIGITS,
    RATE_KINDS,
    CallId,
    Decoder,
    ProtocolError,
    encode_audio,
    encode_dtmf,
    encode_hangup,
    encode_text,
    encode_uuid,
)
from telephony.frames import (
    FRAME_MS,
    SAMPLE_WIDTH,
    AudioIn,
    Dtmf,
    Hangup,
    PeerError,
    Transcript,
    frame_bytes,
)

FRAME_S = FRAME_MS / 1000
"""One frame, seconds."""
DTMF_GAP_S = 0.1
"""Between keypad frames, seconds."""
BOT_VOICE_RMS = 30.0
"""A bot frame whose RMS (16-bit scale) is above this is speech; the gateway's silence frames are zeros."""
UTTERANCE_GAP_S = 0.3
"""Silence that ends a bot utterance, seconds of audio."""
SETTLE_S = 0.8
"""A reply is over when the bot has sent no voiced frame for this long (clock time)."""
CALLER_VOICE_FLOOR_RMS = 50.0
"""Caller audio frames quieter than this (or than 2 % of the loudest frame) are not speech."""
TRANSCRIPT_GRACE_S = 0.5
"""After the call ends, how long to keep reading the transcript for the last lines."""

TURN_KINDS = ("say", "wav", "text", "dtmf", "audio")

ENDED_BOT_HANGUP = "bot hung up (hangup frame)"
ENDED_WE_HUNG_UP = "we hung up"
ENDED_SOCKET_CLOSED = "socket closed by the gateway"
ENDED_PROTOCOL = "protocol error"
ENDED_ABORTED = "simulator stopped"


class SimulatorError(Exception):
    """The simulated call could not be run."""


class GatewayUnreachable(SimulatorError):
    """No TCP connection to the gateway."""


# --------------------------------------------------------------------------------------------- audio helpers


def frame_rms(pcm: bytes) -> float:
    """Root mean square of 16-bit little-endian samples (0 for empty input)."""
    if len(pcm) < SAMPLE_WIDTH:
        return 0.0
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % SAMPLE_WIDTH], dtype="<i2").astype(np.float64)
    return float(math.sqrt(float(np.mean(samples * samples))))


def split_frames(pcm: bytes, rate: int) -> list[bytes]:
    """20 ms frames; the last one padded with silence."""
    size = frame_bytes(rate)
    frames = [pcm[i : i + size] for i in range(0, len(pcm), size)]
    if frames and len(frames[-1]) < size:
        frames[-1] = frames[-1] + bytes(size - len(frames[-1]))
    return frames


def speech_span(frames: Sequence[bytes]) -> tuple[int, int] | None:
    """First and last voiced frame (RMS above the floor and 2 % of the loudest frame's), or ``None``."""
    levels = [frame_rms(f) for f in frames]
    if not levels:
        return None
    threshold = max(CALLER_VOICE_FLOOR_RMS, 0.02 * max(levels))
    voiced = [i for i, level in enumerate(levels) if level > threshold]
    return (voiced[0], voiced[-1]) if voiced else None


def to_int16(samples: npt.NDArray[np.floating[Any]]) -> bytes:
    """Float samples in [-1, 1] to 16-bit little-endian PCM (clipped)."""
    scaled = np.clip(np.round(samples * 32767.0), -32768, 32767)
    return bytes(scaled.astype("<i2").tobytes())


def _ulaw_decode(data: bytes) -> npt.NDArray[np.float64]:
    u = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    exponent = (u >> 4) & 0x07
    magnitude = (((u & 0x0F) << 3) + 0x84) << exponent
    linear = np.where(u & 0x80, 0x84 - magnitude, magnitude - 0x84)
    return linear.astype(np.float64) / 32768.0


def _alaw_decode(data: bytes) -> npt.NDArray[np.float64]:
    a = np.frombuffer(data, dtype=np.uint8).astype(np.int32) ^ 0x55
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    magnitude = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0)
    )
    linear = np.where(a & 0x80, magnitude, -magnitude)
    return linear.astype(np.float64) / 32768.0


@dataclass(frozen=True, slots=True)
class WavFormat:
    """The ``fmt`` chunk of a RIFF/WAVE file."""

    tag: int
    """1 PCM, 3 IEEE float, 6 A-law, 7 mu-law (``WAVE_FORMAT_EXTENSIBLE`` resolved to its sub-format)."""
    channels: int
    rate: int
    """Hertz."""
    bits: int
    """Bits per sample."""


def parse_wav(data: bytes) -> tuple[WavFormat, bytes]:
    """Split a WAV file into its format and raw sample bytes. Raises :class:`ValueError` on anything else."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    fmt: WavFormat | None = None
    pos = 12
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = data[pos + 8 : pos + 8 + size]
        if chunk_id == b"fmt ":
            if len(body) < 16:
                raise ValueError("fmt chunk too short")
            tag, channels, rate, _byte_rate, _align, bits = struct.unpack_from("<HHIIHH", body)
            if tag == 0xFFFE and len(body) >= 26:
                (tag,) = struct.unpack_from("<H", body, 24)  # first two bytes of the sub-format GUID
            fmt = WavFormat(tag, channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise ValueError("data chunk before fmt chunk")
            return fmt, body
        pos += 8 + size + (size & 1)
    raise ValueError("no data chunk")


def decode_wav(data: bytes) -> tuple[npt.NDArray[np.float64], int]:
    """Samples of any common WAV as float64 mono in [-1, 1], and the file's rate in Hertz."""
    fmt, raw = parse_wav(data)
    if fmt.channels < 1 or fmt.rate < 1:
        raise ValueError("WAV with no channels or no rate")
    width = fmt.bits // 8
    if fmt.tag == 1 and fmt.bits == 8:
        samples = (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
    elif fmt.tag == 1 and fmt.bits == 16:
        samples = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2").astype(np.float64) / 32768.0
    elif fmt.tag == 1 and fmt.bits == 24:
        b = np.frombuffer(raw[: len(raw) // 3 * 3], dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        ints = np.where(ints & 0x800000, ints - 0x1000000, ints)
        samples = ints.astype(np.float64) / 8388608.0
    elif fmt.tag == 1 and fmt.bits == 32:
        samples = np.frombuffer(raw[: len(raw) // 4 * 4], dtype="<i4").astype(np.float64) / 2147483648.0
    elif fmt.tag == 3 and fmt.bits in (32, 64):
        dtype = "<f4" if fmt.bits == 32 else "<f8"
        samples = np.frombuffer(raw[: len(raw) // width * width], dtype=dtype).astype(np.float64)
    elif fmt.tag == 6 and fmt.bits == 8:
        samples = _alaw_decode(raw)
    elif fmt.tag == 7 and fmt.bits == 8:
        samples = _ulaw_decode(raw)
    else:
        raise ValueError(f"unsupported WAV encoding (format tag {fmt.tag}, {fmt.bits} bits)")
    usable = len(samples) // fmt.channels * fmt.channels
    mono = samples[:usable].reshape(-1, fmt.channels).mean(axis=1)
    return np.clip(mono, -1.0, 1.0), fmt.rate


def load_wav(path: Path, rate: int) -> bytes:
    """A WAV file as 16-bit mono PCM at ``rate`` Hertz (soxr, high quality)."""
    import soxr

    samples, file_rate = decode_wav(path.read_bytes())
    if file_rate != rate and len(samples):
        samples = np.asarray(soxr.resample(samples, file_rate, rate, quality="HQ"), dtype=np.float64)
    return to_int16(samples)


def write_wav(path: Path, pcm: bytes, rate: int) -> None:
    """16-bit mono PCM to a WAV file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(SAMPLE_WIDTH)
        out.setframerate(rate)
        out.writeframes(pcm)


# ------------------------------------------------------------------------------------------------ clock


class Clock(Protocol):
    """Time source for pacing; the real one is :class:`MonotonicClock`, tests may pass a fake."""

    def now(self) -> float:
        """Seconds, monotonic."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Return at (or soon after) ``deadline``."""
        ...


class MonotonicClock:
    """``time.monotonic`` and ``asyncio.sleep``."""

    def now(self) -> float:
        """Seconds, monotonic."""
        return time.monotonic()

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until ``deadline``; yields to the loop even when already late."""
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))


class Pacer:
    """Absolute schedule: the *n*-th tick after :meth:`reset` is due at ``anchor + n * period``.

    A late wake-up delays one frame, never the ones after it (no drift), as a real-time source would.
    """

    def __init__(self, clock: Clock, period: float = FRAME_S) -> None:
        self._clock = clock
        self._period = period
        self._anchor: float | None = None
        self._n = 0

    def reset(self) -> None:
        """The next tick starts a new schedule at the current time."""
        self._anchor = None

    @property
    def running(self) -> bool:
        """A schedule is in progress."""
        return self._anchor is not None

    async def tick(self) -> float:
        """Wait for the next slot; return its due time."""
        if self._anchor is None:
            self._anchor = self._clock.now()
            self._n = 0
        due = self._anchor + self._n * self._period
        await self._clock.sleep_until(due)
        self._n += 1
        return due


# ----------------------------------------------------------------------------------- bot audio segmentation


@dataclass(frozen=True, slots=True)
class Utterance:
    """One stretch of bot speech."""

    start: float
    """Arrival of its first voiced frame, seconds since connect."""
    duration: float
    """Audio from the first to the end of the last voiced frame, seconds."""


class UtteranceSegmenter:
    """Bot frames in, utterances out: a voiced frame starts one, ``gap_s`` of silence ends it."""

    def __init__(
        self, rate: int, *, threshold: float = BOT_VOICE_RMS, gap_s: float = UTTERANCE_GAP_S
    ) -> None:
        self._rate = rate
        self._threshold = threshold
        self._gap_samples = round(gap_s * rate)
        self._start: float | None = None
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
        utterance = Utterance(self._start, self._voiced_samples / self._rate)
        self._start = None
        self._voiced_samples = 0
        self._silent_samples = 0
        return utterance


# ------------------------------------------------------------------------------------------ turns, results


@dataclass(frozen=True, slots=True)
class Turn:
    """One thing the caller does."""

    kind: str
    """``say`` (Piper), ``wav`` (a path), ``text`` (injected), ``dtmf`` (keys), ``audio`` (``pcm`` given)."""
    value: str
    """The text, path or keys; for ``audio`` a label."""
    pcm: bytes | None = None
    """For ``audio``: 16-bit mono PCM at the call rate."""

    def __post_init__(self) -> None:
        if self.kind not in TURN_KINDS:
            raise ValueError(f"unknown turn kind {self.kind!r}")
        if self.kind == "dtmf" and (not self.value or any(d not in DTMF_DIGITS for d in self.value)):
            raise ValueError(f"DTMF keys must be from {''.join(sorted(DTMF_DIGITS))}")
        if self.kind == "audio" and self.pcm is None:
            raise ValueError("an audio turn needs pcm")
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
    """Duration of the last frame received, seconds."""
    duration_s: float = 0.0
    """Connect to close, seconds."""
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


# ------------------------------------------------------------------------------------------- the simulator


@dataclass(slots=True)
class PreparedTurn:
    """A turn ready to play: audio split into 20 ms frames, and its first and last voiced frame."""

    turn: Turn
    frames: list[bytes] = field(default_factory=list)
    span: tuple[int, int] | None = None


@dataclass(slots=True)
class _Out:
    """One outgoing audio frame and where it belongs."""

    pcm: bytes
    result: TurnResult | None = None
    index: int = 0
    span: tuple[int, int] | None = None
    last: bool = False
    done: asyncio.Event | None = None


Synthesize = Callable[[str, int], bytes]
"""Text and rate (Hertz) to 16-bit mono PCM; blocking (run in a thread)."""


async def agi_register(
    host: str,
    port: int,
    call_id: uuid.UUID,
    caller_number: str,
    *,
    rate: int = 8000,
    timeout_s: float = 5.0,
) -> dict[str, str]:
    """Play the dialplan's ``AGI(agi://host:port/register,<uuid>,<rate>)`` step byte for byte, as Asterisk
    does from the sample's ``[attendant]`` (8000) or ``[attendant-slin16]`` (16000) context.

    Sends the ``agi_*`` header, answers every command ``200 result=1``, and returns the channel variables the
    route set. Raises :class:`GatewayUnreachable` when the FastAGI server cannot be reached.
    """
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=timeout_s)
    except (OSError, asyncio.TimeoutError) as exc:
        reason = str(exc) or type(exc).__name__
        raise GatewayUnreachable(f"cannot reach FastAGI at {host}:{port} ({reason})") from exc
    header = (
        "agi_network: yes\n"
        "agi_network_script: register\n"
        f"agi_request: agi://{host}:{port}/register\n"
        "agi_channel: PJSIP/simulator-00000001\n"
        "agi_language: en\n"
        "agi_type: PJSIP\n"
        f"agi_uniqueid: {time.time():.6f}\n"
        "agi_version: 22.0.0\n"
        f"agi_callerid: {caller_number}\n"
        "agi_calleridname: unknown\n"
        f"agi_context: {'attendant' if rate == 8000 else 'attendant-slin16'}\n"
        "agi_extension: s\n"
        "agi_priority: 5\n"
        f"agi_arg_1: {call_id}\n"
        f"agi_arg_2: {rate}\n\n"
    )
    variables: dict[str, str] = {}
    try:
        writer.write(header.encode())
        await writer.drain()
        while True:
            line = await asyncio.wait_for(reader.readline(), timeout=timeout_s)
            if not line:
                break
            command = line.decode(errors="replace").strip()
            if command.startswith("SET VARIABLE "):
                name, _, value = command[len("SET VARIABLE ") :].partition(" ")
                variables[name] = value.strip('"')
            writer.write(b"200 result=1\n")
            await writer.drain()
    except (OSError, asyncio.TimeoutError):
        pass
    finally:
        writer.close()
    return variables


class CallerSimulator:
    """One simulated call (one :meth:`run` per instance); ``await CallerSimulator(...).run(turns)`` returns a
    :class:`CallResult`.

    ``on_event`` is called with each timeline :class:`Event` as it happens (the CLI prints them).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9092,
        *,
        rate: int = 8000,
        call_id: uuid.UUID | None = None,
        silence: bool = True,
        wait_s: float = 15.0,
        settle_s: float = SETTLE_S,
        hangup: bool = True,
        redis_url: str | None = "redis://127.0.0.1:6379/0",
        synthesize: Synthesize | None = None,
        voice: Path | None = None,
        on_event: Callable[[Event], None] | None = None,
        clock: Clock | None = None,
        connect_timeout_s: float = 5.0,
        caller_number: str | None = None,
        agi_port: int = 4573,
    ) -> None:
        if rate not in RATE_KINDS:
            raise ValueError(f"AudioSocket has no audio kind for {rate} Hz")
        self.host = host
        self.port = port
        self.rate = rate
        self.call_id = call_id or uuid.uuid4()
        self.silence = silence
        self.wait_s = wait_s
        self.settle_s = settle_s
        self.hangup = hangup
        self.redis_url = redis_url
        self._synthesize = synthesize
        self._voice = voice
        self._on_event = on_event
        self._clock: Clock = clock or MonotonicClock()
        self._connect_timeout_s = connect_timeout_s
        self.caller_number = caller_number
        """When set, registered over FastAGI before dialling, as the dialplan does."""
        self.agi_port = agi_port

        self.result = CallResult(self.call_id, rate)
        self._t0 = 0.0
        self._wall0 = 0.0
        self._writer: asyncio.StreamWriter | None = None
        self._queue: deque[_Out] = deque()
        self._queued = asyncio.Event()
        self._ended = asyncio.Event()
        self._segmenter = UtteranceSegmenter(rate)
        self._last_voice_at: float | None = None
        self._last_start: float | None = None
        self._pending: TurnResult | None = None
        self._silence_frame = bytes(frame_bytes(rate))
        self._wrong_rate_noted = False
        self._stream_last = "0-0"
        self._transcript_stop = asyncio.Event()

    # -- public -------------------------------------------------------------------------------------------

    async def prepare(self, turns: Sequence[Turn]) -> list[PreparedTurn]:
        """Synthesise and load all audio before dialling, so the call's timing is not disturbed."""
        prepared: list[PreparedTurn] = []
        for n, turn in enumerate(turns, start=1):
            item = PreparedTurn(turn)
            pcm: bytes | None = None
            try:
                if turn.kind == "say":
                    pcm = await asyncio.to_thread(self._synth, turn.value)
                elif turn.kind == "wav":
                    pcm = await asyncio.to_thread(load_wav, Path(turn.value), self.rate)
                elif turn.kind == "audio":
                    pcm = turn.pcm
            except (OSError, ValueError, ImportError) as exc:
                raise SimulatorError(f"turn {n} ({turn.kind}): {exc}") from exc
            if pcm is not None:
                item.frames = split_frames(pcm, self.rate)
                item.span = speech_span(item.frames)
            prepared.append(item)
        return prepared

    async def run(self, turns: Sequence[Turn]) -> CallResult:
        """Dial, greet, play every turn waiting for each reply, hang up; return the result."""
        if self._writer is not None:
            raise RuntimeError("a CallerSimulator runs one call; make a new one")
        prepared = await self.prepare(turns)
        if self.caller_number:
            await agi_register(self.host, self.agi_port, self.call_id, self.caller_number, rate=self.rate)
        redis = await self._open_redis()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), timeout=self._connect_timeout_s
            )
        except (OSError, asyncio.TimeoutError) as exc:
            if redis is not None:
                await redis.close()
            reason = str(exc) or type(exc).__name__
            raise GatewayUnreachable(
                f"cannot reach the gateway at {self.host}:{self.port} ({reason}); is it running (make run)?"
            ) from exc
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._writer = writer
        self._t0 = self._clock.now()
        self._wall0 = time.time()
        writer.write(encode_uuid(self.call_id))
        kind = RATE_KINDS[self.rate]
        self._emit(
            0.0,
            "call",
            f"connected to {self.host}:{self.port}, call {self.call_id}, "
            f"{self.rate} Hz (kind 0x{kind:02x}), {'silence frames' if self.silence else 'no silence'}",
        )
        tasks = [
            asyncio.create_task(self._read_loop(reader), name="sim-reader"),
            asyncio.create_task(self._pump(), name="sim-pump"),
        ]
        transcript_task = (
            asyncio.create_task(self._transcript_loop(redis), name="sim-transcript")
            if redis is not None
            else None
        )
        try:
            await self._script(prepared)
        finally:
            await self._finish(reader, writer, tasks, transcript_task, redis)
        return self.result

    # -- the script ---------------------------------------------------------------------------------------

    async def _script(self, prepared: list[PreparedTurn]) -> None:
        await self._await_reply(since=0.0)
        for i, item in enumerate(prepared, start=1):
            tr = TurnResult(i, item.turn)
            self.result.turns.append(tr)
            if self._ended.is_set():
                tr.skipped = True
                continue
            if item.turn.kind == "text":
                await self._send_text(item.turn.value, tr)
            elif item.turn.kind == "dtmf":
                await self._send_dtmf(item.turn.value, tr)
            else:
                await self._send_audio(item, tr)
            if tr.ended is not None:
                await self._await_reply(since=tr.ended)
        if self._ended.is_set():
            return
        if not self.hangup:
            self._emit(self._rel(), "call", f"waiting up to {self.wait_s:g} s for the bot to end the call")
            try:
                await asyncio.wait_for(self._ended.wait(), timeout=self.wait_s)
            except asyncio.TimeoutError:
                pass
            if self._ended.is_set():
                return
        await self._send_hangup()

    async def _await_reply(self, since: float) -> bool:
        """Wait until the bot started speaking at or after ``since`` and then went quiet for ``settle_s``;
        give up after ``wait_s``. Returns whether a finished reply was seen."""
        deadline = self._clock.now() + self.wait_s
        while not self._ended.is_set():
            now = self._clock.now()
            rel = now - self._t0
            if (
                self._last_start is not None
                and self._last_start >= since
                and self._last_voice_at is not None
                and rel - self._last_voice_at >= self.settle_s
            ):
                return True
            if now >= deadline:
                self._emit(rel, "call", f"no finished bot reply within {self.wait_s:g} s; going on")
                return False
            await self._clock.sleep_until(now + FRAME_S)
        return False

    async def _send_audio(self, item: PreparedTurn, tr: TurnResult) -> None:
        if not item.frames:
            return
        done = asyncio.Event()
        self._pending = tr
        last = len(item.frames) - 1
        for i, pcm in enumerate(item.frames):
            self._queue.append(_Out(pcm, tr, i, item.span, i == last, done if i == last else None))
        self._queued.set()
        if item.span is None:
            self._emit(self._rel(), "caller", f"{item.turn.label} (no speech detected in it)")
        ended = asyncio.create_task(self._ended.wait())
        finished = asyncio.create_task(done.wait())
        try:
            await asyncio.wait({ended, finished}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
            finished.cancel()
        if item.span is None and tr.ended is None and done.is_set():
            tr.ended = self._rel()  # all of it was "speech end" for latency purposes

    async def _send_text(self, text: str, tr: TurnResult) -> None:
        self._pending = tr
        if not await self._write(encode_text(text)):
            return
        tr.started = tr.ended = self._rel()
        self._emit(tr.ended, "caller", tr.turn.label)

    async def _send_dtmf(self, keys: str, tr: TurnResult) -> None:
        self._pending = tr
        pacer = Pacer(self._clock, DTMF_GAP_S)
        for n, key in enumerate(keys):
            await pacer.tick()
            if not await self._write(encode_dtmf(key)):
                return
            now = self._rel()
            if n == 0:
                tr.started = now
            tr.ended = now
        if tr.ended is not None and tr.started is not None:
            self._emit(tr.started, "caller", f"{tr.turn.label} (last key at {tr.ended:.2f})")

    async def _send_hangup(self) -> None:
        self._emit(self._rel(), "caller", "hangs up (0x00)")
        self._end(ENDED_WE_HUNG_UP)
        await self._write(encode_hangup(), even_if_ended=True)

    # -- frames out ---------------------------------------------------------------------------------------

    async def _write(self, data: bytes, *, even_if_ended: bool = False) -> bool:
        writer = self._writer
        if writer is None or writer.is_closing() or (self._ended.is_set() and not even_if_ended):
            return False
        try:
            writer.write(data)
            await writer.drain()
        except (ConnectionError, OSError):
            self._end(ENDED_SOCKET_CLOSED)
            return False
        return True

    async def _pump(self) -> None:
        """Send queued caller audio (or silence) in 20 ms frames on an absolute schedule."""
        pacer = Pacer(self._clock)
        while not self._ended.is_set():
            if not self._queue and not self.silence:
                pacer.reset()  # a Local channel sends nothing while the caller is quiet
                self._queued.clear()
                await self._queued.wait()
                continue
            await pacer.tick()
            if self._ended.is_set():
                break
            out = self._queue.popleft() if self._queue else _Out(self._silence_frame)
            if not await self._write(encode_audio(out.pcm, self.rate)):
                break
            if out.result is not None:
                self._mark_sent(out)

    def _mark_sent(self, out: _Out) -> None:
        tr = out.result
        assert tr is not None
        now = self._rel()
        if out.span is not None:
            first, last = out.span
            if out.index == first:
                tr.started = now
                self._emit(now, "caller", f"{tr.turn.label} — speech starts")
            if out.index == last:
                tr.ended = now
                self._emit(now, "caller", f"end of speech ({now - (tr.started or now):.2f} s)")
        if out.last and out.done is not None:
            out.done.set()

    # -- frames in ----------------------------------------------------------------------------------------

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        decoder = Decoder()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    self._end(ENDED_SOCKET_CLOSED)
                    return
                now = self._rel()
                for message in decoder.feed(data):
                    self._on_message(message, now)
        except ProtocolError as exc:
            self.result.protocol_error = str(exc)
            self._emit(self._rel(), "bot", f"protocol error: {exc}")
            self._end(ENDED_PROTOCOL)
        except (ConnectionError, OSError):
            self._end(ENDED_SOCKET_CLOSED)

    def _on_message(self, message: object, now: float) -> None:
        result = self.result
        if isinstance(message, AudioIn):
            pcm = message.pcm
            if message.rate != self.rate:
                if not self._wrong_rate_noted:
                    self._wrong_rate_noted = True
                    self._emit(now, "bot", f"sends {message.rate} Hz audio on a {self.rate} Hz call")
                pcm = resample(pcm, message.rate, self.rate)
            result.frames_received += 1
            result.frames_by_rate[message.rate] = result.frames_by_rate.get(message.rate, 0) + 1
            seconds = len(message.pcm) / (message.rate * SAMPLE_WIDTH)
            result.audio_received_s += seconds
            result.last_frame_s = seconds
            if result.first_frame_at is None:
                result.first_frame_at = now
            result.last_frame_at = now
            result.bot_audio += pcm
            began, ended = self._segmenter.feed(now, pcm)
            if self._segmenter.last_voiced:
                self._last_voice_at = now
            if ended is not None:
                self._utterance_ended(ended)
            if began is not None:
                self._utterance_began(began)
        elif isinstance(message, Hangup):
            self._emit(now, "bot", "hangs up (0x00)")
            self._end(ENDED_BOT_HANGUP)
        elif isinstance(message, PeerError):
            result.bot_errors.append(message.code)
            code = "no code" if message.code is None else f"code 0x{message.code:02x}"
            self._emit(now, "bot", f"ERROR frame 0xff ({code})")
        elif isinstance(message, (CallId, Dtmf, Transcript)):
            self._emit(now, "bot", f"unexpected {type(message).__name__} frame")

    def _utterance_began(self, t: float) -> None:
        self._last_start = t
        note = ""
        if self.result.greeting_at is None:
            self.result.greeting_at = t
        tr = self._pending
        if tr is not None and tr.ended is not None and tr.reply_at is None and t >= tr.ended:
            tr.reply_at = t
            note = f"  (latency {t - tr.ended:.2f} s)"
        self._emit(t, "bot", f"speaks{note}")

    def _utterance_ended(self, utterance: Utterance) -> None:
        self.result.utterances.append(utterance)
        self._emit(
            utterance.start + utterance.duration, "bot", f"stops ({utterance.duration:.2f} s of speech)"
        )

    # -- transcript ---------------------------------------------------------------------------------------

    async def _open_redis(self) -> Any:
        if not self.redis_url:
            return None
        try:
            import redis.asyncio as aioredis

            client = aioredis.from_url(self.redis_url, socket_connect_timeout=1.0, socket_timeout=5.0)
            await asyncio.wait_for(client.ping(), timeout=2.0)
        except Exception as exc:  # any failure: show audio only
            self._emit(
                0.0, "call", f"Redis unreachable ({type(exc).__name__}); the bot's words are not shown"
            )
            return None
        self.result.redis_ok = True
        return client

    def _transcript_key(self) -> str:
        return f"attendant:call:{self.call_id}:transcript"

    async def _transcript_loop(self, redis: Any, *, block_ms: int | None = 250) -> None:
        """XREAD the call's transcript until told to stop (``block_ms=None``: read what is there, once).

        Stopping is a flag checked between reads, not a cancellation: a redis-py command cancelled mid-flight
        costs its connection."""
        while not self._transcript_stop.is_set() or block_ms is None:
            try:
                response = await redis.xread(
                    {self._transcript_key(): self._stream_last}, count=100, block=block_ms
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._emit(self._rel(), "call", f"transcript stream unreadable ({type(exc).__name__})")
                self.result.redis_ok = False
                return
            for _key, entries in response or []:
                for entry_id, fields in entries:
                    self._stream_last = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                    self._on_transcript(fields)
            if block_ms is None:
                return

    def _on_transcript(self, fields: dict[Any, Any]) -> None:
        def get(name: str) -> str:
            value = fields.get(name.encode(), fields.get(name, b""))
            return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)

        who = get("who") or "system"
        text = get("text")
        try:
            t = float(get("t")) - self._wall0
        except ValueError:
            t = self._rel()
        entry = TranscriptEntry(t, who, text)
        self.result.transcript.append(entry)
        if who == "caller":
            self._emit(t, "caller", f'(heard) "{text}"')
        elif who == "bot":
            self._emit(t, "bot", f'"{text}"')
        else:
            self._emit(t, "call", f"[{who}] {text}")

    # -- ending -------------------------------------------------------------------------------------------

    def _end(self, how: str) -> None:
        if self.result.ended_by is None:
            self.result.ended_by = how
            if how != ENDED_WE_HUNG_UP:
                self._emit(self._rel(), "call", how)
        self._ended.set()
        self._queued.set()  # wake the pump so it can stop

    async def _finish(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        tasks: list[asyncio.Task[None]],
        transcript_task: asyncio.Task[None] | None,
        redis: Any,
    ) -> None:
        self._end(ENDED_ABORTED)  # no-op when the script ended the call
        reader_task, pump_task = tasks
        pump_task.cancel()
        # let the gateway see our hangup and close its side; its last frames still count
        try:
            await asyncio.wait_for(asyncio.shield(reader_task), timeout=1.0)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            pass
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass
        self.result.duration_s = self._rel()
        last = self._segmenter.close()
        if last is not None:
            self._utterance_ended(last)
        if transcript_task is not None:
            await asyncio.sleep(TRANSCRIPT_GRACE_S)  # the gateway writes its last lines as the call closes
            self._transcript_stop.set()
            try:
                await asyncio.wait_for(asyncio.shield(transcript_task), timeout=2.0)
            except asyncio.TimeoutError:
                transcript_task.cancel()
            await asyncio.gather(transcript_task, return_exceptions=True)
            if self.result.redis_ok:
                await self._transcript_loop(
                    redis, block_ms=None
                )  # whatever came after the last blocking read
        if redis is not None:
            await redis.close()
        self.result.events.sort(key=lambda e: e.t)

    # -- helpers ------------------------------------------------------------------------------------------

    def _rel(self) -> float:
        return self._clock.now() - self._t0

    def _emit(self, t: float, side: str, text: str) -> None:
        event = Event(t, side, text)
        self.result.events.append(event)
        if self._on_event is not None:
            self._on_event(event)

    def _synth(self, text: str) -> bytes:
        if self._synthesize is None:
            from bot.tts import PiperSynthesizer

            synth = PiperSynthesizer(self._voice, onnx_threads=max(1, min(4, os.cpu_count() or 1)))
            self._synthesize = synth.synthesize
        return self._synthesize(text, self.rate)


# ------------------------------------------------------------------------------------------------- CLI


def _turn(kind: str) -> Callable[[str], Turn]:
    def make(value: str) -> Turn:
        if kind == "wav" and not Path(value).is_file():
            raise argparse.ArgumentTypeError(f"no such file: {value}")
        try:
            return Turn(kind, value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    make.__name__ = f"--{kind}"
    return make


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(
        prog="python -m telephony.simulate",
        description="Call the Attendant gateway the way Asterisk's AudioSocket does, and show both sides.",
        epilog='Example: python -m telephony.simulate --say "what is my balance" --text "yes" --dtmf 1234# '
        "--out bot.wav",
    )
    p.add_argument("--host", default=os.environ.get("ATTENDANT_HOST", "127.0.0.1"), help="gateway host")
    p.add_argument(
        "--port", type=int, default=int(os.environ.get("ATTENDANT_PORT", "9092")), help="gateway port"
    )
    p.add_argument("--uuid", type=uuid.UUID, default=None, help="call UUID (default: random)")
    p.add_argument(
        "--caller-number",
        default=None,
        help="caller id to register over FastAGI first, as the dialplan does (e.g. +15550100001)",
    )
    p.add_argument(
        "--agi-port",
        type=int,
        default=int(os.environ.get("ATTENDANT_AGI_PORT", "4573")),
        help="FastAGI port of the gateway (for --caller-number)",
    )
    p.add_argument(
        "--rate",
        type=int,
        choices=(8000, 16000),
        default=8000,
        help="8000: as the AudioSocket() app (kind 0x10); 16000: as Dial(AudioSocket/.../c(slin16)) (0x12)",
    )
    turns = p.add_argument_group("turns (played in the order given; each may repeat)")
    turns.add_argument(
        "--say",
        dest="turns",
        action="append",
        type=_turn("say"),
        metavar="TEXT",
        help="speak TEXT (Piper at the call rate)",
    )
    turns.add_argument(
        "--wav",
        dest="turns",
        action="append",
        type=_turn("wav"),
        metavar="FILE",
        help="play a WAV file (converted to mono 16-bit at the call rate)",
    )
    turns.add_argument(
        "--text",
        dest="turns",
        action="append",
        type=_turn("text"),
        metavar="TEXT",
        help="inject TEXT after the recogniser (kind 0x40)",
    )
    turns.add_argument(
        "--dtmf",
        dest="turns",
        action="append",
        type=_turn("dtmf"),
        metavar="KEYS",
        help="press keys (0-9 * # A-D), about 100 ms apart",
    )
    p.add_argument("--out", type=Path, default=None, help="write everything the bot sent to this WAV")
    p.add_argument(
        "--no-silence",
        dest="silence",
        action="store_false",
        help="like a Local channel: send nothing while the caller is silent",
    )
    p.add_argument(
        "--wait-s", type=float, default=15.0, help="longest wait for a bot reply to finish (seconds)"
    )
    p.add_argument(
        "--settle-s",
        type=float,
        default=SETTLE_S,
        help="bot silence that counts as the end of its reply (seconds)",
    )
    p.add_argument(
        "--hangup",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="hang up after the last reply (default); --no-hangup waits up to --wait-s for the bot to",
    )
    p.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        help="where the gateway writes the transcript stream",
    )
    p.add_argument(
        "--no-redis", dest="redis_url", action="store_const", const="", help="do not read the transcript"
    )
    p.add_argument("--voice", type=Path, default=None, help="Piper .onnx voice for --say (default: joe)")
    return p


class _Printer:
    """Prints timeline events, with the column header before the first one."""

    def __init__(self) -> None:
        self._started = False

    def __call__(self, event: Event) -> None:
        if not self._started:
            self._started = True
            print(f"{'t (s)':>8}  {'CALLER':<46}  BOT", flush=True)
        print(format_event(event), flush=True)


async def _main(args: argparse.Namespace) -> int:
    sim = CallerSimulator(
        args.host,
        args.port,
        rate=args.rate,
        call_id=args.uuid,
        silence=args.silence,
        wait_s=args.wait_s,
        settle_s=args.settle_s,
        hangup=args.hangup,
        redis_url=args.redis_url or None,
        voice=args.voice,
        on_event=_Printer(),
        caller_number=args.caller_number,
        agi_port=args.agi_port,
    )
    turns: list[Turn] = args.turns or []
    if any(t.kind == "say" for t in turns):
        print("synthesising caller speech with Piper ...", flush=True)
    try:
        result = await sim.run(turns)
    except SimulatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n── summary " + "─" * 60)
    print(result.summary())
    if args.out is not None:
        write_wav(args.out, bytes(result.bot_audio), result.rate)
        print(
            f"  bot audio  {len(result.bot_audio) / (result.rate * SAMPLE_WIDTH):.2f} s written to {args.out}"
        )
    return 1 if (result.bot_errors or result.protocol_error) else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m telephony.simulate``."""
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(_main(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
