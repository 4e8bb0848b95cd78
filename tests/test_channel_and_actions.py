"""The Attendant channel, the actions and the trained assistant, on the real parts.

One RasaStack (real Rasa server with the model `python -m bot.tools.train` produced, real rasa-sdk action
server, real Redis) is shared by the whole session; every conversation uses a fresh sender id.
The pure helpers (digits, money, the misunderstanding counter, the demo store) are tested directly.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from actions.handoff import consecutive_misunderstandings
from actions.shared.numerals import digits_from_speech
from actions.shared.speech import is_filler_only, say_money
from actions.shared.vault import SecretStash, is_ref, new_ref
from actions.store import DemoStore, normalise_number
from bot.tools.stack import RasaStack, redis_env

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "models" / "attendant.tar.gz"
REDIS_URL = os.environ.get("ATTENDANT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TRACKER_KEY = "attendant:tracker:{sender}"

ADA = {"number": "+15550100001", "pin": "4719", "spoken": "four seven one nine"}
GRACE = {"number": "+1 555 010 0002", "pin": "2580", "spoken": "two five eight oh"}
UNKNOWN_NUMBER = "+15550199999"


# --- the pure parts --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "digits"),
    [
        ("one two three four", "1234"),
        ("1234", "1234"),
        ("uh it's four seven one nine", "4719"),
        ("two five eight oh", "2580"),
        ("oh three five eight", "0358"),
        ("double five one two", "5512"),
        ("12 34#", "1234"),
        ("my pin is 4 7 1 9", "4719"),
        ("oh hello", None),
        ("i want to talk to a person", None),
        ("", None),
    ],
)
def test_digits_from_speech(text: str, digits: str | None) -> None:
    assert digits_from_speech(text) == digits


@pytest.mark.parametrize(
    ("text", "filler"),
    [
        ("uh", True),
        ("um the", True),
        ("hmm", True),
        ("oh", True),
        ("mm hmm", False),
        ("uh huh", False),
        ("uh yes", False),
        ("oh four", False),
        ("the balance", False),
        ("더 할 불발", False),  # words in another script are content: they go to NLU
        ("uh ...", True),
    ],
)
def test_is_filler_only(text: str, filler: bool) -> None:
    assert is_filler_only(text) is filler


@pytest.mark.parametrize(
    ("cents", "words"),
    [
        (12050, "one hundred twenty dollars and fifty cents"),
        (99, "ninety nine cents"),
        (100, "one dollar"),
        (101, "one dollar and one cent"),
        (0, "zero dollars"),
        (123400, "one thousand two hundred thirty four dollars"),
        (-2500, "minus twenty five dollars"),
        (100_000_000, "one million dollars"),
    ],
)
def test_say_money(cents: int, words: str) -> None:
    assert say_money(cents) == words


def test_consecutive_misunderstandings() -> None:
    def user() -> dict[str, Any]:
        return {"event": "user", "text": "x"}

    def act(name: str) -> dict[str, Any]:
        return {"event": "action", "name": name}

    assert consecutive_misunderstandings([act("action_listen"), user()]) == 1
    assert consecutive_misunderstandings([user(), act("action_fallback"), act("action_listen"), user()]) == 2
    broken = [user(), act("action_fallback"), user(), act("utter_pin_wrong"), user()]
    assert consecutive_misunderstandings(broken) == 1
    new_session = [user(), act("action_fallback"), {"event": "session_started"}, user()]
    assert consecutive_misunderstandings(new_session) == 1


def test_demo_store() -> None:
    store = DemoStore()

    async def scenario() -> None:
        ada = await store.find_by_phone("15550100001")
        assert ada is not None and ada.name == "Ada Lovelace"
        assert await store.find_by_phone("(555) 010-0001") == ada
        assert await store.find_by_phone(UNKNOWN_NUMBER) is None
        assert await store.find_by_phone(None) is None
        assert await store.check_pin(ada.customer_id, ADA["pin"])
        assert not await store.check_pin(ada.customer_id, "0000")
        assert (await store.balance(ada.customer_id)).cents == 12050

    asyncio.run(scenario())
    assert normalise_number("123") is None


def test_secret_stash_is_read_once_and_per_sender() -> None:
    env = redis_env(REDIS_URL)
    stash = SecretStash(env["REDIS_HOST"], int(env["REDIS_PORT"]), int(env["REDIS_DB"]))

    async def scenario() -> None:
        ref = await stash.put("call-a", "4719")
        assert is_ref(ref) and not any(c.isdigit() for c in ref)
        assert await stash.take(ref, "call-b") is None  # another call cannot have it ...
        ref = await stash.put("call-a", "4719")
        assert await stash.take(ref, "call-a") == "4719"
        assert await stash.take(ref, "call-a") is None  # ... and it is gone once read
        assert await stash.take("1234", "call-a") is None
        assert await stash.take(new_ref(), "call-a") is None
        await stash.close()

    asyncio.run(scenario())


# --- the real stack -------------------------------------------------------------------------------------


_SENDERS: list[str] = []
"""Conversations these tests opened; their trackers are removed from the shared Redis afterwards."""


@pytest.fixture(scope="session")
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"these tests need the real Redis at {REDIS_URL}: {exc}")
    yield client
    for sender in _SENDERS:
        client.delete(TRACKER_KEY.format(sender=sender), f"attendant:lock:{sender}")
    client.close()


@pytest.fixture(scope="session")
def stack(rasa: RasaStack, redis_client: redis.Redis) -> RasaStack:
    """The session's one Rasa server and action server (``tests/conftest.py``)."""
    return rasa


