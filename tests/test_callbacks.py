"""Callbacks and after hours as the caller meets them, over the real AudioSocket wire (a caller on TCP), the
real Redis and, for spoken yes/no, the real Rasa stack's understanding; the FastAGI side with real ``agi_*``
headers. The wait comes from a constructed estimate (``FixedWaits``); the time of day from a fixed clock.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis as redis_sync
import redis.asyncio as aioredis

from actions.shared.paths import REPO_ROOT
from actions.store import DemoStore
from bot.callbacks import state_key
from bot.callbacks import submit as submit_callback
from bot.dialogue import HandoffRequested, RasaClient, Reply, Understood
from bot.offers import spoken_digits
from bot.prompts import Prompts
from bot.session import CallSession, SessionDeps
from bot.tts import PromptCache, Speech
from bot.vad import EndpointerConfig
from bot.waits import Wait
from telephony import audiosocket as wire
from telephony.agi import AgiConfig, AgiServer
from telephony.callstate import CALLBACKS_KEY, VOICEMAILS_KEY, Reason, Route, Skill, call_key, transcript_key
from telephony.server import Connection
from tests.test_agi import asterisk_header, play_asterisk
from tests.test_session import GREETING, Caller, Harness, ScriptedDialogue, stop, wait_ended
from tests.test_waits import FixedWaits

PROMPTS = Prompts.load(REPO_ROOT / "nlu-data" / "prompts.yml")
WORDS = PROMPTS.callback
CHICAGO = ZoneInfo("America/Chicago")
SUNDAY_NIGHT = datetime(2026, 6, 7, 22, 0, tzinfo=CHICAGO).timestamp()
"""Both demo branches are closed on Sundays; the default line (Downtown) opens Monday 9:00."""
MONDAY_9 = datetime(2026, 6, 8, 9, 0, tzinfo=CHICAGO).timestamp()
CALLER = "+15550100001"
HANDOFF = Reply(
    texts=("Let me get you a colleague.",),
    handoff=HandoffRequested(Reason.REQUESTED, Skill.BILLING, {"verified": True, "loyalty_tier": "gold"}),
)
OUTAGE = Reply(
    texts=("That sounds serious.",),
    handoff=HandoffRequested(Reason.REQUESTED, Skill.SUPPORT, {"incident_priority": 1}),
)


class OfferHarness(Harness):
    """The session harness with the store's lines, a fixed wall clock and the assistant's understanding."""

    def __init__(
        self, dialogue: Any, *, lines: Any = None, wall: float | None = None, **gateway: Any
    ) -> None:
        super().__init__(dialogue, **gateway)
        self.lines = lines
        self.wall = wall

    def _factory(self, call_id: str, out: Connection) -> CallSession:
        deps = SessionDeps(
            speech=Speech(self.synth, PromptCache(None), self.pool),
            dialogue=self.dialogue,
            prompts=PROMPTS,
            redis=self.redis,
            asr_executor=self.pool,
            endpointer=EndpointerConfig(trailing_silence_s=0.3),
            waits=self.waits,
            lines=self.lines,
            wall_clock=(lambda: self.wall) if self.wall is not None else time.time,
        )
        self.sessions[call_id] = CallSession(call_id, out, deps, self.config)
        return self.sessions[call_id]


class Understanding(ScriptedDialogue):
    """Scripted turns; yes/no understood by the real assistant (``RasaClient.understand``)."""

    def __init__(self, script: Mapping[str, Reply], rasa: RasaClient | None = None) -> None:
        super().__init__(script)
        self.rasa = rasa
        self.understood: list[Understood] = []

    async def understand(self, sender: str, text: str) -> Understood:
        assert self.rasa is not None
        found = await self.rasa.understand(sender, text)
        self.understood.append(found)
        return found


@pytest.fixture
def r() -> Iterator[redis_sync.Redis]:
    client = redis_sync.Redis(host="127.0.0.1", port=6379, db=0, decode_responses=True)
    yield client
    client.close()


def requests_for(r: redis_sync.Redis, call: uuid.UUID) -> list[dict[str, str]]:
    return [f for _, f in r.xrange(CALLBACKS_KEY) if f.get("call") == str(call)]


def said(r: redis_sync.Redis, call: uuid.UUID) -> list[tuple[str, str | None]]:
    return [(f["text"], f.get("prompt")) for _, f in r.xrange(transcript_key(str(call))) if f["who"] == "bot"]


async def keys(caller: Caller, digits: str) -> None:
    for d in digits:
        await caller.send(wire.encode_dtmf(d))


async def until_said(r: redis_sync.Redis, call: uuid.UUID, text: str, timeout: float = 10.0) -> None:
    async def wait() -> None:
        while not any(t == text for t, _ in said(r, call)):
            await asyncio.sleep(0.02)

    await asyncio.wait_for(wait(), timeout)


def register(r: redis_sync.Redis, call: uuid.UUID, **fields: str) -> None:
    """What the FastAGI ``register`` route leaves for the bot before the call arrives."""
    r.hset(call_key(str(call)), mapping={"caller_number": CALLER, "language": "en", **fields})


async def billing_handoff(h: OfferHarness, r: redis_sync.Redis) -> Caller:
    call = uuid.uuid4()
    register(r, call)
    caller = await Caller.dial(h.server.port, call)
    await caller.wait_voiced(3)
    await caller.send(wire.encode_text("a person"))
    await until_said(r, call, WORDS["offer"])
    return caller


def offer_harness(dialogue: Any, wait_s: float = 250, **kw: Any) -> OfferHarness:
    h = OfferHarness(dialogue, **kw)
    h.waits = FixedWaits(Wait(wait_s, Route("attendant-billing", priority=5)))
    return h


async def test_a_long_wait_offers_a_callback_accepted_on_the_keypad(r: redis_sync.Redis) -> None:
    h = offer_harness(ScriptedDialogue({"/session_start": GREETING, "a person": HANDOFF}))
    await h.server.start()
    try:
        before = time.time()
        caller = await billing_handoff(h, r)
        await keys(caller, "1#")  # yes
        read_back = WORDS["caller_id"].format(digits=spoken_digits(CALLER[1:]))
        assert read_back.startswith("We would call you back on one, five, five, five, zero, one, zero, zero")
        await until_said(r, caller.call, read_back)
        await keys(caller, "1#")  # the caller id is right
        await until_said(r, caller.call, WORDS["window_offer"])
        await keys(caller, "1#")  # as soon as it's my turn
        await asyncio.wait_for(caller.hangup.wait(), 10)
        record = await wait_ended(h, r, caller.call)
        assert (record["outcome"], record["reason"], record["skill"]) == ("callback", "long-wait", "billing")
        [request] = requests_for(r, caller.call)
        assert request["number"] == "15550100001"
        place = (request["skill"], request["queue"], request["priority"])
        assert place == ("billing", "attendant-billing", "5")
        assert before <= float(request["entered"]) <= time.time()
        assert (request["not_before"], request["window_end"], request["language"]) == ("0", "0", "en")
        assert len(request["request"]) == 32 and uuid.UUID(request["request"]).version == 4
        offer = json.loads(record["context"])["callback"]
        assert offer["offered"] and offer["answer"] == "yes" and offer["by"] == "keypad"
        assert offer["wait_s"] == 250 and offer["request"] == request["request"]
        lines = said(r, caller.call)
        assert lines[-1] == (WORDS["confirmed"].format(digits=spoken_digits("15550100001")), "callback")
        await caller.close()
    finally:
        await stop(h)


async def test_another_number_keyed_in_and_read_back(r: redis_sync.Redis) -> None:
    h = offer_harness(ScriptedDialogue({"/session_start": GREETING, "a person": HANDOFF}))
    await h.server.start()
    try:
        caller = await billing_handoff(h, r)
        await keys(caller, "1#")  # yes
        await keys(caller, "2#")  # not that number
        await until_said(r, caller.call, WORDS["ask_number"])
        await keys(caller, "5550199#")
        await until_said(r, caller.call, WORDS["confirm_number"].format(digits=spoken_digits("5550199")))
        await keys(caller, "1#")
        await until_said(r, caller.call, WORDS["window_offer"])
        await keys(caller, "1#")
        await asyncio.wait_for(caller.hangup.wait(), 10)
        record = await wait_ended(h, r, caller.call)
        assert record["outcome"] == "callback"
        [request] = requests_for(r, caller.call)
        assert request["number"] == "5550199"
        entries = r.xrange(transcript_key(str(caller.call)))
        transcript = [f["text"] for _, f in entries if f["who"] == "caller"]
        assert "5550199" not in " ".join(transcript)  # typed digits are kept as [keypad]
        await caller.close()
    finally:
        await stop(h)


async def test_a_later_time_keyed_in_gives_the_request_a_window(
    r: redis_sync.Redis, store: DemoStore
) -> None:
    h = offer_harness(
        ScriptedDialogue({"/session_start": GREETING, "a person": HANDOFF}), lines=store, wall=MONDAY_9 + 60
    )
    await h.server.start()
    try:
        caller = await billing_handoff(h, r)
        await keys(caller, "1#")
        await until_said(r, caller.call, WORDS["caller_id"].format(digits=spoken_digits(CALLER[1:])))
        await keys(caller, "1#")
        await until_said(r, caller.call, WORDS["window_offer"])
        await keys(caller, "2#")  # a later time
        await until_said(r, caller.call, WORDS["ask_window"])
        await keys(caller, "14#")
        await until_said(r, caller.call, WORDS["window_confirm"].format(start="two p m", end="four p m"))
        await keys(caller, "1#")
        await asyncio.wait_for(caller.hangup.wait(), 10)
        record = await wait_ended(h, r, caller.call)
        assert record["outcome"] == "callback"
        [request] = requests_for(r, caller.call)
        two_pm = datetime(2026, 6, 8, 14, 0, tzinfo=CHICAGO).timestamp()
        assert (float(request["not_before"]), float(request["window_end"])) == (two_pm, two_pm + 7200)
        assert float(request["entered"]) == MONDAY_9 + 60
        confirmed = WORDS["confirmed_window"].format(
            digits=spoken_digits(CALLER[1:]), start="two p m", end="four p m"
        )
        assert said(r, caller.call)[-1] == (confirmed, "callback")
        assert json.loads(record["context"])["callback"]["window"] == "chosen"
        await caller.close()
    finally:
        await stop(h)


async def test_declined_the_caller_queues_as_before_and_the_context_says_so(r: redis_sync.Redis) -> None:
    h = offer_harness(ScriptedDialogue({"/session_start": GREETING, "a person": HANDOFF}))
    await h.server.start()
    try:
        caller = await billing_handoff(h, r)
        await keys(caller, "2#")  # no
        await asyncio.wait_for(caller.hangup.wait(), 10)
        record = await wait_ended(h, r, caller.call)
        where = (record["outcome"], record["queue"], record["priority"])
        assert where == ("handoff", "attendant-billing", "5")
        offer = json.loads(record["context"])["callback"]
        assert (offer["answer"], offer["by"]) == ("no", "keypad")
        assert requests_for(r, caller.call) == []
        assert said(r, caller.call)[-1] == (WORDS["declined"], "callback.declined")
        await caller.close()
    finally:
        await stop(h)


async def test_a_short_wait_is_not_offered_a_callback(r: redis_sync.Redis) -> None:
    h = offer_harness(ScriptedDialogue({"/session_start": GREETING, "a person": HANDOFF}), wait_s=170)
    await h.server.start()
    try:
        call = uuid.uuid4()
        register(r, call)
        caller = await Caller.dial(h.server.port, call)
        await caller.wait_voiced(3)
        await caller.send(wire.encode_text("a person"))
        await asyncio.wait_for(caller.hangup.wait(), 10)
        record = await wait_ended(h, r, call)
        assert record["outcome"] == "handoff" and "callback" not in json.loads(record["context"])
        await caller.close()
    finally:
        await stop(h)


@pytest.fixture(scope="module")
def rasa_client_args(rasa: Any) -> tuple[str, str]:
    return rasa.rasa_url, rasa.token


async def test_accepted_by_voice_through_the_assistants_understanding(
    r: redis_sync.Redis, rasa_client_args: tuple[str, str]
) -> None:
    client = RasaClient(*rasa_client_args, timeout_s=10)
    dialogue = Understanding({"/session_start": GREETING, "a person": HANDOFF}, client)
    h = offer_harness(dialogue)
    await h.server.start()
    try:
        caller = await billing_handoff(h, r)
        await caller.send(wire.encode_text("yes please"))
        await until_said(r, caller.call, WORDS["caller_id"].format(digits=spoken_digits(CALLER[1:])))
        await caller.send(wire.encode_text("yes that's right"))
        await until_said(r, caller.call, WORDS["window_offer"])
        await caller.send(wire.encode_text("yes"))
        await asyncio.wait_for(caller.hangup.wait(), 20)
        record = await wait_ended(h, r, caller.call)
        assert record["outcome"] == "callback", dialogue.understood
        assert [u.intent for u in dialogue.understood] == ["affirm", "affirm", "affirm"]
        offer = json.loads(record["context"])["callback"]
        assert (offer["answer"], offer["by"]) == ("yes", "voice")
        assert requests_for(r, caller.call)[0]["number"] == "15550100001"
        # A spoken no, understood the same way, keeps the caller in the queue.
        assert (await client.understand(str(caller.call), "no thanks")).intent == "deny"
        await caller.close()
    finally:
        await client.close()
        await stop(h)


# ---------------------------------------------------------------------------------------------- after hours


@pytest.fixture
async def store() -> AsyncIterator[DemoStore]:
    s = DemoStore(clock=lambda: datetime(2026, 6, 7, 22, 0))
    assert await s.phone_line(None) is not None  # built and seeded before the call
    yield s
    await s.close()


def closed_words() -> str:
    hours = "Monday to Friday nine a m to five thirty p m, and Saturday ten a m to two p m"
    return WORDS["closed"].format(hours=hours, opens="tomorrow at nine a m")


async def after_hours_call(h: OfferHarness, r: redis_sync.Redis) -> Caller:
    call = uuid.uuid4()
    register(r, call, line="15550100100")  # not listed: the default line (Downtown's hours)
    caller = await Caller.dial(h.server.port, call)
    await until_said(r, call, closed_words())
    await until_said(r, call, WORDS["voicemail_offer"])
    return caller


async def test_after_hours_the_hours_then_a_voicemail_stored_with_its_context(
    r: redis_sync.Redis, store: DemoStore
) -> None:
    h = OfferHarness(ScriptedDialogue({"/session_start": GREETING}), lines=store, wall=SUNDAY_NIGHT)
    await h.server.start()
    redis = aioredis.from_url("redis://127.0.0.1:6379/0")
    agi = AgiServer(AgiConfig(host="127.0.0.1", port=0), redis, session_timeout_s=5.0)
    await agi.start()
    try:
        caller = await after_hours_call(h, r)
        await keys(caller, "1#")
        await asyncio.wait_for(caller.hangup.wait(), 10)
        record = await wait_ended(h, r, caller.call)
        assert (record["outcome"], record["reason"]) == ("voicemail", "after-hours")
        assert said(r, caller.call)[-1] == (WORDS["voicemail_go"], "callback.voicemail_go")
        assert h.dialogue.calls == []  # the assistant was not needed
        # The dialplan asks how the call ended, records, then reports the file from the hangup handler.
        commands = await play_asterisk(agi.port, asterisk_header(str(caller.call)))
        assert commands == [
            'SET VARIABLE ATTENDANT_REASON "after-hours"',
            'SET VARIABLE ATTENDANT_SKILL "general"',
            'SET VARIABLE ATTENDANT_VM_MAX "120"',
            'SET VARIABLE ATTENDANT_RESULT "voicemail"',
        ]
        path = f"/var/spool/asterisk/attendant/{caller.call}.wav"
        header = asterisk_header(str(caller.call), "voicemail", more_args=(path, "DTMF"))
        assert await play_asterisk(agi.port, header) == ['SET VARIABLE ATTENDANT_VM_STORED "yes"']
        [entry] = [f for _, f in r.xrange(VOICEMAILS_KEY) if f["call"] == str(caller.call)]
        assert (entry["file"], entry["status"], entry["caller_number"]) == (path, "dtmf", CALLER)
        assert (entry["skill"], entry["reason"]) == ("general", "after-hours")  # whose list it goes on
        context = json.loads(entry["context"])
        assert context["after_hours"]["offers"]["voicemail"] == "yes"
        assert context["after_hours"]["line"] == "default"
        assert r.hget(call_key(str(caller.call)), "voicemail") == path
        # A path that is not this call's is refused.
        bad = asterisk_header(str(caller.call), "voicemail", more_args=("/etc/passwd", "DTMF"))
        assert await play_asterisk(agi.port, bad) == ['SET VARIABLE ATTENDANT_VM_STORED "no"']
        await caller.close()
    finally:
        await agi.close()
        await redis.close()
        await stop(h)


async def test_after_hours_a_callback_at_the_next_opening(r: redis_sync.Redis, store: DemoStore) -> None:
    h = OfferHarness(ScriptedDialogue({"/session_start": GREETING}), lines=store, wall=SUNDAY_NIGHT)
    await h.server.start()
    try:
        caller = await after_hours_call(h, r)
        await keys(caller, "2#")  # no message
        await until_said(r, caller.call, WORDS["opening_offer"])
        await keys(caller, "1#")  # a callback when we open
        await until_said(r, caller.call, WORDS["caller_id"].format(digits=spoken_digits(CALLER[1:])))
        await keys(caller, "1#")
        await asyncio.wait_for(caller.hangup.wait(), 10)
        record = await wait_ended(h, r, caller.call)
        assert (record["outcome"], record["reason"]) == ("callback", "after-hours")
        [request] = requests_for(r, caller.call)
        assert float(request["not_before"]) == MONDAY_9
        assert float(request["entered"]) == SUNDAY_NIGHT
        scheduled = WORDS["scheduled"].format(digits=spoken_digits(CALLER[1:]), opens="tomorrow at nine a m")
        assert said(r, caller.call)[-1] == (scheduled, "callback.scheduled")
        await caller.close()
    finally:
        await stop(h)


async def test_after_hours_both_declined_the_assistant_carries_on_and_an_outage_pages_on_call(
    r: redis_sync.Redis, store: DemoStore
) -> None:
    dialogue = ScriptedDialogue({"/session_start": GREETING, "the network is down": OUTAGE})
    h = OfferHarness(dialogue, lines=store, wall=SUNDAY_NIGHT, oncall=True)
    await h.server.start()
    try:
        caller = await after_hours_call(h, r)
        await keys(caller, "2#")
        await until_said(r, caller.call, WORDS["opening_offer"])
        await keys(caller, "2#")
        await until_said(r, caller.call, GREETING.texts[0])
        await caller.send(wire.encode_text("the network is down"))
        await asyncio.wait_for(caller.hangup.wait(), 10)
        record = await wait_ended(h, r, caller.call)
        assert (record["outcome"], record["reason"], record["skill"]) == ("oncall", "urgent", "support")
        assert said(r, caller.call)[-1] == (WORDS["oncall"], "callback.oncall")
        offers = json.loads(record["context"])  # the handoff's context replaced the start's; the record holds
        assert offers["incident_priority"] == 1
        await caller.close()
    finally:
        await stop(h)


async def test_in_opening_hours_nothing_is_said_about_hours(r: redis_sync.Redis, store: DemoStore) -> None:
    h = OfferHarness(ScriptedDialogue({"/session_start": GREETING}), lines=store, wall=MONDAY_9 + 60)
    await h.server.start()
    try:
        call = uuid.uuid4()
        register(r, call)
        caller = await Caller.dial(h.server.port, call)
        await until_said(r, call, GREETING.texts[0])
        assert not any(prompt and prompt.startswith("callback.") for _, prompt in said(r, call))
        await caller.send(wire.encode_hangup())
        await wait_ended(h, r, call)
        await caller.close()
    finally:
        await stop(h)


async def test_the_outcome_route_for_callback_and_oncall() -> None:
    redis = aioredis.from_url("redis://127.0.0.1:6379/0")
    agi = AgiServer(AgiConfig(host="127.0.0.1", port=0), redis, session_timeout_s=5.0)
    await agi.start()
    try:
        for outcome, reason, skill in (("callback", "long-wait", "billing"), ("oncall", "urgent", "support")):
            call = str(uuid.uuid4())
            await redis.hset(call_key(call), mapping={"outcome": outcome, "reason": reason, "skill": skill})
            assert await play_asterisk(agi.port, asterisk_header(call)) == [
                f'SET VARIABLE ATTENDANT_REASON "{reason}"',
                f'SET VARIABLE ATTENDANT_SKILL "{skill}"',
                f'SET VARIABLE ATTENDANT_RESULT "{outcome}"',
            ]
            await redis.delete(call_key(call))
        # register keeps the number dialled (argument 3) for the line's hours
        call = str(uuid.uuid4())
        header = asterisk_header(call, "register", more_args=("8000", "+1 (555) 010-0200"))
        assert await play_asterisk(agi.port, header) == ['SET VARIABLE ATTENDANT_REGISTERED "yes"']
        assert await redis.hget(call_key(call), "line") == b"15550100200"
        await redis.delete(call_key(call))
    finally:
        await agi.close()
        await redis.close()


async def test_submit_callback_writes_the_contract_fields(r: redis_sync.Redis) -> None:
    """What the gateway submits is what the dispatcher reads: the stream entry and the request's state."""
    redis = aioredis.from_url("redis://127.0.0.1:6379/0")
    try:
        call = str(uuid.uuid4())
        req = await submit_callback(
            redis, call=call, number="5550100", skill="orders", queue="attendant-orders", priority=3,
            entered=1700000000.25, not_before=1700003600.0,
        )  # fmt: skip
        [entry] = [f for _, f in r.xrange(CALLBACKS_KEY) if f["call"] == call]
        assert entry == {
            "request": req.request, "call": call, "number": "5550100", "skill": "orders",
            "queue": "attendant-orders", "priority": "3", "entered": "1700000000.250",
            "not_before": "1700003600.000", "window_end": "0", "language": "en",
        }  # fmt: skip
        assert r.hget(state_key(req.request), "state") == "new"
        with pytest.raises(ValueError):
            await submit_callback(
                redis, call=call, number="555-0100; rm", skill="orders", queue="attendant-orders",
                priority=3, entered=1700000000.25,
            )  # fmt: skip
    finally:
        r.delete(state_key(req.request))
        await redis.close()


async def test_callbacks_are_dialled_within_the_lines_opening_hours(store: DemoStore) -> None:
    """The dispatcher's calling hours are the store's: closed on Sunday night, next open Monday at nine."""
    from bot.gateway import LineOpening

    opening = LineOpening(await store.phone_line(None))
    assert not opening.is_open(SUNDAY_NIGHT)
    assert opening.next_open(SUNDAY_NIGHT) == MONDAY_9
    assert opening.is_open(MONDAY_9 + 60) and opening.next_open(MONDAY_9 + 60) == MONDAY_9 + 60
