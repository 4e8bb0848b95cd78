"""Every self-service flow through the Attendant channel, on the real Rasa server, action server, Redis and
the run's own SQLite store: what the caller hears, what the store holds afterwards, and what never leaks.

(The same flows through the whole gateway, on SQLite and on the real PostgreSQL, are in
``tests/test_flows_e2e.py``.)
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import redis

from actions.faults import outage_kind
from actions.shared.vault import UNREADABLE
from actions.store import CustomerStore, SqlStore, open_store
from actions.support import priority_for
from bot.tools.stack import RasaStack
from tests.test_channel_and_actions import (
    ADA,
    TRACKER_KEY,
    UNKNOWN_NUMBER,
    Call,
    assert_pin_not_recorded,
    assert_spoken_style,
    customs,
    handoff,
    texts,
)

GRACE_NUMBER, GRACE_PIN, GRACE_DOB = "+15550100002", "two five eight oh", "december ninth nineteen oh six"
ALAN_NUMBER, ALAN_PIN = "+15550100003", "eight oh eight six"
KATHERINE_NUMBER, KATHERINE_PIN = "+15550100004", "one nine six eight"
HEDY_NUMBER, HEDY_PIN = "+15550100005", "three one four one"
RETURNING_NUMBER = "+15550100006"


@pytest.fixture(scope="module")
def stack(rasa: RasaStack) -> RasaStack:
    return rasa


@pytest.fixture(scope="module")
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def store(sqlite_store_url: str) -> Iterator[CustomerStore]:
    """The store behind the session's stack, to check what the flows changed."""
    s = open_store(sqlite_store_url)
    yield s
    asyncio.run(s.close())


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def spoken(items: list[dict[str, Any]]) -> str:
    return texts([i for i in items if i.get("custom") != {"input_redacted": True}])


def verified_call(stack: RasaStack, number: str, ask: str, pin: str) -> tuple[Call, list[dict[str, Any]]]:
    call = Call(stack, number)
    first = call.say(ask)
    assert "PIN" in texts(first), texts(first)
    assert_spoken_style(first)
    return call, call.say(pin)


# --- who is calling ----------------------------------------------------------------------------------------


def caller_kind(redis_client: redis.Redis, sender: str) -> Any:
    raw = redis_client.get(f"attendant:tracker:{sender}")
    assert raw is not None, "no tracker for the call"
    slots = [e for e in json.loads(raw)["events"] if e["event"] == "slot" and e["name"] == "caller_kind"]
    return slots[-1]["value"] if slots else None


def test_the_first_turn_counts_the_call_once_by_who_calls(
    stack: RasaStack, store: CustomerStore, redis_client: redis.Redis
) -> None:
    """The call is counted when the caller's first turn opens the conversation (the gateway greets by the
    store's read-only answer, ``tests/test_greeting.py``), and only then: later turns count nothing."""
    new_number = f"+1555{datetime.now():%H%M%S}9"  # never called before in this store
    assert run(store.kind_of_caller(new_number)) == "new"
    first = Call(stack, new_number)
    first.say("hello")
    first.say("what are your opening hours")
    assert caller_kind(redis_client, first.sender) == "new"
    record = run(store.find_customer_by_number(new_number))
    assert record is not None and record.call_count == 1
    # The first call created a record: the same number is now a returning caller (never bought).
    assert run(store.kind_of_caller(new_number)) == "returning"
    again = Call(stack, new_number)
    again.say("hi there")
    assert caller_kind(redis_client, again.sender) == "returning"
    assert run(store.find_customer_by_number(new_number)).call_count == 2  # type: ignore[union-attr]
    ada = Call(stack, ADA["number"])
    ada.say("hello")
    assert caller_kind(redis_client, ada.sender) == "existing"
    withheld = Call(stack, None)
    withheld.say("hello")
    assert caller_kind(redis_client, withheld.sender) is None
    assert run(store.kind_of_caller(None)) is None


def test_referral_is_welcomed_and_remembered(stack: RasaStack, store: CustomerStore) -> None:
    number = f"+1555{datetime.now():%H%M%S}8"
    call = Call(stack, number)
    items = call.say("hi a friend of mine recommended you")
    assert "recommendation" in texts(items)
    assert_spoken_style(items)
    customer = run(store.find_customer_by_number(number))
    assert customer is not None and customer.referral_source == "friend"
    # Sales focus: a new caller asking for a person goes to sales.
    assert handoff(call.say("can i speak to someone please"))["skill"] == "sales"


# --- verification --------------------------------------------------------------------------------------


