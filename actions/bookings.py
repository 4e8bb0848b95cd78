"""Appointments: book one, move one, cancel one, and "when is my appointment".

Booking and moving share a form: when would suit (a time window, :func:`actions.shared.when.parse_when`),
then one free slot offered at a time; "no" offers the next, another day or time offers for that. The offer is
the form's question ``utter_ask_slot_ok``, with one variation per ``offer_kind``: ``book`` / ``move`` (a slot
in the time asked for), ``..._later`` (nothing then, the first one after), ``..._gone`` (the one accepted was
taken a moment ago). An appointment is said as ``{booking_day}`` ("tomorrow", "on Tuesday the first of
December"), ``{booking_time}`` and ``{booking_branch}``; an offer as ``{offer_day}`` ("Tuesday the first of
December"), ``{offer_time}`` and ``{offer_branch}``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.deps import Deps
from actions.heard import intent_of, task_text, yes_or_no
from actions.shared.speech import on_day, say_date, say_time
from actions.shared.when import Window, parse_when, window_from_slot, window_slot
from actions.store import Booking, CustomerStore, Slot, SlotTaken, StoreError
from actions.verify import TaskForm
from telephony.callstate import Reason

log = logging.getLogger(__name__)

MAX_DECLINED = 3
SEARCH_AHEAD = timedelta(days=14)
UNKNOWN_BRANCH = "our branch"
"""Said for a slot whose branch the store does not list (a store inconsistency, not a normal case)."""

BOOKING_SLOTS = ("booking_day", "booking_time", "booking_branch")
OFFER_SLOTS = ("offer_day", "offer_time", "offer_branch", "offer_kind")


# --- what is said ---------------------------------------------------------------------------------------


async def branch_names(store: CustomerStore) -> dict[str, str]:
    return {b.branch_id: b.name for b in await store.branches()}


def booking_values(booking: Booking, now: datetime, names: dict[str, str]) -> dict[str, str]:
    """``booking_day`` ("tomorrow", "on Tuesday the twenty fourth of November"), ``booking_time``,
    ``booking_branch``."""
    slot = booking.slot
    return {
        "booking_day": on_day(slot.starts.date(), now.date()),
        "booking_time": say_time(slot.starts.time()),
        "booking_branch": names.get(slot.branch_id, UNKNOWN_BRANCH),
    }


def offer_values(slot: Slot, now: datetime, names: dict[str, str]) -> dict[str, str]:
    """``offer_day`` ("tomorrow", "Tuesday the twenty fourth of November"), ``offer_time``,
    ``offer_branch``."""
    return {
        "offer_day": say_date(slot.starts.date(), now.date()),
        "offer_time": say_time(slot.starts.time()),
        "offer_branch": names.get(slot.branch_id, UNKNOWN_BRANCH),
    }


def _booking_said(tracker: Tracker) -> dict[str, str]:
    return {name: str(tracker.get_slot(name) or "") for name in BOOKING_SLOTS}


def _moving(tracker: Tracker) -> bool:
    """Whether the booking form is moving an existing appointment rather than making a new one."""
    return tracker.get_slot("active_task") == "reschedule" and bool(tracker.get_slot("booking_id"))


# --- after the forms ------------------------------------------------------------------------------------


def _booking_done(dispatcher: CollectingDispatcher, tracker: Tracker, moved: bool) -> list[EventType]:
    """The booking form's end: the appointment as booked (the form booked it), or no free slot."""
    if tracker.get_slot("task_result") == "no_slots" or tracker.get_slot("slot_ok") is not True:
        dispatcher.utter_message(response="utter_no_free_slots")
    elif moved:
        dispatcher.utter_message(response="utter_rescheduled", **_booking_said(tracker))
    else:
        dispatcher.utter_message(response="utter_booked", **_booking_said(tracker))
    return []


async def tell_booked(
    deps: Deps, dispatcher: CollectingDispatcher, tracker: Tracker, customer_id: str
) -> list[EventType]:
    return _booking_done(dispatcher, tracker, moved=False)


async def tell_rescheduled(
    deps: Deps, dispatcher: CollectingDispatcher, tracker: Tracker, customer_id: str
) -> list[EventType]:
    return _booking_done(dispatcher, tracker, moved=True)


async def tell_cancelled(
    deps: Deps, dispatcher: CollectingDispatcher, tracker: Tracker, customer_id: str
) -> list[EventType]:
    if tracker.get_slot("task_result") == "no_booking":
        dispatcher.utter_message(response="utter_no_booking")
    elif tracker.get_slot("cancel_ok") is True:
        dispatcher.utter_message(response="utter_cancelled")
    else:
        dispatcher.utter_message(response="utter_kept")
    return []


async def tell_next_booking(
    deps: Deps, dispatcher: CollectingDispatcher, tracker: Tracker, customer_id: str
) -> list[EventType]:
    booking = await deps.store.next_booking(customer_id)
    if booking is None:
        dispatcher.utter_message(response="utter_no_booking")
        return []
    said = booking_values(booking, deps.now(), await branch_names(deps.store))
    dispatcher.utter_message(response="utter_current_booking", **said)
    return []


# --- booking and moving ---------------------------------------------------------------------------------


