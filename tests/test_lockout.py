"""PIN guessing across calls, resetting the count from inside a call, and goodbye at the verification prompt
(issue 9, points 1 and 6), on the real Rasa server, action server, Redis and the run's own SQLite store; the
injected ``/session_start`` also through the whole gateway, as a caller's text.

Each test makes a customer of its own in the store (a fresh number, PIN and date of birth), so the lockout it
provokes never touches the demo customers other tests verify.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pytest
import redis
from sqlalchemy import insert

from actions.backends.base import hash_secret, new_salt, normalise_number
from actions.backends.schema import accounts, customers, make_engine, phone_numbers
from actions.shared.handoff import HANDOFF_LINES, HANDOFF_REASONS
from actions.shared.paths import NLU_DATA
from actions.shared.yamlfile import read_yaml
from actions.store import open_store
from bot.rasa.channel import _parse_body
from bot.tools.stack import RasaStack
from telephony.callstate import ACTIVE_KEY, Reason, call_key
from telephony.sim import CallerSimulator, Turn
from tests.conftest import GatewayProcess
from tests.test_channel_and_actions import (
    TRACKER_KEY,
    Call,
    customs,
    handoff,
    texts,
    without_ids,
)

WORDS = "zero one two three four five six seven eight nine".split()


@dataclass(frozen=True)
class Person:
    customer_id: str
    number: str
    pin: str
    dob: date

    @property
    def spoken_pin(self) -> str:
        return " ".join(WORDS[int(d)] for d in self.pin)


def new_customer(store_url: str) -> Person:
    """A customer of the test's own, with an account, straight into the store (as the seed writes one)."""
    suffix = f"{secrets.randbelow(10**6):06d}"
    pin = "1111"
    while len(set(pin)) == 1:  # never one of the wrong PINs the tests say
        pin = f"{secrets.randbelow(9000) + 1000}"
    person = Person(f"C-T{suffix}", f"+1 555 7{suffix[:3]} {suffix[3:]}0", pin, date(1970, 5, 17))
    pin_salt, dob_salt = new_salt(), new_salt()
    engine = make_engine(store_url, 10.0, 1)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(customers).values(
                    id=person.customer_id,
                    name="Test Caller",
                    pin_hash=hash_secret(person.pin, pin_salt),
                    pin_salt=pin_salt,
                    dob_hash=hash_secret(person.dob.isoformat(), dob_salt),
                    dob_salt=dob_salt,
                    loyalty_tier="none",
                    call_count=1,
                    has_bought=True,
                    created=datetime.now(),
                )
            )
            conn.execute(
                insert(phone_numbers).values(
                    number=normalise_number(person.number), customer_id=person.customer_id
                )
            )
            conn.execute(
                insert(accounts).values(customer_id=person.customer_id, balance_cents=4321, currency="USD")
            )
    finally:
        engine.dispose()
    return person


def wrong_pin(person: Person, n: int) -> str:
    pin = f"{n}{n}{n}{n}"
    assert pin != person.pin
    return " ".join([WORDS[n]] * 4)


@pytest.fixture(scope="module")
def stack(rasa: RasaStack) -> RasaStack:
    return rasa


@pytest.fixture(scope="module")
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def spoken(items: list[dict[str, Any]]) -> str:
    return texts([i for i in items if i.get("custom") != {"input_redacted": True}])


def slots_of(redis_client: redis.Redis, sender: str) -> dict[str, Any]:
    raw = redis_client.get(TRACKER_KEY.format(sender=sender))
    assert raw is not None
    return {e["name"]: e["value"] for e in json.loads(raw)["events"] if e["event"] == "slot"}


# --- point 1: guessing across calls ------------------------------------------------------------------------