def test_date_of_birth_instead_of_the_pin(stack: RasaStack, redis_client: redis.Redis) -> None:
    call = Call(stack, GRACE_NUMBER)
    assert "PIN" in texts(call.say("how much is in my account"))
    instead = call.say("i don't know my pin")
    assert "date of birth" in texts(instead)
    assert_spoken_style(instead)
    told = call.say(GRACE_DOB)
    assert customs(told)[:1] == [{"input_redacted": True}]
    assert "ninety nine cents" in spoken(told)
    raw = redis_client.get(TRACKER_KEY.format(sender=call.sender)) or ""
    for leak in ("1906", "nineteen oh six", "december ninth"):
        assert leak not in raw, leak


def test_a_wrong_date_of_birth_counts_and_an_unclear_one_does_not(stack: RasaStack) -> None:
    call = Call(stack, GRACE_NUMBER)
    call.say("balance")
    call.say("no i forgot it")
    wrong = spoken(call.say("the first of january nineteen fifty"))
    assert "didn't match" in wrong
    unclear = spoken(call.say("sometime in march i think"))
    assert "didn't get the date" in unclear
    assert "ninety nine cents" in spoken(call.say(GRACE_DOB))


def test_no_pin_and_no_date_of_birth_goes_to_a_person(stack: RasaStack) -> None:
    call = Call(stack, ADA["number"])
    call.say("what's my balance")
    assert "date of birth" in texts(call.say("i don't know it"))  # Ada has one on file: asked for it
    items = call.say("no idea sorry")
    assert handoff(items)["reason"] == "verification-failed"


UNVERIFIED_ATTEMPTS = [
    "just tell me my balance i'm in a hurry",
    "i'm ada lovelace read me my balance",
    "how much do i owe you",
    "what was my last payment",
    "where is order one zero zero zero zero four",
    "what did i order last time",
    "has my last order shipped",
    "when is my appointment",
    "cancel my appointment",
    "move my booking to friday afternoon",
    "what's the status of my ticket",
    "book me in tomorrow at ten",
]
DISCLOSURES = re.compile(
    r"dollar|cents|order (one|two|three|four|five|six|seven|eight|nine|zero)|is on its way|being prepared|"
    r"appointment is|booked|cancelled|monday|tuesday|wednesday|thursday|friday|saturday|ticket|"
    r"\ba m\b|\bp m\b|lovelace|ada",
    re.IGNORECASE,
)


@pytest.mark.parametrize("ask", UNVERIFIED_ATTEMPTS)
def test_nothing_is_disclosed_without_verification(stack: RasaStack, store: CustomerStore, ask: str) -> None:
    """Three wrong PINs after each way of asking: nothing private is said, nothing changes, and a person
    takes over with the reason "verification failed". (Ada's failed checks are cleared after each: twelve
    times three would lock her out for every later test; the lockout is ``test_lockout.py``'s.)"""
    before = run(store.next_booking("C-0004"))
    call = Call(stack, ADA["number"])
    heard = [texts(call.say(ask))]
    assert "PIN" in heard[-1], heard
    try:
        for wrong in ("one one one one", "2 2 2 2", "nine nine nine nine"):
            heard.append(spoken(call.say(wrong)))
    finally:
        assert isinstance(store, SqlStore)
        run(store.clear_verification_failures("C-0001"))
    said = " ".join(heard)
    assert not DISCLOSURES.search(said), said
    assert "colleague" in heard[-1]
    assert run(store.next_booking("C-0004")) == before


def test_unknown_caller_is_told_nothing(stack: RasaStack) -> None:
    for ask in ("what's my balance", "where's my order", "cancel my appointment"):
        call = Call(stack, UNKNOWN_NUMBER)
        items = call.say(ask)
        assert not DISCLOSURES.search(texts(items)), texts(items)
        assert handoff(items)["reason"] == "not-found"


# --- orders ----------------------------------------------------------------------------------------------


def test_order_status_by_number_is_read_back_first(stack: RasaStack) -> None:
    call, items = verified_call(stack, ADA["number"], "uh where's my order", "four seven one nine")
    assert "order number" in spoken(items)
    check = call.say("it's one zero zero zero zero four")
    assert "That's order one zero zero zero zero four. Is that right?" == texts(check)
    status = call.say("yes")
    said = texts(status)
    assert "being prepared" in said and "should arrive" in said
    assert_spoken_style(status)


def test_order_status_wrong_number_then_someone_elses(stack: RasaStack) -> None:
    call, _ = verified_call(stack, ADA["number"], "i'm calling about an order", "four seven one nine")
    call.say("one zero zero zero zero five")
    assert "order number" in texts(call.say("no"))
    call.say("one zero zero zero zero one")  # Katherine's order, not Ada's
    assert "can't find that order" in texts(call.say("yes"))


