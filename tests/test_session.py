"""The per-call session's decisions, over real TCP and the real Redis, with fake engines.

The engines here are fakes so that each branch (goodbye, handoff, Rasa failure, no input, keypad, barge-in,
caller hangup) can be driven exactly; the real Vosk, Piper and Rasa run in ``test_end_to_end.py``.
The fakes record which thread they ran on: decoding and synthesis must never run on the event loop's thread.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis as redis_sync
import redis.asyncio as aioredis

from actions.shared.paths import REPO_ROOT
from bot.asr import AsrUpdate
from bot.config import GatewayConfig
from bot.dialogue import DialogueTimeout, HandoffRequested, Reply
from bot.prompts import Prompts
from bot.session import CallSession, SessionDeps
from bot.tts import PromptCache, Speech
from bot.turntaking import TurnWords
from bot.vad import EndpointerConfig
from bot.waits import Waits
from telephony import audiosocket as wire
from telephony.callstate import ACTIVE_KEY, Reason, Skill, call_key, transcript_key
from telephony.server import AudioSocketServer, Connection

TONE = 1000  # amplitude of the fake voice's samples


class FakeSynth:
    """Every sentence becomes 100 ms of constant non-zero samples per word (so audio is measurable)."""

    voice_id = "fake"

    def __init__(self) -> None:
        self.threads: set[str] = set()
        self.texts: list[str] = []

    def sentences(self, text: str, rate: int) -> Iterator[bytes]:
        self.threads.add(threading.current_thread().name)
        self.texts.append(text)
        for sentence in text.split(". "):
            yield TONE.to_bytes(2, "little", signed=True) * (rate // 10) * len(sentence.split())


class ScriptedDialogue:
    """Answers from a script keyed by what the caller said."""

    def __init__(
        self, script: Mapping[str, Reply | Exception], delays: Mapping[str, float] | None = None
    ) -> None:
        self.script = script
        self.delays = delays or {}
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    async def send(self, sender: str, text: str, metadata: Mapping[str, Any] | None = None) -> Reply:
        self.calls.append((sender, text, dict(metadata or {})))
        await asyncio.sleep(self.delays.get(text, 0.0))
        answer = self.script.get(text, Reply(texts=("Sorry, say that again.",)))
        if isinstance(answer, Exception):
            raise answer
        return answer


class FakeAsrEngine:
    rate = 16000

    def __init__(self) -> None:
        self.threads: set[str] = set()
        self.fed = 0
        self.closed = False

    def stream(self) -> FakeAsrEngine:
        self.threads.add(threading.current_thread().name)
        return self

    def accept(self, pcm: bytes, rate: int) -> AsrUpdate:
        self.threads.add(threading.current_thread().name)
        self.fed += len(pcm)
        return AsrUpdate(final=None, partial="words")

    def flush(self) -> AsrUpdate:
        self.threads.add(threading.current_thread().name)
        return AsrUpdate(final="i heard you", partial="", confidence=0.9)

    def close(self) -> None:
        self.closed = True


GREETING = Reply(texts=("Hello, this is Attendant. How can I help you today?",))


class Harness:
    def __init__(
        self,
        dialogue: ScriptedDialogue,
        *,
        asr: FakeAsrEngine | None = None,
        greeting: str | None = None,
        callers: Any = None,
        endpointer: EndpointerConfig | None = None,
        turn_words: TurnWords | None = None,
        **gateway: Any,
    ) -> None:
        """``greeting``: every caller's greeting instead of the editors' ones; ``callers``: who is calling
        (the store's ``kind_of_caller``)."""
        self.synth = FakeSynth()
        self.prompts = Prompts.load(REPO_ROOT / "nlu-data" / "prompts.yml")
        if greeting is not None:
            self.prompts = replace(self.prompts, greeting=dict.fromkeys(self.prompts.greeting, greeting))
        self.callers = callers
        self.endpointer = endpointer or EndpointerConfig(trailing_silence_s=0.3)
        self.turn_words = turn_words or TurnWords.load()
        self.dialogue = dialogue
        self.asr = asr
        self.pool = ThreadPoolExecutor(2, thread_name_prefix="worker")
        self.redis = aioredis.from_url("redis://127.0.0.1:6379/0")
        self.config = replace(GatewayConfig(), **gateway)
        self.sessions: dict[str, CallSession] = {}
        self.waits: Waits | None = None
        self.server = AudioSocketServer(self._factory, host="127.0.0.1", port=0)

    def _factory(self, call_id: str, out: Connection) -> CallSession:
        deps = SessionDeps(
            speech=Speech(self.synth, PromptCache(None), self.pool),
            dialogue=self.dialogue,
            prompts=self.prompts,
            redis=self.redis,
            asr=self.asr,  # type: ignore[arg-type]
            asr_executor=self.pool,
            endpointer=self.endpointer,
            waits=self.waits,
            callers=self.callers,
            turn_words=self.turn_words,
        )
        self.sessions[call_id] = CallSession(call_id, out, deps, self.config)
        return self.sessions[call_id]


class Caller:
    """Asterisk's side of one call, on the real wire format."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, call: uuid.UUID) -> None:
        self.reader, self.writer, self.call = reader, writer, call
        self.frames: list[tuple[int, bytes]] = []
        self.hangup = asyncio.Event()
        self.on_hangup: Callable[[], None] | None = None
        self.task = asyncio.create_task(self._read())

    @classmethod
    async def dial(cls, port: int, call: uuid.UUID | None = None) -> Caller:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        call = call or uuid.uuid4()
        writer.write(wire.encode_uuid(call))
        await writer.drain()
        return cls(reader, writer, call)

    async def _read(self) -> None:
        decoder = wire.Decoder()
        while data := await self.reader.read(65536):
            for kind, payload in _raw(decoder, data):
                self.frames.append((kind, payload))
                if kind == wire.Kind.HANGUP:
                    if self.on_hangup is not None:
                        self.on_hangup()
                    self.hangup.set()

    def voiced_frames(self) -> int:
        return sum(1 for kind, p in self.frames if kind == wire.Kind.SLIN_8K and any(p))

    def voiced_runs(self) -> list[tuple[bool, int]]:
        """(voiced?, frames) runs of what the bot sent, for failure messages."""
        runs: list[tuple[bool, int]] = []
        for kind, p in self.frames:
            if kind not in (wire.Kind.SLIN_8K, wire.Kind.SLIN_16K):
                continue
            voiced = any(p)
            if runs and runs[-1][0] == voiced:
                runs[-1] = (voiced, runs[-1][1] + 1)
            else:
                runs.append((voiced, 1))
        return runs

    async def wait_voiced(self, at_least: int, timeout: float = 5.0) -> None:
        async def until() -> None:
            while self.voiced_frames() < at_least:
                await asyncio.sleep(0.02)

        await asyncio.wait_for(until(), timeout)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def close(self) -> None:
        self.writer.close()
        self.task.cancel()


def _raw(decoder: wire.Decoder, data: bytes) -> Iterator[tuple[int, bytes]]:
    for message in decoder.feed(data):
        if isinstance(message, wire.Hangup):
            yield wire.Kind.HANGUP, b""
        elif isinstance(message, wire.PeerError):
            yield wire.Kind.ERROR, b""
        elif hasattr(message, "pcm"):
            yield wire.RATE_KINDS[message.rate], message.pcm


@pytest.fixture
def sync_redis() -> Iterator[redis_sync.Redis]:
    client = redis_sync.Redis(host="127.0.0.1", port=6379, db=0, decode_responses=True)
    yield client
    client.close()


async def start(h: Harness) -> None:
    await h.server.start()


async def stop(h: Harness) -> None:
    await h.server.close()
    await h.redis.close()
    h.pool.shutdown(wait=True)


async def wait_ended(
    h: Harness, sync_redis: redis_sync.Redis, call: uuid.UUID, timeout: float = 5.0
) -> dict[str, str]:
    async def until() -> dict[str, str]:
        while True:
            data = sync_redis.hgetall(call_key(str(call)))
            if data.get("outcome") and sync_redis.zscore(ACTIVE_KEY, str(call)) is None:
                return data
            await asyncio.sleep(0.02)

    return await asyncio.wait_for(until(), timeout)


async def test_greeting_goodbye_completed_with_hangup_frame(sync_redis: redis_sync.Redis) -> None:
    bye = Reply(texts=("Thank you for calling. Goodbye.",), end_call=True)
    h = Harness(ScriptedDialogue({"/session_start": GREETING, "bye": bye}))
    await start(h)
    try:
        caller = await Caller.dial(h.server.port)
        # The whole opening plays before the caller speaks: greeting, then (no recogniser) the keypad menu.
        menu = Prompts.load(REPO_ROOT / "nlu-data" / "prompts.yml")["keypad_menu"]
        opening = len(GREETING.texts[0].split()) + len(menu.split())
        await caller.wait_voiced(opening * 5)
        assert sync_redis.zscore(ACTIVE_KEY, str(caller.call)) is not None
        await caller.send(wire.encode_text("bye"))
        await asyncio.wait_for(caller.hangup.wait(), 10)
        record = await wait_ended(h, sync_redis, caller.call)
        assert record["outcome"] == "completed" and record["reason"] == "goodbye"
        assert record["turns"] == "1"
        # The goodbye was spoken in full before the hangup frame.
        assert caller.frames[-1] == (wire.Kind.HANGUP, b"")
        words = opening + len(bye.texts[0].split())
        session = h.sessions[str(caller.call)]
        detail = (caller.voiced_runs(), h.synth.texts, session.barge_ins)
        assert caller.voiced_frames() == words * 5, detail  # 100 ms a word = 5 frames
        assert session.barge_ins == 0
        lines = sync_redis.xrange(transcript_key(str(caller.call)))
        assert [(f["who"], f["text"], f.get("prompt")) for _, f in lines] == [
            ("bot", GREETING.texts[0], "greeting.unknown"),
            ("bot", menu, "keypad_menu"),
            ("caller", "bye", None),
            ("bot", bye.texts[0], None),
        ]
        # The greeting is the gateway's own: the caller's first turn is the conversation's first message.
        sender, text, meta = h.dialogue.calls[0]
        assert (sender, text) == (str(caller.call), "bye") and len(h.dialogue.calls) == 1
        assert meta["call_id"] == str(caller.call) and meta["asr_available"] is False
        assert meta["input"] == "inject"
        # Synthesis ran in worker threads, never on the loop's thread.
        assert h.synth.threads and all(name.startswith("worker") for name in h.synth.threads)
        await caller.close()
    finally:
        await stop(h)


async def test_handoff_payload_becomes_outcome(sync_redis: redis_sync.Redis) -> None:
    handoff = Reply(
        texts=("Let me get you a colleague.",),
        handoff=HandoffRequested(Reason.REQUESTED, Skill.BILLING, {"intent": "request_agent"}),
    )
    h = Harness(ScriptedDialogue({"/session_start": GREETING, "a real person please": handoff}))
    await start(h)
    try:
        caller = await Caller.dial(h.server.port)
        await caller.wait_voiced(5)
        await caller.send(wire.encode_text("a real person please"))
        await asyncio.wait_for(caller.hangup.wait(), 10)
        record = await wait_ended(h, sync_redis, caller.call)
        assert (record["outcome"], record["reason"], record["skill"]) == ("handoff", "requested", "billing")
        assert json.loads(record["context"]) == {"intent": "request_agent"}
        await caller.close()
    finally:
        await stop(h)


async def test_rasa_failure_ends_with_a_person_not_silence(sync_redis: redis_sync.Redis) -> None:
    h = Harness(ScriptedDialogue({"/session_start": GREETING, "hello": DialogueTimeout("slow")}))
    await start(h)
    try:
        caller = await Caller.dial(h.server.port)
        await caller.wait_voiced(5)
        before = caller.voiced_frames()
        await caller.send(wire.encode_text("hello"))
        await asyncio.wait_for(caller.hangup.wait(), 10)
        record = await wait_ended(h, sync_redis, caller.call)
        assert (record["outcome"], record["reason"]) == ("handoff", "technical")
        # The caller heard the "putting you through" prompt before the line was handed back.
        technical = Prompts.load(REPO_ROOT / "nlu-data" / "prompts.yml")["technical"]
        assert technical in h.synth.texts
        assert caller.voiced_frames() > before
        await caller.close()
    finally:
        await stop(h)


async def test_caller_hangup_frees_the_session(sync_redis: redis_sync.Redis) -> None:
    asr = FakeAsrEngine()
    h = Harness(ScriptedDialogue({"/session_start": GREETING}), asr=asr)
    await start(h)
    try:
        caller = await Caller.dial(h.server.port)
        await caller.wait_voiced(3)
        await caller.send(wire.encode_hangup())
        record = await wait_ended(h, sync_redis, caller.call)
        assert (record["outcome"], record["reason"]) == ("abandoned", "caller-hangup")
        assert h.server.active == 0
        assert asr.closed
        session = h.sessions[str(caller.call)]
        assert session.speaker.pacer.frames_sent > 0
        await caller.close()
    finally:
        await stop(h)


async def test_no_input_reprompts_then_says_goodbye(sync_redis: redis_sync.Redis) -> None:
    h = Harness(ScriptedDialogue({"/session_start": GREETING}), no_input_s=1.0, no_input_retries=1)
    await start(h)
    try:
        caller = await Caller.dial(h.server.port)
        await asyncio.wait_for(caller.hangup.wait(), 15)
        record = await wait_ended(h, sync_redis, caller.call)
        assert (record["outcome"], record["reason"]) == ("completed", "no-input")
        prompts = Prompts.load(REPO_ROOT / "nlu-data" / "prompts.yml")
        assert h.synth.texts.count(prompts["no_input"]) == 1
        assert h.synth.texts[-1] == prompts["no_input_goodbye"]
        await caller.close()
    finally:
        await stop(h)


async def test_transcript_holds_every_prompt_the_caller_heard(sync_redis: redis_sync.Redis) -> None:
    """A keypad call (no recogniser) where the caller says nothing: the greeting, the keypad menu, the
    reprompt and the goodbye were all heard, so all are in the transcript, the gateway's own marked."""
    h = Harness(ScriptedDialogue({"/session_start": GREETING}), no_input_s=1.0, no_input_retries=1)
    await start(h)
    try:
        caller = await Caller.dial(h.server.port)
        await asyncio.wait_for(caller.hangup.wait(), 20)
        await wait_ended(h, sync_redis, caller.call)
        prompts = Prompts.load(REPO_ROOT / "nlu-data" / "prompts.yml")
        lines = sync_redis.xrange(transcript_key(str(caller.call)))
        assert [(f["who"], f["text"], f.get("prompt")) for _, f in lines] == [
            ("bot", GREETING.texts[0], "greeting.unknown"),
            ("bot", prompts["keypad_menu"], "keypad_menu"),
            ("bot", prompts["no_input"], "no_input"),
            ("bot", prompts["no_input_goodbye"], "no_input_goodbye"),
        ]
        assert h.synth.texts == [line[1]["text"] for line in lines]  # heard == written
        await caller.close()
    finally:
        await stop(h)


async def test_silent_wideband_caller_gets_16k_from_the_first_frame(sync_redis: redis_sync.Redis) -> None:
    """``[attendant-slin16]`` registers rate 16000 before dialling; the caller (a Local channel) sends no
    audio at all. Every frame the bot sends, the first one included, is kind 0x12."""
    h = Harness(ScriptedDialogue({"/session_start": GREETING}))
    await start(h)
    try:
        call = uuid.uuid4()
        sync_redis.hset(call_key(str(call)), mapping={"rate": "16000", "channel": "Local/s@x-00000001;2"})
        caller = await Caller.dial(h.server.port, call)
        await asyncio.sleep(1.0)
        audio = [kind for kind, _ in caller.frames if kind != wire.Kind.HANGUP]
        assert len(audio) >= 40
        assert set(audio) == {wire.Kind.SLIN_16K}, audio[:5]
        assert all(len(p) == 640 for _, p in caller.frames)
        await caller.send(wire.encode_hangup())
        await caller.close()
    finally:
        await stop(h)
        sync_redis.delete(call_key(str(call)))


async def test_unregistered_call_takes_the_rate_of_the_first_caller_frame(
    sync_redis: redis_sync.Redis,
) -> None:
    """No rate registered (the AGI step failed): the bot waits briefly for the caller's first frame and sends
    at its rate from the start, instead of starting narrowband and switching."""
    h = Harness(ScriptedDialogue({"/session_start": GREETING}))
    await start(h)
    try:
        caller = await Caller.dial(h.server.port)
        await asyncio.sleep(0.15)
        await caller.send(wire.encode_audio(bytes(640), 16000))
        await asyncio.sleep(0.8)
        audio = [kind for kind, _ in caller.frames if kind != wire.Kind.HANGUP]
        assert len(audio) >= 20 and set(audio) == {wire.Kind.SLIN_16K}, audio[:5]
        await caller.send(wire.encode_hangup())
        await caller.close()
    finally:
        await stop(h)


async def test_call_time_limit_goes_to_a_person(sync_redis: redis_sync.Redis) -> None:
    # The limit passes while a turn is in progress (the assistant is slow): it must still be acted on.
    h = Harness(ScriptedDialogue({"/session_start": GREETING}, delays={"tell me more": 2.0}), max_call_s=1.5)
    await start(h)
    try:
        caller = await Caller.dial(h.server.port)
        await caller.send(wire.encode_text("tell me more"))
        await asyncio.wait_for(caller.hangup.wait(), 10)
        record = await wait_ended(h, sync_redis, caller.call)
        assert (record["outcome"], record["reason"]) == ("handoff", "too-long")
        assert h.synth.texts[-1] == Prompts.load(REPO_ROOT / "nlu-data" / "prompts.yml")["too_long"]
        await caller.close()
    finally:
        await stop(h)


async def test_keypad_menu_key_and_typed_digits(sync_redis: redis_sync.Redis) -> None:
    h = Harness(ScriptedDialogue({"/session_start": GREETING}))
    await start(h)
    try:
        caller = await Caller.dial(h.server.port)
        await caller.wait_voiced(3)
        await caller.send(wire.encode_dtmf("1"))
        await asyncio.sleep(2.0)  # a lone key, then quiet: a menu choice
        for key in "4321#":
            await caller.send(wire.encode_dtmf(key))
        await asyncio.sleep(0.5)
        texts = [text for _, text, _ in h.dialogue.calls]
        assert texts == ["/ask_balance", "4321"]
        assert h.dialogue.calls[1][2]["input"] == "dtmf"
        # Typed digits are never written to the transcript.
        lines = [f["text"] for _, f in sync_redis.xrange(transcript_key(str(caller.call)))]
        assert "4321" not in lines and "[keypad]" in lines
        await caller.send(wire.encode_hangup())
        await caller.close()
    finally:
        await stop(h)


async def test_speech_goes_through_the_recogniser_in_workers_and_barges_in(
    sync_redis: redis_sync.Redis,
) -> None:
    long_greeting = " ".join(["word"] * 60) + "."  # six seconds of bot speech
    asr = FakeAsrEngine()
    h = Harness(ScriptedDialogue({}), asr=asr, greeting=long_greeting)
    await start(h)
    try:
        caller = await Caller.dial(h.server.port)
        await caller.wait_voiced(5)
        # The caller talks over the bot: loud noise frames, then nothing at all (a Local channel).
        import numpy as np

        rng = np.random.default_rng(1)
        for _ in range(25):
            noise = (rng.normal(0, 6000, 160)).astype(np.int16).tobytes()
            await caller.send(wire.encode_audio(noise, 8000))
            await asyncio.sleep(0.02)
        session = h.sessions[str(caller.call)]
        await asyncio.sleep(1.0)  # no frames: the clock must end the utterance
        assert session.barge_ins == 1
        assert not session.speaker.pacer.speaking  # the six-second greeting was cut short
        assert asr.fed > 0 and asr.threads and all(n.startswith("worker") for n in asr.threads)
        texts = [text for _, text, _ in h.dialogue.calls]
        assert texts == ["i heard you"]
        assert h.dialogue.calls[0][2]["asr_confidence"] == 0.9
        await caller.send(wire.encode_hangup())
        await caller.close()
    finally:
        await stop(h)


async def test_text_injection_refused_when_not_allowed(sync_redis: redis_sync.Redis) -> None:
    h = Harness(ScriptedDialogue({"/session_start": GREETING}))
    h.server = AudioSocketServer(h._factory, host="127.0.0.1", port=0, text_injection="off")
    await start(h)
    try:
        caller = await Caller.dial(h.server.port)
        await caller.wait_voiced(3)
        await caller.send(wire.encode_text("what is my balance"))
        await asyncio.sleep(0.5)
        assert h.dialogue.calls == []  # refused: not a turn
        await caller.send(wire.encode_hangup())
        await caller.close()
    finally:
        await stop(h)


def test_prompts_file_errors_name_file_and_line(tmp_path: Path) -> None:
    from bot.prompts import PromptsError

    bad = tmp_path / "prompts.yml"
    bad.write_text("prompts:\n  technical: 'ok'\n  handoff: [unclosed\n", encoding="utf-8")
    with pytest.raises(PromptsError, match=r"prompts.yml:\d+: not valid YAML"):
        Prompts.load(bad)
    bad.write_text("prompts:\n  technical: 'ok'\n", encoding="utf-8")
    with pytest.raises(PromptsError, match="missing or empty: handoff"):
        Prompts.load(bad)


async def test_the_agents_whisper_leg_says_the_brief_and_hangs_up(sync_redis: redis_sync.Redis) -> None:
    """The agent's channel connects with the call's whisper UUID (version 8): the gateway builds the brief
    from the call's record, speaks it and hangs up; a leg for a call with no record hangs up at once."""
    from bot.whisper import WhisperLeg
    from telephony.callstate import whisper_uuid, whispered_call

    h = Harness(ScriptedDialogue({}))
    prompts = Prompts.load(REPO_ROOT / "nlu-data" / "prompts.yml")

    def factory(call_id: str, out: Connection) -> WhisperLeg:
        call = whispered_call(uuid.UUID(call_id))
        assert call is not None
        return WhisperLeg(call_id, call, out, speech=Speech(h.synth, PromptCache(None), h.pool),
                          words=prompts.whisper, redis=h.redis)  # fmt: skip

    h.server = AudioSocketServer(factory, host="127.0.0.1", port=0)
    await h.server.start()
    call = uuid.uuid4()
    context = {"verified": True, "customer": {"name": "Ada Lovelace"}, "task": "balance"}
    sync_redis.hset(
        call_key(str(call)),
        mapping={"skill": "billing", "reason": "requested", "ended_at": str(time.time() - 125),
                 "context": json.dumps(context)},
    )  # fmt: skip
    try:
        agent = await Caller.dial(h.server.port, whisper_uuid(call))
        await asyncio.wait_for(agent.hangup.wait(), 10)
        said = "Verified customer Ada Lovelace, billing, asks about their balance, waited two minutes."
        assert h.synth.texts == [said]
        assert agent.voiced_frames() == len(said.split(". ")[0].split()) * 5  # all of it, then the hangup
        await agent.close()
        nobody = await Caller.dial(h.server.port, whisper_uuid(uuid.uuid4()))
        await asyncio.wait_for(nobody.hangup.wait(), 5)
        assert nobody.voiced_frames() == 0
        await nobody.close()
    finally:
        await stop(h)
        sync_redis.delete(call_key(str(call)))


async def test_the_context_is_kept_from_the_first_turn(sync_redis: redis_sync.Redis) -> None:
    """Each reply's context goes to the call's record at once, not only at the end: a gateway killed mid-call
    leaves what the assistant had learned for the agent."""
    learned = {"verified": True, "customer": {"id": "C-0001", "name": "Ada"}, "task": "balance"}
    reply = Reply(texts=("Sure.",), context=learned)
    h = Harness(ScriptedDialogue({"/session_start": GREETING, "my balance": reply}))
    await start(h)
    try:
        caller = await Caller.dial(h.server.port)
        await caller.wait_voiced(3)
        await caller.send(wire.encode_text("my balance"))
        for _ in range(100):
            if sync_redis.hget(call_key(str(caller.call)), "context"):
                break
            await asyncio.sleep(0.02)
        assert json.loads(sync_redis.hget(call_key(str(caller.call)), "context")) == learned
        assert not sync_redis.hget(call_key(str(caller.call)), "outcome")  # the call is still going
        await caller.send(wire.encode_hangup())
        record = await wait_ended(h, sync_redis, caller.call)
        assert json.loads(record["context"]) == learned
        await caller.close()
    finally:
        await stop(h)
