"""Starting to answer before the end, on a controllable clock: the speculative parse of the stable partial
ends a confident turn early, leaves anything else (unsure, slow, failed) to the fixed rule, costs at most
one parse in flight and none for words already parsed, and lets the turn leave at the decision; and a
fixed phrase rendered at start leaves within one 20 ms frame of the decision to say it.

The parse route itself, against the real Rasa (no trace in the tracker): ``test_parse_route.py``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from actions.shared.paths import NLU_DATA
from bot.asr import AsrUpdate
from bot.config import Config, ConfigError
from bot.dialogue import Parsed
from bot.gateway import fixed_phrases
from bot.listening import Listener
from bot.pacer import Pacer
from bot.prompts import Prompts, domain_fixed_texts
from bot.speaking import Speaker
from bot.speculation import Speculator
from bot.tts import PromptCache, Speech
from bot.turntaking import AdaptivePolicy, TurnWords
from bot.vad import Endpointer, EndpointerConfig, Event
from telephony import audiosocket as wire
from telephony.frames import AudioIn, Transcript
from tests.test_session import Caller, FakeAsrEngine, Harness, ScriptedDialogue, start, stop

F = 0.02
CONFIG = EndpointerConfig()  # complete 0.25 s, fixed rule 0.6 s, confident 0.8, parse timeout 0.15 s
WORDS = TurnWords.load()


class FakeParser:
    """The parse route, scripted: each call answers after ``delay`` seconds of the test's clock."""

    def __init__(self, clock: list[float], answer: Parsed | Exception, delay: float = 0.02) -> None:
        self.clock, self.answer, self.delay = clock, answer, delay
        self.texts: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0

    async def __call__(self, text: str) -> Parsed:
        self.texts.append(text)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            until = self.clock[0] + self.delay
            while self.clock[0] < until:
                await asyncio.sleep(0)
            if isinstance(self.answer, Exception):
                raise self.answer
            return self.answer
        finally:
            self.in_flight -= 1


def confident(intent: str = "ask_balance", confidence: float = 0.95) -> Parsed:
    return Parsed(intent, confidence)


def speculating(clock: list[float], parser: FakeParser) -> tuple[Endpointer, Speculator]:
    spec = Speculator(
        parser, clock=lambda: clock[0], confident=CONFIG.confident, timeout_s=CONFIG.parse_timeout_s
    )
    return Endpointer(CONFIG, AdaptivePolicy(CONFIG, WORDS, spec.judge)), spec


async def speak(ep: Endpointer, clock: list[float], seconds: float) -> float:
    """Voiced frames for ``seconds``; returns the time of the last one."""
    for _ in range(round(seconds / F)):
        ep.frame(clock[0], True, F)
        clock[0] += F
        await asyncio.sleep(0)
    return clock[0] - F


async def wait_end(ep: Endpointer, clock: list[float], last: float, limit: float = 3.0) -> float:
    """Silence, the clock ticking 10 ms at a time (tasks run between ticks): seconds waited."""
    while clock[0] < last + limit:
        clock[0] += 0.01
        for _ in range(3):
            await asyncio.sleep(0)
        if ep.tick(clock[0]) is Event.END:
            return clock[0] - last
    raise AssertionError("the utterance never ended")


async def test_a_confident_parse_ends_the_turn_after_the_short_silence() -> None:
    clock = [0.0]
    parser = FakeParser(clock, confident())
    ep, spec = speculating(clock, parser)
    last = await speak(ep, clock, 1.0)
    ep.hear("i want to check my balance", covers=last)
    waited = await wait_end(ep, clock, last)
    assert waited == pytest.approx(CONFIG.complete_s, abs=0.011)
    assert ep.last_decision is not None and ep.last_decision.rule == "complete"
    assert parser.texts == ["i want to check my balance"]
    assert spec.committable("i want to check my balance")
    assert not spec.committable("i want to check my balance please"), "only the very words parsed"


