"""Whole conversations as callers really have them, through the Attendant channel on the real Rasa server,
action server, Redis and the run's own SQLite store: corrections ("no i meant friday"), changing their mind
mid-task, two facts in one turn, a question in the middle of a form and back to the task, self-corrections
of a PIN or an order number, faults in unexpected words, and the ordinary closings.

Each dialogue is a row of :data:`DIALOGUES`: what the caller says, turn by turn, and a pattern what the bot
says must match. A dialogue is *completed* when every reply matched and no person was needed; the last test
reports the share completed (issue 12's task success; ``python -m bench.dialogues`` prints the same for a
stack of its own).
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from actions.backends.seed import main as seed
from actions.faults import is_fault
from actions.shared.numerals import digits_from_speech
from actions.store import CustomerStore, SqlStore, open_store
from actions.understanding import named_topic, pick_option, thanks_only, topic_intents
from bot.tools.stack import RasaStack
from tests.test_channel_and_actions import Call, customs, texts

ADA, GRACE, ALAN, KATHERINE, HEDY = (f"+1555010000{i}" for i in range(1, 6))
PINS = {
    ADA: "four seven one nine",
    GRACE: "two five eight oh",
    ALAN: "eight oh eight six",
    KATHERINE: "one nine six eight",
    HEDY: "three one four one",
}
CUSTOMERS = ("C-0001", "C-0002", "C-0003", "C-0004", "C-0005")
NEW = "new"
"""A number no customer has (a fresh one for each dialogue)."""
PIN = "<pin>"
"""Said as the caller's own PIN."""
BYE = r"Thank you for calling\. Goodbye\.$"
ANYTHING_ELSE = r"anything else I can help with\?$"
SHARE_TARGET = 0.9
"""Issue 12's target for the share of dialogues completed without a person."""


def day(name: str) -> str:
    """How the bot says a weekday the caller named: by its name, or "today" / "tomorrow" when it is one."""
    return f"(today|tomorrow|{name})"


@dataclass(frozen=True)
class Dialogue:
    name: str
    caller: str
    turns: tuple[tuple[str, str], ...]
    """(what the caller says, a pattern what the bot says must match: ``re.search``)."""
    ends_call: bool = False
    """The last turn must end the call (``{"end_call": true}``)."""
    unsure_first: bool = False
    """The dialogue needs the classifier *unsure* of the first turn, which varies from one training run to the
    next (TensorFlow on several threads is not bit-reproducible): it counts in the share of dialogues
    completed, and its own test reports a miss as expected rather than failing the build."""


@dataclass
class Outcome:
    completed: bool
    why: str = ""
    transcript: list[str] = field(default_factory=list)


def d(
    name: str, caller: str, *turns: tuple[str, str], ends_call: bool | None = None, unsure_first: bool = False
) -> Dialogue:
    last = turns[-1][1] if turns else ""
    ends = last == BYE if ends_call is None else ends_call
    return Dialogue(name, caller, turns, ends_call=ends, unsure_first=unsure_first)


def closing(text: str) -> tuple[str, str]:
    return (text, BYE)


