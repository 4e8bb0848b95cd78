"""AudioSocket wire format: bytes to typed frames and back, and nothing else.

Each message is a 1-byte kind, a 2-byte big-endian payload length, then the payload (Asterisk's
``res_audiosocket``). Kinds:

====  ================================  ==========================================
0x00  hangup                            length 0
0x01  call UUID                         16 bytes, binary
0x03  DTMF                              1 ASCII byte
0x10  signed linear 16-bit, 8 kHz       20 ms = 320 bytes; ``AudioSocket()`` app uses only this
0x11  .. 0x18  slin at 12, 16, 24, 32,  channel driver only (``Dial(AudioSocket/host:port/uuid/c(slin16))``)
      44.1, 48, 96, 192 kHz
0xff  error                             0 or 1 byte error code
0x40  text (Attendant extension)        UTF-8; the simulator's "inject after the recogniser"; never sent
                                        by Asterisk and refused unless the gateway allows it
====  ================================  ==========================================

The :class:`Decoder` is sans-IO: feed it whatever a socket read returned (half a header, three messages and
a half) and it yields complete messages, raising :class:`ProtocolError` on anything Asterisk would never send.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum

from telephony.frames import SAMPLE_WIDTH, AudioIn, Dtmf, Hangup, PeerError, Transcript

HEADER = struct.Struct(">BH")
"""Kind (1 byte) then payload length (2 bytes, big-endian)."""


class Kind(IntEnum):
    """Message kinds."""

    HANGUP = 0x00
    UUID = 0x01
    DTMF = 0x03
    SLIN_8K = 0x10
    SLIN_12K = 0x11
    SLIN_16K = 0x12
    SLIN_24K = 0x13
    SLIN_32K = 0x14
    SLIN_44K = 0x15
    SLIN_48K = 0x16
    SLIN_96K = 0x17
    SLIN_192K = 0x18
    TEXT = 0x40
    ERROR = 0xFF


AUDIO_RATES: dict[int, int] = {
    Kind.SLIN_8K: 8000,
    Kind.SLIN_12K: 12000,
    Kind.SLIN_16K: 16000,
    Kind.SLIN_24K: 24000,
    Kind.SLIN_32K: 32000,
    Kind.SLIN_44K: 44100,
    Kind.SLIN_48K: 48000,
    Kind.SLIN_96K: 96000,
    Kind.SLIN_192K: 192000,
}
"""Audio kind to sample rate, Hertz."""

RATE_KINDS: dict[int, Kind] = {rate: Kind(kind) for kind, rate in AUDIO_RATES.items()}


def audio_rate(raw: object) -> int | None:
    """A sample rate AudioSocket has a message kind for (Hertz), from ``"16000"`` or ``16000``; else None."""
    try:
        rate = int(str(raw).strip())
    except ValueError:
        return None
    return rate if rate in RATE_KINDS else None


KNOWN_KINDS = frozenset(int(k) for k in Kind)

MAX_AUDIO_MS = 200
"""Largest audio payload accepted, milliseconds (Asterisk sends 20 ms; a tenfold margin is generous)."""
MAX_TEXT_BYTES = 4096
"""Largest injected text accepted, bytes."""
DTMF_DIGITS = frozenset("0123456789*#ABCD")


class ErrorCode(IntEnum):
    """Payload of an error message (``res_audiosocket``)."""

    NONE = 0x00
    HANGUP = 0x01
    FRAME_FORWARDING = 0x02
    MEMORY = 0x04


class ProtocolError(Exception):
    """The peer sent something Asterisk never would; the connection must close."""


@dataclass(frozen=True, slots=True)
class CallId:
    """The call UUID frame."""

    uuid: uuid.UUID


Message = CallId | AudioIn | Dtmf | Hangup | PeerError | Transcript
"""A decoded message: the call UUID, or a frame for the call (injected text arrives as a ``Transcript``
with ``source="inject"``)."""


def _max_payload(kind: int) -> int:
    rate = AUDIO_RATES.get(kind)
    if rate is not None:
        return rate * MAX_AUDIO_MS // 1000 * SAMPLE_WIDTH
    return {Kind.HANGUP: 0, Kind.UUID: 16, Kind.DTMF: 1, Kind.ERROR: 1, Kind.TEXT: MAX_TEXT_BYTES}[Kind(kind)]


def parse(kind: int, payload: bytes) -> Message:
    """Turn one complete message into its typed frame, or raise :class:`ProtocolError`."""
    rate = AUDIO_RATES.get(kind)
    if rate is not None:
        if len(payload) % SAMPLE_WIDTH:
            raise ProtocolError(f"audio payload of {len(payload)} bytes is not whole 16-bit samples")
        return AudioIn(pcm=payload, rate=rate)
    if kind == Kind.HANGUP:
        return Hangup(by="caller")
    if kind == Kind.UUID:
        if len(payload) != 16:
            raise ProtocolError(f"UUID payload must be 16 bytes, got {len(payload)}")
        return CallId(uuid.UUID(bytes=payload))
    if kind == Kind.DTMF:
        digit = payload.decode("ascii", errors="replace")
        if len(payload) != 1 or digit not in DTMF_DIGITS:
            raise ProtocolError(f"DTMF payload must be one of {''.join(sorted(DTMF_DIGITS))}")
        return Dtmf(digit)
    if kind == Kind.ERROR:
        return PeerError(payload[0] if payload else None)
    if kind == Kind.TEXT:
        try:
            return Transcript(payload.decode("utf-8"), source="inject")
        except UnicodeDecodeError as exc:
            raise ProtocolError("text payload is not UTF-8") from exc
    raise ProtocolError(f"unknown message kind 0x{kind:02x}")  # pragma: no cover - checked in Decoder


class Decoder:
    """Incremental decoder: ``feed`` bytes as they arrive, iterate complete messages."""

    __slots__ = ("_buf", "_pos")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0
        """Start of the first message not yet yielded; consumed bytes are dropped on the next feed (one
        move per read, not one per message: a 64 KiB read of 20 ms frames is 200 messages)."""

    @property
    def pending(self) -> int:
        """Bytes held waiting for the rest of a message."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> Iterator[Message]:
        """Add ``data``; yield each complete message. Raises :class:`ProtocolError` at the first bad one."""
        buf = self._buf
        if self._pos:
            del buf[: self._pos]
            self._pos = 0
        buf += data
        while len(buf) - self._pos >= HEADER.size:
            kind, length = HEADER.unpack_from(buf, self._pos)
            if kind not in KNOWN_KINDS:
                raise ProtocolError(f"unknown message kind 0x{kind:02x}")
            limit = _max_payload(kind)
            if length > limit:
                raise ProtocolError(f"kind 0x{kind:02x} payload of {length} bytes exceeds {limit}")
            start = self._pos + HEADER.size
            end = start + length
            if len(buf) < end:
                return
            payload = bytes(buf[start:end])
            self._pos = end
            yield parse(kind, payload)