@pytest.mark.parametrize(
    ("answer", "delay", "why"),
    [
        (Parsed("ask_balance", 0.55), 0.02, "not confident"),
        (Parsed("nlu_fallback", 0.99), 0.02, "not understood"),
        (confident(), 0.4, "slower than the 150 ms cap"),
        (RuntimeError("rasa down"), 0.02, "failed"),
    ],
)
async def test_anything_but_a_confident_parse_leaves_the_fixed_rule(
    answer: Parsed | Exception, delay: float, why: str
) -> None:
    clock = [0.0]
    parser = FakeParser(clock, answer, delay)
    ep, spec = speculating(clock, parser)
    last = await speak(ep, clock, 1.0)
    ep.hear("i want to check my balance", covers=last)
    waited = await wait_end(ep, clock, last)
    assert waited == pytest.approx(CONFIG.trailing_silence_s, abs=0.011), why
    assert ep.last_decision is not None and ep.last_decision.rule == "unsure"
    assert not spec.committable("i want to check my balance")
    assert len(parser.texts) == 1, "the same words are never parsed twice"
    spec.close()


async def test_hesitations_and_expected_digits_never_ask_the_parser() -> None:
    clock = [0.0]
    parser = FakeParser(clock, confident())
    ep, _ = speculating(clock, parser)
    last = await speak(ep, clock, 1.0)
    ep.hear("my number is", covers=last)
    assert await wait_end(ep, clock, last) == pytest.approx(CONFIG.hesitation_s, abs=0.011)
    ep.expecting = "digits"
    last = await speak(ep, clock, 1.0)
    ep.hear("four five six", covers=last)
    assert await wait_end(ep, clock, last) == pytest.approx(CONFIG.expecting_s, abs=0.011)
    assert parser.texts == []


async def test_at_most_one_parse_in_flight_and_none_for_unchanged_words() -> None:
    clock = [0.0]
    parser = FakeParser(clock, confident(), delay=0.1)
    spec = Speculator(parser, clock=lambda: clock[0], confident=0.8, timeout_s=0.15)
    for words in ["i want", "i want", "i want to", "i want to check", "i want to check"]:
        assert spec.judge(words, "free") is False  # nothing known yet: the fixed rule meanwhile
        clock[0] += 0.02
        await asyncio.sleep(0)
    assert parser.texts == ["i want"] and parser.most_in_flight == 1
    assert spec.stats.busy == 3
    while spec.in_flight:
        clock[0] += 0.01
        await asyncio.sleep(0)
    assert spec.judge("i want to check", "free") is False  # the newest words are parsed now
    while spec.in_flight:
        clock[0] += 0.01
        await asyncio.sleep(0)
    assert spec.judge("i want to check", "free") is True
    assert parser.texts == ["i want", "i want to check"] and parser.most_in_flight == 1


class SlowFlushAsr:
    """A recogniser whose partials are the caller's words and whose final takes 300 ms of real time."""

    rate = 16000

    def __init__(self, words: str) -> None:
        self.words = words
        self.flushed = threading.Event()

    def stream(self) -> SlowFlushAsr:
        return self

    def accept(self, pcm: bytes, rate: int) -> AsrUpdate:
        return AsrUpdate(None, self.words)

    def flush(self) -> AsrUpdate:
        time.sleep(0.3)
        self.flushed.set()
        return AsrUpdate(self.words, "", confidence=0.9)

    def close(self) -> None:
        pass


def noise(frames: int) -> Iterator[AudioIn]:
    rng = np.random.default_rng(5)
    for _ in range(frames):
        yield AudioIn(rng.normal(0, 5000, 160).astype(np.int16).tobytes(), 8000)


