"""The start of a call: the gateway greets by who is calling (the store, read only), and the assistant's
conversation begins only with the caller's first turn — a connection that never says anything costs no
Rasa tracker and is not counted (the real stack: ``tests/test_end_to_end.py``)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator, Mapping

import pytest
import redis as redis_sync

from telephony import audiosocket as wire
from telephony.callstate import call_key, transcript_key
from tests.test_session import Caller, Harness, ScriptedDialogue, start, stop, wait_ended


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[redis_sync.Redis]:
    client = redis_sync.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


class Callers:
    """Who is calling, as the store would answer (``kind_of_caller``); ``delay``: a slow store."""

    def __init__(self, kinds: Mapping[str, str], delay: float = 0.0) -> None:
        self.kinds = kinds
        self.delay = delay
        self.asked: list[str | None] = []

    async def kind_of_caller(self, number: str | None) -> str | None:
        self.asked.append(number)
        await asyncio.sleep(self.delay)
        if number == "+15550000000":
            raise OSError("store down")
        return self.kinds.get(number or "", "new")


@pytest.mark.parametrize(
    ("number", "delay", "key"),
    [
        ("+15550100001", 0.0, "existing"),
        ("+15550100002", 0.0, "returning"),
        ("+15550100003", 0.0, "new"),
        ("+15550000000", 0.0, "unknown"),  # the store fails: greeted alike, never a dead line
        ("+15550100001", 2.0, "unknown"),  # the store is slow: no waiting in silence
        (None, 0.0, "unknown"),  # withheld
    ],
)
async def test_the_gateway_greets_by_who_calls_and_opens_no_conversation_until_a_turn(
    sync_redis: redis_sync.Redis, number: str | None, delay: float, key: str
) -> None:
    callers = Callers({"+15550100001": "existing", "+15550100002": "returning"}, delay)
    h = Harness(ScriptedDialogue({}), callers=callers)
    await start(h)
    try:
        call = uuid.uuid4()
        if number is not None:
            sync_redis.hset(call_key(str(call)), mapping={"caller_number": number, "language": "en"})
        caller = await Caller.dial(h.server.port, call)
        greeting = h.prompts.greeting[key]
        await caller.wait_voiced(len(greeting.split()) * 5)
        await caller.send(wire.encode_hangup())
        record = await wait_ended(h, sync_redis, caller.call)
        assert record["outcome"] == "abandoned" and record["turns"] == "0"
        assert h.synth.texts[0] == greeting
        lines = sync_redis.xrange(transcript_key(str(caller.call)))
        assert (lines[0][1]["text"], lines[0][1]["prompt"]) == (greeting, f"greeting.{key}")
        assert callers.asked == ([number] if number else [])
        # No turn, no conversation: the assistant was never asked anything for this connection.
        assert h.dialogue.calls == []
        await caller.close()
    finally:
        await stop(h)


async def test_unreachable_rasa_at_the_first_turn_goes_to_a_person(sync_redis: redis_sync.Redis) -> None:
    from bot.dialogue import RasaClient

    h = Harness(ScriptedDialogue({}))
    h.dialogue = RasaClient("http://127.0.0.1:9", "t", 1.0)  # type: ignore[assignment]  # nothing listens there
    await start(h)
    try:
        caller = await Caller.dial(h.server.port)
        await caller.wait_voiced(len(h.prompts.greeting["unknown"].split()) * 5)  # the gateway's own greeting
        await caller.send(wire.encode_text("what's my balance"))
        await asyncio.wait_for(caller.hangup.wait(), 10)
        record = await wait_ended(h, sync_redis, caller.call)
        assert (record["outcome"], record["reason"]) == ("handoff", "technical")
        assert h.synth.texts[-1] == h.prompts["technical"]
        await caller.close()
    finally:
        await h.dialogue.close()  # type: ignore[attr-defined]
        await stop(h)