def test_my_last_order(stack: RasaStack) -> None:
    call = Call(stack, KATHERINE_NUMBER)
    call.say("has my last order shipped yet")
    items = call.say(KATHERINE_PIN)
    said = spoken(items)
    assert said.startswith("Order one zero zero zero zero three"), said


def test_order_desk_with_one_suggestion(stack: RasaStack, store: CustomerStore) -> None:
    call, items = verified_call(stack, ALAN_NUMBER, "i'd like to order two screen protectors", ALAN_PIN)
    assert spoken(items) == "Two screen protectors for nineteen dollars. Shall I place the order?"
    suggestion = texts(call.say("yes please"))
    assert "headset" in suggestion.lower() and suggestion.endswith("?")  # the current promotion
    placed = call.say("no thanks")
    said = texts(placed)
    number = re.search(r"order number is ((?:\w+ ){5}\w+),", said)
    assert number, said
    digits = "".join(
        str("zero one two three four five six seven eight nine".split().index(w)) for w in number[1].split()
    )
    order = run(store.get_order(digits, "C-0003"))
    assert order is not None and [(i.product_id, i.qty) for i in order.items] == [("P-300", 2)]
    assert_spoken_style(placed)


def test_order_desk_unknown_product_then_declined(stack: RasaStack) -> None:
    call, items = verified_call(stack, ALAN_NUMBER, "can i place an order", ALAN_PIN)
    assert "Which product" in spoken(items)
    unknown = texts(call.say("a pizza"))
    assert "don't sell that" in unknown and "phone chargers" in unknown
    assert "Shall I place the order?" in texts(call.say("the phone charger"))
    assert "haven't placed" in texts(call.say("no"))


# --- bookings --------------------------------------------------------------------------------------------


def test_book_with_the_day_in_the_request(stack: RasaStack, store: CustomerStore) -> None:
    call, items = verified_call(
        stack, GRACE_NUMBER, "can i book an appointment next wednesday morning", GRACE_PIN
    )
    offer = spoken(items)
    assert offer.startswith("I have Wednesday") and offer.endswith("Shall I book it?"), offer
    declined = texts(call.say("no"))
    assert declined.startswith("I have Wednesday") and declined != offer, declined
    booked = texts(call.say("yes"))
    assert booked.startswith("You're booked on Wednesday"), booked
    booking = run(store.next_booking("C-0002"))
    assert booking is not None and booking.slot.starts.weekday() == 2 and booking.slot.starts.hour < 12
    # "When is my appointment" finds it.
    call.say("yes")
    assert texts(call.say("when is my appointment")).startswith("Your appointment is on Wednesday")


def test_reschedule_and_cancel(stack: RasaStack, store: CustomerStore) -> None:
    before = run(store.next_booking("C-0004"))
    assert before is not None
    call, items = verified_call(stack, KATHERINE_NUMBER, "i need to move my appointment", KATHERINE_PIN)
    said = spoken(items)
    assert said.startswith("Your appointment is") and said.endswith("What day and time would suit you?")
    offer = texts(call.say("next thursday afternoon"))
    assert "Shall I move your appointment there?" in offer
    moved = texts(call.say("yes"))
    assert moved.startswith("Your appointment is now"), moved
    after = run(store.next_booking("C-0004"))
    assert after is not None and after.booking_id == before.booking_id and after.slot != before.slot
    assert after.slot.starts.hour >= 12
    call.say("yes")
    confirm = texts(call.say("cancel my appointment"))
    assert confirm.startswith("Your appointment is on Thursday"), confirm
    assert confirm.endswith("Shall I cancel it?")
    assert "cancelled" in texts(call.say("yes please"))
    assert run(store.next_booking("C-0004")) is None
    call.say("yes")
    assert "can't see an appointment" in texts(call.say("cancel my booking"))


def test_booking_misunderstood_twice_goes_to_a_person(stack: RasaStack) -> None:
    call, items = verified_call(stack, ALAN_NUMBER, "i want to make an appointment", ALAN_PIN)
    assert "What day and time" in spoken(items)
    assert "didn't get a day" in texts(call.say("banana"))
    request = handoff(call.say("purple"))
    assert request["reason"] == "no-match" and request["skill"] == "bookings"


# --- support line ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("my headset stopped working completely", "total"),
        ("nothing works at all", "total"),
        ("the internet is down", "total"),
        ("it only works sometimes", "partial"),
        ("the call keeps dropping", "partial"),
        ("my charger is broken", "fault"),
        ("i have a question about my bill", None),
    ],
)
def test_outage_kind(text: str, kind: str | None) -> None:
    assert outage_kind(text) == kind


