"""What the caller said, read from the conversation: the intent, the task asked for, yes or no, a product.

Tasks: each request that needs the caller's records is a *task* (``pending_task`` in ``nlu-data/domain.yml``
maps each intent to one); the form that runs it keeps it in ``active_task``.
"""

from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Tracker

from actions.store import Product

TASK_INTENTS = {
    "ask_balance": "balance",
    "ask_order_status": "order_status",
    "place_order": "place_order",
    "book_appointment": "appointment",
    "reschedule_appointment": "reschedule",
    "cancel_appointment": "cancel_appointment",
    "ask_appointment": "ask_appointment",
    "report_problem": "support",
    "ask_incident_status": "incident_status",
}
"""The task each request intent starts (as ``pending_task``'s mappings in the domain)."""

INFO_INTENTS = frozenset({"ask_hours", "ask_branch", "ask_faq"})
"""Questions the information line answers, also in the middle of a task."""
CLOSING_INTENTS = frozenset({"deny", "goodbye"})
"""What ends the call after "Is there anything else I can help with?"."""

_YES = frozenset("yes yeah yep yup sure correct right ok okay fine please absolutely definitely".split())
_NO = frozenset("no nope nah not don't dont wrong never".split())


_PERSON = re.compile(
    r"\b(agent|person|human|someone|somebody|operator|representative|colleague|manager|advisor|"
    r"adviser|staff|people|customer service|real|live)\b"
)
_CLOSING = re.compile(
    r"\b(that'?s all|thats it|that'?s it|that'?s everything|nothing else|all good|i'?m good|im good|"
    r"i'?m fine|im fine|i'?m ok(ay)?|im ok(ay)?|all set|no thanks?|no thank you|nope|nah|bye|goodbye|"
    r"that'?ll be all|i'?m done|im done|sorted|cheers|no more)\b"
)


_TASK_CUES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "reschedule_appointment",
        re.compile(
            r"\b(reschedul\w*|(move|change|shift|push back|bring forward) (my|the|our) (appointment|visit|"
            r"booking))\b"
        ),
    ),
    ("cancel_appointment", re.compile(r"\bcancel\w* (my|the|our) (appointment|visit|booking)\b")),
    (
        "book_appointment",
        re.compile(
            r"\b(book (me|us) in|book (an?|another) (appointment|visit|engineer|technician)|"
            r"make an appointment|(schedule|arrange) an? (new )?(appointment|visit))\b"
        ),
    ),
    ("ask_balance", re.compile(r"\b(my|account|the) balance\b|\bhow much do i owe\b")),
    (
        "ask_order_status",
        re.compile(r"\b(where'?s|where is|status of|track) (my|the) (last )?(order|parcel|delivery)\b"),
    ),
)
"""Words that name one request in so many words, whatever else the turn holds."""


def named_task(text: str) -> str | None:
    """The one request the words name outright ("book me in tomorrow morning", "reschedule", "my balance"),
    as its intent; ``None`` when they name none, or more than one."""
    low = text.lower().replace("\u2019", "'")
    named = [intent for intent, cue in _TASK_CUES if cue.search(low)]
    return named[0] if len(named) == 1 else None


def intent_of(tracker: Tracker) -> str | None:
    """The intent of the caller's latest message."""
    return (tracker.latest_message.get("intent") or {}).get("name")


def confidence_of(tracker: Tracker) -> float:
    """How sure the classifier is of that intent (0-1)."""
    return float((tracker.latest_message.get("intent") or {}).get("confidence") or 0.0)


def ranking_of(tracker: Tracker) -> list[tuple[str, float]]:
    """The classifier's intents for the latest message, likeliest first, without ``nlu_fallback``."""
    ranking = tracker.latest_message.get("intent_ranking") or []
    return [
        (str(r.get("name")), float(r.get("confidence") or 0.0))
        for r in ranking
        if r.get("name") and r.get("name") != "nlu_fallback"
    ]


def asks_for_a_person(text: str) -> bool:
    """Whether the words name a person ("a real person", "an agent"): a short answer the classifier took
    for a request for a person ("just the one") does not."""
    return bool(_PERSON.search(text.lower()))


def sounds_like_closing(text: str) -> bool:
    """ "no that's all thanks", "nope im good", "no thank you bye": the caller has nothing else."""
    return bool(_CLOSING.search(text.lower().replace("\u2019", "'")))


def current_task(tracker: Tracker) -> str | None:
    """The task under way: the one its form started with, else the one just asked for."""
    return tracker.get_slot("active_task") or tracker.get_slot("pending_task")


def task_text(tracker: Tracker) -> str:
    """What the caller said when asking for the current task (empty for a keypad shortcut); the words kept
    in ``task_words`` when the task was started for a turn the classifier was unsure of."""
    words = tracker.get_slot("task_words")
    if words:
        return str(words)
    task = current_task(tracker)
    for event in reversed(tracker.events):
        if event.get("event") != "user":
            continue
        intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
        if TASK_INTENTS.get(intent or "") == task:
            text = str(event.get("text") or "")
            return "" if text.startswith("/") else text
    return ""


def yes_or_no(tracker: Tracker, text: Any) -> bool | None:
    """The caller's yes or no: the classifier's affirm / deny first, then the words themselves."""
    intent = intent_of(tracker)
    if intent == "affirm":
        return True
    if intent == "deny":
        return False
    words = set(re.findall(r"[a-z']+", str(text or "").lower()))
    if words & _NO:
        return False
    if words & _YES:
        return True
    return None


def match_product(text: str, products: list[Product]) -> Product | None:
    """The one catalogue product the words name ("the headset", "two screen protectors"), else ``None``."""
    words = {w.rstrip("s") for w in re.findall(r"[a-z]+", text.lower())}
    best: list[tuple[int, Product]] = []
    for product in products:
        name_words = [w.rstrip("s") for w in re.findall(r"[a-z]+", product.name.lower())]
        distinctive = [w for w in name_words if len(w) > 3]
        score = sum(1 for w in distinctive if w in words)
        if score:
            best.append((score, product))
    if not best:
        return None
    best.sort(key=lambda pair: -pair[0])
    if len(best) > 1 and best[0][0] == best[1][0]:
        return None
    return best[0][1]
