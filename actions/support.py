"""The support line: register an incident (what's wrong, how bad, a call back) and tell a ticket's status.

Priority follows the seed's rule (:func:`priority_for`): 1 total outage, 2 partial outage, 3 a consultation
from an unhappy customer (complaining words, an open ticket or money owed), 4 any other consultation. The
call-back is said as ``{day}`` between ``{from_time}`` and ``{until_time}``; a ticket's status by one
response per status.
"""

from __future__ import annotations

import logging
import re
from datetime import date, datetime
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.deps import Deps
from actions.faults import SERVICE_FAILED, outage_kind
from actions.heard import match_product, task_text, yes_or_no
from actions.lines import Line, say
from actions.shared.masking import mask_text
from actions.shared.numerals import digits_from_speech
from actions.shared.speech import say_date, say_digits, say_time
from actions.shared.when import parse_when, window_from_slot, window_slot
from actions.store import Incident
from actions.verify import TaskForm

log = logging.getLogger(__name__)

_STATUS_LINES = {
    # status: (response, response while a call-back is still to come)
    "open": ("utter_incident_open", "utter_incident_open_callback"),
    "in_progress": ("utter_incident_in_progress", "utter_incident_in_progress_callback"),
    "resolved": ("utter_incident_resolved", "utter_incident_resolved"),
    "closed": ("utter_incident_closed", "utter_incident_closed"),
}
_OTHER_STATUS = ("utter_incident_status_other", "utter_incident_status_other")
"""A status the store reports that the domain has no response for (an HTTP adapter's own)."""


def callback_values(start: datetime, end: datetime, today: date) -> dict[str, str]:
    """``day`` ("tomorrow"), ``from_time`` and ``until_time`` ("two p m") of a call-back window."""
    return {
        "day": say_date(start.date(), today),
        "from_time": say_time(start.time()),
        "until_time": say_time(end.time()),
    }


def incident_line(incident: Incident, now: datetime) -> Line:
    """What is said about a ticket: by its status, with the call-back while it is still to come."""
    plain, callback = _STATUS_LINES.get(incident.status, _OTHER_STATUS)
    values = {"ticket": say_digits(incident.ticket), "status": incident.status.replace("_", " ")}
    if (
        callback != plain
        and incident.callback_from is not None
        and incident.callback_until is not None
        and incident.callback_until > now
    ):
        window = callback_values(incident.callback_from, incident.callback_until, now.date())
        return Line(callback, {**values, **window})
    return Line(plain, values)


# --- after the form -------------------------------------------------------------------------------------


async def register_incident(
    deps: Deps, dispatcher: CollectingDispatcher, tracker: Tracker, customer_id: str
) -> list[EventType]:
    problem = str(tracker.get_slot("problem") or "")
    severity = tracker.get_slot("severity")
    unhappy = unhappy_words(problem)
    if not unhappy and severity not in ("total", "partial"):
        account = await deps.store.get_account(customer_id)
        open_tickets = await deps.store.open_incidents(customer_id)
        unhappy = bool(open_tickets) or (account is not None and account.balance_cents < 0)
    product = match_product(problem, await deps.store.list_products())
    number = (
        tracker.get_slot("caller_number")
        if tracker.get_slot("callback_ok") is True
        else tracker.get_slot("callback_number")
    )
    window = window_from_slot(tracker.get_slot("callback_when"))
    incident = await deps.store.create_incident(
        customer_id,
        product.product_id if product else None,
        priority_for(severity, unhappy),
        problem,
        callback_number=str(number) if number else None,
        callback_window=(window.start, window.end) if window else None,
    )
    log.info("incident registered conversation=%s priority=%d", tracker.sender_id, incident.priority)
    ticket = say_digits(incident.ticket)
    if window is None:
        dispatcher.utter_message(response="utter_incident_registered_asap", ticket=ticket)
    else:
        said = callback_values(window.start, window.end, deps.now().date())
        dispatcher.utter_message(response="utter_incident_registered", ticket=ticket, **said)
    return [SlotSet("incident_priority", float(incident.priority))]


async def tell_incident_status(
    deps: Deps, dispatcher: CollectingDispatcher, tracker: Tracker, customer_id: str
) -> list[EventType]:
    digits = digits_from_speech(task_text(tracker)) or ""
    if len(digits) == 6:
        incident = await deps.store.get_incident(digits, customer_id)
        if incident is None:
            dispatcher.utter_message(response="utter_incident_not_found")
            return []
    else:
        open_tickets = await deps.store.open_incidents(customer_id)
        if not open_tickets:
            dispatcher.utter_message(response="utter_no_incidents")
            return []
        incident = open_tickets[0]
    say(dispatcher, [incident_line(incident, deps.now())])
    return []


