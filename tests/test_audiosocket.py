"""AudioSocket framing, byte for byte, and the server's behaviour on bad input (real TCP)."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest

from telephony import audiosocket as wire
from telephony.frames import AudioIn, Dtmf, Hangup, InboundFrame, PeerError, Transcript
from telephony.server import AudioSocketServer, Connection

CALL = uuid.UUID("40325ec2-5efd-4bd3-805f-53576e581d13")


# ----------------------------------------------------------------------------------------- encoding


def test_encode_every_kind_byte_exact() -> None:
    assert wire.encode_hangup() == b"\x00\x00\x00"
    assert wire.encode_uuid(CALL) == b"\x01\x00\x10" + bytes.fromhex("40325ec25efd4bd3805f53576e581d13")
    assert wire.encode_dtmf("5") == b"\x03\x00\x015"
    assert wire.encode_dtmf("#") == b"\x03\x00\x01#"
    assert wire.encode_error() == b"\xff\x00\x01\x00"
    assert wire.encode_error(wire.ErrorCode.MEMORY) == b"\xff\x00\x01\x04"
    assert wire.encode_text("hi") == b"\x40\x00\x02hi"
    frame = bytes(range(256)) + bytes(64)  # 320 bytes = 20 ms at 8 kHz
    assert wire.encode_audio(frame, 8000) == b"\x10\x01\x40" + frame
    expected = {
        8000: 0x10, 12000: 0x11, 16000: 0x12, 24000: 0x13, 32000: 0x14,
        44100: 0x15, 48000: 0x16, 96000: 0x17, 192000: 0x18,
    }  # fmt: skip
    for rate, kind in expected.items():
        pcm = bytes(rate * 20 // 1000 * 2)
        encoded = wire.encode_audio(pcm, rate)
        assert encoded[0] == kind
        assert int.from_bytes(encoded[1:3], "big") == len(pcm)
        assert encoded[3:] == pcm


def test_encode_rejects_what_does_not_fit() -> None:
    with pytest.raises(ValueError):
        wire.encode_audio(b"\0\0", 11025)
    with pytest.raises(ValueError):
        wire.encode_dtmf("x")
    with pytest.raises(ValueError):
        wire.encode(0x10, bytes(70000))


# ----------------------------------------------------------------------------------------- decoding


def test_decode_every_kind() -> None:
    stream = (
        wire.encode_uuid(CALL)
        + wire.encode_audio(b"\x01\x02" * 160, 8000)
        + wire.encode_audio(b"\x03\x04" * 320, 16000)
        + wire.encode_dtmf("7")
        + wire.encode_text("one two three")
        + b"\xff\x00\x01\x02"
        + b"\xff\x00\x00"
        + wire.encode_hangup()
    )
    messages = list(wire.Decoder().feed(stream))
    assert messages == [
        wire.CallId(CALL),
        AudioIn(b"\x01\x02" * 160, 8000),
        AudioIn(b"\x03\x04" * 320, 16000),
        Dtmf("7"),
        Transcript("one two three", source="inject"),
        PeerError(2),
        PeerError(None),
        Hangup(by="caller"),
    ]


def test_decode_split_reads_byte_by_byte() -> None:
    stream = wire.encode_uuid(CALL) + wire.encode_audio(bytes(320), 8000) + wire.encode_dtmf("#")
    decoder = wire.Decoder()
    out: list[wire.Message] = []
    for i in range(len(stream)):
        out.extend(decoder.feed(stream[i : i + 1]))
        if i < 2:
            assert decoder.pending == i + 1  # half a header is held, not misread
    assert out == [wire.CallId(CALL), AudioIn(bytes(320), 8000), Dtmf("#")]
    assert decoder.pending == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x02\x00\x00", "unknown message kind 0x02"),
        (b"\x7f\x00\x00", "unknown message kind 0x7f"),
        (b"\x10\x0f\xa2", "exceeds"),  # 4002 bytes of 8 kHz audio = 250 ms > 200 ms
        (b"\x01\x00\x10", None),  # a UUID header alone is fine: waiting for the payload
        (b"\x01\x00\x08" + bytes(8), "UUID payload must be 16 bytes"),
        (b"\x03\x00\x02ab", "exceeds"),
        (b"\x00\x00\x01x", "exceeds"),
        (b"\x10\x00\x03abc", "whole 16-bit samples"),
        (b"\x03\x00\x01x", "DTMF payload"),
        (b"\x40\x00\x02\xff\xfe", "UTF-8"),
    ],
)
def test_decode_rejects_bad_input(data: bytes, message: str | None) -> None:
    decoder = wire.Decoder()
    if message is None:
        assert list(decoder.feed(data)) == []
        return
    with pytest.raises(wire.ProtocolError, match=message):
        list(decoder.feed(data))


# ----------------------------------------------------------------------------------------- server


class RecordingCall:
    """A stand-in call handler: records what the edge delivered, echoes audio, ends on hangup."""

    def __init__(self, call_id: str, out: Connection) -> None:
        self.call_id = call_id
        self.out = out
        self.events: list[object] = []
        self.done = asyncio.Event()

    def on_frame(self, frame: InboundFrame) -> None:
        self.events.append(frame)
        if isinstance(frame, AudioIn):
            self.out.send_audio(frame.pcm, frame.rate)
        if isinstance(frame, (Hangup, PeerError)):
            self.done.set()

    async def run(self) -> None:
        await self.done.wait()


@pytest.fixture
async def server() -> tuple[AudioSocketServer, dict[str, RecordingCall]]:
    calls: dict[str, RecordingCall] = {}

    def factory(call_id: str, out: Connection) -> RecordingCall:
        calls[call_id] = RecordingCall(call_id, out)
        return calls[call_id]

    srv = AudioSocketServer(factory, host="127.0.0.1", port=0, max_calls=3, first_frame_timeout_s=0.5)
    await srv.start()
    yield srv, calls
    await srv.close()


async def _read_message(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    header = await asyncio.wait_for(reader.readexactly(3), 2)
    kind, length = header[0], int.from_bytes(header[1:], "big")
    return kind, await reader.readexactly(length)


async def test_server_dispatches_split_writes_and_keeps_serving_others(server) -> None:  # type: ignore[no-untyped-def]
    srv, calls = server
    good_r, good_w = await asyncio.open_connection("127.0.0.1", srv.port)
    good = uuid.uuid4()
    # Header and payload in separate TCP writes, as a busy Asterisk may deliver them.
    for piece in (wire.encode_uuid(good)[:2], wire.encode_uuid(good)[2:], b"\x10\x01", b"\x40" + bytes(320)):
        good_w.write(piece)
        await good_w.drain()
        await asyncio.sleep(0.01)
    assert await _read_message(good_r) == (0x10, bytes(320))

    # A second caller sends garbage: it gets an error frame and is closed...
    bad_r, bad_w = await asyncio.open_connection("127.0.0.1", srv.port)
    bad = uuid.uuid4()
    bad_w.write(wire.encode_uuid(bad) + b"\x10\xff\xff")  # 65535 bytes of audio: oversize
    await bad_w.drain()
    assert await _read_message(bad_r) == (0xFF, b"\x00")
    assert await asyncio.wait_for(bad_r.read(), 2) == b""
    assert calls[str(bad)].events[-1] == PeerError(None)

    # ...a third sends an unknown kind...
    unk_r, unk_w = await asyncio.open_connection("127.0.0.1", srv.port)
    unk_w.write(wire.encode_uuid(uuid.uuid4()) + b"\x33\x00\x00")
    await unk_w.drain()
    assert await _read_message(unk_r) == (0xFF, b"\x00")
    assert await asyncio.wait_for(unk_r.read(), 2) == b""
    assert srv.protocol_errors == 2

    # ...while the first call carries on untouched.
    good_w.write(wire.encode_dtmf("9") + wire.encode_audio(b"\x01\x00" * 160, 8000) + wire.encode_hangup())
    await good_w.drain()
    assert await _read_message(good_r) == (0x10, b"\x01\x00" * 160)
    await asyncio.wait_for(calls[str(good)].done.wait(), 2)
    assert calls[str(good)].events == [
        AudioIn(bytes(320), 8000), Dtmf("9"), AudioIn(b"\x01\x00" * 160, 8000), Hangup("caller"),
    ]  # fmt: skip
    good_w.close()
    await asyncio.sleep(0.05)
    assert srv.active == 0


async def test_server_requires_uuid_first_and_in_time(server) -> None:  # type: ignore[no-untyped-def]
    srv, calls = server
    r, w = await asyncio.open_connection("127.0.0.1", srv.port)
    w.write(wire.encode_audio(bytes(320), 8000))
    await w.drain()
    assert await _read_message(r) == (0xFF, b"\x00")
    assert await asyncio.wait_for(r.read(), 2) == b""

    r2, w2 = await asyncio.open_connection("127.0.0.1", srv.port)
    w2.write(b"\x01\x00")  # half a header, then nothing: dropped after the first-frame timeout
    await w2.drain()
    assert await _read_message(r2) == (0xFF, b"\x00")
    assert await asyncio.wait_for(r2.read(), 2) == b""
    assert calls == {}


async def test_server_eof_is_a_caller_hangup(server) -> None:  # type: ignore[no-untyped-def]
    srv, calls = server
    r, w = await asyncio.open_connection("127.0.0.1", srv.port)
    call = uuid.uuid4()
    w.write(wire.encode_uuid(call))
    await w.drain()
    await asyncio.sleep(0.05)
    w.close()
    await asyncio.wait_for(calls[str(call)].done.wait(), 2)
    assert calls[str(call)].events == [Hangup("caller")]


async def test_server_refuses_beyond_capacity(server) -> None:  # type: ignore[no-untyped-def]
    srv, calls = server
    writers = []
    for _ in range(3):
        r, w = await asyncio.open_connection("127.0.0.1", srv.port)
        w.write(wire.encode_uuid(uuid.uuid4()))
        await w.drain()
        writers.append(w)
    await asyncio.sleep(0.1)
    assert srv.active == 3
    r4, w4 = await asyncio.open_connection("127.0.0.1", srv.port)
    assert await _read_message(r4) == (0xFF, b"\x00")
    assert await asyncio.wait_for(r4.read(), 2) == b""
    assert srv.rejected == 1
    for w in writers:
        w.write(wire.encode_hangup())
        await w.drain()
    await asyncio.sleep(0.1)
    assert srv.active == 0


async def test_server_caps_injected_text_at_the_edge_with_a_log_line(server, caplog) -> None:  # type: ignore[no-untyped-def]
    """Rasa refuses turns over 2,000 characters; the wire allows 4,096 bytes: the edge cuts and says so."""
    srv, calls = server
    r, w = await asyncio.open_connection("127.0.0.1", srv.port)
    call = uuid.uuid4()
    long_text = "a" * 4096
    with caplog.at_level(logging.WARNING, logger="telephony.server"):
        text = wire.encode(wire.Kind.TEXT, long_text.encode())
        w.write(wire.encode_uuid(call) + text + wire.encode_hangup())
        await w.drain()
        for _ in range(100):
            if str(call) in calls:
                break
            await asyncio.sleep(0.01)
        await asyncio.wait_for(calls[str(call)].done.wait(), 2)
    texts = [e for e in calls[str(call)].events if isinstance(e, Transcript)]
    assert [len(t.text) for t in texts] == [2000]  # what Rasa accepts
    said = f"call {call}: injected text of 4096 characters cut to 2000"
    assert any(said in rec.getMessage() for rec in caplog.records), caplog.text
    assert long_text not in caplog.text  # the length only, never the words
    w.close()


async def test_server_names_the_timeout_when_no_uuid_arrives(server, caplog) -> None:  # type: ignore[no-untyped-def]
    srv, _ = server
    with caplog.at_level(logging.WARNING, logger="telephony.server"):
        r, w = await asyncio.open_connection("127.0.0.1", srv.port)
        assert await _read_message(r) == (0xFF, b"\x00")  # after the 0.5 s first-frame timeout
        w.close()
    lines = [rec.getMessage() for rec in caplog.records if "before a call UUID" in rec.getMessage()]
    assert lines == ["connection dropped before a call UUID: TimeoutError"], lines
