"""Editors own the words: rewording a reply in a copy of ``nlu-data/`` changes what the caller hears, with no
code change.

Three responses are reworded the way an editor would, in a copy of the folder: an opening-hours sentence,
the balance, and a handoff line. The editor check passes on the copy; then the real actions run (on the demo
store at a fixed time) and what they emit is rendered as the Rasa server renders it, from the copy's domain:
the new words come out and the old ones do not. The same actions with the project's own domain say the old
words, so it is the data that changed the reply. (A model trained on the copy would say the same: Rasa reads
response texts from the domain at run time; the responses are not part of what a model learns.)
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.deps import Deps
from actions.handoff import ActionHandoff
from actions.info import ActionHours
from actions.store import DemoStore
from actions.tasks import ActionResumeTask
from bot.tools import train
from bot.tools.nlucheck.checks import validate
from tests.spoken import DOMAIN, heard

REPO = Path(__file__).resolve().parent.parent
MONDAY_10 = datetime(2024, 6, 3, 10, 0)
ADA_BALANCE = "one hundred twenty dollars and fifty cents"

REWORDED = {
    # response: (the project's text, an editor's new text), variables kept
    "utter_hours_open_on": (
        "{branch} is open {day} from {opens} to {closes}.",
        "You will find {branch} open {day} between {opens} and {closes}.",
    ),
    "utter_balance_and_payment": (
        "Your balance is {amount}, and your last payment was {paid} on {date}.",
        "You have {amount} with us. We last received {paid} from you, on {date}.",
    ),
    "utter_handoff_requested": (
        "Of course. I'll put you through to a colleague now.",
        "Right away. A member of our team will take your call.",
    ),
}


@pytest.fixture(scope="module")
def reworded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of ``nlu-data/`` with the three responses reworded in its ``domain.yml``, as text."""
    data = tmp_path_factory.mktemp("editor") / "nlu-data"
    shutil.copytree(REPO / "nlu-data", data)
    domain = data / "domain.yml"
    text = domain.read_text(encoding="utf-8")
    for old, new in REWORDED.values():
        assert text.count(f'"{old}"') == 1, old
        text = text.replace(f'"{old}"', f'"{new}"')
    domain.write_text(text, encoding="utf-8")
    return data


@pytest.fixture
def deps() -> Iterator[Deps]:
    store = DemoStore(clock=lambda: MONDAY_10)
    yield Deps(store=store, clock=lambda: MONDAY_10)
    asyncio.run(store.close())


def tracker(text: str, intent: str, **slots: Any) -> Tracker:
    latest = {"text": text, "intent": {"name": intent, "confidence": 0.99}, "entities": []}
    events = [{"event": "user", "text": text, "parse_data": latest}]
    return Tracker("t-wording", slots, latest, events, False, None, {}, "action_listen")


def said(action: Action, t: Tracker, domain: Path) -> list[dict[str, Any]]:
    """What the caller hears (and the gateway gets) when ``action`` runs, with ``domain``'s words."""
    dispatcher = CollectingDispatcher()
    asyncio.run(action.run(dispatcher, t, {}))
    return heard(dispatcher.messages, t.slots, domain)


def texts(items: list[dict[str, Any]]) -> str:
    return " ".join(item["text"] for item in items if "text" in item)


def test_the_reworded_copy_passes_the_editor_check(reworded: Path) -> None:
    inputs = train.RasaInputs(REPO, data_root=reworded)
    assert validate(inputs, (REPO / "actions", REPO / "bot" / "rasa"), with_rasa=False)[1] == []


def test_opening_hours_in_the_editors_new_words(reworded: Path, deps: Deps) -> None:
    asked = tracker("is the main street shop open on saturday", "ask_hours")
    before = texts(said(ActionHours(deps), asked, DOMAIN))
    assert before.startswith("Downtown is open on Saturdays from ten a m to two p m.")
    after = texts(said(ActionHours(deps), asked, reworded / "domain.yml"))
    assert after.startswith("You will find Downtown open on Saturdays between ten a m and two p m.")
    assert "is open on Saturdays from" not in after


def test_the_balance_in_the_editors_new_words(reworded: Path, deps: Deps) -> None:
    asked = tracker(
        "/inform_digits", "inform_digits", verified=True, customer_id="C-0001", active_task="balance"
    )
    before = texts(said(ActionResumeTask(deps), asked, DOMAIN))
    assert before.startswith(
        "Your balance is one hundred twenty dollars and fifty cents, and your last payment"
    )
    after = texts(said(ActionResumeTask(deps), asked, reworded / "domain.yml"))
    assert after.startswith("You have one hundred twenty dollars and fifty cents with us. We last received ")
    assert "Your balance is" not in after and "last payment was" not in after
    assert after.endswith("Is there anything else I can help with?")


def test_a_handoff_line_in_the_editors_new_words(reworded: Path, deps: Deps) -> None:
    asked = tracker("can i talk to a real person", "request_agent", call_id="c-1", caller_kind="existing")
    before = said(ActionHandoff(), asked, DOMAIN)
    after = said(ActionHandoff(), asked, reworded / "domain.yml")
    assert texts(before) == "Of course. I'll put you through to a colleague now."
    assert texts(after) == "Right away. A member of our team will take your call."
    # Only the words changed: the gateway gets the same handoff, last.
    assert after[-1] == before[-1]
    assert after[-1]["custom"]["handoff"]["reason"] == "requested"
    assert after[-1]["custom"]["handoff"]["skill"] == "general"