def encode(kind: int, payload: bytes = b"") -> bytes:
    """One message on the wire."""
    if len(payload) > 0xFFFF:
        raise ValueError(f"payload of {len(payload)} bytes does not fit a 16-bit length")
    return HEADER.pack(kind, len(payload)) + payload


def encode_audio(pcm: bytes, rate: int) -> bytes:
    """Signed-linear audio at ``rate`` Hertz."""
    kind = RATE_KINDS.get(rate)
    if kind is None:
        raise ValueError(f"AudioSocket has no kind for {rate} Hz")
    return encode(kind, pcm)


def encode_uuid(call: uuid.UUID) -> bytes:
    """The call UUID frame Asterisk sends first."""
    return encode(Kind.UUID, call.bytes)


def encode_dtmf(digit: str) -> bytes:
    """One keypad digit."""
    if digit not in DTMF_DIGITS:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    return encode(Kind.DTMF, digit.encode("ascii"))


def encode_hangup() -> bytes:
    """End of call."""
    return encode(Kind.HANGUP)


def encode_error(code: ErrorCode = ErrorCode.NONE) -> bytes:
    """An error report."""
    return encode(Kind.ERROR, bytes([code]))


def encode_text(text: str) -> bytes:
    """Injected text (Attendant extension)."""
    data = text.encode("utf-8")
    if len(data) > MAX_TEXT_BYTES:
        raise ValueError(f"text of {len(data)} bytes exceeds {MAX_TEXT_BYTES}")
    return encode(Kind.TEXT, data)
