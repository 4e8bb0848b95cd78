"""What the action server decides when the classifier's reading cannot be trusted on its own, with real
``rasa_sdk`` trackers and no Rasa: a request named outright that the classifier dismissed as out of scope
starts its task, and thanks alone it was unsure of after "anything else?" ends the call.

Both came from CI: a model trained there read "book me in tomorrow morning" as ``out_of_scope`` (the caller
was told "Sorry, I can't help with that") and "thats great thanks" after "Is there anything else I can help
with?" as ``nlu_fallback`` (the caller was asked to say it another way). The same model trained here read
both right, so the dialogues in ``test_dialogues.py`` cannot pin these paths down; these tests do.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actions.heard import named_task

_RESPONSE_KEY = "utter" + "_action"


def _tracker(text: str, intent: str, ranking: list[tuple[str, float]], last_response: str | None) -> Any:
    from rasa_sdk import Tracker

    latest = {
        "text": text,
        "intent": {"name": intent, "confidence": ranking[0][1] if ranking else 0.99},
        "intent_ranking": [{"name": name, "confidence": conf} for name, conf in ranking],
        "entities": [],
    }
    events: list[dict[str, Any]] = []
    if last_response:
        events.append({"event": "bot", "text": "...", "metadata": {_RESPONSE_KEY: last_response}})
    events.append({"event": "user", "text": text, "parse_data": latest})
    slots = {"verified": True, "caller_kind": "existing", "clarify": None}
    return Tracker("t-backstops", slots, latest, events, False, None, {}, "action_listen")


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("book me in tomorrow morning", "book_appointment"),
        ("um can you book an engineer for friday", "book_appointment"),
        ("i need to reschedule", "reschedule_appointment"),
        ("can i move my appointment to thursday", "reschedule_appointment"),
        ("cancel my appointment please", "cancel_appointment"),
        ("whats my balance", "ask_balance"),
        ("how much do i owe you", "ask_balance"),
        ("wheres my last order", "ask_order_status"),
        ("can you track my parcel", "ask_order_status"),
        # not named outright: the classifier decides
        ("can you book me a table for two", None),
        ("i'd like to order a pizza", None),
        ("whats the weather like", None),
        # two requests named: neither is chosen over the other
        ("cancel my appointment and tell me my balance", None),
    ],
)
def test_a_request_named_outright(text: str, intent: str | None) -> None:
    assert named_task(text) == intent


def test_a_request_named_outright_is_not_dismissed_as_out_of_scope() -> None:
    from actions.understanding import out_of_scope

    tracker = _tracker(
        "book me in tomorrow morning", "out_of_scope", [("out_of_scope", 0.81), ("greet", 0.1)], None
    )
    response, events = out_of_scope(tracker)
    assert response is None
    assert {"event": "slot", "name": "pending_task", "value": "appointment"} in [
        {k: e.get(k) for k in ("event", "name", "value")} for e in events
    ]
    assert any(e.get("event") == "followup" for e in events)

    unrelated = _tracker("whats the weather like", "out_of_scope", [("out_of_scope", 0.9)], None)
    assert out_of_scope(unrelated) == ("utter_out_of_scope", [])


def _fallback(text: str, last_response: str) -> list[str]:
    """What ``action_fallback`` says to ``text`` the classifier was unsure of (ask_faq 0.4, greet 0.3): the
    responses, then the form it starts, if any."""
    from rasa_sdk.executor import CollectingDispatcher

    from actions.deps import Deps
    from actions.understanding import ActionFallback

    tracker = _tracker(text, "nlu_fallback", [("ask_faq", 0.4), ("greet", 0.3)], last_response)
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ActionFallback(Deps(store=None)).run(dispatcher, tracker, {"responses": {}}))  # type: ignore[arg-type]
    return [str(m.get("response")) for m in dispatcher.messages] + [
        str(e.get("name")) for e in events if e.get("event") == "followup"
    ]


@pytest.mark.parametrize(
    ("text", "last_response", "said"),
    [
        ("thats great thanks", "utter_anything_else", ["utter_goodbye"]),
        ("lovely cheers", "utter_anything_else", ["utter_goodbye"]),
        # thanks with something asked: not a closing
        ("thanks and what about my other order", "utter_anything_else", ["utter_rephrase"]),
        # thanks after a question that is not "anything else?" (here the greeting): not a closing
        ("great thanks", "utter_greet", ["utter_rephrase"]),
        # unsure, but the request is named outright: its form starts, no question
        ("er could you book me in", "utter_greet", ["booking_form"]),
    ],
)
def test_thanks_alone_after_anything_else_ends_the_call_even_when_the_classifier_is_unsure(
    text: str, last_response: str, said: list[str]
) -> None:
    assert _fallback(text, last_response) == said