# fmt: off
DIALOGUES: tuple[Dialogue, ...] = (
    # --- the ordinary closings after "anything else?" ----------------------------------------------------
    d("balance then no that's all thanks", ADA,
      ("what's my balance", "PIN"), (PIN, r"one hundred twenty dollars.*" + ANYTHING_ELSE),
      closing("no that's all thanks")),
    d("balance then nope im good", GRACE,
      ("how much do i owe", "PIN"), (PIN, "ninety nine cents"), closing("nope im good")),
    d("order status then no thank you bye", KATHERINE,
      ("has my last order shipped", "PIN"), (PIN, r"^Order one zero zero zero zero three"),
      closing("no thank you bye")),
    d("returns then nah thats it cheers", NEW,
      ("i got the wrong item and want to send it back for a refund", "return any item within thirty days"),
      closing("nah thats it cheers")),
    d("hours then no thats all thanks", NEW,
      ("what time do you open on saturday", "Saturday"), closing("no thats all thanks")),
    d("address then no im good thanks", NEW,
      ("where is the riverside branch", "River Road"), closing("no im good thanks")),
    # --- self-corrections: "oh" is no zero, the last number said counts -----------------------------------
    d("PIN after oh sorry", ADA,
      ("what's my balance", "PIN"), ("oh sorry its four seven one nine", "^Your balance is one hundred"),
      closing("no that's all thanks")),
    d("PIN corrected in the same turn", ADA,
      ("balance please", "PIN"), ("four seven one eight sorry four seven one nine", "^Your balance is"),
      closing("no thanks")),
    d("wrong PIN then oh sorry the right one", GRACE,
      ("can you tell me my balance", "PIN"), ("one one one one", "didn't match"),
      ("oh sorry it's two five eight oh", "^Your balance is ninety nine cents"), closing("that's all bye")),
    d("order number after wrong one", ADA,
      ("where's my order", "PIN"), (PIN, "order number"),
      ("one zero zero zero zero five", "That's order one zero zero zero zero five. Is that right?"),
      ("no wrong one its one zero zero zero zero four", "That's order one zero zero zero zero four"),
      ("yes", "being prepared"), closing("no that's all thanks")),
    d("order number corrected at once", ADA,
      ("i'm calling about an order", "PIN"), (PIN, "order number"),
      ("sorry wrong one it's one zero zero zero zero four", "That's order one zero zero zero zero four"),
      ("yep", "being prepared")),
    d("order number in the request", ADA,
      ("where is order one zero zero zero zero four", "PIN"),
      (PIN, "That's order one zero zero zero zero four. Is that right?"),
      ("yes that's it", "being prepared")),
    d("my last order after all", ADA,
      ("where's my order", "PIN"), (PIN, "order number"), ("actually just my last order", "^Order")),
    # --- confirmations answered the way people answer ----------------------------------------------------
    d("just the one at the confirmation", ALAN,
      ("i'd like to order a phone charger", "PIN"),
      (PIN, "One phone charger for nineteen dollars and ninety nine cents. Shall I place the order"),
      ("just the one", r"headset.*\?$"), ("no thanks", "order number is"), closing("no that's all thanks")),
    d("make it three instead", ALAN,
      ("i want to order two screen protectors", "PIN"), (PIN, "Two screen protectors"),
      ("actually make it three", "Three screen protectors for twenty eight dollars and fifty cents"),
      ("yes", r"\?$"), ("no", "order number is")),
    d("order declined, then goodbye", ALAN,
      ("i'd like to order a phone charger", "PIN"), (PIN, "Shall I place the order"),
      ("no actually i'll leave it", "haven't placed"), closing("no that's all thanks")),
    d("a product we don't sell, then one we do", ALAN,
      ("can i place an order", "PIN"), (PIN, "Which product"), ("a pizza", "don't sell that"),
      ("oh the phone charger then", "Shall I place the order"), ("yes please", r"\?$"),
      ("no", "order number is")),
    d("warranty offered with the headset", ALAN,
      ("can i order a wireless headset", "PIN"), (PIN, "One wireless headset"),
      ("yes", "extended warranty"), ("go on then yes", "order number is")),
    # --- a question in the middle of a task, then back to it ---------------------------------------------
    d("saturday closing time while booking", GRACE,
      ("i'd like to book an appointment", "PIN"), (PIN, "What day and time"),
      ("what time do you close on saturday", r"Saturday.*What day and time would suit you\?$"),
      ("tuesday afternoon", "Shall I book it"), ("yes", "booked")),
    d("address while booking", GRACE,
      ("can i book an appointment", "PIN"), (PIN, "What day and time"),
      ("where is the riverside branch", r"River Road.*What day and time would suit you\?$"),
      ("friday morning", "Shall I book it"), ("yes please", "booked")),
    d("opening hours at the PIN prompt", GRACE,
      ("i want to book an appointment", "PIN"),
      ("how late are you open on saturday", r"Saturday.*PIN"), (PIN, "What day and time"),
      ("wednesday afternoon", "Shall I book it"), ("yes", "booked")),
    d("delivery cost at the order confirmation", ALAN,
      ("can i order a phone charger", "PIN"), (PIN, "Shall I place the order"),
      ("how much is delivery", r"five dollars.*Shall I place the order\?$"), ("yes", r"\?$"),
      ("no thanks", "order number is")),
    d("shipping abroad while reporting a fault", ALAN,
      ("i want to report a problem", "PIN"), (PIN, "what's wrong"),
      ("do you ship abroad", r"Canada.*what's wrong"),
      ("my phone charger is broken", "at all, or only partly"),
      ("only partly it comes and goes", "call you back"), ("yes", "When would suit"),
      ("tomorrow morning", "ticket number")),
    # --- corrections and changes of mind -----------------------------------------------------------------
    d("no i meant friday", ALAN,
      ("i'd like to book an appointment", "PIN"), (PIN, "What day"),
      ("thursday morning", "I have " + day("Thursday")), ("no i meant friday", "I have " + day("Friday")),
      ("yes", "booked")),
    d("another time offered after no", GRACE,
      ("book me in tomorrow morning", "PIN"), (PIN, "Shall I book it"), ("no", "Shall I book it"),
      ("yes that one", "booked")),
    d("balance instead of booking", GRACE,
      ("i'd like to book an appointment", "PIN"), (PIN, "What day"),
      ("actually what's my balance", "ninety nine cents"), closing("no that's all thanks")),
    d("booking instead of an order", ALAN,
      ("can i place an order", "PIN"), (PIN, "Which product"),
      ("actually i want to book an appointment instead", "What day"), ("monday afternoon", "Shall I book it"),
      ("yes", "booked")),
    d("book then move it", ALAN,
      ("can i book an appointment on wednesday morning", "PIN"), (PIN, "Shall I book it"), ("yes", "booked"),
      ("actually can i move it to thursday afternoon", "Shall I move your appointment there"),
      ("yes", "now"), closing("no that's all thanks")),
    d("book then cancel", GRACE,
      ("book me in for thursday afternoon", "PIN"), (PIN, "Shall I book it"), ("yes", "booked"),
      ("actually cancel my appointment", "Shall I cancel it"), ("yes please", "cancelled"),
      closing("no thats everything thanks")),
    d("cancel, then keep it after all", KATHERINE,
      ("book me in for friday afternoon", "PIN"), (PIN, "Shall I book it"), ("yes", "booked"),
      ("can i cancel my appointment", "Shall I cancel it"), ("no leave it", "kept")),
    # --- two facts in one turn ---------------------------------------------------------------------------
    d("product and quantity in the request", ALAN,
      ("i'd like to order two screen protectors", "PIN"),
      (PIN, "^Two screen protectors for nineteen dollars. Shall I place the order\\?$"),
      ("yes please", r"\?$"),
      ("no thanks", "order number is")),
    d("day and time in the request", GRACE,
      ("can i book an appointment next wednesday morning", "PIN"), (PIN, "^I have " + day("Wednesday")),
      ("yes", "booked (on )?" + day("Wednesday"))),
    d("a total outage in the request", ALAN,
      ("my headset stopped working completely", "PIN"), (PIN, "call you back on the number"),
      ("yes", "When would suit"), ("tomorrow between two and four", "ticket number")),
    d("another number and a time in one go", ALAN,
      ("i want to report a problem", "PIN"), (PIN, "what's wrong"),
      ("my phone charger is broken", "only partly"), ("it's dead nothing works", "call you back"),
      ("no call me on five five five zero one nine nine eight eight seven", "When would suit"),
      ("monday morning", "ticket number")),
    # --- faults in words nobody expected go to the support line ------------------------------------------
    d("the box on the wall is blinking orange", ALAN,
      ("the box on the wall is blinking orange", "PIN"), (PIN, "not working at all, or only partly"),
      ("its not working at all", "call you back"), ("yes", "When would suit"),
      ("tomorrow afternoon", "ticket number")),
    d("the technician was a no-show", HEDY,
      ("your technician was a no-show", "PIN"), (PIN, "call you back"), ("yes", "When would suit"),
      ("tomorrow morning", "ticket number")),
    d("internet keeps cutting out", KATHERINE,
      ("my internet keeps cutting out", "PIN"), (PIN, "call you back"), ("yes", "When would suit"),
      ("tomorrow between ten and twelve", "ticket number")),
    # --- out of scope stays out, briefly ------------------------------------------------------------------
    d("weather, then goodbye", ADA,
      ("what's the weather going to be like", "can't help with that.*balance"), closing("ok thanks bye")),
    d("pizza, then opening hours", NEW,
      ("can i order a pizza", "can't help with that"), ("what are your opening hours", "open"),
      closing("no that's all thanks")),
    # --- unsure between two requests: one question naming both --------------------------------------------
    d("a fault or moving an appointment", ALAN,
      ("i need to sort something out with my booking", r"^Sorry, is that about .+ or about .+\?$"),
      ("moving it please", "PIN"), (PIN, "What day and time"), ("friday afternoon", "Shall I"),
      ("yes", "booked|now"), unsure_first=True),
    # --- a caller who is not a customer yet ---------------------------------------------------------------
    d("not a customer yet, then the hours", NEW,
      ("im not a customer yet", "don't need an account"),
      ("what time do you close today", "Downtown|Riverside"),
      closing("no thank you bye")),
    d("not a customer yet, a frequent question", NEW,
      ("hi im not a customer yet", "don't need an account"), ("do you deliver to mexico", "Mexico"),
      closing("no thats all thanks")),
    # --- returns asked indirectly -------------------------------------------------------------------------
    d("wrong colour, money back", NEW,
      ("they sent me the wrong colour can i get my money back", "thirty days"),
      closing("no that's all thanks")),
    d("changed my mind about a purchase", ADA,
      ("i changed my mind about something i bought can i send it back", "thirty days"),
      closing("nope that's everything")),
    # --- a second batch, written after the fixes and run once before any change (see the report) -----------
    d("rambling balance, keyed PIN, cheers bye", HEDY,
      ("yeah hi um i was just wondering like how much i owe you at the moment", "PIN"),
      ("3141", "fifteen dollars"), closing("lovely cheers bye")),
    d("no im alright ta", KATHERINE,
      ("when's my next appointment", "PIN"), (PIN, r"appointment|can't see"), closing("no im alright ta")),
    d("order a charger, two please, then yes", ALAN,
      ("can i get a phone charger sent out", "PIN"), (PIN, "One phone charger"),
      ("two please", "Two phone chargers"), ("yeah go on", r"\?$"), ("nah", "order number is")),
    d("booking, what's the address, then next week", GRACE,
      ("i need to come in and see someone about my phone can i book a slot", "PIN"), (PIN, "What day"),
      ("whereabouts is the downtown branch", r"Main Street.*What day"),
      ("next tuesday morning if you can", "Shall I book it"), ("perfect yes", "booked")),
    d("oh sorry then the PIN in figures", ADA,
      ("check my balance please", "PIN"), ("oh sorry hang on its 4719", "one hundred twenty dollars")),
    d("order number said with oh", ADA,
      ("any update on my order", "PIN"), (PIN, "order number"),
      ("its one oh oh oh oh four", "That's order one zero zero zero zero four"), ("yeah", "being prepared")),
    d("phone keeps freezing", ALAN,
      ("my phone charger keeps cutting out when i plug it in", "PIN"), (PIN, "call you back"),
      ("yeah thats fine", "When would suit"), ("thursday afternoon", "ticket number")),
    d("closing hours today then nothing else", NEW,
      ("what time do you shut today", "Downtown|Riverside"), closing("no nothing else thanks bye")),
    d("international delivery, then a person not needed", NEW,
      ("do you post stuff to europe", "Europe"), closing("thats all i needed thanks")),
    d("booking changed twice", GRACE,
      ("can i book an appointment for monday morning", "PIN"), (PIN, "Shall I book it"),
      ("actually can we do wednesday instead", day("Wednesday")),
      ("no sorry i meant thursday", day("Thursday")),
      ("yes thats fine", "booked")),
    # --- a third batch, written blind like the second ----------------------------------------------------
    d("just thank you after anything else", GRACE,
      ("whats my balance", "PIN"), (PIN, ANYTHING_ELSE), closing("thank you")),
    d("thats great thanks after anything else", ADA,
      ("where's my last order", "PIN"), (PIN, "^Order"), closing("thats great thanks")),
    d("no ta", KATHERINE,
      ("any news on my support ticket", "PIN"), (PIN, "[Tt]icket"), closing("no ta")),
    d("hang on at the PIN prompt", ALAN,
      ("whats my balance", "PIN"), ("hang on let me find it", "PIN"), (PIN, "one thousand")),
    d("not tuesday wednesday", GRACE,
      ("book me in on tuesday afternoon", "PIN"), (PIN, "I have " + day("Tuesday")),
      ("not tuesday wednesday", "I have " + day("Wednesday")), ("yes", "booked (on )?" + day("Wednesday"))),
    d("whatever is soonest", ALAN,
      ("i need an appointment", "PIN"), (PIN, "What day"),
      ("whatever's soonest works for me", "Shall I book it"), ("yes", "booked")),
    d("the screen has gone black", KATHERINE,
      ("the screen on my headset has gone black", "PIN"), (PIN, r"call you back|at all, or only partly"),
      ("no internet or anything its totally dead", "call you back"), ("yes", "When would suit")),
    d("yes then a new request", ADA,
      ("whats my balance", "PIN"), (PIN, ANYTHING_ELSE), ("yeah actually wheres my order", "order number"),
      ("my last one", "^Order")),
    d("parking question while booking", GRACE,
      ("can i book an appointment", "PIN"), (PIN, "What day"),
      ("is there parking at the riverside branch", r"\?$"), ("friday afternoon", "Shall I book it"),
      ("yes", "booked")),
    d("opening hours said the long way", NEW,
      ("hiya um could you tell me what your opening times are on a sunday please", "Sunday|closed"),
      closing("cheers thats everything")),
)
# fmt: on


