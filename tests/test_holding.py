"""A recogniser that falls behind (a burst of callers on two cores): the caller who finished a turn hears the
holding phrase, not silence and not the no-input reprompt, and the turn's latency line is still written.
Over real TCP and the real Redis, with the fake engines of ``test_session.py``."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
import redis as redis_sync

from bot.asr import AsrUpdate
from bot.dialogue import Reply
from telephony import audiosocket as wire
from telephony.callstate import transcript_key
from tests.test_session import Caller, FakeAsrEngine, Harness, ScriptedDialogue, start, stop, sync_redis

__all__ = ["sync_redis"]  # the fixture, used by name


class LaggingAsr(FakeAsrEngine):
    """A recogniser that falls behind (a burst of callers on two cores): the final of an utterance comes only
    when the test releases it."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def flush(self) -> AsrUpdate:
        self.release.wait(10)
        return super().flush()


async def test_a_caller_waiting_for_a_lagging_recogniser_hears_the_holding_phrase_not_a_reprompt(
    sync_redis: redis_sync.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """The turn is over but its words are still being decoded: after ``hold_after_s`` the caller hears the
    holding phrase (once), never the no-input reprompt; then the answer to what they said."""
    import numpy as np

    caplog.set_level("INFO", logger="bot.session")
    asr = LaggingAsr()
    h = Harness(
        ScriptedDialogue({"i heard you": Reply(texts=("Here is your answer.",))}),
        asr=asr,
        greeting="Hello.",
        hold_after_s=0.3,
        no_input_s=1.5,
    )
    await start(h)
    try:
        caller = await Caller.dial(h.server.port)
        await caller.wait_voiced(3)
        await asyncio.sleep(0.3)  # the short greeting has played
        rng = np.random.default_rng(2)
        for _ in range(25):  # half a second of speech, then the line falls silent
            await caller.send(wire.encode_audio(rng.normal(0, 6000, 160).astype(np.int16).tobytes(), 8000))
            await asyncio.sleep(0.02)
        await asyncio.sleep(2.0)  # the decision, then 1.7 s of decoding: beyond no_input_s since speech
        said = [f.get("prompt") for _, f in sync_redis.xrange(transcript_key(str(caller.call)))]
        assert "holding" in said and "no_input" not in said, said
        assert said.count("holding") == 1
        assert h.dialogue.calls == []
        asr.release.set()

        async def answered() -> None:
            while not h.dialogue.calls:
                await asyncio.sleep(0.02)

        await asyncio.wait_for(answered(), 3)
        assert [text for _, text, _ in h.dialogue.calls] == ["i heard you"]
        await caller.wait_voiced(caller.voiced_frames() + 5)  # the answer plays
        await asyncio.sleep(0.2)
        # The turn's latency line is written even when the answer follows the holding phrase without a gap:
        # its first audio comes after the words (released ~1.7 s after the decision).
        marks = [
            json.loads(r.getMessage().split("turn latency ms ", 1)[1])
            for r in caplog.records
            if "turn latency ms" in r.getMessage()
        ]
        assert len(marks) == 1 and marks[0]["asr"] >= 1500 and marks[0]["first_audio"] >= marks[0]["asr"], (
            marks
        )
        await caller.send(wire.encode_hangup())
        await caller.close()
    finally:
        asr.release.set()
        await stop(h)


async def test_a_recogniser_that_never_delivers_leaves_no_dead_line(sync_redis: redis_sync.Redis) -> None:
    """Words still not decoded after two no-input periods are taken as lost: after the holding phrase the
    caller gets the no-input reprompt (then the goodbye), never open-ended silence."""
    import numpy as np

    asr = LaggingAsr()  # never released during the test
    h = Harness(ScriptedDialogue({}), asr=asr, greeting="Hello.", hold_after_s=0.3, no_input_s=1.0)
    await start(h)
    try:
        caller = await Caller.dial(h.server.port)
        await caller.wait_voiced(3)
        await asyncio.sleep(0.3)
        rng = np.random.default_rng(3)
        for _ in range(25):
            await caller.send(wire.encode_audio(rng.normal(0, 6000, 160).astype(np.int16).tobytes(), 8000))
            await asyncio.sleep(0.02)

        def said() -> list[str | None]:
            return [f.get("prompt") for _, f in sync_redis.xrange(transcript_key(str(caller.call)))]

        async def reprompted() -> None:
            while "no_input" not in said():
                await asyncio.sleep(0.05)

        await asyncio.wait_for(reprompted(), 4.0)  # decision ~0.3 s, holding 0.3 s later, reprompt by 2 s
        prompts = said()
        assert prompts.index("holding") < prompts.index("no_input"), prompts
        assert h.dialogue.calls == []
        await caller.send(wire.encode_hangup())
        await caller.close()
    finally:
        asr.release.set()
        await stop(h)
