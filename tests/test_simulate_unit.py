"""The caller simulator's pieces, without the real gateway.

Pacing is checked twice: on a fake clock (the schedule itself) and by a small local TCP server that records
when frames arrive. A tiny scripted bot (below) stands in for the gateway where a whole call is needed; the
end-to-end tests against the real gateway live elsewhere.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import socket
import struct
import time
import uuid
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile

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
from telephony.sim.agi_client import agi_register
from telephony.sim.audio import frame_rms, speech_span, split_frames
from telephony.sim.segment import UtteranceSegmenter
from telephony.sim.speech import PiperCaller
from telephony.sim.transcript import TranscriptLine, TranscriptReader
from telephony.sim.wav import load_wav, read_wav, write_wav

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


# --------------------------------------------------------------------------------------------- WAV in and out


def test_write_wav_round_trip(tmp_path: Path) -> None:
    pcm = tone(0.5, 16000)
    path = tmp_path / "sub" / "bot.wav"
    write_wav(path, pcm, 16000)
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
        assert w.readframes(w.getnframes()) == pcm


def _riff(tag: int, channels: int, rate: int, bits: int, data: bytes, *, extensible: bool = False) -> bytes:
    align = channels * bits // 8
    if extensible:
        guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt = struct.pack("<HHIIHH", 0xFFFE, channels, rate, rate * align, align, bits)
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", tag) + guid_tail
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"LIST" + struct.pack("<I", 3) + b"abc\x00"  # odd-sized chunk with a pad byte
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _signal(n: int, channels: int, rate: int) -> npt.NDArray[np.int16]:
    """``channels`` different tones at 0.9 and 0.4 of full scale, as 16-bit samples, shape (n, channels)."""
    t = np.arange(n) / rate
    tones = [0.9 * np.sin(2 * np.pi * 440 * t), 0.4 * np.sin(2 * np.pi * 1000 * t + 1.0)][:channels]
    return np.round(np.stack(tones, axis=1) * 32767).astype(np.int16)


# (libsndfile subtype, channels, rate): every encoding a --wav file may come in, mono and stereo, many rates.
WAV_CASES = [
    ("PCM_U8", 1, 8000),
    ("PCM_16", 1, 8000),
    ("PCM_16", 2, 44100),
    ("PCM_24", 1, 48000),
    ("PCM_32", 2, 16000),
    ("FLOAT", 1, 22050),
    ("DOUBLE", 2, 11025),
    ("ULAW", 1, 8000),
    ("ALAW", 2, 8000),
]


@pytest.mark.parametrize(("subtype", "channels", "rate"), WAV_CASES)
def test_read_wav_encodings(tmp_path: Path, subtype: str, channels: int, rate: int) -> None:
    """Files written with soundfile read back through the simulator's loader: rate kept, channels averaged,
    samples as stored (exactly for PCM and float, within G.711's quantisation for A-law and mu-law)."""
    ints = _signal(rate // 10, channels, rate)
    path = tmp_path / f"{subtype}-{channels}-{rate}.wav"
    if subtype == "PCM_24":
        stored = ints.astype(np.int32) << 16  # libsndfile keeps the top 24 bits: exactly the 16-bit values
    elif subtype == "PCM_32":
        stored = ints.astype(np.int32) << 16
    elif subtype in ("FLOAT", "DOUBLE"):
        stored = ints / 32768.0  # exactly representable in float32
    else:
        stored = ints
    soundfile.write(str(path), stored, rate, subtype=subtype, format="WAV")
    assert soundfile.info(str(path)).subtype == subtype

    samples, file_rate = read_wav(path)
    assert file_rate == rate
    assert samples.dtype == np.float64 and samples.shape == (len(ints),)
    exact = ints.astype(np.float64) / 32768.0
    if subtype == "PCM_U8":
        exact = np.floor(ints / 256.0) / 128.0  # libsndfile keeps the top 8 bits
    expected = exact.mean(axis=1)
    if subtype in ("ULAW", "ALAW"):
        # G.711: half a step of the sample's segment, at most 1/32 of its value (plus the finest steps near 0)
        error = np.abs(samples - expected)
        bound = np.abs(exact).max(axis=1) / 32 + 16 / 32768
        assert np.all(error <= bound), float((error - bound).max())
        assert error.max() > 0  # it really was companded
    else:
        assert samples == pytest.approx(expected, abs=1e-12)


def test_read_wav_decodes_g711_bytes_to_the_standard_values(tmp_path: Path) -> None:
    """Hand-built files: G.711 code words decode to the values of the standard's tables; float in a
    WAVE_FORMAT_EXTENSIBLE file; an odd-sized chunk before the data; broken files raise ValueError."""
    path = tmp_path / "x.wav"

    def load(data: bytes) -> npt.NDArray[np.float64]:
        path.write_bytes(data)
        return read_wav(path)[0]

    # mu-law 0xff is 0, 0x80 is +32124, 0x00 is -32124; A-law 0xd5 is +8, 0x55 is -8, 0xaa is +32256
    mu = load(_riff(7, 1, 8000, 8, bytes([0xFF, 0x80, 0x00]))) * 32768
    assert list(mu) == [0, 32124, -32124]
    alaw = load(_riff(6, 1, 8000, 8, bytes([0xD5, 0x55, 0xAA]))) * 32768
    assert list(alaw) == [8, -8, 32256]

    left = np.array([0.5, -0.5, 0.25], dtype=np.float64)
    f32 = left.astype("<f4").tobytes()
    assert list(load(_riff(3, 1, 22050, 32, f32))) == list(left)
    assert list(load(_riff(3, 1, 22050, 32, f32, extensible=True))) == list(left)

    ints24 = [round(x * 8388608) for x in left]
    data24 = b"".join(v.to_bytes(3, "little", signed=True) for v in ints24)
    assert list(load(_riff(1, 1, 8000, 24, data24))) == list(left)
    assert list(load(_riff(1, 1, 8000, 8, bytes([128 + 64, 128 - 64])))) == [0.5, -0.5]

    with pytest.raises(ValueError):
        load(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(ValueError):
        load(_riff(2, 1, 8000, 4, b"\x00\x00"))  # ADPCM with a truncated fmt chunk
    with pytest.raises(ValueError):
        load(b"this is not audio at all" * 10)
    with pytest.raises(ValueError):
        read_wav(tmp_path / "missing.wav")


def test_load_wav_at_the_call_rate_is_bit_exact(tmp_path: Path) -> None:
    ints = _signal(1600, 1, 8000)
    path = tmp_path / "caller.wav"
    soundfile.write(str(path), ints, 8000, subtype="PCM_16", format="WAV")
    assert load_wav(path, 8000) == ints.astype("<i2").tobytes()
    stereo = _signal(1600, 2, 16000)
    soundfile.write(str(path), stereo, 16000, subtype="PCM_16", format="WAV")
    mixed = np.frombuffer(load_wav(path, 16000), dtype="<i2")
    assert list(mixed) == list(np.round(stereo.astype(np.float64).mean(axis=1)).astype(np.int16))


def test_load_wav_other_formats_and_rates(tmp_path: Path) -> None:
    """A 22.05 kHz float file and a 48 kHz A-law stereo one, resampled to 16 kHz: right length, same tone."""
    for subtype, channels, rate in (("FLOAT", 1, 22050), ("ALAW", 2, 48000)):
        path = tmp_path / f"{subtype}.wav"
        ints = _signal(rate, channels, rate)  # one second
        data = ints / 32768.0 if subtype == "FLOAT" else ints
        soundfile.write(str(path), data, rate, subtype=subtype, format="WAV")
        samples = np.frombuffer(load_wav(path, 16000), dtype="<i2").astype(np.float64)
        assert abs(len(samples) - 16000) <= 2
        spectrum = np.abs(np.fft.rfft(samples[2000:14000]))
        assert np.argmax(spectrum) * 16000 / 12000 == pytest.approx(440, abs=2)
        level = np.sqrt(np.mean(samples[2000:14000] ** 2))
        expected = np.sqrt(np.mean(ints.astype(np.float64).mean(axis=1) ** 2))
        assert level == pytest.approx(expected, rel=0.03)


def test_wav_of_an_empty_call_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    write_wav(path, b"", 8000)
    assert load_wav(path, 8000) == b""
    assert read_wav(path)[1] == 8000


def test_load_wav_resamples_to_call_rate(tmp_path: Path) -> None:
    path = tmp_path / "caller.wav"
    seconds = 1.0
    n = int(44100 * seconds)
    t = np.arange(n) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 300 * t)], axis=1) * 0.5
    path.write_bytes(_riff(1, 2, 44100, 16, (stereo.reshape(-1) * 32767).astype("<i2").tobytes()))
    pcm = load_wav(path, 8000)
    samples = np.frombuffer(pcm, dtype="<i2")
    assert abs(len(samples) - 8000) <= 2
    rms = math.sqrt(float(np.mean(samples.astype(np.float64) ** 2)))
    assert rms == pytest.approx(0.5 * 32767 / math.sqrt(2), rel=0.05)


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
    assert len(wide) / len(narrow) == pytest.approx(2, rel=0.05)  # Piper's durations vary a little per run
    for pcm, rate in ((narrow, 8000), (wide, 16000)):
        assert speech_span(split_frames(pcm, rate)) is not None
        assert frame_rms(pcm) > 500
    with pytest.raises(FileNotFoundError):
        PiperCaller(Path("/nonexistent/voice.onnx")).synthesize("hi", 8000)