# --- the pure parts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "digits"),
    [
        ("oh sorry its one two three four", "1234"),  # "oh" at the start of a correction is no zero
        ("oh sorry it's four seven one nine", "4719"),
        ("two five eight oh", "2580"),  # ... but it is inside a run of digits
        ("oh three five eight", "0358"),
        ("oh oh seven", "007"),
        ("four seven uh one nine", "4719"),  # a filler does not split the digits
        ("one two three five sorry one two three four", "1234"),  # taken back: the last run counts
        ("order one zero zero zero zero five no wait one zero zero zero zero four", "100004"),
        ("no wrong one its one zero zero zero zero four", "100004"),  # "the wrong one" is no digit
        ("sorry wrong one it's one zero zero zero zero four", "100004"),
        ("just the one", None),
        ("no one zero zero zero zero four", "100004"),
        ("area code five five five then zero one nine nine", "5550199"),  # not taken back: all of it
        ("one", "1"),
    ],
)
def test_digits_in_corrections(text: str, digits: str | None) -> None:
    assert digits_from_speech(text) == digits


TOPICS = {
    "responses": {
        "utter_topic_ask_order_status": [{"text": "an order you've placed"}],
        "utter_topic_report_problem": [{"text": "a fault"}],
        "utter_topic_place_order": [{"text": "a new order"}],
    }
}


