"""The call's context: what the assistant has learned so far, in the one shape every reader uses.

Built from a conversation's slots and events by :func:`call_context`, on two sides with the same code:

- the Rasa channel (:mod:`bot.rasa.channel`) after **every** turn, so the gateway keeps it in the call's
  Redis record as the call goes (a gateway killed mid-call leaves what it had learned for the agent);
- the handoff action (:mod:`actions.handoff`), for the handoff payload.

Readers: the routing (``verified``, ``incident_priority``, ``loyalty_tier``), the whisper (``customer.name``,
``task``), the agent console (everything), the supervisor's reports.

Keys::

    call_id, caller_number, language
    verified (bool), verified_how ("pin" | "dob" | None)
    caller_kind ("new" | "returning" | "existing" | None)
    customer        {"id", "name", "kind"} once verified, else None (nothing about an account before)
    customer_id     the same id (kept for older readers), None before verification
    loyalty_tier    "none" | "silver" | "gold", only for a verified customer
    task, skill     the task under way and the skill it needs
    intents         the caller's last intents, [{"name", "confidence"}], oldest first (at most 6)
    last_intent
    slots           what the task learned (order number, product, booking, problem, call-back), verified only
    incident_priority  1..4 once an incident was registered (1 = total outage)
    handoff_reason  once the assistant decided to hand the call over; ``handoff`` {reason, skill} then too
    history         {"orders", "incidents", "bookings"} read from the store at verification, verified only
    pin_attempts    failed verification attempts in this call
    expecting       what the question just asked wants: "digits" | "date" | "address" | "free" (the gateway
                    waits longer before it takes a pause as the end of such an answer)

Never the PIN or the date of birth (they are not slots an agent may see, and the channel keeps them out of
the conversation record); the caller's words are not here either — the redacted transcript is the call's
own Redis stream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from telephony.callstate import Skill

SKILL_BY_TASK: Mapping[str, Skill] = {
    "balance": Skill.BILLING,
    "order_status": Skill.ORDERS,
    "place_order": Skill.SALES,
    "appointment": Skill.BOOKINGS,
    "reschedule": Skill.BOOKINGS,
    "cancel_appointment": Skill.BOOKINGS,
    "ask_appointment": Skill.BOOKINGS,
    "support": Skill.SUPPORT,
    "incident_status": Skill.SUPPORT,
}
"""The skill each task needs; without a task, :attr:`Skill.GENERAL`, or :attr:`Skill.SALES` for new and
returning callers (the seeds' sales focus)."""

SALES_KINDS = frozenset({"new", "returning"})
"""Caller kinds (``actions.store.NEW``/``RETURNING``) whose calls go to sales when no task says otherwise."""

CONTEXT_SLOTS = (
    "order_ref",
    "product",
    "quantity",
    "booking_day",
    "booking_time",
    "booking_branch",
    "offer_day",
    "offer_time",
    "offer_branch",
    "problem",
    "severity",
    "callback_number",
    "callback_when",
    "referral",
)
"""Slots an agent may see in the context (never the PIN or date of birth slots)."""

EXPECTING_BY_SLOT: Mapping[str, str] = {
    "pin": "digits",
    "order_ref": "digits",
    "callback_number": "digits",
    "quantity": "digits",
    "dob": "date",
    "booking_when": "date",
    "callback_when": "date",
    "address": "address",
    "delivery_address": "address",
}
"""What kind of answer each form question wants (the form's ``requested_slot``); any other slot, or no
question, is ``free``. Slot names come from the domain, not from editors' wording."""

MAX_INTENTS = 6
"""How many of the caller's latest intents the context lists."""

SlotGetter = Callable[[str], Any]


def current_task(get_slot: SlotGetter) -> str | None:
    """The task under way: the one its form started with, else the one just asked for."""
    task = get_slot("active_task") or get_slot("pending_task")
    return str(task) if task else None


def skill_for(get_slot: SlotGetter) -> Skill:
    """The skill the call needs: by its task, else by who is calling."""
    skill = SKILL_BY_TASK.get(current_task(get_slot) or "")
    if skill is not None:
        return skill
    return Skill.SALES if get_slot("caller_kind") in SALES_KINDS else Skill.GENERAL


def recent_intents(events: Iterable[Mapping[str, Any]], limit: int = MAX_INTENTS) -> list[dict[str, Any]]:
    """The caller's latest intents with their confidence, oldest first (events as Rasa's dicts)."""
    found: list[dict[str, Any]] = []
    for event in events:
        if event.get("event") != "user":
            continue
        intent = (event.get("parse_data") or {}).get("intent") or {}
        name = intent.get("name")
        if not name:
            continue
        try:
            confidence = round(float(intent.get("confidence") or 0.0), 3)
        except (TypeError, ValueError):
            confidence = 0.0
        found.append({"name": str(name), "confidence": confidence})
    return found[-limit:]


def call_context(get_slot: SlotGetter, events: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The context of a call (see the module docstring) from its slots and events."""
    verified = get_slot("verified") is True
    kind = get_slot("caller_kind")
    customer_id = get_slot("customer_id") if verified else None
    intents = recent_intents(events)
    priority = get_slot("incident_priority")
    reason = get_slot("handoff_reason") or None
    skill = skill_for(get_slot)
    return {
        "call_id": get_slot("call_id"),
        "caller_number": get_slot("caller_number"),
        "language": get_slot("language") or "en",
        "verified": verified,
        "verified_how": (get_slot("verify_by") or None) if verified else None,
        "caller_kind": kind,
        "customer": (
            {"id": customer_id, "name": get_slot("customer_name"), "kind": kind} if customer_id else None
        ),
        "customer_id": customer_id,
        "loyalty_tier": (get_slot("loyalty_tier") or "none") if verified else None,
        "task": current_task(get_slot),
        "skill": skill.value,
        "intents": intents,
        "last_intent": intents[-1]["name"] if intents else None,
        "history": (get_slot("customer_history") or {}) if verified else {},
        "slots": (
            {name: value for name in CONTEXT_SLOTS if (value := get_slot(name)) not in (None, False)}
            if verified
            else {}
        ),
        "incident_priority": int(priority) if isinstance(priority, (int, float)) else None,
        "handoff_reason": reason,
        "handoff": {"reason": reason, "skill": skill.value} if reason else None,
        "pin_attempts": int(get_slot("pin_attempts") or 0),
        "expecting": EXPECTING_BY_SLOT.get(str(get_slot("requested_slot") or ""), "free"),
    }
