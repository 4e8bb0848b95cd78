"""Barge-in over real AudioSocket through the gateway session: the bot's own voice echoed back at -10 dB,
60 ms late, does not stop it; the caller's speech does, within 200 ms, and what was queued is dropped;
backchannels ("mm hmm") do not interrupt unless the configuration says they are not backchannels."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Iterator

import numpy as np
import pytest

from bot.asr import AsrUpdate
from bot.dialogue import Reply
from bot.session import CallSession
from bot.turntaking import TurnWords
from bot.vad import EndpointerConfig
from telephony import audiosocket as wire
from tests.test_session import Caller, Harness, ScriptedDialogue, start, stop

ECHO_GAIN = 10 ** (-10 / 20)  # -10 dB
ECHO_DELAY_FRAMES = 3  # 60 ms
SILENT = Reply()  # the answer to the caller's turn: nothing to say, so every voiced frame is the greeting
LONG = Reply(texts=(" ".join(["word"] * 60) + ".",))  # six seconds of bot speech


class NoiseSynth:
    """Speech-like for the VAD: every word is 100 ms of loud noise (a voice the echo gate has to hear)."""

    voice_id = "noise"

    def __init__(self) -> None:
        self.rng = np.random.default_rng(7)

    def sentences(self, text: str, rate: int) -> Iterator[bytes]:
        yield self.rng.normal(0, 5000, rate // 10 * len(text.split())).astype(np.int16).tobytes()


class Asr:
    """Says ``words`` for any audio; the same words when the turn is flushed."""

    rate = 16000

    def __init__(self, words: str) -> None:
        self.words = words

    def stream(self) -> Asr:
        return self

    def accept(self, pcm: bytes, rate: int) -> AsrUpdate:
        return AsrUpdate(None, self.words)

    def flush(self) -> AsrUpdate:
        return AsrUpdate(self.words, "", confidence=0.9)

    def close(self) -> None:
        pass


class BargeHarness(Harness):
    def __init__(self, asr_words: str, *, margin_db: float = 6.0, words: TurnWords | None = None) -> None:
        super().__init__(
            ScriptedDialogue({asr_words: SILENT}),
            asr=Asr(asr_words),  # type: ignore[arg-type]
            greeting=LONG.texts[0],  # the gateway's own greeting, long enough to talk over
            endpointer=EndpointerConfig(echo_margin_db=margin_db),
            turn_words=words,
        )
        self.synth = NoiseSynth()  # type: ignore[assignment]


class EchoLine:
    """Asterisk's side with a telephone line's echo: every frame the bot sends comes back -10 dB down and
    60 ms late, mixed with the caller's own speech when the caller talks. Arrival times of the bot's voiced
    frames are kept (caller's clock)."""

    def __init__(self, caller: Caller) -> None:
        self.caller = caller
        self.voiced_at: list[float] = []
        self.speech: collections.deque[bytes] = collections.deque()
        self.speech_started: float | None = None

    def talk(self, seconds: float, seed: int = 11) -> None:
        rng = np.random.default_rng(seed)
        for _ in range(round(seconds / 0.02)):
            self.speech.append(rng.normal(0, 5000, 160).astype(np.int16).tobytes())

    async def run(self, seconds: float) -> None:
        delay: collections.deque[np.ndarray] = collections.deque([np.zeros(160)] * ECHO_DELAY_FRAMES)
        seen = 0
        t0 = time.monotonic()
        for n in range(round(seconds / 0.02)):
            frames = self.caller.frames
            for kind, pcm in frames[seen:]:
                if kind == wire.Kind.SLIN_8K:
                    if any(pcm):
                        self.voiced_at.append(time.monotonic())
                    delay.append(np.frombuffer(pcm, np.int16).astype(np.float64))
            seen = len(frames)
            out = np.zeros(160)
            while len(delay) > ECHO_DELAY_FRAMES:
                out = delay.popleft() * ECHO_GAIN
            if self.speech:
                if self.speech_started is None:
                    self.speech_started = time.monotonic()
                out = out + np.frombuffer(self.speech.popleft(), np.int16)
            await self.caller.send(
                wire.encode_audio(np.clip(out, -32768, 32767).astype(np.int16).tobytes(), 8000)
            )
            await asyncio.sleep(max(0.0, t0 + (n + 1) * 0.02 - time.monotonic()))


async def call(h: BargeHarness) -> tuple[Caller, EchoLine, CallSession]:
    caller = await Caller.dial(h.server.port)
    await caller.wait_voiced(3)
    return caller, EchoLine(caller), h.sessions[str(caller.call)]


async def test_the_bots_own_echo_does_not_barge_in() -> None:
    h = BargeHarness("words")
    await start(h)
    try:
        caller, line, session = await call(h)
        await line.run(2.0)
        assert session.barge_ins == 0, caller.voiced_runs()
        assert session.listener.gated > 20  # the VAD heard the echo as speech; the gate kept it out
        assert len(line.voiced_at) >= 90  # the bot talked on: no pause, no cut
        assert h.dialogue.calls == []
        await caller.send(wire.encode_hangup())
        await caller.close()
    finally:
        await stop(h)


async def test_without_the_gate_the_same_echo_would_stop_the_bot() -> None:
    h = BargeHarness("words", margin_db=60.0)  # anything down to 60 dB below the bot passes: no echo gate
    await start(h)
    try:
        caller, line, session = await call(h)
        await line.run(1.5)
        assert session.barge_ins >= 1
        await caller.send(wire.encode_hangup())
        await caller.close()
    finally:
        await stop(h)


async def test_caller_speech_over_the_echo_stops_the_bot_within_200_ms() -> None:
    h = BargeHarness("i need to speak to someone")
    await start(h)
    try:
        caller, line, session = await call(h)
        runner = asyncio.create_task(line.run(2.0))
        await asyncio.sleep(0.6)  # the bot talks, its echo comes back
        line.talk(0.6)
        await runner
        assert line.speech_started is not None
        stopped = max(line.voiced_at) - line.speech_started
        assert stopped <= 0.2, f"bot still heard {stopped * 1000:.0f} ms after the caller spoke"
        assert session.barge_ins == 1
        assert not session.speaker.pacer.speaking  # the rest of the six seconds was dropped, not played
        assert len(line.voiced_at) < 60  # about 0.7 s of the 6 s greeting reached the caller
        texts = [text for _, text, _ in h.dialogue.calls]
        assert texts == ["i need to speak to someone"]
        await caller.send(wire.encode_hangup())
        await caller.close()
    finally:
        await stop(h)


@pytest.mark.parametrize("configured", [True, False])
async def test_a_backchannel_does_not_interrupt_unless_configured_otherwise(configured: bool) -> None:
    words = TurnWords.of(backchannels=["mm hmm", "yeah"] if configured else [])
    h = BargeHarness("mm hmm", words=words)
    await start(h)
    try:
        caller, line, session = await call(h)
        runner = asyncio.create_task(line.run(2.5))
        await asyncio.sleep(0.5)
        line.talk(0.3)
        await runner
        texts = [text for _, text, _ in h.dialogue.calls]
        if configured:
            assert session.barge_ins == 0
            assert texts == []  # a backchannel is not a turn
            assert line.speech_started is not None
            resumed = [t for t in line.voiced_at if t > line.speech_started + 0.8]
            assert len(resumed) >= 40  # paused while it was unclear, then went on
        else:
            assert session.barge_ins == 1
            assert texts == ["mm hmm"]
            assert len(line.voiced_at) < 50
        await caller.send(wire.encode_hangup())
        await caller.close()
    finally:
        await stop(h)
