"""The caller simulator's pieces, without the real gateway.

Pacing is checked twice: on a fake clock (the schedule itself) and by a small local TCP server that records
when frames arrive. A tiny scripted bot (below) stands in for the gateway where a whole call is needed; the
end-to-end tests against the real gateway live elsewhere. Audio files: ``test_sim_wav.py``; the transcript
reader, the FastAGI client and the caller's voice: ``test_sim_clients.py``.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import socket
import time
import uuid
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from telephony.audiosocket import CallId, Decoder, encode_audio, encode_error, encode_hangup
from telephony.frames import AudioIn, Dtmf, Hangup, Transcript
from telephony.pacing import MonotonicClock, Ticker
from telephony.sim import (
    ENDED_BOT_HANGUP,
    ENDED_SOCKET_CLOSED,
    ENDED_WE_HUNG_UP,
    CallerSimulator,
    Event,
    GatewayUnreachable,
    Turn,
    cli,
)
from telephony.sim.audio import frame_rms, speech_span, split_frames
from telephony.sim.segment import UtteranceSegmenter
from telephony.sim.wav import write_wav

RATE = 8000
FRAME = 320  # bytes in 20 ms at 8 kHz


def tone(seconds: float, rate: int = RATE, freq: float = 440.0, amp: float = 0.3) -> bytes:
    n = round(seconds * rate)
    t = np.arange(n) / rate
    return (np.sin(2 * np.pi * freq * t) * amp * 32767).astype("<i2").tobytes()


def silence(seconds: float, rate: int = RATE) -> bytes:
    return bytes(round(seconds * rate) * 2)


# --------------------------------------------------------------------------------------------- fake clock


class FakeClock:
    """Time moves only when slept on; each wake-up is late by a random 0-7 ms, as a busy loop would be."""

    def __init__(self, seed: int = 7) -> None:
        self.t = 1000.0
        self.deadlines: list[float] = []
        self.woke: list[float] = []
        self._rng = random.Random(seed)

    def now(self) -> float:
        return self.t

    async def sleep_until(self, deadline: float) -> None:
        self.deadlines.append(deadline)
        self.t = max(self.t, deadline) + self._rng.uniform(0, 0.007)
        self.woke.append(self.t)


async def test_ticker_absolute_schedule_has_no_drift() -> None:
    clock = FakeClock()
    ticker = Ticker(clock)
    due = [await ticker.tick() for _ in range(500)]
    start = due[0]
    assert due == pytest.approx([start + n * 0.02 for n in range(500)], abs=1e-9)
    # every wake-up was late, yet the 500th frame is due exactly 9.98 s after the first
    assert all(w > d for w, d in zip(clock.woke, clock.deadlines, strict=True))
    assert clock.woke[-1] - start < 9.98 + 0.0071


async def test_ticker_reset_starts_a_new_schedule() -> None:
    clock = FakeClock()
    ticker = Ticker(clock)
    for _ in range(3):
        await ticker.tick()
    assert ticker.running
    clock.t += 5.0
    ticker.reset()
    assert not ticker.running
    first = await ticker.tick()
    second = await ticker.tick()
    assert first == pytest.approx(clock.deadlines[3])
    assert second - first == pytest.approx(0.02)


# --------------------------------------------------------------------------------------------- segmentation


def test_segmenter_utterances() -> None:
    seg = UtteranceSegmenter(RATE)
    voiced = tone(0.02)
    quiet = silence(0.02)
    script = [quiet] * 10 + [voiced] * 25 + [quiet] * 5 + [voiced] * 10 + [quiet] * 20 + [voiced] * 5
    starts: list[float] = []
    ended = []
    for i, frame in enumerate(script):
        began, done = seg.feed(i * 0.02, frame)
        if began is not None:
            starts.append(began)
        if done is not None:
            ended.append((i, done))
    assert starts == pytest.approx([0.2, 1.4])
    # the 100 ms gap did not split the first utterance; 300 ms of silence (15 frames) ended it
    assert len(ended) == 1
    index, first = ended[0]
    assert index == 10 + 25 + 5 + 10 + 15 - 1
    assert first.start == pytest.approx(0.2)
    assert first.duration == pytest.approx(0.8)
    assert seg.active
    last = seg.close()
    assert last is not None and last.duration == pytest.approx(0.1)
    assert seg.close() is None


def test_segmenter_ignores_near_silence() -> None:
    seg = UtteranceSegmenter(RATE)
    faint = (np.ones(160) * 10).astype("<i2").tobytes()  # RMS 10: dither, not speech
    assert all(seg.feed(i * 0.02, faint) == (None, None) for i in range(50))
    assert not seg.active


def test_speech_span_and_split() -> None:
    pcm = silence(0.5) + tone(1.0) + silence(0.3) + b"\x01\x00"  # odd tail gets padded
    frames = split_frames(pcm, RATE)
    assert len(frames) == 91 and all(len(f) == FRAME for f in frames)
    assert speech_span(frames) == (25, 74)
    assert speech_span(split_frames(silence(0.2), RATE)) is None


# --------------------------------------------------------------------------------------------- a scripted bot


@dataclass
class FakeBot:
    """Plays the gateway's part just enough: greets, answers each injected text, '#' or end of caller speech
    with a tone after ``reply_delay`` s, sends silence frames in between, records what arrives."""

    rate: int = RATE
    greeting_s: float = 0.4
    reply_delay: float = 0.25
    reply_s: float = 0.3
    send_silence: bool = True
    hang_up_on: str | None = None
    error_after_greeting: bool = False
    redis_url: str | None = None
    received: list[tuple[float, object]] = field(default_factory=list)
    raw: bytearray = field(default_factory=bytearray)
    call_id: uuid.UUID | None = None
    closed_by_peer: asyncio.Event = field(default_factory=asyncio.Event)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        out: asyncio.Queue[bytes] = asyncio.Queue()
        redis = None
        if self.redis_url:
            import redis.asyncio as aioredis

            redis = aioredis.from_url(self.redis_url)

        async def note(who: str, text: str) -> None:
            if redis is not None and self.call_id is not None:
                key = f"attendant:call:{self.call_id}:transcript"
                await redis.xadd(key, {"who": who, "text": text, "t": repr(time.time())})

        def queue_audio(pcm: bytes) -> None:
            for i in range(0, len(pcm), self.rate // 50 * 2):
                out.put_nowait(pcm[i : i + self.rate // 50 * 2])

        async def speak_later(pcm: bytes, delay: float, then_hangup: bool = False) -> None:
            await asyncio.sleep(delay)
            queue_audio(pcm)
            if then_hangup:
                out.put_nowait(b"HANGUP")

        async def pump() -> None:
            ticker = Ticker(MonotonicClock())
            while True:
                if not self.send_silence and out.empty():
                    ticker.reset()
                    item = await out.get()
                else:
                    await ticker.tick()
                    item = out.get_nowait() if not out.empty() else bytes(self.rate // 50 * 2)
                if item == b"HANGUP":
                    writer.write(encode_hangup())
                    await writer.drain()
                    writer.close()
                    return
                writer.write(encode_audio(item, self.rate))
                if self.error_after_greeting and item is not None and out.empty():
                    writer.write(encode_error())
                    self.error_after_greeting = False
                await writer.drain()

        pump_task = asyncio.create_task(pump())
        helpers: list[asyncio.Task[None]] = []
        voice_reply: asyncio.Task[None] | None = None
        decoder = Decoder()
        start = time.monotonic()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    self.closed_by_peer.set()
                    break
                self.raw += data
                now = time.monotonic() - start
                for msg in decoder.feed(data):
                    self.received.append((now, msg))
                    if isinstance(msg, CallId):
                        self.call_id = msg.uuid
                        queue_audio(tone(self.greeting_s, self.rate))
                        await note("bot", "hello, how can I help?")
                    elif isinstance(msg, Transcript):
                        await note("caller", msg.text)
                        await note("bot", f"you said {msg.text}")
                        bye = self.hang_up_on is not None and msg.text == self.hang_up_on
                        pcm = tone(self.reply_s, self.rate, 660)
                        helpers.append(asyncio.create_task(speak_later(pcm, self.reply_delay, bye)))
                    elif isinstance(msg, AudioIn) and frame_rms(msg.pcm) > 100:
                        # a crude endpointer: answer reply_delay after the caller's last voiced frame
                        if voice_reply is not None:
                            voice_reply.cancel()
                        voice_reply = asyncio.create_task(
                            speak_later(tone(self.reply_s, self.rate), self.reply_delay)
                        )
                        helpers.append(voice_reply)
                    elif isinstance(msg, Dtmf) and msg.digit == "#":
                        helpers.append(
                            asyncio.create_task(speak_later(tone(self.reply_s, self.rate), self.reply_delay))
                        )
                    elif isinstance(msg, Hangup):
                        self.closed_by_peer.set()
                        return
        except (ConnectionError, OSError):
            pass
        finally:
            for task in [pump_task, *helpers]:
                task.cancel()
            await asyncio.gather(pump_task, *helpers, return_exceptions=True)
            writer.close()
            if redis is not None:
                await redis.close()

    def audio_arrivals(self) -> list[float]:
        return [t for t, m in self.received if isinstance(m, AudioIn)]


@pytest.fixture
async def bot() -> AsyncIterator[tuple[FakeBot, int]]:
    fake = FakeBot()
    server = await asyncio.start_server(fake.serve, "127.0.0.1", 0)
    yield fake, server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


def sim(port: int, **kw: object) -> CallerSimulator:
    options: dict[str, object] = {"wait_s": 3.0, "settle_s": 0.3, "redis_url": None}
    options.update(kw)
    return CallerSimulator("127.0.0.1", port, **options)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------- on the wire


async def test_uuid_text_dtmf_and_hangup_bytes(bot: tuple[FakeBot, int]) -> None:
    fake, port = bot
    call = uuid.UUID("0f8fad5b-d9cb-469f-a165-70867728950e")
    result = await sim(port, call_id=call).run([Turn("text", "what is my balance"), Turn("dtmf", "12#")])
    raw = bytes(fake.raw)
    assert raw.startswith(b"\x01\x00\x10" + call.bytes)
    assert b"\x40\x00\x12what is my balance" in raw
    for key in b"12#":
        assert b"\x03\x00\x01" + bytes([key]) in raw
    assert raw.endswith(b"\x00\x00\x00")
    keys = [t for t, m in fake.received if isinstance(m, Dtmf)]
    gaps = [b - a for a, b in itertools.pairwise(keys)]
    assert all(0.08 <= g <= 0.14 for g in gaps), gaps
    assert result.ended_by == ENDED_WE_HUNG_UP


async def test_caller_audio_is_paced_in_real_time(bot: tuple[FakeBot, int]) -> None:
    """Local-channel mode sends only the turn's frames: 50 frames, 20 ms apart on the server's clock."""
    fake, port = bot
    pcm = tone(1.0)
    await sim(port, silence=False).run([Turn("audio", "tone", pcm=pcm)])
    arrivals = fake.audio_arrivals()
    assert len(arrivals) == 50, arrivals
    span = arrivals[-1] - arrivals[0]
    assert span == pytest.approx(0.98, abs=0.03), arrivals
    # no frame strays from the schedule (a loaded CI machine may delay one, never the ones after it)
    first = arrivals[0]
    offsets = sorted(abs(t - (first + i * 0.02)) for i, t in enumerate(arrivals))
    assert offsets[len(offsets) // 2] < 0.005, offsets
    assert offsets[-1] < 0.04, offsets
    sent = b"".join(m.pcm for _, m in fake.received if isinstance(m, AudioIn))
    assert sent == pcm  # 1 s is whole frames: nothing added, nothing lost


async def test_silence_frames_flow_between_turns(bot: tuple[FakeBot, int]) -> None:
    fake, port = bot
    await sim(port).run([Turn("text", "hi")])
    frames = [m for _, m in fake.received if isinstance(m, AudioIn)]
    assert all(m.pcm == bytes(FRAME) for m in frames)
    arrivals = fake.audio_arrivals()
    assert arrivals[-1] - arrivals[0] > 0.8  # greeting, reply and the waits in between
    assert len(arrivals) * 0.02 == pytest.approx(arrivals[-1] - arrivals[0] + 0.02, rel=0.05)
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert max(gaps) < 0.06, "silence frames stopped flowing"


async def test_no_silence_mode_sends_nothing_while_quiet(bot: tuple[FakeBot, int]) -> None:
    fake, port = bot
    await sim(port, silence=False).run([Turn("text", "hi"), Turn("dtmf", "#")])
    assert not [m for _, m in fake.received if isinstance(m, AudioIn)]


async def test_rate_16000_uses_kind_0x12(bot: tuple[FakeBot, int]) -> None:
    fake, port = bot
    fake.rate = 16000
    pcm = tone(0.2, 16000)
    result = await sim(port, rate=16000, silence=False).run([Turn("audio", "tone", pcm=pcm)])
    assert b"\x12\x02\x80" in bytes(fake.raw)  # kind 0x12, 640 bytes
    assert result.rate == 16000 and result.frames_received > 0


# --------------------------------------------------------------------------------------------- whole calls


async def test_timeline_latency_and_wav(bot: tuple[FakeBot, int], tmp_path: Path) -> None:
    fake, port = bot
    events: list[Event] = []
    turns = [
        Turn("text", "what is my balance"),
        Turn("audio", "speech", pcm=silence(0.2) + tone(0.6) + silence(0.4)),
        Turn("dtmf", "1#"),
    ]
    result = await sim(port, on_event=events.append).run(turns)
    assert result.greeting_at is not None and result.greeting_at < 0.3
    assert len(result.latencies) == 3
    for tr in result.turns:
        assert tr.latency == pytest.approx(fake.reply_delay, abs=0.12), tr
    # the audio turn's speech ended at its last voiced frame, not its last frame
    audio_turn = result.turns[1]
    assert audio_turn.started is not None and audio_turn.ended is not None
    assert audio_turn.ended - audio_turn.started == pytest.approx(0.58, abs=0.05)
    assert [round(u.duration, 2) for u in result.utterances] == [0.4, 0.3, 0.3, 0.3]
    assert result.latency_p50 is not None and result.latency_max is not None
    ratio = result.pacing_ratio
    assert ratio is not None and ratio == pytest.approx(1.0, abs=0.1)
    assert result.ended_by == ENDED_WE_HUNG_UP
    text = result.summary()
    assert "latency" in text and "p50" in text and "ratio" in text
    assert any("latency" in e.text for e in events if e.side == "bot")
    out = tmp_path / "bot.wav"
    write_wav(out, bytes(result.bot_audio), result.rate)
    with wave.open(str(out), "rb") as w:
        assert w.getframerate() == RATE
        assert w.getnframes() == result.frames_received * 160


async def test_bot_hangup_ends_the_call_and_skips_turns(bot: tuple[FakeBot, int]) -> None:
    fake, port = bot
    fake.hang_up_on = "goodbye"
    result = await sim(port).run([Turn("text", "goodbye"), Turn("text", "still there?")])
    assert result.ended_by == ENDED_BOT_HANGUP
    assert result.turns[0].latency is not None
    assert result.turns[1].skipped
    assert not any(isinstance(m, Transcript) and m.text == "still there?" for _, m in fake.received)
    assert not any(isinstance(m, Hangup) for _, m in fake.received)  # we did not hang up too


async def test_no_hangup_waits_for_the_bot(bot: tuple[FakeBot, int]) -> None:
    fake, port = bot
    fake.hang_up_on = "bye"
    result = await sim(port, hangup=False).run([Turn("text", "bye")])
    assert result.ended_by == ENDED_BOT_HANGUP


async def test_bot_error_frame_is_reported(bot: tuple[FakeBot, int]) -> None:
    fake, port = bot
    fake.error_after_greeting = True
    result = await sim(port).run([])
    assert result.bot_errors == [0]
    assert "bot error" in result.summary()


async def test_socket_closed_by_gateway() -> None:
    async def rude(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(19)
        writer.write(encode_audio(tone(0.1), RATE))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(rude, "127.0.0.1", 0)
    try:
        result = await sim(server.sockets[0].getsockname()[1]).run([Turn("text", "hello")])
    finally:
        server.close()
        await server.wait_closed()
    assert result.ended_by == ENDED_SOCKET_CLOSED
    assert result.turns[0].skipped


async def test_transcript_from_redis() -> None:
    import redis.asyncio as aioredis

    url = "redis://127.0.0.1:6379/0"
    client = aioredis.from_url(url)
    try:
        await client.ping()
    except Exception as exc:  # pragma: no cover - the build machines have Redis
        pytest.skip(f"no Redis: {exc}")
    fake = FakeBot(redis_url=url)
    server = await asyncio.start_server(fake.serve, "127.0.0.1", 0)
    call = uuid.uuid4()
    try:
        result = await sim(server.sockets[0].getsockname()[1], call_id=call, redis_url=url).run(
            [Turn("text", "what is my balance")]
        )
    finally:
        server.close()
        await server.wait_closed()
        await client.delete(f"attendant:call:{call}:transcript")
        await client.close()
    assert result.redis_ok
    assert [(e.who, e.text) for e in result.transcript] == [
        ("bot", "hello, how can I help?"),
        ("caller", "what is my balance"),
        ("bot", "you said what is my balance"),
    ]
    assert all(0 <= e.t < result.duration_s for e in result.transcript)
    assert result.bot_said()[-1] == "you said what is my balance"


async def test_redis_unreachable_shows_audio_only(bot: tuple[FakeBot, int]) -> None:
    _fake, port = bot
    result = await sim(port, redis_url="redis://127.0.0.1:1/0").run([])
    assert not result.redis_ok
    assert "not available" in result.summary()
    assert result.utterances


async def test_gateway_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(GatewayUnreachable, match=rf"127\.0\.0\.1:{port}.*make run"):
        await sim(port).run([Turn("text", "hello")])


def test_cli_unreachable_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert cli.main(["--port", str(port), "--no-redis", "--text", "hi"]) == 2
    assert "cannot reach the gateway" in capsys.readouterr().err


def test_cli_keeps_turn_order(tmp_path: Path) -> None:
    wav = tmp_path / "a.wav"
    write_wav(wav, tone(0.1), RATE)
    args = cli.build_parser().parse_args(
        [
            "--text",
            "one",
            "--dtmf",
            "12#",
            "--wav",
            str(wav),
            "--say",
            "two",
            "--text",
            "three",
            "--rate",
            "16000",
        ]
    )
    assert [(t.kind, t.value) for t in args.turns] == [
        ("text", "one"),
        ("dtmf", "12#"),
        ("wav", str(wav)),
        ("say", "two"),
        ("text", "three"),
    ]
    assert args.rate == 16000 and args.silence and args.hangup
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["--dtmf", "12x"])
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["--rate", "11025"])


def test_turn_validation() -> None:
    with pytest.raises(ValueError):
        Turn("sing", "la")
    with pytest.raises(ValueError):
        Turn("audio", "x")
    assert Turn("dtmf", "*0#A").label == "keys *0#A"
