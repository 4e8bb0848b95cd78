"""The information line: the FAQ (actions/shared/faq.py, the real nlu-data/faq.yml matched with callers' own
phrasings, its mistakes reported with file and line), and opening hours and branch addresses (actions/info.py)
from the demo branches, said in the words of the real nlu-data/domain.yml."""

from __future__ import annotations

import re
from datetime import datetime, time
from pathlib import Path

import pytest

from actions.backends.base import Branch, OpeningHours
from actions.backends.seed import BRANCHES
from actions.backends.seed import main as seed
from actions.info import branch_reply, hours_reply
from actions.shared.faq import MAX_ANSWER_CHARS, Faq, FaqError, load_faq
from actions.shared.speech import say_time
from actions.store import open_store
from tests.spoken import say_lines

REPO = Path(__file__).resolve().parent.parent
FAQ_FILE = REPO / "nlu-data" / "faq.yml"
TOPICS = {"delivery", "returns", "payment", "warranty", "personal_details", "international"}

MONDAY_10 = datetime(2024, 6, 3, 10, 0)
"""A Monday morning: both branches open."""
SATURDAY_18 = datetime(2024, 6, 8, 18, 0)
"""Saturday evening: both closed until Monday."""
SUNDAY_NOON = datetime(2024, 6, 9, 12, 0)
TUESDAY_7 = datetime(2024, 6, 4, 7, 0)
TUESDAY_2030 = datetime(2024, 6, 4, 20, 30)
DT_AT = "Downtown is at one hundred Main Street in Springfield."
RS_AT = "Riverside is at forty two River Road in Shelbyville."
DT_SAT = "ten a m to two p m"
RS_WEEKDAY = "eight a m to eight p m"
CLOSED_NOW = "closed now and opens"


def seed_branches() -> tuple[Branch, ...]:
    """The demo branches exactly as the seed writes them."""
    return tuple(
        Branch(
            branch_id,
            name,
            address,
            city,
            postcode,
            phone,
            tuple(OpeningHours(day, opens, closes) for day, (opens, closes) in sorted(hours.items())),
        )
        for branch_id, name, address, city, postcode, phone, hours in BRANCHES
    )


@pytest.fixture(scope="module")
def faq() -> Faq:
    return load_faq(FAQ_FILE)


def sentences(text: str) -> int:
    return len([s for s in re.split(r"[.!?]+(?:\s+|$)", text) if s.strip()])


def assert_spoken(text: str) -> None:
    assert not re.search(r"[0-9$%/:@]|http|www", text), text


# --- the FAQ file ----------------------------------------------------------------------------------------


def test_project_faq_is_valid_and_covers_the_topics(faq: Faq) -> None:
    assert {e.id for e in faq.entries} == TOPICS
    for entry in faq.entries:
        assert len(entry.questions) >= 3 and entry.line > 0
        assert sentences(entry.answer) <= 2 and len(entry.answer) <= MAX_ANSWER_CHARS
        assert_spoken(entry.answer)
        assert all(q == q.lower() for q in entry.questions)


# Callers' own phrasings: none of them is in faq.yml.
PHRASINGS = {
    "delivery": [
        "um how long will it take to deliver",
        "what do you charge for postage",
        "how many days does shipping take",
        "uh when would i get my order if i bought it now",
    ],
    "returns": [
        "can i give something back",
        "uh i would like to return my headphones",
        "when do i get my refund",
    ],
    "payment": [
        "can i pay with my debit card",
        "do you accept apple pay",
        "is it ok to pay with cash",
    ],
    "warranty": [
        "how long is the guarantee on a charger",
        "what happens if my headset stops working",
        "is the warranty two years",
    ],
    "personal_details": [
        "i need to change my address",
        "i have a new phone number",
        "um update my email address please",
    ],
    "international": [
        "do you deliver to the uk",
        "can you ship to germany",
        "do you send stuff to mexico",
    ],
}


