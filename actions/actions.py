"""Attendant's custom actions (rasa-sdk). Actions decide; the gateway acts on what they emit.

What the gateway receives (see ``bot/rasa_channel.py`` for the whole contract):

- spoken text, one item per message;
- ``{"custom": {"end_call": true}}``: say the texts, then hang up (the goodbye response carries it);
- ``{"custom": {"handoff": {"reason", "skill", "context"}}}``: say the texts, then hand the call to a person.

Every failure here ends with a person: a store or Redis error becomes a handoff with reason ``technical``.
Logs carry the conversation id only: never caller numbers, PINs, balances or what the caller said.
"""

from __future__ import annotations

import logging
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, ActiveLoop, EventType, FollowupAction, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.speech import digits_from_speech, number_words, say_date, say_digits, say_money, say_time
from actions.store import (
    EXISTING,
    NEW,
    RETURNING,
    CustomerStore,
    Incident,
    Order,
    OrderLine,
    StoreConfig,
    StoreError,
    open_store,
)
from actions.vault import SecretStash

log = logging.getLogger(__name__)

MAX_MISUNDERSTANDINGS = 2
FAQ_PATH = Path(__file__).resolve().parent.parent / "nlu-data" / "faq.yml"

REASON_REQUESTED = "requested"
REASON_NO_MATCH = "no-match"
REASON_VERIFICATION_FAILED = "verification-failed"
REASON_NOT_FOUND = "not-found"
REASON_TECHNICAL = "technical"
REASONS = (REASON_REQUESTED, REASON_NO_MATCH, REASON_VERIFICATION_FAILED, REASON_NOT_FOUND, REASON_TECHNICAL)

SKILL_BY_TASK = {
    "balance": "billing",
    "order_status": "orders",
    "place_order": "sales",
    "appointment": "bookings",
    "reschedule": "bookings",
    "cancel_appointment": "bookings",
    "ask_appointment": "bookings",
    "support": "support",
    "incident_status": "support",
}
FORM_FOR_TASK = {
    "order_status": "order_status_form",
    "place_order": "order_form",
    "appointment": "booking_form",
    "reschedule": "booking_form",
    "cancel_appointment": "cancel_form",
    "support": "support_form",
}
"""The form of each task; the others (balance, appointment time, ticket status) only verify."""
DEFAULT_SKILL = "general"
SALES_SKILL = "sales"
"""New and returning callers who ask for a person go to sales (the seeds' sales focus)."""

CONTEXT_SLOTS = (
    "order_ref",
    "product",
    "quantity",
    "booking_text",
    "offer_text",
    "problem",
    "severity",
    "callback_number",
    "callback_when",
    "referral",
)
"""Slots an agent may see in the handoff context (never the PIN or date of birth slots)."""

_METADATA_LIMITS = {"call_id": 64, "caller_number": 32}


class _Backends:
    """The store and the secret stash, opened on first use inside the action server's event loop."""

    def __init__(self) -> None:
        self._store: CustomerStore | None = None
        self._stash: SecretStash | None = None

    @property
    def store(self) -> CustomerStore:
        if self._store is None:
            # ATTENDANT_STORE_URL (default: the SQLite file .run/attendant.db that the seed command makes).
            self._store = open_store(StoreConfig.from_env())
        return self._store

    @property
    def stash(self) -> SecretStash:
        if self._stash is None:
            self._stash = SecretStash.from_env()
        return self._stash


backends = _Backends()


# --- handoff -------------------------------------------------------------------------------------------


def handoff_payload(tracker: Tracker, reason: str) -> dict[str, Any]:
    """The structured handoff request: reason, the skill needed, and what the bot learned."""
    task = tracker.get_slot("active_task") or tracker.get_slot("pending_task")
    verified = bool(tracker.get_slot("verified"))
    context: dict[str, Any] = {
        "call_id": tracker.get_slot("call_id"),
        "caller_number": tracker.get_slot("caller_number"),
        "verified": verified,
        "customer_id": tracker.get_slot("customer_id") if verified else None,
        "task": task,
        "last_intent": (tracker.latest_message.get("intent") or {}).get("name"),
        "pin_attempts": int(tracker.get_slot("pin_attempts") or 0),
        "caller_kind": tracker.get_slot("caller_kind"),
        "slots": {
            name: value for name in CONTEXT_SLOTS if (value := tracker.get_slot(name)) not in (None, False)
        },
    }
    if verified is False:
        context["slots"] = {}  # nothing about the account before verification, not even to the agent screen
    skill = SKILL_BY_TASK.get(task or "")
    if skill is None:
        skill = SALES_SKILL if tracker.get_slot("caller_kind") in (NEW, RETURNING) else DEFAULT_SKILL
    return {"reason": reason, "skill": skill, "context": context}