# --- the form -------------------------------------------------------------------------------------------

_UNHAPPY = re.compile(
    r"\b(complain\w*|complaint|fed up|angry|unacceptable|ridiculous|disappointed|again|third time|"
    r"second time|still not|terrible|awful|useless|frustrat\w*)\b"
)


def unhappy_words(text: str) -> bool:
    """Whether the caller sounds unhappy ("this is the third time", "i want to complain")."""
    return bool(_UNHAPPY.search(text.lower()))


def priority_for(severity: str | None, unhappy: bool) -> int:
    """The seed's rule: 1 total outage, 2 partial outage, 3 consultation (unhappy), 4 consultation."""
    if severity == "total":
        return 1
    if severity == "partial":
        return 2
    return 3 if unhappy else 4


class ValidateSupportForm(TaskForm):
    """Register an incident: what's wrong, how bad, and a call back (number and time window)."""

    form = "support_form"
    task_slots_reset = ("problem", "severity", "callback_ok", "callback_number", "callback_when")

    def task_slots(self, tracker: Tracker) -> list[str]:
        if tracker.get_slot("problem") is None:
            return ["problem"]
        if tracker.get_slot("severity") is None:
            return ["severity"]
        if tracker.get_slot("callback_ok") is None and tracker.get_slot("caller_number"):
            return ["callback_ok"]
        if tracker.get_slot("callback_ok") is not True and tracker.get_slot("callback_number") is None:
            return ["callback_number"]
        if tracker.get_slot("callback_when") is None:
            return ["callback_when"]
        return []

    async def prefill(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = task_text(tracker)
        if not text:
            return {}
        products = await self.deps.store.list_products()
        routed = bool(tracker.get_slot("task_words"))  # a fault in words the classifier was unsure of
        lowered = text.lower()
        said = outage_kind(text) or SERVICE_FAILED.search(lowered) or _UNHAPPY.search(lowered)
        if routed or said or match_product(text, products):
            return self._problem(text)
        return {}

    def _problem(self, text: str) -> dict[str, Any]:
        kind = outage_kind(text)
        severity = {"total": "total", "partial": "partial", None: "consultation"}.get(kind)
        # masked once more before it can reach the store (the channel masked the words already)
        problem = mask_text(text.strip(), bare_digits_are_pin=False)[:500]
        return {"problem": problem, "severity": severity, "misses": 0}

    def validate_problem(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        escaped = self.escape("problem", tracker)
        if escaped:
            return escaped
        text = str(slot_value or "").strip()
        if len(re.findall(r"[a-z]+", text.lower())) < 2:
            return self.missed("problem", tracker, dispatcher, "utter_rephrase_short")
        return self._problem(text)

    def validate_severity(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        escaped = self.escape("severity", tracker)
        if escaped:
            return escaped
        kind = outage_kind(str(slot_value or ""))
        if kind in ("total", "partial"):
            return {"severity": kind, "misses": 0}
        # Anything else, "yes" included, does not answer "not working at all, or only partly?".
        return self.missed("severity", tracker, dispatcher, "utter_rephrase_short")

    def validate_callback_ok(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        escaped = self.escape("callback_ok", tracker)
        if escaped:
            return escaped
        digits = digits_from_speech(str(slot_value or "")) or ""
        if 7 <= len(digits) <= 15:  # "no, call me on 555 ..."
            return {"callback_ok": False, "callback_number": digits, "misses": 0}
        answer = yes_or_no(tracker, slot_value)
        if answer is None:
            return self.missed("callback_ok", tracker, dispatcher, "utter_yes_or_no")
        return {"callback_ok": answer, "misses": 0}

    def validate_callback_number(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        escaped = self.escape("callback_number", tracker)
        if escaped:
            return escaped
        digits = digits_from_speech(str(slot_value or "")) or ""
        if 7 <= len(digits) <= 15:
            return {"callback_number": digits, "misses": 0}
        return self.missed("callback_number", tracker, dispatcher, "utter_number_unclear")

    def validate_callback_when(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        escaped = self.escape("callback_when", tracker)
        if escaped:
            return escaped
        window = parse_when(str(slot_value or ""), self.deps.now())
        if window is None:
            return self.missed("callback_when", tracker, dispatcher, "utter_when_unclear")
        return {"callback_when": window_slot(window), "misses": 0}