def test_pin_guessing_across_calls_locks_the_customer(stack: RasaStack, sqlite_store_url: str) -> None:
    """Four calls of three wrong PINs each, then a fifth with the right one: the customer is locked after the
    fifth failure (ATTENDANT_STORE_LOCK_ATTEMPTS, default 5) and every later caller goes to a person with
    reason ``verification-locked`` — a caller who was already at the PIN prompt too, with the right PIN."""
    person = new_customer(sqlite_store_url)
    waiting = Call(stack, person.number)  # at the PIN prompt before the guessing starts
    assert "PIN" in texts(waiting.say("what's my balance"))

    reasons: list[str] = []
    heard_locked = ""
    for _ in range(4):
        call = Call(stack, person.number)
        items = call.say("what's my balance")
        for n in (1, 2, 3):
            if customs(items) and "handoff" in customs(items)[-1]:
                break
            assert "PIN" in spoken(items), spoken(items)
            items = call.say(wrong_pin(person, n))
        request = handoff(items)
        assert request["context"]["verified"] is False
        assert "balance is" not in spoken(items)
        reasons.append(request["reason"])
        if request["reason"] == "verification-locked":
            heard_locked = spoken(items)
    # Call 1: three failures in the call. Call 2: the fifth failure in all locks. Calls 3, 4: not even asked.
    assert reasons == [
        "verification-failed",
        "verification-locked",
        "verification-locked",
        "verification-locked",
    ]
    assert "colleague" in heard_locked and "security" in heard_locked

    fifth = Call(stack, person.number)
    items = fifth.say("what's my balance")
    if not customs(items):  # (were it asked, the right PIN must still not do)
        items = fifth.say(person.spoken_pin)
    request = handoff(items)
    assert request["reason"] == "verification-locked"
    assert request["skill"] == "billing"
    assert request["context"]["verified"] is False and request["context"]["customer_id"] is None
    assert "PIN" not in spoken(items) and "forty three dollars" not in spoken(items)

    # The right PIN at a prompt asked before the lock: refused all the same.
    items = waiting.say(person.spoken_pin)
    assert "forty three dollars" not in spoken(items)
    request = handoff(items)
    assert request["reason"] == "verification-locked" and request["context"]["verified"] is False

    async def lock() -> datetime | None:
        store = open_store(sqlite_store_url)
        try:
            return await store.verification_lock(person.customer_id)
        finally:
            await store.close()

    until = asyncio.run(lock())
    assert until is not None and 800 < (until - datetime.now()).total_seconds() <= 900


def test_a_success_resets_the_count_across_calls(stack: RasaStack, sqlite_store_url: str) -> None:
    person = new_customer(sqlite_store_url)
    for _ in range(3):  # two failures per call, a success in between: never locked
        call = Call(stack, person.number)
        call.say("what's my balance")
        assert "didn't match" in spoken(call.say(wrong_pin(person, 1)))
        assert "didn't match" in spoken(call.say(wrong_pin(person, 2)))
        assert "forty three dollars and twenty one cents" in spoken(call.say(person.spoken_pin))


# --- point 1: the count in the call cannot be reset from inside it ---------------------------------------


def test_session_start_mid_verification_keeps_the_count(
    stack: RasaStack, sqlite_store_url: str, redis_client: redis.Redis
) -> None:
    """A ``/session_start`` sent again (by a token holder: the gateway never does) neither greets nor resets
    the failed checks; the third failure still hands over."""
    person = new_customer(sqlite_store_url)
    call = Call(stack, person.number)
    call.say("what's my balance")
    call.say(wrong_pin(person, 1))
    call.say(wrong_pin(person, 2))
    again = call.say("/session_start", metadata={"call_id": call.sender, "caller_number": person.number})
    assert "Hello" not in spoken(again) and not customs(again)
    assert slots_of(redis_client, call.sender)["pin_attempts"] == 2
    items = call.say(wrong_pin(person, 3))
    request = handoff(items)
    assert request["reason"] == "verification-failed"
    assert request["context"]["pin_attempts"] == 3


def test_a_callers_slash_is_words_not_an_intent(stack: RasaStack, sqlite_store_url: str) -> None:
    """The caller's own turns (metadata input asr / inject) never reach Rasa as an intent."""
    person = new_customer(sqlite_store_url)
    call = Call(stack, person.number)
    call.say("what's my balance")
    call.say(wrong_pin(person, 1))
    items = call.say("/session_start", metadata={"input": "inject"})
    assert "Hello" not in spoken(items) and "PIN" in spoken(items) and not customs(items), items
    items = call.say(wrong_pin(person, 2))
    assert "didn't match" in spoken(items)
    request = handoff(call.say(wrong_pin(person, 3)))
    assert request["reason"] == "verification-failed" and request["context"]["pin_attempts"] == 3