def hand_off(dispatcher: CollectingDispatcher, tracker: Tracker, reason: str) -> list[EventType]:
    """Say the handoff line for ``reason`` and emit the handoff payload; ends any active form."""
    if reason not in REASONS:
        reason = REASON_TECHNICAL
    dispatcher.utter_message(response="utter_handoff_" + reason.replace("-", "_"))
    dispatcher.utter_message(json_message={"handoff": handoff_payload(tracker, reason)})
    log.info("handoff conversation=%s reason=%s", tracker.sender_id, reason)
    events: list[EventType] = [SlotSet("handoff_reason", reason)]
    if tracker.active_loop.get("name"):
        events += [ActiveLoop(None), SlotSet("requested_slot", None)]
    return events


# --- session start --------------------------------------------------------------------------------------


def _clean(metadata: dict[str, Any], key: str) -> str | None:
    value = metadata.get(key)
    if value is None:
        return None
    text = str(value).strip()
    return text[: _METADATA_LIMITS[key]] or None


class ActionSessionStart(Action):
    """Start of a call: keep the call id and caller number, greet when the gateway says the call began.

    The gateway opens every call with the message ``/session_start`` and metadata ``call_id``,
    ``caller_number``, ``channel``, ``language``. Rasa runs this action twice for that first message:
    once because the conversation is new (no greeting then), once for the ``session_start`` intent
    itself (greeting). A session that expires mid-call restarts silently, keeping call id and number.
    """

    def name(self) -> str:
        return "action_session_start"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        latest = tracker.latest_message or {}
        metadata = latest.get("metadata") or tracker.get_slot("session_started_metadata") or {}
        if not isinstance(metadata, dict):
            metadata = {}
        call_id = _clean(metadata, "call_id") or tracker.get_slot("call_id")
        caller_number = _clean(metadata, "caller_number") or tracker.get_slot("caller_number")
        events: list[EventType] = [
            SessionStarted(),
            SlotSet("call_id", call_id),
            SlotSet("caller_number", caller_number),
        ]
        if (latest.get("intent") or {}).get("name") == "session_start":
            kind = await _record_call(caller_number, tracker.sender_id)
            events.append(SlotSet("caller_kind", kind))
            dispatcher.utter_message(response=f"utter_greet_{kind}" if kind else "utter_greet")
        events.append(ActionExecuted("action_listen"))
        return events


async def _record_call(caller_number: str | None, conversation: str) -> str | None:
    """Count the call in the store: new, returning or existing caller (None: withheld number, or no store)."""
    if not caller_number:
        return None
    try:
        record = await backends.store.record_call(caller_number)
    except StoreError:
        log.warning("could not record the call conversation=%s", conversation)
        return None
    return record.kind if record is not None else None


# --- doing the task once its form is over -------------------------------------------------------------