@pytest.mark.parametrize(
    ("reply", "options", "chosen"),
    [
        ("the order", ["ask_order_status", "report_problem"], "ask_order_status"),
        ("it's a fault", ["ask_order_status", "report_problem"], "report_problem"),
        ("it keeps cutting out", ["ask_order_status", "report_problem"], "report_problem"),
        ("the second one", ["ask_order_status", "report_problem"], "report_problem"),
        ("a new one", ["ask_order_status", "place_order"], "place_order"),
        ("an order", ["ask_order_status", "place_order"], None),  # names both: ask again
        ("banana", ["ask_order_status", "report_problem"], None),
    ],
)
def test_the_answer_to_the_clarifying_question(reply: str, options: list[str], chosen: str | None) -> None:
    assert pick_option(reply, options, TOPICS) == chosen  # type: ignore[arg-type]


APPOINTMENTS = {
    "responses": {
        "utter_topic_book_appointment": [{"text": "booking an appointment"}],
        "utter_topic_reschedule_appointment": [{"text": "moving an appointment"}],
        "utter_topic_cancel_appointment": [{"text": "cancelling an appointment"}],
        "utter_clarify": [{"text": "Sorry, is that about {first} or about {second}?"}],
    }
}


@pytest.mark.parametrize(
    ("reply", "chosen"),
    [
        ("moving it please", "reschedule_appointment"),  # asked "booking or cancelling?": neither, but named
        ("the appointment", None),  # every appointment topic alike: ask again
        ("banana", None),
    ],
)
def test_an_answer_naming_a_third_request(reply: str, chosen: str | None) -> None:
    """Asked "booking or cancelling?", a caller may name what they want instead; one model read "moving it
    please" as nothing at all, so the words decide when neither option is named."""
    intents = topic_intents(APPOINTMENTS)  # type: ignore[arg-type]
    assert sorted(intents) == ["book_appointment", "cancel_appointment", "reschedule_appointment"]
    options = ["book_appointment", "cancel_appointment"]
    assert pick_option(reply, options, APPOINTMENTS) is None  # type: ignore[arg-type]
    assert named_topic(reply, intents, APPOINTMENTS) == chosen  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("the box on the wall is blinking orange", True),
        ("your technician was a no-show", True),
        ("my internet keeps cutting out", True),
        ("what's the weather like", False),
        ("can i order a pizza", False),
        ("i can't remember what i ordered", False),
        ("my charger won't turn on", True),
        ("the router can't connect", True),
    ],
)
def test_what_counts_as_a_fault(text: str, fault: bool) -> None:
    assert is_fault(text) is fault