class ValidateBookingForm(TaskForm):
    """Book (or move) an appointment: when would suit, then one free slot offered at a time."""

    form = "booking_form"
    task_slots_reset = (
        "booking_when",
        "offer_slot",
        "offer_at",
        *OFFER_SLOTS,
        "declined",
        "slot_ok",
        *BOOKING_SLOTS,
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
        booking = await self.deps.store.next_booking(str(tracker.get_slot("customer_id")))
        if booking is None:
            dispatcher.utter_message(response="utter_no_booking_to_move")
            return {"active_task": "appointment", "booking_id": None}
        said = booking_values(booking, self.deps.now(), await branch_names(self.deps.store))
        return {"booking_id": float(booking.booking_id), **said}

    async def prefill(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = task_text(tracker)
        if text and parse_when(text, self.deps.now()) is not None:
            return await self._offer_for(text, tracker)
        if _moving(tracker):  # "when would suit you" follows: say first which appointment is moving
            dispatcher.utter_message(response="utter_current_booking", **_booking_said(tracker))
        return {}

    async def _offer_for(self, text: str, tracker: Tracker) -> dict[str, Any]:
        now = self.deps.now()
        window = parse_when(text, now)
        if window is None:
            return {}
        offer = await self._first_free(window, now, after=None)
        if offer is None:
            return {"booking_when": None, "task_result": "no_slots"}
        slot, inside = offer
        names = await branch_names(self.deps.store)
        return self._offer(slot, inside, window, now, names, 0, _moving(tracker))

    async def _first_free(
        self, window: Window, now: datetime, after: datetime | None
    ) -> tuple[Slot, bool] | None:
        """The first free slot in the window (after ``after``), else the first one after the window."""
        start = max(window.start, now, after or window.start)
        if start < window.end:
            inside = await self.deps.store.free_slots(start, window.end, n=1)
            if inside:
                return inside[0], True
        later = await self.deps.store.free_slots(
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
        return {
            "booking_when": window_slot(window),
            "offer_slot": float(slot.slot_id),
            "offer_at": slot.starts.isoformat(),
            **offer_values(slot, now, names),
            "offer_kind": ("move" if moving else "book") + ("" if inside else "_later"),
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
        if parse_when(text, self.deps.now()) is None:
            return self.missed("booking_when", tracker, dispatcher, "utter_when_unclear")
        try:
            return await self._offer_for(text, tracker)
        except StoreError:
            return {"booking_when": None, "handoff_reason": Reason.TECHNICAL.value}

    async def validate_slot_ok(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        escaped = self.escape("slot_ok", tracker)
        if escaped:
            return escaped
        text = str(slot_value or "")
        now = self.deps.now()
        try:
            # Another day or time instead of yes or no ("no, thursday afternoon"): offer for that.
            if parse_when(text, now) is not None and intent_of(tracker) != "affirm":
                return {**await self._offer_for(text, tracker), "slot_ok": None}
            answer = yes_or_no(tracker, text)
            if answer is None:
                return self.missed("slot_ok", tracker, dispatcher, "utter_yes_or_no")
            if answer is False:
                return await self._next_offer(tracker, now)
            return await self._take(tracker, now)
        except StoreError:
            log.warning("booking failed conversation=%s", tracker.sender_id)
            return {"slot_ok": None, "handoff_reason": Reason.TECHNICAL.value}

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
        names = await branch_names(self.deps.store)
        return {**self._offer(slot, inside, window, now, names, declined, _moving(tracker)), "slot_ok": None}

    async def _take(self, tracker: Tracker, now: datetime) -> dict[str, Any]:
        customer_id = str(tracker.get_slot("customer_id"))
        slot_id = int(tracker.get_slot("offer_slot") or 0)
        moving = _moving(tracker)
        try:
            if moving:
                booking = await self.deps.store.reschedule(
                    customer_id, int(tracker.get_slot("booking_id") or 0), slot_id
                )
            else:
                booking = await self.deps.store.book(customer_id, slot_id)
        except SlotTaken:
            offer = await self._next_offer(tracker, now)
            if offer.get("offer_kind"):
                offer["offer_kind"] = ("move" if moving else "book") + "_gone"
            return offer
        log.info("booked conversation=%s moved=%s", tracker.sender_id, moving)
        said = booking_values(booking, now, await branch_names(self.deps.store))
        return {"slot_ok": True, **said, "booking_id": float(booking.booking_id), "misses": 0}


# --- cancelling -----------------------------------------------------------------------------------------


class ValidateCancelForm(TaskForm):
    """Cancel the caller's next appointment after reading it back."""

    form = "cancel_form"
    task_slots_reset = ("booking_id", *BOOKING_SLOTS, "cancel_ok")

    def task_slots(self, tracker: Tracker) -> list[str]:
        return ["cancel_ok"] if tracker.get_slot("cancel_ok") is None else []

    async def start(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        booking = await self.deps.store.next_booking(str(tracker.get_slot("customer_id")))
        if booking is None:
            return {"task_result": "no_booking"}
        said = booking_values(booking, self.deps.now(), await branch_names(self.deps.store))
        return {"booking_id": float(booking.booking_id), **said}

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
            await self.deps.store.cancel(
                str(tracker.get_slot("customer_id")), int(tracker.get_slot("booking_id") or 0)
            )
        except StoreError:
            log.warning("cancel failed conversation=%s", tracker.sender_id)
            return {"cancel_ok": None, "handoff_reason": Reason.TECHNICAL.value}
        log.info("booking cancelled conversation=%s", tracker.sender_id)
        return {"cancel_ok": True, "misses": 0}