class ActionResumeTask(Action):
    """After a task's form: do what the caller asked for, or hand over, or say goodbye.

    The task is the one the form started with (``active_task``), even if the caller's later answers looked
    like other requests. To add a task: an intent, a ``pending_task`` value for it in domain.yml, a form (or
    ``verify_form``) in the rules, its validation in ``actions/forms.py``, and a method ``_task_<task>`` here.
    """

    def name(self) -> str:
        return "action_resume_task"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        reason = tracker.get_slot("handoff_reason")
        if reason:
            return hand_off(dispatcher, tracker, reason)
        if tracker.get_slot("end_call"):
            dispatcher.utter_message(response="utter_goodbye")
            return [SlotSet("active_task", None)]
        if not tracker.get_slot("verified"):
            return hand_off(dispatcher, tracker, REASON_TECHNICAL)
        if tracker.get_slot("task_result") == "switch":
            # The caller asked for something else in the middle: start that task's form (already verified).
            form = FORM_FOR_TASK.get(str(tracker.get_slot("pending_task")), "verify_form")
            return [SlotSet("task_result", None), SlotSet("active_task", None), FollowupAction(form)]
        task = tracker.get_slot("active_task")
        handler = getattr(self, f"_task_{task}", None)
        if handler is None:
            dispatcher.utter_message(response="utter_how_can_help")
            return [SlotSet("active_task", None)]
        customer_id = str(tracker.get_slot("customer_id"))
        try:
            events: list[EventType] = await handler(dispatcher, tracker, customer_id)
        except StoreError:
            log.warning("task failed conversation=%s task=%s", tracker.sender_id, task)
            return hand_off(dispatcher, tracker, REASON_TECHNICAL)
        dispatcher.utter_message(response="utter_anything_else")
        return [*events, SlotSet("active_task", None), SlotSet("task_result", None)]

    async def _task_balance(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, customer_id: str
    ) -> list[EventType]:
        account = await backends.store.get_account(customer_id)
        if account is None:
            dispatcher.utter_message(response="utter_no_account")
            return []
        owed = account.balance_cents < 0
        amount = say_money(abs(account.balance_cents))
        if account.last_payment_cents is not None and account.last_payment_date is not None:
            dispatcher.utter_message(
                response="utter_owed_and_payment" if owed else "utter_balance_and_payment",
                amount=amount,
                paid=say_money(account.last_payment_cents),
                date=say_date(account.last_payment_date, date.today()),
            )
        else:
            response = "utter_balance_owed" if owed else "utter_balance"
            dispatcher.utter_message(response=response, amount=amount)
        return []

    async def _task_order_status(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, customer_id: str
    ) -> list[EventType]:
        ref = tracker.get_slot("order_ref")
        if ref == "last":
            order = await backends.store.last_order(customer_id)
            if order is None:
                dispatcher.utter_message(response="utter_no_orders")
                return []
        else:
            order = await backends.store.get_order(str(ref), customer_id)
            if order is None:
                dispatcher.utter_message(response="utter_order_not_found")
                return []
        dispatcher.utter_message(response="utter_order_status", order_status_text=order_status_text(order))
        return []

    async def _task_place_order(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, customer_id: str
    ) -> list[EventType]:
        if tracker.get_slot("order_ok") is not True:
            dispatcher.utter_message(response="utter_order_dropped")
            return []
        lines = [OrderLine(str(tracker.get_slot("product")), int(tracker.get_slot("quantity") or 1))]
        if tracker.get_slot("upsell_ok") is True and tracker.get_slot("upsell"):
            lines.append(OrderLine(str(tracker.get_slot("upsell")), 1))
        order = await backends.store.create_order(customer_id, lines)
        log.info("order placed conversation=%s lines=%d", tracker.sender_id, len(lines))
        eta = on_day(order.eta) if order.eta else "soon"
        dispatcher.utter_message(response="utter_order_placed", number=say_digits(order.number), eta=eta)
        return []

    async def _task_appointment(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, customer_id: str
    ) -> list[EventType]:
        return _booking_done(dispatcher, tracker, "utter_booked")

    async def _task_reschedule(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, customer_id: str
    ) -> list[EventType]:
        return _booking_done(dispatcher, tracker, "utter_rescheduled")

    async def _task_cancel_appointment(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, customer_id: str
    ) -> list[EventType]:
        if tracker.get_slot("task_result") == "no_booking":
            dispatcher.utter_message(response="utter_no_booking")
        elif tracker.get_slot("cancel_ok") is True:
            dispatcher.utter_message(response="utter_cancelled")
        else:
            dispatcher.utter_message(response="utter_kept")
        return []

    async def _task_ask_appointment(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, customer_id: str
    ) -> list[EventType]:
        booking = await backends.store.next_booking(customer_id)
        if booking is None:
            dispatcher.utter_message(response="utter_no_booking")
            return []
        from actions.forms import branch_names, describe_booking

        text = describe_booking(booking, datetime.now(), await branch_names())
        dispatcher.utter_message(response="utter_current_booking", booking_text=text)
        return []

    async def _task_support(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, customer_id: str
    ) -> list[EventType]:
        from actions.forms import match_product, priority_for, unhappy_words, window_from_slot

        problem = str(tracker.get_slot("problem") or "")
        severity = tracker.get_slot("severity")
        unhappy = unhappy_words(problem)
        if not unhappy and severity not in ("total", "partial"):
            account = await backends.store.get_account(customer_id)
            open_tickets = await backends.store.open_incidents(customer_id)
            unhappy = bool(open_tickets) or (account is not None and account.balance_cents < 0)
        product = match_product(problem, await backends.store.list_products())
        number = (
            tracker.get_slot("caller_number")
            if tracker.get_slot("callback_ok") is True
            else tracker.get_slot("callback_number")
        )
        window = window_from_slot(tracker.get_slot("callback_when"))
        incident = await backends.store.create_incident(
            customer_id,
            product.product_id if product else None,
            priority_for(severity, unhappy),
            problem,
            callback_number=str(number) if number else None,
            callback_window=(window.start, window.end) if window else None,
        )
        log.info("incident registered conversation=%s priority=%d", tracker.sender_id, incident.priority)
        when = window_words((window.start, window.end)) if window else "as soon as we can"
        dispatcher.utter_message(
            response="utter_incident_registered", ticket=say_digits(incident.ticket), window=when
        )
        return []

    async def _task_incident_status(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, customer_id: str
    ) -> list[EventType]:
        from actions.forms import task_text

        digits = digits_from_speech(task_text(tracker)) or ""
        if len(digits) == 6:
            incident = await backends.store.get_incident(digits, customer_id)
            if incident is None:
                dispatcher.utter_message(response="utter_incident_not_found")
                return []
        else:
            open_tickets = await backends.store.open_incidents(customer_id)
            if not open_tickets:
                dispatcher.utter_message(response="utter_no_incidents")
                return []
            incident = open_tickets[0]
        dispatcher.utter_message(response="utter_incident_status", incident_text=incident_text(incident))
        return []