@pytest.mark.parametrize(
    ("topic", "text"), [(topic, text) for topic, texts in PHRASINGS.items() for text in texts]
)
def test_faq_matches_callers_own_words(faq: Faq, topic: str, text: str) -> None:
    asked = {q for e in faq.entries for q in e.questions}
    assert text not in asked  # really a new phrasing
    entry = faq.answer(text)
    assert entry is not None and entry.id == topic, (text, faq.scores(text))


@pytest.mark.parametrize(
    "text",
    ["what is the weather", "i want to speak to a person", "what is my balance", "hello", "um uh", ""],
)
def test_faq_no_match(faq: Faq, text: str) -> None:
    assert faq.answer(text) is None, faq.scores(text)


def test_fillers_do_not_change_the_match(faq: Faq) -> None:
    plain, padded = "how long is the warranty", "um so uh like how long is the um warranty"
    assert faq.scores(plain) == pytest.approx(faq.scores(padded))


# --- mistakes in faq.yml ---------------------------------------------------------------------------------

GOOD_ENTRY = """\
- id: {id}
  questions:
    - {id} question one
    - {id} question two
    - {id} question three
  answer: We can help with {id}.
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "faq.yml"
    path.write_text(text)
    return path


def line_of(path: Path, marker: str) -> int:
    """The last line containing ``marker`` (where a repeated id or question is reported)."""
    return [i for i, line in enumerate(path.read_text().splitlines(), start=1) if marker in line][-1]


def test_small_valid_file(tmp_path: Path) -> None:
    faq = load_faq(write(tmp_path, GOOD_ENTRY.format(id="alpha") + GOOD_ENTRY.format(id="beta")))
    assert [e.id for e in faq.entries] == ["alpha", "beta"]
    assert [e.line for e in faq.entries] == [1, 7]


A = GOOD_ENTRY.format(id="a")
B_QUESTIONS = "- id: b\n  questions:\n    - b1\n    - b2\n    - b3\n"


@pytest.mark.parametrize(
    ("content", "marker", "expected"),
    [
        (A + "- id: b\n  answer: Yes: no\n  questions: []\n", "Yes: no", "not valid YAML"),
        (A + "\tanswer: tab\n", "\tanswer", "not valid YAML"),
        ("id: a\nquestions: []\n", "id: a", "should be a list of '- id: ...' entries"),
        (A + "- just a line\n", "- just a line", "an entry should be"),
        (A + "- id: b\n  questions: what\n  answer: Yes.\n", "questions: what", "list"),
        (A + "- id: b\n  questions:\n    - q1\n    - q2\n  answer: Yes.\n", "questions:", "at least 3"),
        (A + A, "- id: a", "used twice"),
        (A + "- id: b\n  questions:\n    - a question two\n    - b1\n    - b2\n  answer: Yes.\n",
         "- a question two", "in both 'a'"),
        (A + B_QUESTIONS + "  answer: One. Two. Three.\n", "One. Two.", "3 sentences"),
        (A + B_QUESTIONS + "  answer: It costs $5, see www.shop.example.\n", "It costs", "as spoken"),
        (A + B_QUESTIONS + f"  answer: {'very ' * 45}long.\n", "very very", "characters long"),
        (A + B_QUESTIONS + "  answers: Typo.\n", "answers: Typo", "unknown key 'answers'"),
        (A + B_QUESTIONS, "- id: b", "no 'answer:'"),
    ],
)  # fmt: skip
def test_mistakes_name_file_and_line(tmp_path: Path, content: str, marker: str, expected: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(FaqError) as err:
        load_faq(path)
    assert err.value.line == line_of(path, marker), str(err.value)
    assert str(err.value).startswith(f"{path}:{err.value.line}: "), str(err.value)
    assert expected in str(err.value), str(err.value)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(FaqError, match="file missing"):
        load_faq(tmp_path / "nope.yml")
    with pytest.raises(FaqError, match="empty"):
        load_faq(write(tmp_path, "# only a comment\n"))


# --- spoken times ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("t", "said"),
    [
        (time(9), "nine a m"),
        (time(17, 30), "five thirty p m"),
        (time(12), "noon"),
        (time(0), "midnight"),
        (time(8, 5), "eight oh five a m"),
        (time(12, 45), "twelve forty five p m"),
        (time(20), "eight p m"),
    ],
)
def test_say_time(t: time, said: str) -> None:
    assert say_time(t) == said


# --- opening hours ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "now", "reply"),
    [
        (
            "um what are your opening hours",
            MONDAY_10,
            "Downtown is open Monday to Friday nine a m to five thirty p m, and Saturday ten a m to two p m. "
            "Riverside is open Monday to Friday eight a m to eight p m, and Saturday nine a m to five p m.",
        ),
        (
            "when is the downtown branch open",
            MONDAY_10,
            "Downtown is open Monday to Friday nine a m to five thirty p m, and Saturday ten a m to two p m.",
        ),
        ("is riverside open on sunday", MONDAY_10, "Riverside is closed on Sundays."),
        ("are you open on sundays", MONDAY_10, "Both branches are closed on Sundays."),
        (
            "is the main street shop open on saturday",
            MONDAY_10,
            f"Downtown is open on Saturdays from {DT_SAT}.",
        ),
        (
            "are you open today",
            MONDAY_10,
            "Downtown is open today from nine a m to five thirty p m. "
            "Riverside is open today from eight a m to eight p m.",
        ),
        ("is downtown open today", SUNDAY_NOON, "Downtown is closed today."),
        ("riverside tomorrow", SATURDAY_18, "Riverside is closed tomorrow."),
        ("is shelbyville open tomorrow", SUNDAY_NOON, f"Riverside is open tomorrow from {RS_WEEKDAY}."),
        (
            "are you open now",
            MONDAY_10,
            "Downtown is open now until five thirty p m. Riverside is open now until eight p m.",
        ),
        ("is downtown open right now", SATURDAY_18, f"Downtown is {CLOSED_NOW} on Monday at nine a m."),
        ("is riverside open at the moment", TUESDAY_7, f"Riverside is {CLOSED_NOW} today at eight a m."),
        ("is riverside still open", TUESDAY_2030, f"Riverside is {CLOSED_NOW} tomorrow at eight a m."),
    ],
)
def test_hours_reply(text: str, now: datetime, reply: str) -> None:
    said = say_lines(hours_reply(seed_branches(), text, now))
    assert said == reply
    assert sentences(said) <= 2
    assert_spoken(said)


def test_hours_when_the_store_has_no_branches() -> None:
    assert "sorry" in say_lines(hours_reply((), "are you open", MONDAY_10)).lower()


# --- addresses -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reply"),
    [
        (
            "where are you",
            f"{DT_AT} {RS_AT}",
        ),
        ("what is the address of the riverside branch", RS_AT),
        ("where is your shop in springfield", DT_AT),
        ("which branch is nearest to shelbyville", RS_AT),
        ("whats the closest branch to six two seven oh two", DT_AT),
        ("um nearest one to 62566", RS_AT),
        ("is there a branch near six two five six five", RS_AT),
    ],
)
def test_branch_reply(text: str, reply: str) -> None:
    said = say_lines(branch_reply(seed_branches(), text))
    assert said == reply
    assert_spoken(said)


def test_nearest_to_a_place_we_do_not_know_gives_both() -> None:
    said = say_lines(branch_reply(seed_branches(), "which branch is nearest to chicago"))
    assert said.startswith("Downtown is at") and "Riverside is at" in said and sentences(said) == 2


async def test_replies_from_a_real_seeded_store(tmp_path: Path) -> None:
    """The branches as the SQLite store returns them give the same replies as the seed's own records."""
    url = f"sqlite:///{tmp_path / 'attendant.db'}"
    assert seed(["--url", url]) == 0
    store = open_store(url)
    try:
        branches = await store.branches()
    finally:
        await store.close()
    assert sorted(b.name for b in branches) == ["Downtown", "Riverside"]
    for text in ("what are your opening hours", "is riverside open on sunday", "are you open now"):
        assert hours_reply(branches, text, MONDAY_10) == hours_reply(seed_branches(), text, MONDAY_10)
    assert say_lines(branch_reply(branches, "where is downtown")) == DT_AT