def test_the_channel_takes_a_callers_slash_as_words() -> None:
    def parsed(message: str, **metadata: Any) -> str:
        body = {"sender": "s-1", "message": message, "metadata": metadata}
        return _parse_body(json.dumps(body).encode())[1]

    for source in ("asr", "inject"):
        assert parsed("/session_start", input=source) == "session_start"
        assert parsed('/inform_digits{"secret_ref": "x"}', input=source) == 'inform_digits{"secret_ref": "x"}'
        assert parsed(" // ", input=source) == "/nlu_fallback"
    # The gateway's own intents (the call start, keypad menu choices) stay intents; entities never pass.
    assert parsed("/session_start", input="system") == "/session_start"
    assert parsed("/ask_balance", input="dtmf") == "/ask_balance"
    with pytest.raises(ValueError):
        parsed('/ask_balance{"verified": true}', input="dtmf")


async def _gateway_call(gateway: GatewayProcess, number: str, turns: list[Turn]) -> Any:
    sim = CallerSimulator("127.0.0.1", gateway.port, caller_number=number, agi_port=gateway.agi_port)
    return await asyncio.wait_for(sim.run(turns), 240)


@pytest.mark.timeout(300)
def test_an_injected_session_start_through_the_gateway_keeps_the_count(
    gateway_text: GatewayProcess, sqlite_store_url: str, redis_client: redis.Redis
) -> None:
    """The caller's text "/session_start" over the channel (AudioSocket text injection), mid-verification:
    just words; the third wrong PIN still hands over with ``verification-failed``."""
    person = new_customer(sqlite_store_url)
    turns = [
        Turn("text", "what's my balance"),
        Turn("text", wrong_pin(person, 1)),
        Turn("text", wrong_pin(person, 2)),
        Turn("text", "/session_start"),
        Turn("text", wrong_pin(person, 3)),
    ]
    result = asyncio.run(_gateway_call(gateway_text, person.number, turns))
    said = " | ".join(result.bot_said())
    assert sum("Hello" in line for line in result.bot_said()) == 1, said  # greeted once, at the start
    record = _outcome(redis_client, str(result.call_id))
    assert record.get("outcome") == "handoff" and record.get("reason") == "verification-failed", (
        record,
        said,
    )


def _outcome(client: redis.Redis, call_id: str, timeout: float = 15.0) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = client.hgetall(call_key(call_id))
        if record.get("outcome") and client.zscore(ACTIVE_KEY, call_id) is None:
            return record
        time.sleep(0.05)
    raise AssertionError(f"no outcome for {call_id}")


# --- point 6: "i dont have it" and goodbye at the verification prompt -------------------------------------


def test_i_dont_have_it_at_the_date_of_birth_prompt_is_not_goodbye(
    stack: RasaStack, sqlite_store_url: str
) -> None:
    person = new_customer(sqlite_store_url)
    call = Call(stack, person.number)
    call.say("what's my balance")
    assert "date of birth" in spoken(call.say("i don't know my pin"))
    items = call.say("i dont have it")
    assert {"end_call": True} not in customs(items)
    assert "Goodbye" not in spoken(items)
    assert handoff(items)["reason"] == "verification-failed"


def test_goodbye_during_verification_asks_first(
    stack: RasaStack, sqlite_store_url: str, redis_client: redis.Redis
) -> None:
    person = new_customer(sqlite_store_url)
    call = Call(stack, person.number)
    call.say("what's my balance")
    asked = call.say("goodbye")
    assert "end the call" in spoken(asked) and not customs(asked), asked
    back = call.say("no")
    assert "PIN" in spoken(back) and not customs(back)
    # A PIN said instead of yes or no is put aside unread, never recorded; the question comes again.
    assert "end the call" in spoken(call.say("ok bye"))
    items = call.say(f"no it's {person.spoken_pin}")
    assert "PIN" in spoken(items) and "forty three" not in spoken(items)
    raw = redis_client.get(TRACKER_KEY.format(sender=call.sender)) or ""
    # (ids and the classifier's scores blanked: a confidence like 2.1235290812e-07 may hold any four digits)
    assert person.pin not in without_ids(json.loads(raw)) and person.spoken_pin not in raw
    assert "end the call" in spoken(call.say("bye"))
    done = call.say("yes")
    assert "Goodbye" in spoken(done) and {"end_call": True} in customs(done)


# --- the vocabulary ---------------------------------------------------------------------------------------


def test_every_handoff_reason_has_words_for_the_caller_and_the_agent() -> None:
    assert Reason("verification-locked") in HANDOFF_REASONS
    responses = read_yaml(NLU_DATA / "domain.yml")["responses"]
    whisper = read_yaml(NLU_DATA / "prompts.yml")["whisper"]["reasons"]
    for reason in HANDOFF_REASONS:
        assert responses.get(HANDOFF_LINES[reason]), reason
        assert whisper.get(reason.value), reason