_ORDER_STATUS_WORDS = {
    "received": "has been received",
    "processing": "is being prepared",
    "shipped": "is on its way",
    "delivered": "has been delivered",
    "cancelled": "was cancelled",
}
_INCIDENT_STATUS_WORDS = {
    "open": "is open and waiting for a colleague",
    "in_progress": "is being worked on",
    "resolved": "is resolved",
    "closed": "is closed",
}


def order_status_text(order: Order) -> str:
    """ "Order one zero zero zero zero four, a wireless headset, is on its way. It should arrive ..." """
    what = order.items[0].name if len(order.items) == 1 else f"{number_words(len(order.items))} items"
    status = _ORDER_STATUS_WORDS.get(order.status, order.status)
    first = f"Order {say_digits(order.number)}, {_article(what)}, {status}."
    if order.eta is not None and order.status not in ("delivered", "cancelled"):
        return f"{first[:-1]} and should arrive {on_day(order.eta)}."
    return first


def incident_text(incident: Incident) -> str:
    status = _INCIDENT_STATUS_WORDS.get(incident.status, incident.status.replace("_", " "))
    first = f"Ticket {say_digits(incident.ticket)} {status}."
    if (
        incident.status in ("open", "in_progress")
        and incident.callback_from is not None
        and incident.callback_until is not None
        and incident.callback_until > datetime.now()
    ):
        window = window_words((incident.callback_from, incident.callback_until))
        return f"{first[:-1]}, and we'll call you back {window}."
    return first


def _booking_done(dispatcher: CollectingDispatcher, tracker: Tracker, response: str) -> list[EventType]:
    """The booking form's end: the appointment as booked (the form booked it), or no free slot."""
    if tracker.get_slot("task_result") == "no_slots" or tracker.get_slot("slot_ok") is not True:
        dispatcher.utter_message(response="utter_no_free_slots")
    else:
        dispatcher.utter_message(response=response, booking_text=tracker.get_slot("booking_text"))
    return []


def on_day(day: date) -> str:
    """ "tomorrow", "on Tuesday the first of December" """
    said = say_date(day, date.today())
    return said if said in ("today", "tomorrow") else f"on {said}"


def window_words(window: tuple[datetime, datetime]) -> str:
    start, end = window
    day = say_date(start.date(), date.today())
    return f"{day} between {say_time(start.time())} and {say_time(end.time())}"


def _article(what: str) -> str:
    if what[0].isdigit():
        return what
    return ("an " if what[0].lower() in "aeiou" else "a ") + what


# --- information line, referral, out of scope -----------------------------------------------------------


def say_then_offer_more(dispatcher: CollectingDispatcher, text: str) -> None:
    """An answer, then "anything else?" unless the answer already took two sentences."""
    dispatcher.utter_message(response="utter_info", info_text=text)
    if len([s for s in re.split(r"[.?!]+", text) if s.strip()]) < 2:
        dispatcher.utter_message(response="utter_anything_else")


class ActionOutOfScope(Action):
    """One short answer, and what the bot can do for this kind of caller."""

    def name(self) -> str:
        return "action_out_of_scope"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        existing = tracker.get_slot("caller_kind") == EXISTING or tracker.get_slot("verified")
        dispatcher.utter_message(response="utter_out_of_scope" if existing else "utter_out_of_scope_sales")
        return []


