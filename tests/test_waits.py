"""What a handed-off caller is told about the wait, and where they go, from constructed queue states; and
the same through a real call over AudioSocket (fake engines), into the transcript and the call's route."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import pytest
import redis as redis_sync

from actions.shared.paths import NLU_DATA
from bot.dialogue import HandoffRequested, Reply
from bot.prompts import Prompts, PromptsError
from bot.routing import choose_route
from bot.waits import ModelWaits, Wait, duration, wait_sentence
from bot.whisper import waited_words
from telephony import audiosocket as wire
from telephony.callstate import Reason, Route, Skill, transcript_key
from telephony.queues import QueueState
from tests.test_session import GREETING, Caller, Harness, ScriptedDialogue, stop, sync_redis, wait_ended
from tests.test_wait_estimate import NOW, agent, callers, queue

__all__ = ["sync_redis"]
SHIPPED = Prompts.load(NLU_DATA / "prompts.yml")
WORDS = SHIPPED.wait
WHISPER = SHIPPED.whisper


class Model:
    """The two things ModelWaits reads of the live model."""

    def __init__(self, *queues: QueueState, synced: bool = True) -> None:
        self._queues = {q.name: q for q in queues}
        self.synced = synced

    def queue(self, name: str) -> QueueState | None:
        return self._queues.get(name)


def waits(*queues: QueueState, synced: bool = True) -> ModelWaits:
    return ModelWaits(Model(*queues, synced=synced), clock=lambda: NOW)  # type: ignore[arg-type]


def test_the_best_agents_first_and_the_pool_widening_with_time() -> None:
    # The penalty-0 expert is 10 s from the end of a wrap-up; a penalty-2 helper is free. Entering with max
    # penalty 1, the caller has the expert alone (10 + 5 x 255 = 1285 s); from 30 s on (one rule step) the
    # helper too: both serve the five ahead at 255 s each, the helper from now, the expert from 10 s:
    # W/255 + (W - 10)/255 = 5  ->  W = 642.5 s, later than the 30 s step, so the wait is 642.5 s.
    expert = agent("expert", penalty=0, last_call=NOW - 5)
    helper = agent("helper", penalty=2)
    q = queue((expert, helper), callers(0, 0, 0, 0, 0))
    found = waits(q).estimate(Route("attendant-billing"), Skill.BILLING)
    assert found is not None and found.seconds is not None
    assert found.seconds == 642.5
    assert found.route.queue == "attendant-billing"


def test_nobody_who_can_take_it_goes_to_the_general_queue_and_says_so() -> None:
    paused = agent("p", paused=True, paused_reason="lunch")
    q = queue((paused,), callers(0))
    found = waits(q).estimate(Route("attendant-billing"), Skill.BILLING)
    assert found is not None and found.nobody and found.route.queue == "attendant-general"
    said = wait_sentence(found, Skill.BILLING, WORDS)
    assert "billing specialists" in said and "first free colleague" in said


def test_no_live_model_says_nothing_and_a_missing_language_queue_falls_back() -> None:
    assert waits(synced=False).estimate(Route("attendant-billing"), Skill.BILLING) is None
    q = queue((agent("a"),), ())
    found = waits(q).estimate(Route("attendant-billing-fr"), Skill.BILLING)
    assert found is not None and found.route.queue == "attendant-billing" and found.seconds == 0


def test_the_sentences() -> None:
    route = Route("attendant-billing")
    assert wait_sentence(Wait(250, route), Skill.BILLING, WORDS) == (
        "All our billing specialists are busy right now; the expected wait is about four minutes."
    )
    assert "in a moment" in wait_sentence(Wait(20, route), Skill.BILLING, WORDS)
    assert "one minute" in wait_sentence(Wait(80, route), Skill.SUPPORT, WORDS)
    assert wait_sentence(Wait(2 * 3600 + 100, route), Skill.BILLING, WORDS) == (
        "All our billing specialists are busy right now; the expected wait is about two hours."
    )


@pytest.mark.parametrize(
    ("minutes", "said"),
    [
        (1, "one minute"),
        (59, "fifty nine minutes"),
        (60, "an hour"),
        (74, "an hour"),
        (75, "an hour and a half"),  # halfway rounds up
        (90, "an hour and a half"),
        (120, "two hours"),
        (150, "two and a half hours"),
        (164, "two and a half hours"),
        (165, "three hours"),  # from three hours on, whole hours
        (209, "three hours"),
        (210, "four hours"),
        (600, "ten hours"),
    ],
)
def test_durations_are_said_in_minutes_then_hours(minutes: int, said: str) -> None:
    """The caller's wait and the agent's whisper say a duration the same way, with the shipped words."""
    assert duration(minutes * 60, WORDS) == said
    assert waited_words(minutes * 60, WHISPER) == said


def test_the_shortest_durations_and_the_rounding_to_minutes() -> None:
    assert duration(59, WORDS) == "less than a minute" and waited_words(44, WHISPER) == "a few seconds"
    assert waited_words(45, WHISPER) == "one minute"
    assert duration(59 * 60 + 29, WORDS) == "fifty nine minutes"
    assert duration(59 * 60 + 31, WORDS) == waited_words(59 * 60 + 31, WHISPER) == "an hour"


def test_the_hour_words_are_checked_like_the_others(tmp_path: Path) -> None:
    shipped = (NLU_DATA / "prompts.yml").read_text()
    bad = tmp_path / "prompts.yml"
    bad.write_text(shipped.replace('  hours: "{n} hours"\n', ""))
    with pytest.raises(PromptsError, match=r"wait\.hours is missing or empty"):
        Prompts.load(bad)
    bad.write_text(shipped.replace('waited_hours_and_a_half: "{n} and', 'waited_hours_and_a_half: "and'))
    with pytest.raises(PromptsError, match=r"whisper\.waited_hours_and_a_half must use \{n\}"):
        Prompts.load(bad)


def test_priority_outages_and_gold_customers() -> None:
    assert choose_route(Skill.SUPPORT, {"incident_priority": 1}).priority == 10
    assert choose_route(Skill.SUPPORT, {"incident_priority": 1}).max_penalty == 4
    assert choose_route(Skill.BILLING, {"verified": True, "loyalty_tier": "gold"}).priority == 5
    assert choose_route(Skill.BILLING, {"verified": False, "loyalty_tier": "gold"}).priority == 0
    assert choose_route(Skill.BILLING, {}, "fr").queue == "attendant-billing-fr"


class FixedWaits:
    def __init__(self, wait: Wait | None) -> None:
        self.wait = wait
        self.asked: list[Route] = []

    def estimate(self, route: Route, skill: Skill) -> Wait | None:
        self.asked.append(route)
        return None if self.wait is None else replace(self.wait, route=self.wait.route)


async def test_a_handoff_says_the_wait_and_records_the_route(sync_redis: redis_sync.Redis) -> None:
    handoff = Reply(
        texts=("Let me get you a colleague.",),
        handoff=HandoffRequested(Reason.REQUESTED, Skill.BILLING, {"verified": True, "loyalty_tier": "gold"}),
    )
    # 250 s is over the callback offer's threshold: raised here, the caller goes straight to the queue.
    h = Harness(ScriptedDialogue({"/session_start": GREETING, "a person": handoff}), callback_offer_s=600.0)
    fixed = FixedWaits(Wait(250, Route("attendant-billing", priority=5)))
    h.waits = fixed
    await h.server.start()
    try:
        caller = await Caller.dial(h.server.port)
        await caller.wait_voiced(3)
        await caller.send(wire.encode_text("a person"))
        await asyncio.wait_for(caller.hangup.wait(), 15)
        record = await wait_ended(h, sync_redis, caller.call)
        assert (record["queue"], record["priority"], record["max_penalty"]) == ("attendant-billing", "5", "1")
        assert fixed.asked == [Route("attendant-billing", priority=5, max_penalty=1)]
        assert json.loads(record["context"])["wait_estimate_s"] == 250
        lines = [(f["text"], f.get("prompt")) for _, f in sync_redis.xrange(transcript_key(str(caller.call)))]
        said = "All our billing specialists are busy right now; the expected wait is about four minutes."
        assert lines[-1] == (said, "wait") and h.synth.texts[-1] == said
        await caller.close()
    finally:
        await stop(h)