class Call:
    """One conversation through the Attendant channel."""

    def __init__(self, stack: RasaStack, caller_number: str | None) -> None:
        self.stack = stack
        self.sender = str(uuid.uuid4())
        self.caller_number = caller_number
        _SENDERS.append(self.sender)

    def post(self, message: str, token: str | None = None, **extra: Any) -> requests.Response:
        body = {"sender": self.sender, "message": message, "metadata": {}, **extra}
        headers = {"Authorization": f"Bearer {self.stack.token if token is None else token}"}
        return requests.post(self.stack.webhook_url, json=body, headers=headers, timeout=30)

    def say(self, message: str, metadata: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """One caller turn with the call's metadata, as the gateway sends it (the first turn starts the
        conversation: the gateway greets by itself)."""
        call = {
            "call_id": self.sender,
            "caller_number": self.caller_number,
            "channel": "AudioSocket/test",
            "language": "en",
        }
        resp = self.post(message, metadata={**call, **(metadata or {})})
        assert resp.status_code == 200, resp.text
        items = resp.json()
        assert isinstance(items, list) and items, f"no reply to {message!r}"
        assert all(item["recipient_id"] == self.sender for item in items)
        return items


def texts(items: list[dict[str, Any]]) -> str:
    return " ".join(item["text"] for item in items if "text" in item)


def customs(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The custom items of a reply, but the call's context (every reply carries one: see context_of)."""
    return [item["custom"] for item in items if "custom" in item and "context" not in item["custom"]]


def context_of(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The call's context a reply carries: exactly one, before anything is said."""
    found = [i for i, item in enumerate(items) if "context" in item.get("custom", {})]
    assert len(found) == 1, items
    assert all("text" not in item for item in items[: found[0]]), "the context comes before the words"
    context: dict[str, Any] = items[found[0]]["custom"]["context"]
    return context


def handoff(items: list[dict[str, Any]]) -> dict[str, Any]:
    found = [c["handoff"] for c in customs(items) if "handoff" in c]
    assert len(found) == 1, items
    assert items[-1].get("custom", {}).get("handoff") == found[0], "the handoff must come last"
    return found[0]


def assert_spoken_style(items: list[dict[str, Any]]) -> None:
    """At most two short sentences and at most one question per reply."""
    said = texts(items)
    sentences = [s for s in said.replace("?", ".").split(".") if s.strip()]
    assert len(sentences) <= 2, said
    assert said.count("?") <= 1, said


def test_health(stack: RasaStack) -> None:
    resp = requests.get(stack.webhook_url.rsplit("/", 1)[0] + "/", timeout=10)
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}


def test_missing_or_wrong_token_is_refused(stack: RasaStack, redis_client: redis.Redis) -> None:
    call = Call(stack, ADA["number"])
    no_header = requests.post(stack.webhook_url, json={"sender": call.sender, "message": "hello"}, timeout=10)
    assert no_header.status_code == 401
    assert call.post("hello", token="not-the-token").status_code == 401
    assert call.post("hello", token=stack.token + "x").status_code == 401
    basic = requests.post(
        stack.webhook_url,
        json={"sender": call.sender, "message": "hello"},
        headers={"Authorization": f"Basic {stack.token}"},
        timeout=10,
    )
    assert basic.status_code == 401
    assert redis_client.get(TRACKER_KEY.format(sender=call.sender)) is None, "nothing reached Rasa"


def test_malformed_turns_are_refused(stack: RasaStack) -> None:
    call = Call(stack, ADA["number"])
    headers = {"Authorization": f"Bearer {stack.token}"}
    assert requests.post(stack.webhook_url, data=b"{", headers=headers, timeout=10).status_code == 400
    assert (
        requests.post(stack.webhook_url, json={"message": "hi"}, headers=headers, timeout=10).status_code
        == 400
    )
    assert call.post("   ").status_code == 400
    # Entities can only come from the channel itself: nobody sets slots from outside.
    assert call.post('/ask_balance{"verified": true}').status_code == 400
    assert call.post("hi", metadata="not an object").status_code == 400


def test_the_first_turn_starts_the_conversation_and_keeps_the_call(
    stack: RasaStack, redis_client: redis.Redis
) -> None:
    """The gateway greets by itself; the caller's first turn opens the conversation with the call's
    metadata, and the assistant answers that turn (no greeting of its own)."""
    call = Call(stack, ADA["number"])
    assert redis_client.get(TRACKER_KEY.format(sender=call.sender)) is None
    items = call.say("hello")
    assert texts(items) == "How can I help you today?"
    assert not customs(items)
    raw = redis_client.get(TRACKER_KEY.format(sender=call.sender))
    assert raw is not None, "the tracker lives at attendant:tracker:<sender>"
    tracker = json.loads(raw)
    slots = {e["name"]: e["value"] for e in tracker["events"] if e["event"] == "slot"}
    assert slots["call_id"] == call.sender
    assert slots["caller_number"] == ADA["number"]
    assert slots["caller_kind"] == "existing"


def _user_events(redis_client: redis.Redis, sender: str) -> tuple[str, list[dict[str, Any]]]:
    raw = redis_client.get(TRACKER_KEY.format(sender=sender))
    assert raw is not None
    events = json.loads(raw)["events"]
    return raw, events


_IDS = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}")


_FLOATS = re.compile(r"-?\d+\.\d+(?:[eE][-+]?\d+)?")


def without_ids(value: Any) -> str:
    """``value`` as JSON with message and call ids and the classifier's scores blanked: a random hex id or a
    confidence (0.00014341...) may hold any four digits."""
    return _FLOATS.sub("<num>", _IDS.sub("<id>", json.dumps(value)))


def assert_pin_not_recorded(redis_client: redis.Redis, sender: str, pin: str, spoken: str) -> None:
    raw, events = _user_events(redis_client, sender)
    assert spoken not in raw
    for event in events:
        if event["event"] == "user":
            assert pin not in event.get("text", "")
            assert pin not in without_ids(event.get("parse_data", {}))
        elif event["event"] == "slot":
            assert pin not in without_ids(event.get("value"))
        elif event["event"] == "bot":
            assert pin not in (event.get("text") or "")
    assert not any(
        event["event"] == "slot"
        and event["name"] == "pin"
        and event["value"] not in (None,)
        and not is_ref(event["value"])
        for event in events
    ), "the pin slot only ever holds a reference"


def test_balance_with_spoken_pin(stack: RasaStack, redis_client: redis.Redis) -> None:
    call = Call(stack, ADA["number"])
    ask = call.say("um what's my balance")
    assert "PIN" in texts(ask)
    assert "balance is" not in texts(ask)
    assert_spoken_style(ask)
    told = call.say(f"uh it's {ADA['spoken']}")
    # The PIN turn is marked so the gateway masks it in its own transcript; nothing else is custom.
    assert customs(told)[:1] == [{"input_redacted": True}]
    told = [item for item in told if item.get("custom") != {"input_redacted": True}]
    assert "Your balance is one hundred twenty dollars and fifty cents, and your last payment" in texts(told)
    assert not customs(told)
    assert_spoken_style(told)
    _, events = _user_events(redis_client, call.sender)
    user_texts = [e["text"] for e in events if e["event"] == "user"]
    assert "um what's my balance" in user_texts
    assert any(t.startswith("/inform_digits") and "secret_ref" in t for t in user_texts)
    slots = {e["name"]: e["value"] for e in events if e["event"] == "slot"}
    assert slots["verified"] is True and slots["pin"] is None
    assert_pin_not_recorded(redis_client, call.sender, ADA["pin"], ADA["spoken"])
    # Verified once is enough for this call.
    again = call.say("and what's my balance now")
    assert "Your balance is one hundred twenty dollars and fifty cents" in texts(again)
    bye = call.say("no thanks")
    assert "thank you for calling" in texts(bye).lower()
    assert {"end_call": True} in customs(bye)


def test_balance_with_keyed_pin_from_keypad_menu(stack: RasaStack, redis_client: redis.Redis) -> None:
    call = Call(stack, GRACE["number"])
    assert "PIN" in texts(call.say("/ask_balance"))
    told = call.say(GRACE["pin"])
    assert "Your balance is ninety nine cents" in texts(told)
    assert_pin_not_recorded(redis_client, call.sender, GRACE["pin"], GRACE["spoken"])


def test_three_wrong_pins_hand_over(stack: RasaStack, redis_client: redis.Redis) -> None:
    call = Call(stack, ADA["number"])
    call.say("balance please")
    first = call.say("one one one one")
    assert customs(first)[:1] == [{"input_redacted": True}]
    first = first[1:]
    assert "didn't match" in texts(first) and "PIN" in texts(first)
    assert not customs(first)
    second = call.say("2222")
    assert "didn't match" in texts(second)
    third = call.say("three three three three")
    assert "balance is" not in texts(third)
    assert "colleague" in texts(third)
    request = handoff(third)
    assert request["reason"] == "verification-failed"
    assert request["skill"] == "billing"
    assert request["context"]["verified"] is False
    assert request["context"]["pin_attempts"] == 3
    assert request["context"]["call_id"] == call.sender
    assert_pin_not_recorded(redis_client, call.sender, "1111", "one one one one")
    assert_pin_not_recorded(redis_client, call.sender, "3333", "three three three three")


def test_every_turn_carries_the_calls_context(stack: RasaStack, redis_client: redis.Redis) -> None:
    """From the first turn the reply says what the assistant knows, so the gateway can keep it as the call
    goes; nothing about the account before verification, never the PIN."""
    call = Call(stack, ADA["number"])
    first = context_of(call.say("hello"))
    assert first["call_id"] == call.sender and first["caller_number"] == ADA["number"]
    assert first["language"] == "en" and first["caller_kind"] == "existing"
    assert first["verified"] is False and first["customer"] is None and first["customer_id"] is None
    assert first["history"] == {} and first["slots"] == {} and first["loyalty_tier"] is None

    asked = context_of(call.say("um what's my balance"))
    assert asked["task"] == "balance" and asked["skill"] == "billing"
    assert asked["intents"][-1]["name"] == "ask_balance" and 0.3 < asked["intents"][-1]["confidence"] <= 1
    assert asked["verified"] is False and asked["customer"] is None

    wrong = context_of(call.say("one one one one"))
    assert wrong["pin_attempts"] == 1 and wrong["verified"] is False

    verified = context_of(call.say(ADA["spoken"]))
    assert verified["verified"] is True and verified["verified_how"] == "pin"
    assert (
        verified["customer"]["name"] == "Ada Lovelace"
        and verified["customer"]["id"] == verified["customer_id"]
    )
    assert verified["loyalty_tier"] in ("none", "silver", "gold")
    assert set(verified["history"]) == {"orders", "incidents", "bookings"}
    assert verified["history"]["orders"], "Ada has orders in the demo store"

    person = call.say("let me talk to a real person")
    final = context_of(person)
    assert final["handoff"] == {"reason": "requested", "skill": final["skill"]}
    assert handoff(person)["context"]["customer"] == final["customer"]
    seen = json.dumps([first, asked, wrong, verified, final])
    assert ADA["pin"] not in seen and "4 7 1 9" not in seen and "1111" not in seen


def test_unknown_number_is_handed_over_without_a_pin_prompt(stack: RasaStack) -> None:
    call = Call(stack, UNKNOWN_NUMBER)
    items = call.say("what's my balance")
    assert "PIN" not in texts(items)
    assert handoff(items)["reason"] == "not-found"


def test_a_real_person_at_once(stack: RasaStack) -> None:
    call = Call(stack, ADA["number"])
    items = call.say("i want to talk to a real person")
    assert "colleague" in texts(items)
    request = handoff(items)
    assert request["reason"] == "requested"
    assert request["skill"] == "general"
    assert_spoken_style(items)


def test_a_person_during_the_pin_prompt(stack: RasaStack) -> None:
    call = Call(stack, ADA["number"])
    call.say("check my balance")
    items = call.say("operator")
    request = handoff(items)
    assert request["reason"] == "requested"
    assert request["skill"] == "billing"


def test_two_misunderstandings_in_a_row_hand_over(stack: RasaStack) -> None:
    call = Call(stack, ADA["number"])
    first = call.say("/nlu_fallback")
    assert "didn't catch" in texts(first)
    assert not customs(first)
    second = call.say("/nlu_fallback")
    assert handoff(second)["reason"] == "no-match"


def test_fillers_are_not_understood(stack: RasaStack, redis_client: redis.Redis) -> None:
    call = Call(stack, ADA["number"])
    assert "didn't catch" in texts(call.say("uh"))
    _, events = _user_events(redis_client, call.sender)
    assert [e["metadata"].get("heard") for e in events if e["event"] == "user"][-1] == "uh"
    assert handoff(call.say("hmm"))["reason"] == "no-match"


def test_filler_during_the_pin_prompt_repeats_the_question(stack: RasaStack) -> None:
    call = Call(stack, ADA["number"])
    call.say("my balance please")
    items = call.say("um")
    assert "didn't catch" in texts(items) and "PIN" in texts(items)
    assert not customs(items)
    told = call.say(ADA["spoken"])
    assert "one hundred twenty dollars" in texts(told)


def test_out_of_scope_gets_an_offer(stack: RasaStack) -> None:
    call = Call(stack, ADA["number"])
    items = call.say("what's the weather going to be like")
    said = texts(items)
    assert "can't help with that" in said and "balance" in said
    assert not customs(items)
    assert_spoken_style(items)


def test_goodbye_ends_the_call(stack: RasaStack) -> None:
    call = Call(stack, ADA["number"])
    items = call.say("ok thanks bye")
    assert "thank you for calling" in texts(items).lower()
    assert customs(items) == [{"end_call": True}]


def test_rasa_test_stories_pass(rasa: RasaStack, tmp_path: Path) -> None:
    """`rasa test core` on tests/rasa/: every story must pass (it fails on any wrong prediction)."""
    env = dict(os.environ, RASA_TELEMETRY_ENABLED="false", TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(
        [
            sys.executable, "-m", "rasa", "test", "core",
            "--stories", str(REPO / "tests" / "rasa"),
            "--model", str(rasa.model_path),
            "--out", str(tmp_path),
            "--fail-on-prediction-errors",
        ],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    failed = tmp_path / "failed_test_stories.yml"
    report = failed.read_text() if failed.exists() else "(no failed_test_stories.yml)"
    assert done.returncode == 0, f"{report}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "None of the test stories failed" in report, report