class ActionReferral(Action):
    """ "A friend recommended you": welcome them, and remember how they came to us."""

    def name(self) -> str:
        return "action_referral"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        try:
            customer = await backends.store.find_customer_by_number(tracker.get_slot("caller_number"))
            if customer is not None and customer.referral_source is None:
                await backends.store.set_referral_source(customer.customer_id, "friend")
        except StoreError:
            log.warning("could not record the referral conversation=%s", tracker.sender_id)
        dispatcher.utter_message(response="utter_referral")
        return [SlotSet("referral", True)]


class ActionHours(Action):
    """Opening hours (the information line, no verification)."""

    def name(self) -> str:
        return "action_hours"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        from actions.info import hours_reply

        try:
            branches = await backends.store.branches()
        except StoreError:
            return hand_off(dispatcher, tracker, REASON_TECHNICAL)
        text = hours_reply(branches, tracker.latest_message.get("text") or "", datetime.now())
        say_then_offer_more(dispatcher, text)
        return []


class ActionBranches(Action):
    """Addresses and the nearest branch (the information line, no verification)."""

    def name(self) -> str:
        return "action_branches"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        from actions.info import branch_reply

        try:
            branches = await backends.store.branches()
        except StoreError:
            return hand_off(dispatcher, tracker, REASON_TECHNICAL)
        text = branch_reply(branches, tracker.latest_message.get("text") or "")
        say_then_offer_more(dispatcher, text)
        return []


class ActionFaq(Action):
    """Frequent questions, answered from nlu-data/faq.yml; no answer -> the offer of a person."""

    def name(self) -> str:
        return "action_faq"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        entry = faq().answer(tracker.latest_message.get("text") or "")
        if entry is None:
            dispatcher.utter_message(response="utter_faq_unknown")
            return [FollowupAction("utter_offer_agent")]
        say_then_offer_more(dispatcher, entry.answer)
        return []


_FAQ: list[Any] = []


def faq() -> Any:
    """The FAQ file, loaded once per action server (editors' changes apply on the next start)."""
    if not _FAQ:
        from actions.info import load_faq

        _FAQ.append(load_faq(FAQ_PATH))
    return _FAQ[0]


# --- escape and misunderstanding ------------------------------------------------------------------------


class ActionHandoff(Action):
    """Hand the call to a person. The reason follows from how we got here."""

    def name(self) -> str:
        return "action_handoff"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        reason = tracker.get_slot("handoff_reason")
        if not reason:
            if intent == "deny":
                reason = REASON_VERIFICATION_FAILED  # only reached from the PIN prompt: "I don't know it"
            elif intent == "nlu_fallback":
                reason = REASON_NO_MATCH
            else:
                reason = REASON_REQUESTED  # asked for a person, or accepted our offer of one
        return hand_off(dispatcher, tracker, reason)


def consecutive_misunderstandings(events: list[dict[str, Any]]) -> int:
    """Caller turns in a row, ending with the current one, that ``action_fallback`` answered.

    The current turn counts (``action_fallback`` is running for it); earlier turns count while each was
    answered by ``action_fallback``. A new session breaks the run.
    """
    count = 1
    passed_current = False
    fallback_in_turn = False
    for event in reversed(events):
        kind = event.get("event")
        if kind in ("session_started", "restart"):
            break
        if kind == "action" and event.get("name") == "action_fallback":
            fallback_in_turn = True
        elif kind == "user":
            if not passed_current:
                passed_current = True
            elif fallback_in_turn:
                count += 1
            else:
                break
            fallback_in_turn = False
    return count


class ActionFallback(Action):
    """The caller was not understood: ask again once; the second time in a row, hand over."""

    def name(self) -> str:
        return "action_fallback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        in_form = bool(tracker.active_loop.get("name"))
        if consecutive_misunderstandings(tracker.events) >= MAX_MISUNDERSTANDINGS:
            if in_form:
                # The form ends on its next run and action_resume_task hands over.
                return [SlotSet("handoff_reason", REASON_NO_MATCH)]
            return hand_off(dispatcher, tracker, REASON_NO_MATCH)
        # Inside a form the form repeats its question right after, so keep this one short.
        dispatcher.utter_message(response="utter_rephrase_short" if in_form else "utter_rephrase")
        return []