@pytest.mark.parametrize(
    ("text", "only"),
    [
        ("thats great thanks", True),
        ("lovely cheers", True),
        ("thank you", True),
        ("yes please", False),
        ("yeah thanks can you check my order", False),
        ("actually one more thing thanks", False),
    ],
)
def test_thanks_alone_after_anything_else(text: str, only: bool) -> None:
    assert thanks_only(text) is only


# --- the dialogues -------------------------------------------------------------------------------------


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def new_number() -> str:
    return f"+1555{random.randrange(2_000_000, 9_999_999)}"


def have_dialogue(stack: RasaStack, dialogue: Dialogue) -> Outcome:
    """Say the dialogue's turns through the channel; completed when every reply matches and no person."""
    number = new_number() if dialogue.caller == NEW else dialogue.caller
    call = Call(stack, number)  # the gateway greets by itself: the first turn is the caller's
    transcript: list[str] = []
    items: list[dict[str, Any]] = []
    for said, expected in dialogue.turns:
        text = PINS.get(number, "") if said == PIN else said
        items = call.say(text)
        heard = texts(items)
        transcript += [f"caller: {said}", f"bot: {heard}"]
        if any("handoff" in c for c in customs(items)):
            return Outcome(False, f"handed to a person after {said!r}", transcript)
        if not re.search(expected, heard):
            return Outcome(False, f"after {said!r} expected /{expected}/", transcript)
    if dialogue.ends_call and {"end_call": True} not in customs(items):
        return Outcome(False, "the call did not end", transcript)
    return Outcome(True, "", transcript)


