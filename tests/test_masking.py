"""The one detector and masker of card numbers, security codes, PINs and dates of birth
(``actions/shared/masking.py``): what it masks, said or typed, and what it must leave readable (the demo
data's order and ticket numbers, phone numbers, postcodes, times, appointment dates)."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actions.backends.seed import BRANCHES, CUSTOMERS, INCIDENTS, NEW_NUMBER, ORDERS
from actions.shared.masking import CARD, DATE, PIN, find_sensitive, kinds, luhn_ok, mask_text
from actions.shared.numerals import number_words

TODAY = date(2026, 11, 30)
WORDS = "zero one two three four five six seven eight nine".split()


def masked(text: str, **kw: object) -> str:
    return mask_text(text, today=TODAY, **kw)  # type: ignore[arg-type]


def with_check_digit(body: str) -> str:
    """``body`` and the Luhn check digit that makes it valid."""
    for d in "0123456789":
        if luhn_ok(body + d):
            return body + d
    raise AssertionError("unreachable")


def spoken(digits: str) -> str:
    return " ".join(WORDS[int(d)] for d in digits)


# --- Luhn ------------------------------------------------------------------------------------------------


def test_luhn() -> None:
    assert luhn_ok("4111111111111111") and luhn_ok("5555555555554444") and luhn_ok("378282246310005")
    assert not luhn_ok("4111111111111112") and not luhn_ok("") and not luhn_ok("41x1")


card_numbers = st.builds(
    lambda first, rest: with_check_digit(first + rest),
    st.sampled_from("23456789"),
    st.integers(11, 17).flatmap(lambda n: st.text("0123456789", min_size=n, max_size=n)),
)


@settings(max_examples=300, deadline=None)
@given(card=card_numbers, style=st.sampled_from(["plain", "fours", "dashes", "words", "typed"]))
def test_every_luhn_valid_card_number_is_masked_however_said(card: str, style: str) -> None:
    groups = [card[i : i + 4] for i in range(0, len(card), 4)]
    said = {
        "plain": f"my card number is {card} thanks",
        "fours": "it's " + " ".join(groups) + " okay",
        "dashes": "card " + "-".join(groups),
        "words": "my card is " + spoken(card) + " please",
        "typed": card,
    }[style]
    out = masked(said)
    assert CARD in out, out
    assert card not in out.replace(" ", "").replace("-", "")
    assert not any(w in out.split() for w in WORDS), out


@settings(max_examples=300, deadline=None)
@given(card=card_numbers)
def test_a_card_with_a_wrong_check_digit_is_not_called_a_card(card: str) -> None:
    wrong = card[:-1] + str((int(card[-1]) + 1) % 10)
    assert CARD not in masked(f"the reference is {wrong} i think")


@settings(max_examples=200, deadline=None)
@given(number=st.text("0123456789", min_size=10, max_size=14))
def test_phone_numbers_after_a_plus_are_never_cards(number: str) -> None:
    assert masked(f"call me back on +{number}") == f"call me back on +{number}"


# --- card, code, PIN, date -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        (
            "my card number is 4111 1111 1111 1111 and my cvv is 123",
            "my card number is [card] and my cvv is [cvv]",
        ),
        (
            "my card number is four one one one one one one one one one one one one one one one",
            "my card number is [card]",
        ),
        ("card 4111-1111-1111-1111", "card [card]"),
        ("the security code on the back is seven three one", "the security code on the back is [cvv]"),
        ("c v v four four two", "c v v [cvv]"),
        ("my pin is 4719", "my pin is [pin]"),
        ("my pin is forty seven nineteen", "my pin is [pin]"),
        ("4719", "[pin]"),
        ("uh it's four seven one nine", "uh it's [pin]"),
        ("1234#", "[pin]#"),
        ("i was born on the fifth of march nineteen eighty", "i was born on [date]"),
        ("the fifth of march nineteen eighty", "[date]"),
        ("december tenth eighteen fifteen", "[date]"),
        ("twelve ten nineteen ninety", "[date]"),
        ("12/10/1815", "[date]"),
        ("born 1815-12-10", "born [date]"),
        ("my birthday is march fifth", "my birthday is [date]"),
        ("my date of birth is 10.12.1815 and my pin 4719", "my date of birth is [date] and my pin [pin]"),
    ],
)
def test_what_is_masked(said: str, expected: str) -> None:
    assert masked(said) == expected


@pytest.mark.parametrize(
    "said",
    [
        "where is my order 100004",
        "my order number is one zero zero zero zero four",
        "whats happening with ticket five zero zero zero zero one",
        "call me back on 555 010 0001",
        "call me on +1 555 010 0001",
        "plus one five five five zero one zero zero zero zero one",
        "the branch at postcode 62701",
        "book me for march fifth at ten",
        "tomorrow between two and four",
        "i need two screen protectors",
        "it broke on the fifth of march twenty twenty five",
        "i paid 59 dollars on 11/02/2026",
        "my headset stopped working completely",
        "my pin is wrong i want to know about order 100004",
        "hi what is my balance",
    ],
)
def test_what_stays_readable(said: str) -> None:
    assert masked(said) == said


def test_the_demo_data_stays_readable_inside_sentences() -> None:
    """Order, ticket and phone numbers and postcodes of the demo data, typed and spoken."""
    values = [o[0] for o in ORDERS] + [i[0] for i in INCIDENTS] + [b[4] for b in BRANCHES]
    phones = [n for c in CUSTOMERS for n in c.numbers] + [NEW_NUMBER] + [b[5] for b in BRANCHES]
    for value in values:
        for text in (f"about number {value} please", f"about number {spoken(value)} please"):
            assert masked(text) == text
    for phone in phones:
        local = phone.removeprefix("+1")
        for text in (f"call me on {phone}", f"call me on {local}", f"call me on {spoken(local)}"):
            assert masked(text) == text


def test_answers_that_are_digits_are_kept_when_digits_were_asked_for() -> None:
    assert masked("one zero zero zero zero four") == PIN  # nobody asked: a PIN said out of turn
    assert masked("one zero zero zero zero four", bare_digits_are_pin=False) == "one zero zero zero zero four"
    assert masked("ten thirty", bare_digits_are_pin=False) == "ten thirty"
    # a card or a date is masked whatever was asked
    assert masked("4111 1111 1111 1111", bare_digits_are_pin=False) == CARD
    assert masked("december tenth eighteen fifteen", bare_digits_are_pin=False) == DATE


def test_keyed_digits_nobody_asked_for() -> None:
    assert masked("1234567", keyed=True) == "[digits]"
    assert masked("4111111111111111", keyed=True) == CARD
    assert masked("1234567") == "1234567"


def test_demo_customers_pins_and_dates_of_birth_are_masked_however_said() -> None:
    for c in CUSTOMERS:
        if c.pin is None or c.dob is None:
            continue
        for text in (c.pin, spoken(c.pin), f"my pin is {c.pin}", f"the pin is {spoken(c.pin)}"):
            out = masked(text)
            assert c.pin not in out and spoken(c.pin) not in out and PIN in out, (text, out)
        day = number_words(c.dob.day)
        month = date(2000, c.dob.month, 1).strftime("%B").lower()
        for text in (
            c.dob.isoformat(),
            f"{c.dob.month}/{c.dob.day}/{c.dob.year}",
            f"i was born {month} {day} {c.dob.year}",
            f"born on {c.dob.day} {month} {c.dob.year}",
        ):
            out = masked(text)
            assert str(c.dob.year) not in out and DATE in out, (text, out)


def test_findings_and_kinds() -> None:
    text = "card 4111111111111111 pin 4719"
    spans = find_sensitive(text, today=TODAY)
    assert [(f.mask, text[f.start : f.end]) for f in spans] == [(CARD, "4111111111111111"), (PIN, "4719")]
    assert kinds(masked(text)) == [CARD, PIN]
    assert masked("") == "" and masked("   ") == "   "


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_masks_without_error_and_idempotently(text: str) -> None:
    once = masked(text)
    assert masked(once) == once


# --- where it is applied (the logic; tests/test_privacy_scan.py runs it end to end) ----------------------


def test_the_gateways_transcript_line() -> None:
    from bot.session import caller_line

    card = "my card is 4111 1111 1111 1111"
    assert caller_line(card, "asr", redacted=False) == "my card is [card]"  # the gateway's own masking
    assert caller_line("4719", "asr", redacted=False, heard_as="[pin]") == "[pin]"  # the assistant's
    assert caller_line("4719", "asr", redacted=True) == "[redacted]"
    assert caller_line("4111111111111111", "dtmf", redacted=False) == "[keypad]"
    order = "one zero zero zero zero four"
    assert caller_line(order, "asr", redacted=False) == order


def test_the_reply_says_how_the_words_were_recorded() -> None:
    from bot.dialogue import parse_reply

    reply = parse_reply([{"custom": {"heard_as": "my pin is [pin]"}}, {"text": "Sorry?"}])
    assert reply.heard_as == "my pin is [pin]" and reply.texts == ("Sorry?",)
    assert parse_reply([{"text": "Hi."}]).heard_as is None


def test_the_handoff_context_carries_masked_words_only() -> None:
    from actions.shared.handoff import Reason, Skill, handoff_payload

    context = {
        "call_id": "123e4567-e89b-12d3-a456-426614174000",
        "caller_number": "+15550100001",
        "slots": {"problem": "it broke when i gave my card 4111 1111 1111 1111", "order_ref": "100004"},
    }
    payload = handoff_payload(Reason.REQUESTED, Skill.SUPPORT, context)
    slots = payload["context"]["slots"]
    assert slots == {"problem": "it broke when i gave my card [card]", "order_ref": "100004"}
    assert payload["context"]["call_id"] == context["call_id"]
    assert payload["context"]["caller_number"] == "+15550100001"


def test_words_that_are_masks_only() -> None:
    from actions.shared.masking import only_masks

    assert only_masks("[pin]") and only_masks("uh it's [card]") and only_masks("[digits]")
    assert not only_masks("my card is [card]") and not only_masks("uh") and not only_masks("")


@settings(max_examples=300, deadline=None)
@given(
    number=st.text("0123456789", min_size=5, max_size=6),
    lead=st.sampled_from(["where is my order", "the status of ticket", "my order number is", "booking"]),
    words=st.booleans(),
)
def test_order_and_ticket_numbers_in_a_sentence_are_never_masked(number: str, lead: str, words: bool) -> None:
    said = f"{lead} {spoken(number) if words else number} please"
    assert masked(said) == said


@settings(max_examples=300, deadline=None)
@given(
    local=st.from_regex(r"[2-9][0-9]{2}[2-9][0-9]{6}", fullmatch=True),
    style=st.sampled_from(["+1{}", "1{}", "{}", "({}) {} {}", "{}-{}-{}"]),
)
def test_north_american_phone_numbers_are_never_masked(local: str, style: str) -> None:
    parts = (local[:3], local[3:6], local[6:])
    number = style.format(*parts) if "(" in style or "-" in style else style.format(local)
    said = f"call me back on {number}"
    assert masked(said) == said