@pytest.mark.parametrize("sure", [True, False])
async def test_a_confident_turn_leaves_at_the_decision_not_after_the_recognisers_final(sure: bool) -> None:
    clock = [0.0]
    words = "i want to check my balance"
    parser = FakeParser(clock, confident() if sure else Parsed("ask_balance", 0.3))
    spec = Speculator(parser, clock=lambda: clock[0], confident=0.8, timeout_s=0.15)
    asr = SlowFlushAsr(words)
    heard: list[tuple[Transcript, float, bool]] = []
    finals: list[tuple[str, str]] = []
    pool = ThreadPoolExecutor(1)
    listener = Listener(
        asr,  # type: ignore[arg-type]
        pool,
        CONFIG,
        clock=lambda: clock[0],
        on_heard=lambda t, end: heard.append((t, end, asr.flushed.is_set())),
        on_voice=lambda: None,
        words=WORDS,
    )
    assert listener.policy is not None
    listener.policy.completeness = spec.judge
    listener.commit_early = spec.committable
    listener.on_final = lambda committed, final: finals.append((committed, final))
    task = asyncio.create_task(listener.run())
    try:
        for frame in noise(40):
            listener.audio(frame, clock[0])
            clock[0] += F
            await asyncio.sleep(0.005)  # let the worker decode
        while listener.in_utterance:
            clock[0] += 0.01
            listener.tick(clock[0])
            await asyncio.sleep(0.001)
        decided = clock[0]
        await until(lambda: asr.flushed.is_set() and bool(heard))
        await asyncio.sleep(0.05)
        assert [(t.text, t.source) for t, _, _ in heard] == [(words, "asr")], "one turn, never two"
        _, end, after_final = heard[0]
        assert end == pytest.approx(decided)
        if sure:
            assert not after_final, "sent at the decision, before the recogniser's final"
            assert listener.sent_early and finals == [(words, words)] and spec.stats.committed == 1
        else:
            assert after_final and not listener.sent_early and finals == []
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        pool.shutdown()


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


# --- cached prompts leave within a frame -----------------------------------------------------------------


class CostlySynth:
    """A voice at 22.05 kHz that takes 100 ms of real time per synthesis (so a miss shows)."""

    voice_id = "costly"
    sample_rate = 22050

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def sentences(self, text: str, rate: int) -> Iterator[bytes]:
        self.calls.append((text, rate))
        time.sleep(0.1)
        for sentence in text.split(". "):
            yield (1000).to_bytes(2, "little", signed=True) * (rate // 10) * len(sentence.split())


def test_every_fixed_response_is_in_the_warm_list() -> None:
    prompts = Prompts.load(NLU_DATA / "prompts.yml")
    fixed = fixed_phrases(prompts, NLU_DATA / "domain.yml")
    domain = domain_fixed_texts(NLU_DATA / "domain.yml")
    assert "How can I help you today?" in domain and "Thank you for calling. Goodbye." in domain
    assert not any("{" in text for text in fixed), "a phrase with a slot is not fixed"
    assert set(prompts.phrases.values()) | set(prompts.greeting.values()) | set(domain) <= set(fixed)
    assert len(fixed) == len(set(fixed))


class FakeTime:
    """A clock the pacer's sleep advances; each sleep also yields 1 ms of real time to the workers."""

    def __init__(self) -> None:
        self.now = 100.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0.001)


async def first_frame_after_decision(
    speech: Speech, text: str, rate: int, phase: float, fixed: bool
) -> float:
    """Seconds (fake clock) from the decision to say ``text`` to its first frame on the wire."""
    t = FakeTime()
    starts: list[float] = []
    pacer = Pacer(lambda pcm, r: None, rate, clock=t.clock, sleep=t.sleep)
    pacer.on_voice_start = starts.append
    speaker = Speaker(speech, pacer)
    run = asyncio.create_task(pacer.run())
    try:
        await asyncio.sleep(0)
        target = t.now + 0.2 + phase  # the decision falls anywhere inside a frame
        while t.now < target:
            await asyncio.sleep(0)
        decided = t.now
        say: Awaitable[None] = speaker.say(text, fixed=fixed)
        await say
        while not starts:
            await asyncio.sleep(0)
        return starts[0] - decided
    finally:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)


async def test_a_cached_prompt_leaves_within_20_ms_of_the_decision_and_an_uncached_one_does_not() -> None:
    prompts = Prompts.load(NLU_DATA / "prompts.yml")
    fixed = fixed_phrases(prompts, NLU_DATA / "domain.yml")[:6]
    pool = ThreadPoolExecutor(1)
    try:
        synth = CostlySynth()
        cache = PromptCache(None, max_items=2)  # pinned phrases do not count against the LRU bound
        speech = Speech(synth, cache, pool)
        await speech.warm(fixed, (8000, 16000))
        assert len(synth.calls) == len(fixed), "each phrase synthesised once, resampled per rate"
        assert cache.pinned() == 2 * len(fixed)
        for rate in (8000, 16000):
            for i, text in enumerate(fixed):
                # Gateway phrases (disk cache) and assistant replies (memory only) alike.
                gap = await first_frame_after_decision(speech, text, rate, phase=i * 0.0037, fixed=i % 2 == 0)
                assert 0 <= gap <= 0.020, (rate, i, gap)
        assert len(synth.calls) == len(fixed), "nothing synthesised after the start"
        cold = Speech(CostlySynth(), PromptCache(None), pool)
        gap = await first_frame_after_decision(cold, fixed[0], 8000, phase=0.0, fixed=True)
        assert gap > 0.020, "without the warm cache the first frame waits for the voice"
    finally:
        pool.shutdown()