RESULTS: dict[str, bool] = {}
"""Dialogue name -> completed, filled as the tests run (for the share)."""


@pytest.fixture(scope="module")
def store(sqlite_store_url: str) -> Iterator[CustomerStore]:
    """The store behind the session's stack. The dialogues book, order and report faults for the demo
    customers, so the demo data is put back afterwards: other modules' tests start from it."""
    s = open_store(sqlite_store_url)
    yield s
    run(s.close())
    assert seed(["--url", sqlite_store_url, "--reset"]) == 0


@pytest.fixture
def fresh_checks(store: CustomerStore) -> Iterator[None]:
    """Failed PIN checks are counted across calls: cleared after each dialogue so none locks anyone out."""
    yield
    assert isinstance(store, SqlStore)
    for customer_id in CUSTOMERS:
        run(store.clear_verification_failures(customer_id))


def test_there_are_enough_dialogues() -> None:
    assert len(DIALOGUES) >= 40
    assert len({x.name for x in DIALOGUES}) == len(DIALOGUES)


@pytest.mark.parametrize("dialogue", DIALOGUES, ids=[x.name for x in DIALOGUES])
def test_dialogue(rasa: RasaStack, fresh_checks: None, dialogue: Dialogue) -> None:
    outcome = have_dialogue(rasa, dialogue)
    RESULTS[dialogue.name] = outcome.completed
    first_reply = outcome.transcript[1].removeprefix("bot: ") if len(outcome.transcript) > 1 else ""
    if dialogue.unsure_first and not outcome.completed and not re.search(dialogue.turns[0][1], first_reply):
        pytest.xfail(f"this training run was sure of {dialogue.turns[0][0]!r}: {first_reply!r}")
    assert outcome.completed, outcome.why + "\n" + "\n".join(outcome.transcript)


def test_share_completed_without_a_person(rasa: RasaStack, fresh_checks: None) -> None:
    """The share of dialogues completed without a person (the ones not run above are run here)."""
    for dialogue in DIALOGUES:
        if dialogue.name not in RESULTS:
            RESULTS[dialogue.name] = have_dialogue(rasa, dialogue).completed
    share = sum(RESULTS.values()) / len(RESULTS)
    print(f"\ndialogues completed without a person: {sum(RESULTS.values())}/{len(RESULTS)} = {share:.0%}")
    assert share >= SHARE_TARGET


def test_a_prospect_is_not_told_no_account_was_found(rasa: RasaStack) -> None:
    """A request that needs an account, from a caller who said they are not a customer: a person, without
    "I couldn't find an account for the number you're calling from"."""
    call = Call(rasa, new_number())
    assert "don't need an account" in texts(call.say("i'm not a customer yet"))
    items = call.say("what's my balance")
    said = texts(items)
    assert "couldn't find an account" not in said and "get started" in said, said


def test_not_understood_without_two_likely_requests(rasa: RasaStack) -> None:
    """No two likely requests to name (here no words at all): no clarifying question, "say it another way";
    the second time in a row, a person."""
    call = Call(rasa, ALAN)
    asked = texts(call.say("/nlu_fallback"))
    assert "say it another way" in asked and "about" not in asked, asked