def test_priority_rule() -> None:
    assert priority_for("total", unhappy=False) == 1
    assert priority_for("partial", unhappy=True) == 2
    assert priority_for("consultation", unhappy=True) == 3
    assert priority_for("consultation", unhappy=False) == 4


def test_total_outage_with_call_back(stack: RasaStack, store: CustomerStore) -> None:
    call, items = verified_call(stack, ALAN_NUMBER, "my headset stopped working completely", ALAN_PIN)
    assert "call you back on the number you're calling from" in spoken(items)
    assert "When would suit you" in texts(call.say("yes"))
    done = texts(call.say("tomorrow between two and four"))
    match = re.search(
        r"ticket number is ((?:\w+ ){5}\w+), and we'll call you back tomorrow between two p m and four p m",
        done,
    )
    assert match, done
    newest = run(store.open_incidents("C-0003"))[0]
    assert newest.priority == 1 and newest.product_id == "P-200"
    assert newest.callback_number == ALAN_NUMBER
    assert newest.callback_from is not None and (newest.callback_from.hour, newest.callback_until.hour) == (
        14,
        16,
    )


def test_partial_outage_asked_and_another_number(stack: RasaStack, store: CustomerStore) -> None:
    call, items = verified_call(stack, ALAN_NUMBER, "i want to report a problem", ALAN_PIN)
    assert "what's wrong" in spoken(items)
    assert "not working at all, or only partly" in texts(call.say("my phone charger is broken"))
    call.say("only partly it comes and goes")
    assert "What number" in texts(call.say("no"))
    call.say("five five five zero one nine nine eight eight seven")
    assert "ticket number" in texts(call.say("monday morning"))
    newest = run(store.open_incidents("C-0003"))[0]
    assert (newest.priority, newest.product_id, newest.callback_number) == (2, "P-100", "5550199887")


def test_consultation_priority_follows_the_customer(stack: RasaStack, store: CustomerStore) -> None:
    """The same words from two customers: Hedy owes money and has an open ticket (unhappy, priority 3),
    Katherine is a loyal customer in good standing (priority 4)."""
    for number, pin, customer_id, priority in (
        (HEDY_NUMBER, HEDY_PIN, "C-0005", 3),
        (KATHERINE_NUMBER, KATHERINE_PIN, "C-0004", 4),
    ):
        call, items = verified_call(stack, number, "i need help setting up my headset", pin)
        assert "call you back" in spoken(items), spoken(items)
        call.say("yes")
        assert "ticket number" in texts(call.say("tomorrow morning"))
        newest = run(store.open_incidents(customer_id))[0]
        assert (newest.priority, newest.product_id) == (priority, "P-200"), customer_id


def test_ticket_status(stack: RasaStack) -> None:
    call, items = verified_call(stack, HEDY_NUMBER, "any news on my support ticket", HEDY_PIN)
    said = spoken(items)
    assert said.startswith("Ticket"), said
    call.say("yes")
    by_number = texts(call.say("what's the status of ticket five zero zero zero zero one"))
    assert by_number.startswith("Ticket five zero zero zero zero one"), by_number


# --- information line, escape -------------------------------------------------------------------------


def test_information_line_needs_no_verification(stack: RasaStack) -> None:
    call = Call(stack, UNKNOWN_NUMBER)
    hours = texts(call.say("what time do you open on saturday"))
    assert "Saturday" in hours and "a m" in hours and "PIN" not in hours
    where = texts(call.say("where is the riverside branch"))
    assert "River Road" in where
    faq = call.say("do you ship abroad")
    assert "PIN" not in texts(faq) and texts(faq)
    assert_spoken_style(faq)
    # Something we do not sell: the short answer, or (the classifier unsure between two of our requests,
    # which depends on the training run) one clarifying question — never a task started on a guess.
    unknown = texts(call.say("do you sell pet insurance"))
    answers = ("colleague?", "can't help", "didn't catch")
    assert any(w in unknown for w in answers) or unknown.startswith("Sorry, is that about "), unknown
    assert "PIN" not in unknown


def test_a_person_in_the_middle_of_a_task(stack: RasaStack) -> None:
    call, _ = verified_call(stack, ALAN_NUMBER, "i'd like to place an order", ALAN_PIN)
    request = handoff(call.say("actually let me talk to a real person"))
    assert request["reason"] == "requested" and request["skill"] == "sales"
    assert request["context"]["verified"] is True and request["context"]["customer_id"] == "C-0003"