# --- through a call, over real AudioSocket ----------------------------------------------------------------


class SpeculatingDialogue(ScriptedDialogue):
    """The scripted assistant with a parse-only route answering ``parsed``."""

    def __init__(self, parsed: Parsed) -> None:
        super().__init__({})
        self.parsed = parsed
        self.parses: list[tuple[str, str, dict[str, Any], float]] = []

    async def parse(
        self, sender: str, text: str, metadata: Mapping[str, Any] | None = None, *, timeout_s: float = 0.15
    ) -> Parsed:
        self.parses.append((sender, text, dict(metadata or {}), timeout_s))
        return self.parsed


@pytest.mark.parametrize("sure", [True, False])
async def test_a_call_speculates_on_the_partial_and_commits_only_the_turn(sure: bool) -> None:
    """The fake recogniser's partial is "words" and its final "i heard you": a confident speculation sends
    "words" at the decision (the final, differing, is only counted); an unsure one waits for the final."""
    dialogue = SpeculatingDialogue(confident() if sure else Parsed("ask_balance", 0.4))
    h = Harness(dialogue, asr=FakeAsrEngine(), greeting="Hi.")
    await start(h)
    try:
        caller = await Caller.dial(h.server.port)
        await caller.wait_voiced(3)
        await asyncio.sleep(0.3)  # the greeting is over
        rng = np.random.default_rng(1)
        for _ in range(25):
            await caller.send(wire.encode_audio(rng.normal(0, 6000, 160).astype(np.int16).tobytes(), 8000))
            await asyncio.sleep(0.02)
        await until(lambda: bool(dialogue.calls))
        await asyncio.sleep(0.3)
        session = h.sessions[str(caller.call)]
        assert session.speculator is not None
        assert {text for _, text, _, _ in dialogue.parses} == {"words"}, "parsed once per new partial"
        sender, _, meta, timeout_s = dialogue.parses[0]
        assert sender == str(caller.call) and meta["input"] == "asr" and timeout_s == CONFIG.parse_timeout_s
        timing = session.timings[0]
        if sure:
            assert [text for _, text, _ in dialogue.calls] == ["words"]
            assert timing.early and timing.end_rule == "complete"
            assert session.speculator.stats.committed == 1 and session.speculator.stats.final_differs == 1
        else:
            assert [text for _, text, _ in dialogue.calls] == ["i heard you"]
            assert not timing.early and timing.end_rule == "unsure"
        await caller.close()
    finally:
        await stop(h)


def test_speculation_settings() -> None:
    assert Config.from_env({}).tts.warm_rates == (8000, 16000)
    mine = Config.from_env(
        {
            "ATTENDANT_SPECULATE": "off",
            "ATTENDANT_TURN_CONFIDENT": "0.9",
            "ATTENDANT_PARSE_TIMEOUT_S": "0.2",
            "ATTENDANT_WARM_RATES": "8000, 16000,48000,8000",
            "ATTENDANT_SPEECH_TAIL_DB": "30",
        }
    )
    ep = mine.endpointer
    assert (ep.speculate, ep.confident, ep.parse_timeout_s, ep.tail_db) == (False, 0.9, 0.2, 30.0)
    assert mine.tts.warm_rates == (8000, 16000, 48000)
    for name, bad in [
        ("ATTENDANT_SPECULATE", "maybe"),
        ("ATTENDANT_TURN_CONFIDENT", "1.5"),
        ("ATTENDANT_PARSE_TIMEOUT_S", "0"),
        ("ATTENDANT_WARM_RATES", "8000,11025"),
        ("ATTENDANT_SPEECH_TAIL_DB", "2"),
    ]:
        with pytest.raises(ConfigError, match=name):
            Config.from_env({name: bad})
