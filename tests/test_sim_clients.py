"""The simulator's clients of the gateway's other doors, and its voice: the Redis transcript reader, the
FastAGI ``register`` client (on real sockets, real Redis) and the caller's Piper voice (the real joe model).
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from pathlib import Path

import pytest

from telephony.sim import GatewayUnreachable
from telephony.sim.agi_client import agi_register
from telephony.sim.audio import frame_rms, speech_span, split_frames
from telephony.sim.speech import PiperCaller
from telephony.sim.transcript import TranscriptLine, TranscriptReader


async def test_transcript_reader_reads_odd_entries_and_reports_a_broken_stream() -> None:
    """Entries without ``who`` or with an unreadable ``t`` still arrive; a key of the wrong type ends the
    reading with one note and ``ok`` False, and the call goes on."""
    import redis.asyncio as aioredis

    url = "redis://127.0.0.1:6379/0"
    client = aioredis.from_url(url)
    try:
        await client.ping()
    except Exception as exc:  # pragma: no cover - the build machines have Redis
        pytest.skip(f"no Redis: {exc}")
    call = uuid.uuid4()
    key = f"attendant:call:{call}:transcript"
    lines: list[TranscriptLine] = []
    problems: list[str] = []
    reader = TranscriptReader(url, call, on_line=lines.append, on_problem=problems.append)
    try:
        await client.xadd(key, {"who": "bot", "text": "héllo", "t": "1700000000.25"})
        await client.xadd(key, {"text": "no speaker", "t": "soon"})
        assert await reader.open() and reader.ok
        follower = asyncio.create_task(reader.follow())
        await asyncio.sleep(0.1)
        await client.xadd(key, {"who": "caller", "text": "late line", "t": "1700000001"})
        await reader.finish(follower, grace_s=0.1)
        assert lines == [
            TranscriptLine("bot", "héllo", 1700000000.25),
            TranscriptLine("system", "no speaker", None),
            TranscriptLine("caller", "late line", 1700000001.0),
        ]
        assert problems == [] and reader.ok

        await client.delete(key)
        await client.set(key, "not a stream")
        broken = TranscriptReader(url, call, on_line=lines.append, on_problem=problems.append)
        assert await broken.open()
        await broken.follow(block_ms=None)
        assert problems == ["transcript stream unreadable (ResponseError)"]
        assert not broken.ok
        await broken.close()
    finally:
        await reader.close()
        await client.delete(key)
        await client.close()


async def test_transcript_reader_without_redis() -> None:
    problems: list[str] = []
    reader = TranscriptReader(
        "redis://127.0.0.1:1/0", uuid.uuid4(), on_line=lambda line: None, on_problem=problems.append
    )
    assert not await reader.open()
    assert not reader.ok
    assert len(problems) == 1 and problems[0].startswith("Redis unreachable (")
    await reader.finish(None)  # nothing to stop or close


@pytest.mark.parametrize("rate", [8000, 16000])
async def test_agi_register_sends_the_dialplans_header_with_the_rate(rate: int) -> None:
    """Byte for byte what Asterisk sends from the sample dialplan: argument 1 the call, argument 2 the rate,
    the context that goes with the rate; every command answered ``200 result=1``, variables returned."""
    received: list[bytes] = []
    answers: list[bytes] = []

    async def route(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (line := await reader.readline()) not in (b"\n", b""):
            received.append(line)
        writer.write(b'SET VARIABLE ATTENDANT_REGISTERED "yes"\nVERBOSE "hello" 1\n')
        await writer.drain()
        answers.append(await reader.readline())
        answers.append(await reader.readline())
        writer.close()

    server = await asyncio.start_server(route, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    call = uuid.UUID("0f8fad5b-d9cb-469f-a165-70867728950e")
    try:
        variables = await agi_register("127.0.0.1", port, call, "+15550100001", rate=rate)
    finally:
        server.close()
        await server.wait_closed()
    header = dict(line.decode().rstrip("\n").split(": ", 1) for line in received)
    assert header["agi_request"] == f"agi://127.0.0.1:{port}/register"
    assert header["agi_network_script"] == "register"
    assert header["agi_callerid"] == "+15550100001"
    assert header["agi_arg_1"] == str(call)
    assert header["agi_arg_2"] == str(rate)
    assert header["agi_context"] == ("attendant" if rate == 8000 else "attendant-slin16")
    assert list(header)[-2:] == ["agi_arg_1", "agi_arg_2"]
    assert answers == [b"200 result=1\n", b"200 result=1\n"]
    assert variables == {"ATTENDANT_REGISTERED": "yes"}


async def test_agi_register_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(GatewayUnreachable, match=rf"FastAGI at 127\.0\.0\.1:{port}"):
        await agi_register("127.0.0.1", port, uuid.uuid4(), "+15550100001")


def test_caller_voice_speaks_at_the_call_rate() -> None:
    """The real joe voice through piper-tts, resampled with soxr: the same line at 16 kHz has twice the
    samples of 8 kHz, and is speech (not silence) at both; a missing voice file is an OSError."""
    voice = PiperCaller(threads=1)
    narrow = voice.synthesize("Hello. I would like to check my balance.", 8000)
    wide = voice.synthesize("Hello. I would like to check my balance.", 16000)
    assert len(narrow) % 2 == 0 and len(narrow) > 8000 * 2  # more than a second
    # Piper draws each phoneme's length at random (noise_w): two renderings of one line differ by up to ~5 %,
    # so the ratio of two was 1.90-2.10 over 26 tries (1.899 failed a fresh-clone run at rel=0.05). A wrong
    # rate gives 1, 2.76 (Piper's 22,050 Hz kept) or 4: 2 +/- 20 % tells them apart.
    assert len(wide) / len(narrow) == pytest.approx(2, rel=0.2)
    for pcm, rate in ((narrow, 8000), (wide, 16000)):
        assert speech_span(split_frames(pcm, rate)) is not None
        assert frame_rms(pcm) > 500
    with pytest.raises(FileNotFoundError):
        PiperCaller(Path("/nonexistent/voice.onnx")).synthesize("hi", 8000)