def test_goodbye_in_the_middle_of_a_task(stack: RasaStack) -> None:
    call, _ = verified_call(stack, ALAN_NUMBER, "i want to book an appointment", ALAN_PIN)
    items = call.say("never mind goodbye")
    assert "thank you for calling" in texts(items).lower() and {"end_call": True} in customs(items)


def test_returning_caller_without_an_account(stack: RasaStack) -> None:
    call = Call(stack, RETURNING_NUMBER)
    items = call.say("what's my balance")
    assert handoff(items)["reason"] == "not-found"


def test_handoff_context_never_holds_secrets(stack: RasaStack, redis_client: redis.Redis) -> None:
    call, _ = verified_call(stack, ADA["number"], "where's my order", "four seven one nine")
    call.say("one zero zero zero zero four")
    request = handoff(call.say("operator please"))
    blob = json.dumps(request)
    assert "4719" not in blob and "1815" not in blob
    assert request["context"]["slots"]["order_ref"] == "100004"
    assert_pin_not_recorded(redis_client, call.sender, "4719", "four seven one nine")


def test_a_new_request_in_the_middle_of_a_task(stack: RasaStack) -> None:
    """Asked for a day, the caller asks for the balance instead: the bot follows, and the booking is left."""
    call, items = verified_call(stack, GRACE_NUMBER, "i'd like to book an appointment", GRACE_PIN)
    assert "What day and time" in spoken(items)
    told = texts(call.say("actually what's my balance"))
    assert "Your balance is ninety nine cents" in told, told


@pytest.mark.parametrize(
    ("text", "slot", "kept"),
    [
        ("uh it's four seven one nine", "pin", "4719"),
        ("4719#", "pin", "4719"),
        ("i don't know it", "pin", None),
        ("december tenth eighteen fifteen", "dob", "1815-12-10"),
        ("the ninth of december nineteen oh six", "dob", "1906-12-09"),
        (
            "sometime in march i think",
            "dob",
            UNREADABLE,
        ),  # looks like a date, makes none: not recorded either
        ("one two", "dob", UNREADABLE),
        ("i want to speak to an agent", "dob", None),
        ("four seven one nine", None, None),  # nothing sensitive asked for: the words pass
    ],
)
def test_what_the_channel_puts_aside(text: str, slot: str | None, kept: str | None) -> None:
    from bot.rasa.channel import secret_in

    assert secret_in(text, slot) == kept


# --- a backend that times out: the logic, with a store that fails as a timed-out one does -------------------


class _TimedOutStore:
    """Every call fails the way the real stores fail on a timeout (tests/test_store.py measures those)."""

    def __getattr__(self, name: str) -> Any:
        async def fail(*args: Any, **kwargs: Any) -> Any:
            from actions.store import BackendUnavailable

            raise BackendUnavailable(f"{name}: timed out after 2 s")

        return fail


def _tracker(slots: dict[str, Any], text: str, intent: str) -> Any:
    from rasa_sdk import Tracker

    latest = {"text": text, "intent": {"name": intent, "confidence": 0.99}, "entities": []}
    events = [{"event": "user", "text": text, "parse_data": latest}]
    return Tracker("t-timeout", slots, latest, events, False, None, {"name": "order_form"}, "action_listen")


@pytest.mark.parametrize("verified", [False, True])
def test_a_store_timeout_becomes_a_polite_handoff(verified: bool) -> None:
    from rasa_sdk.executor import CollectingDispatcher

    from actions.deps import Deps
    from actions.orders import ValidateOrderForm
    from actions.tasks import ActionResumeTask

    deps = Deps(store=_TimedOutStore())  # every call fails as a timed-out store does
    slots = {"caller_number": ADA["number"], "pending_task": "place_order", "verified": verified}
    if verified:
        slots["customer_id"] = "C-0001"
    tracker = _tracker(slots, "i'd like to order a phone charger", "place_order")
    dispatcher = CollectingDispatcher()
    domain = {"forms": {"order_form": {"required_slots": ["pin", "dob", "product", "order_ok", "upsell_ok"]}}}
    events = asyncio.run(ValidateOrderForm(deps).run(dispatcher, tracker, domain))
    set_to = {e["name"]: e["value"] for e in events if e["event"] == "slot"}
    assert set_to["handoff_reason"] == "technical" and set_to["requested_slot"] is None, events
    # The form is over; the task action then hands over with the technical line.
    tracker.slots.update(set_to)
    dispatcher = CollectingDispatcher()
    asyncio.run(ActionResumeTask(deps).run(dispatcher, tracker, {}))
    assert dispatcher.messages[0]["response"] == "utter_handoff_technical"
    assert dispatcher.messages[-1]["custom"]["handoff"]["reason"] == "technical"
