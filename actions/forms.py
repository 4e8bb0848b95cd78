"""The task forms: verification first, then the task's own questions, one at a time.

Every task that touches a customer's records is a form (``nlu-data/domain.yml``, ``forms``). While a form is
active it receives every answer (slot mappings ``from_text``); the ``validate_*`` methods here decide what
the answer means. Common to every question:

- "agent", "a real person" -> the form ends, ``action_resume_task`` hands over with reason ``requested``;
- "goodbye" -> the form ends, ``action_resume_task`` says goodbye;
- an answer the form cannot use -> the question again (with a hint); the second one in a row ends the form
  and hands over with reason ``no-match``.

Verification (``pin`` or ``dob``): the channel puts the PIN or date of birth aside in Redis and the slot
holds only a reference (``actions/vault.py``); it is compared with the store's salted hash and dropped.
Three failures in all hand over with reason ``verification-failed``. "I don't know my PIN" switches to the
date of birth when one is on file.

When verification succeeds, what the caller already said when asking ("i'd like to order two headsets",
"book me in next tuesday afternoon") fills the task's first questions, so they are not asked again.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import Any

from rasa_sdk import FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.actions import (
    REASON_NO_MATCH,
    REASON_NOT_FOUND,
    REASON_REQUESTED,
    REASON_TECHNICAL,
    REASON_VERIFICATION_FAILED,
    backends,
)
from actions.speech import digits_from_speech, number_words, say_date, say_digits, say_money, say_time
from actions.store import Booking, Product, Slot, SlotTaken, StoreError
from actions.vault import UNAVAILABLE, UNREADABLE, SecretStashError, is_ref
from actions.when import Window, parse_quantity, parse_when

log = logging.getLogger(__name__)

MAX_VERIFY_ATTEMPTS = 3
MAX_MISSES = 2
PIN_LENGTH = 4
MAX_DECLINED = 3
SWITCH_CONFIDENCE = 0.9
"""How sure the classifier must be that an answer is really a new request before the task changes."""
SEARCH_AHEAD = timedelta(days=14)

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

_YES = frozenset("yes yeah yep yup sure correct right ok okay fine please absolutely definitely".split())
_NO = frozenset("no nope nah not don't dont wrong never".split())
_DONT_KNOW = re.compile(
    r"\b(don'?t know|do not know|forgot|forgotten|no idea|not sure|can'?t remember|cannot remember|"
    r"don'?t have|do not have|don'?t remember|lost it)\b"
)
_LAST = re.compile(r"\b(last|latest|recent|newest|most recent)\b")


# --- what the caller said -----------------------------------------------------------------------------


def intent_of(tracker: Tracker) -> str | None:
    return (tracker.latest_message.get("intent") or {}).get("name")


def task_text(tracker: Tracker) -> str:
    """What the caller said when asking for the current task (empty for a keypad shortcut)."""
    task = tracker.get_slot("active_task") or tracker.get_slot("pending_task")
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


def describe_slot(slot: Slot, now: datetime, branch_names: dict[str, str]) -> str:
    """ "Tuesday the twenty fourth of November at ten a m at Downtown" """
    where = branch_names.get(slot.branch_id, "our branch")
    return f"{say_date(slot.starts.date(), now.date())} at {say_time(slot.starts.time())} at {where}"


def describe_booking(booking: Booking, now: datetime, branch_names: dict[str, str]) -> str:
    """ "on Tuesday the twenty fourth of November at ten a m at Downtown", "tomorrow at ten a m at ..." """
    said = describe_slot(booking.slot, now, branch_names)
    return said if said.startswith(("today", "tomorrow")) else f"on {said}"


async def branch_names() -> dict[str, str]:
    return {b.branch_id: b.name for b in await backends.store.branches()}


# --- the common form -----------------------------------------------------------------------------------


class TaskForm(FormValidationAction):
    """Verification, the escape words, and the misunderstanding count, for every task form."""

    form = "verify_form"
    task_slots_reset: tuple[str, ...] = ()

    def name(self) -> str:
        return f"validate_{self.form}"

    # what to ask

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        if (
            tracker.get_slot("handoff_reason")
            or tracker.get_slot("end_call")
            or tracker.get_slot("task_result")
        ):
            return []
        if not tracker.get_slot("verified"):
            return ["dob" if tracker.get_slot("verify_by") == "dob" else "pin"]
        slots = self.task_slots(tracker)
        # The answer just given is still raw text ("yes", "my last order"): it must be validated even though
        # the slot is no longer empty. (Rasa validates only required slots, and asks for empty ones.)
        requested = tracker.get_slot("requested_slot")
        if (
            requested
            and requested not in slots
            and requested in tracker.slots_to_validate()
            and tracker.get_slot(requested) is not None
        ):
            slots = [requested, *slots]
        return slots

    def task_slots(self, tracker: Tracker) -> list[str]:
        """The task's own questions still to ask, in order (verification is done)."""
        return []

    async def prefill(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """Slots the request itself already answers, validated; called once the caller is verified."""
        return {}

    async def start(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """Task set-up once verified and before the first question (e.g. find the booking to cancel)."""
        return {}

    # running

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        before: dict[str, Any] = {}
        if tracker.get_slot("requested_slot") is None:  # the form is starting
            before = {name: None for name in self.task_slots_reset}
            before.update(
                misses=0, task_result=None, end_call=False, active_task=tracker.get_slot("pending_task")
            )
            _apply(tracker, before)
            if tracker.get_slot("verified"):
                _apply(tracker, changes := await self._begin_task(dispatcher, tracker, domain))
                before.update(changes)
            else:
                _apply(tracker, changes := await self._who_is_calling(tracker))
                before.update(changes)
        events: list[EventType] = [SlotSet(k, v) for k, v in before.items()]
        return events + await super().run(dispatcher, tracker, domain)

    async def _who_is_calling(self, tracker: Tracker) -> dict[str, Any]:
        try:
            customer = await backends.store.find_customer_by_number(tracker.get_slot("caller_number"))
        except StoreError:
            log.warning("store lookup failed conversation=%s", tracker.sender_id)
            return {"handoff_reason": REASON_TECHNICAL}
        if customer is None or not (customer.has_pin or customer.has_dob):
            return {"handoff_reason": REASON_NOT_FOUND}
        return {"verify_by": "pin" if customer.has_pin else "dob"}

    async def _begin_task(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        try:
            changes = await self.start(dispatcher, tracker, domain)
            _apply(tracker, changes)
            if not changes.get("task_result") and not changes.get("handoff_reason"):
                filled = await self.prefill(dispatcher, tracker, domain)
                changes.update(filled)
        except StoreError:
            log.warning("store failed at task start conversation=%s form=%s", tracker.sender_id, self.form)
            return {"handoff_reason": REASON_TECHNICAL}
        return changes

    # the escape words and misunderstandings

    def escape(self, slot: str, tracker: Tracker) -> dict[str, Any] | None:
        intent = intent_of(tracker)
        if intent == "request_agent":
            return {slot: None, "handoff_reason": REASON_REQUESTED}
        if intent == "goodbye":
            return {slot: None, "end_call": True}
        other = TASK_INTENTS.get(intent or "")
        confidence = float((tracker.latest_message.get("intent") or {}).get("confidence") or 0.0)
        if (
            other is not None
            and other != tracker.get_slot("active_task")
            and confidence >= SWITCH_CONFIDENCE
            and tracker.get_slot("verified")
        ):
            return {slot: None, "task_result": "switch"}  # action_resume_task starts the other task
        return None

    def missed(
        self, slot: str, tracker: Tracker, dispatcher: CollectingDispatcher, hint: str | None, **kw: Any
    ) -> dict[str, Any]:
        """An answer the form cannot use: the question again, or a person after two in a row."""
        misses = int(tracker.get_slot("misses") or 0) + 1
        if misses >= MAX_MISSES:
            return {slot: None, "misses": misses, "handoff_reason": REASON_NO_MATCH}
        if hint:
            dispatcher.utter_message(response=hint, **kw)
        return {slot: None, "misses": misses}

    # verification

    async def validate_pin(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return await self._verify("pin", slot_value, dispatcher, tracker, domain)

    async def validate_dob(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return await self._verify("dob", slot_value, dispatcher, tracker, domain)

    async def _verify(
        self,
        slot: str,
        value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        if tracker.get_slot("handoff_reason") or tracker.get_slot("verified"):
            return {slot: None}
        escaped = self.escape(slot, tracker)
        if escaped:
            return escaped
        if value == UNAVAILABLE:
            return {slot: None, "handoff_reason": REASON_TECHNICAL}
        if not is_ref(value):
            # Not a PIN or a date: "i don't know it", or something else entirely.
            if intent_of(tracker) == "deny" or _DONT_KNOW.search(str(value or "").lower()):
                return await self._other_way(slot, dispatcher, tracker)
            not_understood = intent_of(tracker) == "nlu_fallback"
            dispatcher.utter_message(
                response="utter_rephrase_short" if not_understood else "utter_pin_needed"
            )
            return self.missed(slot, tracker, dispatcher, None)
        try:
            secret = await backends.stash.take(str(value), tracker.sender_id)
            if secret == UNREADABLE:  # words like a date that make none: ask again, not a failed check
                return self.missed(slot, tracker, dispatcher, "utter_dob_unclear")
            customer = await backends.store.find_customer_by_number(tracker.get_slot("caller_number"))
            if customer is None:
                return {slot: None, "handoff_reason": REASON_NOT_FOUND}
            if slot == "pin":
                ok = (
                    bool(secret)
                    and len(secret or "") == PIN_LENGTH
                    and await backends.store.verify_pin(customer.customer_id, secret or "")
                )
            else:
                ok = bool(secret) and await backends.store.verify_dob(customer.customer_id, secret or "")
        except (SecretStashError, StoreError):
            log.warning("verification backend failed conversation=%s", tracker.sender_id)
            return {slot: None, "handoff_reason": REASON_TECHNICAL}
        finally:
            secret = None  # drop it as soon as it has been compared
        if ok:
            log.info("verified conversation=%s by=%s", tracker.sender_id, slot)
            result: dict[str, Any] = {
                slot: None,
                "verified": True,
                "customer_id": customer.customer_id,
                "misses": 0,
            }
            _apply(tracker, result)
            result.update(await self._begin_task(dispatcher, tracker, domain))
            return result
        attempts = int(tracker.get_slot("pin_attempts") or 0) + 1
        log.info("verification mismatch conversation=%s attempt=%d", tracker.sender_id, attempts)
        if attempts >= MAX_VERIFY_ATTEMPTS:
            return {slot: None, "pin_attempts": attempts, "handoff_reason": REASON_VERIFICATION_FAILED}
        dispatcher.utter_message(response="utter_pin_wrong" if slot == "pin" else "utter_dob_wrong")
        return {slot: None, "pin_attempts": attempts}

    async def _other_way(
        self, slot: str, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> dict[str, Any]:
        """ "I don't know my PIN": the date of birth instead when there is one, else a person."""
        if slot == "pin":
            try:
                customer = await backends.store.find_customer_by_number(tracker.get_slot("caller_number"))
            except StoreError:
                return {slot: None, "handoff_reason": REASON_TECHNICAL}
            if customer is not None and customer.has_dob:
                dispatcher.utter_message(response="utter_dob_instead")
                return {slot: None, "verify_by": "dob", "misses": 0}
        return {slot: None, "handoff_reason": REASON_VERIFICATION_FAILED}


def _apply(tracker: Tracker, changes: dict[str, Any]) -> None:
    """Make slot changes visible to the rest of this run without adding events to validate."""
    tracker.slots.update(changes)


class ValidateVerifyForm(TaskForm):
    """Balance, "when is my appointment", ticket status: verification is all the form asks."""

    form = "verify_form"


# --- order status ----------------------------------------------------------------------------------------


class ValidateOrderStatusForm(TaskForm):
    """ "Where is my order": by number (read back for confirmation) or "my last order"."""

    form = "order_status_form"
    task_slots_reset = ("order_ref", "order_ref_ok", "order_ref_spoken")

    def task_slots(self, tracker: Tracker) -> list[str]:
        ref = tracker.get_slot("order_ref")
        if ref is None:
            return ["order_ref"]
        if ref != "last" and tracker.get_slot("order_ref_ok") is None:
            return ["order_ref_ok"]
        return []

    async def prefill(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = task_text(tracker)
        if _LAST.search(text.lower()) or len(digits_from_speech(text) or "") == 6:
            return self._order_ref(text)
        return {}

    def _order_ref(self, text: str) -> dict[str, Any]:
        digits = digits_from_speech(text) or ""
        if len(digits) == 6:
            return {"order_ref": digits, "order_ref_spoken": say_digits(digits), "misses": 0}
        if _LAST.search(text.lower()):
            return {"order_ref": "last", "misses": 0}
        return {}

    def validate_order_ref(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        escaped = self.escape("order_ref", tracker)
        if escaped:
            return escaped
        found = self._order_ref(str(slot_value or ""))
        if found:
            return found
        return self.missed("order_ref", tracker, dispatcher, "utter_rephrase_short")

    def validate_order_ref_ok(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        escaped = self.escape("order_ref_ok", tracker)
        if escaped:
            return escaped
        # A different number said instead of yes or no: read that one back.
        other = self._order_ref(str(slot_value or ""))
        if other.get("order_ref") not in (None, "last", tracker.get_slot("order_ref")):
            return {**other, "order_ref_ok": None}
        answer = yes_or_no(tracker, slot_value)
        if answer is True:
            return {"order_ref_ok": True, "misses": 0}
        if answer is False:
            return {"order_ref_ok": None, "order_ref": None, "order_ref_spoken": None, "misses": 0}
        return self.missed("order_ref_ok", tracker, dispatcher, "utter_yes_or_no")


# --- order desk ------------------------------------------------------------------------------------------


class ValidateOrderForm(TaskForm):
    """A new order: which product (and how many), confirm, one suggestion, then the order is placed."""

    form = "order_form"
    task_slots_reset = (
        "product",
        "quantity",
        "order_summary",
        "order_ok",
        "upsell",
        "upsell_text",
        "upsell_ok",
    )

    def task_slots(self, tracker: Tracker) -> list[str]:
        if tracker.get_slot("product") is None:
            return ["product"]
        if tracker.get_slot("order_ok") is None:
            return ["order_ok"]
        if tracker.get_slot("order_ok") is False:
            return []
        if tracker.get_slot("upsell") and tracker.get_slot("upsell_ok") is None:
            return ["upsell_ok"]
        return []

    async def prefill(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = task_text(tracker)
        products = await backends.store.list_products()
        if text and match_product(text, products):
            return await self._product(text, products, dispatcher, tracker)
        return {}

    async def _product(
        self, text: str, products: list[Product], dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> dict[str, Any]:
        product = match_product(text, products)
        if product is None:
            return {}
        qty = parse_quantity(text) or 1
        total = say_money(product.price_cents * qty)
        name = product.name if qty == 1 else _plural(product.name)
        summary = f"{_count(qty)} {name} for {total}."
        return {"product": product.product_id, "quantity": float(qty), "order_summary": summary, "misses": 0}

    async def validate_product(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        escaped = self.escape("product", tracker)
        if escaped:
            return escaped
        try:
            products = await backends.store.list_products()
        except StoreError:
            return {"product": None, "handoff_reason": REASON_TECHNICAL}
        found = await self._product(str(slot_value or ""), products, dispatcher, tracker)
        if found:
            return found
        catalogue = _and_list([_plural(p.name) for p in products])
        return self.missed("product", tracker, dispatcher, "utter_product_unknown", catalogue=catalogue)

    async def validate_order_ok(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        escaped = self.escape("order_ok", tracker)
        if escaped:
            return escaped
        answer = yes_or_no(tracker, slot_value)
        if answer is None:
            return self.missed("order_ok", tracker, dispatcher, "utter_yes_or_no")
        if answer is False:
            return {"order_ok": False, "task_result": "declined", "misses": 0}
        try:
            suggestion = await self._suggestion(str(tracker.get_slot("product")))
        except StoreError:
            suggestion = {}  # a suggestion is optional; the order is not
        return {"order_ok": True, "misses": 0, **suggestion}

    async def _suggestion(self, ordered: str) -> dict[str, Any]:
        """One unobtrusive suggestion: a current promotion on another product, else the warranty."""
        products = await backends.store.list_products()
        for product in products:
            if product.product_id == ordered:
                continue
            promo = await backends.store.promotion_for(product.product_id)
            if promo is not None:
                text = f"{promo.text.rstrip('.')}. Would you like to add one?"
                return {"upsell": product.product_id, "upsell_text": text}
        warranty = next((p for p in products if "warranty" in p.name.lower()), None)
        if warranty is not None and warranty.product_id != ordered:
            text = f"Would you like to add an {warranty.name} for {say_money(warranty.price_cents)}?"
            return {"upsell": warranty.product_id, "upsell_text": text}
        return {}

    def validate_upsell_ok(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        escaped = self.escape("upsell_ok", tracker)
        if escaped:
            return escaped
        answer = yes_or_no(tracker, slot_value)
        if answer is None:
            # Not worth a second try: no means no.
            return {"upsell_ok": False}
        return {"upsell_ok": answer, "misses": 0}


def _count(n: int) -> str:
    return number_words(n).capitalize()


def _plural(name: str) -> str:
    if name.lower().endswith("warranty"):
        return name[:-1] + "ies"
    return name if name.endswith("s") else name + "s"


def _and_list(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


# --- bookings --------------------------------------------------------------------------------------------


class ValidateBookingForm(TaskForm):
    """Book (or move) an appointment: when would suit, then one free slot offered at a time."""

    form = "booking_form"
    task_slots_reset = (
        "booking_when",
        "offer_slot",
        "offer_at",
        "offer_text",
        "declined",
        "slot_ok",
        "booking_text",
    )

    def task_slots(self, tracker: Tracker) -> list[str]:
        if tracker.get_slot("booking_when") is None:
            return ["booking_when"]
        if tracker.get_slot("slot_ok") is None:
            return ["slot_ok"]
        return []

    async def start(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if tracker.get_slot("active_task") != "reschedule":
            return {"booking_id": None}
        booking = await backends.store.next_booking(str(tracker.get_slot("customer_id")))
        if booking is None:
            dispatcher.utter_message(response="utter_no_booking_to_move")
            return {"active_task": "appointment", "booking_id": None}
        text = describe_booking(booking, datetime.now(), await branch_names())
        return {"booking_id": float(booking.booking_id), "booking_text": text}

    async def prefill(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = task_text(tracker)
        if text and parse_when(text, datetime.now()) is not None:
            return await self._offer_for(text, dispatcher, tracker)
        if _moving(tracker):  # "when would suit you" follows: say first which appointment is moving
            dispatcher.utter_message(
                response="utter_current_booking", booking_text=tracker.get_slot("booking_text")
            )
        return {}

    async def _offer_for(
        self, text: str, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> dict[str, Any]:
        now = datetime.now()
        window = parse_when(text, now)
        if window is None:
            return {}
        offer = await self._first_free(window, now, after=None)
        if offer is None:
            return {"booking_when": None, "task_result": "no_slots"}
        slot, inside = offer
        return self._offer(slot, inside, window, now, await branch_names(), 0, _moving(tracker))

    async def _first_free(
        self, window: Window, now: datetime, after: datetime | None
    ) -> tuple[Slot, bool] | None:
        """The first free slot in the window (after ``after``), else the first one after the window."""
        start = max(window.start, now, after or window.start)
        if start < window.end:
            inside = await backends.store.free_slots(start, window.end, n=1)
            if inside:
                return inside[0], True
        later = await backends.store.free_slots(
            max(window.end, start), max(window.end, start) + SEARCH_AHEAD, n=1
        )
        return (later[0], False) if later else None

    def _offer(
        self,
        slot: Slot,
        inside: bool,
        window: Window,
        now: datetime,
        names: dict[str, str],
        declined: int,
        moving: bool,
    ) -> dict[str, Any]:
        when = describe_slot(slot, now, names)
        question = " Shall I move your appointment there?" if moving else " Shall I book it?"
        lead = "I have" if inside else "Nothing is free then, but I have"
        return {
            "booking_when": window_slot(window),
            "offer_slot": float(slot.slot_id),
            "offer_at": slot.starts.isoformat(),
            "offer_text": f"{lead} {when}.{question}",
            "declined": float(declined),
            "misses": 0,
        }

    async def validate_booking_when(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        escaped = self.escape("booking_when", tracker)
        if escaped:
            return escaped
        text = str(slot_value or "")
        if parse_when(text, datetime.now()) is None:
            return self.missed("booking_when", tracker, dispatcher, "utter_when_unclear")
        try:
            return await self._offer_for(text, dispatcher, tracker)
        except StoreError:
            return {"booking_when": None, "handoff_reason": REASON_TECHNICAL}

    async def validate_slot_ok(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        escaped = self.escape("slot_ok", tracker)
        if escaped:
            return escaped
        text = str(slot_value or "")
        now = datetime.now()
        try:
            # Another day or time instead of yes or no ("no, thursday afternoon"): offer for that.
            if parse_when(text, now) is not None and intent_of(tracker) != "affirm":
                return {**await self._offer_for(text, dispatcher, tracker), "slot_ok": None}
            answer = yes_or_no(tracker, text)
            if answer is None:
                return self.missed("slot_ok", tracker, dispatcher, "utter_yes_or_no")
            if answer is False:
                return await self._next_offer(tracker, now)
            return await self._take(dispatcher, tracker, now)
        except StoreError:
            log.warning("booking failed conversation=%s", tracker.sender_id)
            return {"slot_ok": None, "handoff_reason": REASON_TECHNICAL}

    async def _next_offer(self, tracker: Tracker, now: datetime) -> dict[str, Any]:
        declined = int(tracker.get_slot("declined") or 0) + 1
        if declined >= MAX_DECLINED:
            # Three times no: ask for another day altogether.
            return {"slot_ok": None, "booking_when": None, "offer_slot": None, "declined": 0, "misses": 0}
        window = window_from_slot(tracker.get_slot("booking_when")) or Window(now, now + SEARCH_AHEAD, False)
        try:
            after = datetime.fromisoformat(str(tracker.get_slot("offer_at"))) + timedelta(minutes=1)
        except ValueError:
            after = now
        offer = await self._first_free(window, now, after=after)
        if offer is None:
            return {"slot_ok": None, "booking_when": None, "declined": 0}
        slot, inside = offer
        names = await branch_names()
        return {**self._offer(slot, inside, window, now, names, declined, _moving(tracker)), "slot_ok": None}

    async def _take(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, now: datetime
    ) -> dict[str, Any]:
        customer_id = str(tracker.get_slot("customer_id"))
        slot_id = int(tracker.get_slot("offer_slot") or 0)
        try:
            if _moving(tracker):
                booking = await backends.store.reschedule(
                    customer_id, int(tracker.get_slot("booking_id") or 0), slot_id
                )
            else:
                booking = await backends.store.book(customer_id, slot_id)
        except SlotTaken:
            offer = await self._next_offer(tracker, now)
            if offer.get("offer_text"):
                rest = str(offer["offer_text"]).split("I have", 1)[-1]
                offer["offer_text"] = "Sorry, that time has just gone, but I have" + rest
            return offer
        log.info("booked conversation=%s moved=%s", tracker.sender_id, _moving(tracker))
        text = describe_booking(booking, now, await branch_names())
        return {"slot_ok": True, "booking_text": text, "booking_id": float(booking.booking_id), "misses": 0}


def _moving(tracker: Tracker) -> bool:
    """Whether the booking form is moving an existing appointment rather than making a new one."""
    return tracker.get_slot("active_task") == "reschedule" and bool(tracker.get_slot("booking_id"))


def window_slot(window: Window) -> str:
    """A time window as a slot keeps it: ``start|end`` in ISO format."""
    return f"{window.start.isoformat()}|{window.end.isoformat()}"


def window_from_slot(value: Any) -> Window | None:
    """The window :func:`window_slot` wrote, or ``None`` for anything else."""
    try:
        start_text, end_text = str(value).split("|")
        return Window(datetime.fromisoformat(start_text), datetime.fromisoformat(end_text), False)
    except ValueError:
        return None


# --- cancelling ------------------------------------------------------------------------------------------


class ValidateCancelForm(TaskForm):
    """Cancel the caller's next appointment after reading it back."""

    form = "cancel_form"
    task_slots_reset = ("booking_id", "booking_text", "cancel_ok")

    def task_slots(self, tracker: Tracker) -> list[str]:
        return ["cancel_ok"] if tracker.get_slot("cancel_ok") is None else []

    async def start(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        booking = await backends.store.next_booking(str(tracker.get_slot("customer_id")))
        if booking is None:
            return {"task_result": "no_booking"}
        text = describe_booking(booking, datetime.now(), await branch_names())
        return {"booking_id": float(booking.booking_id), "booking_text": text}

    async def validate_cancel_ok(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        escaped = self.escape("cancel_ok", tracker)
        if escaped:
            return escaped
        answer = yes_or_no(tracker, slot_value)
        if answer is None:
            return self.missed("cancel_ok", tracker, dispatcher, "utter_yes_or_no")
        if answer is False:
            return {"cancel_ok": False, "misses": 0}
        try:
            await backends.store.cancel(
                str(tracker.get_slot("customer_id")), int(tracker.get_slot("booking_id") or 0)
            )
        except StoreError:
            log.warning("cancel failed conversation=%s", tracker.sender_id)
            return {"cancel_ok": None, "handoff_reason": REASON_TECHNICAL}
        log.info("booking cancelled conversation=%s", tracker.sender_id)
        return {"cancel_ok": True, "misses": 0}


# --- support line ----------------------------------------------------------------------------------------

_TOTAL = re.compile(
    r"\b(at all|nothing works|nothing is working|completely|totally|dead|won'?t (turn|switch) on|"
    r"doesn'?t (turn|switch) on|no (service|signal|power|connection)|stopped working|fully down|entirely|"
    r"(is|are|s) down|outage)\b"
)
_PARTIAL = re.compile(
    r"\b(partly|partially|sometimes|some of|some things|intermittent|on and off|keeps? (dropping|cutting)|"
    r"drops?|slow|only|half|crackl\w*|now and then|occasionally|part of)\b"
)
_FAULT = re.compile(
    r"\b(not working|isn'?t working|doesn'?t work|don'?t work|broken|broke|fault\w*|stopped|down|"
    r"crash\w*|won'?t|can'?t|cannot|dropping|drops?|no signal|problem with|issue with|error)\b"
)
_UNHAPPY = re.compile(
    r"\b(complain\w*|complaint|fed up|angry|unacceptable|ridiculous|disappointed|again|third time|"
    r"second time|still not|terrible|awful|useless|frustrat\w*)\b"
)


def outage_kind(text: str) -> str | None:
    """ "total", "partial", "fault" (an outage, extent unknown) or ``None`` (a question, not a fault)."""
    lowered = text.lower()
    if _PARTIAL.search(lowered):
        return "partial"
    if _TOTAL.search(lowered):
        return "total"
    if _FAULT.search(lowered):
        return "fault"
    return None


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
        products = await backends.store.list_products()
        if outage_kind(text) or match_product(text, products) or _UNHAPPY.search(text.lower()):
            return self._problem(text)
        return {}

    def _problem(self, text: str) -> dict[str, Any]:
        kind = outage_kind(text)
        severity = {"total": "total", "partial": "partial", None: "consultation"}.get(kind)
        return {"problem": text.strip()[:500], "severity": severity, "misses": 0}

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
        window = parse_when(str(slot_value or ""), datetime.now())
        if window is None:
            return self.missed("callback_when", tracker, dispatcher, "utter_when_unclear")
        return {"callback_when": window_slot(window), "misses": 0}
