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
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActionExecuted, ActiveLoop, EventType, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.speech import say_money
from actions.store import CustomerStore, StoreConfig, StoreError, open_store
from actions.vault import UNAVAILABLE, SecretStash, SecretStashError

log = logging.getLogger(__name__)

MAX_PIN_ATTEMPTS = 3
PIN_LENGTH = 4
MAX_MISUNDERSTANDINGS = 2

REASON_REQUESTED = "requested"
REASON_NO_MATCH = "no-match"
REASON_VERIFICATION_FAILED = "verification-failed"
REASON_NOT_FOUND = "not-found"
REASON_TECHNICAL = "technical"
REASONS = (REASON_REQUESTED, REASON_NO_MATCH, REASON_VERIFICATION_FAILED, REASON_NOT_FOUND, REASON_TECHNICAL)

SKILL_BY_TASK = {"balance": "billing", "order_status": "orders", "appointment": "bookings"}
DEFAULT_SKILL = "general"

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
    task = tracker.get_slot("pending_task")
    verified = bool(tracker.get_slot("verified"))
    context: dict[str, Any] = {
        "call_id": tracker.get_slot("call_id"),
        "caller_number": tracker.get_slot("caller_number"),
        "verified": verified,
        "customer_id": tracker.get_slot("customer_id") if verified else None,
        "task": task,
        "last_intent": (tracker.latest_message.get("intent") or {}).get("name"),
        "pin_attempts": int(tracker.get_slot("pin_attempts") or 0),
    }
    return {"reason": reason, "skill": SKILL_BY_TASK.get(task or "", DEFAULT_SKILL), "context": context}


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
            dispatcher.utter_message(response="utter_greet")
        events.append(ActionExecuted("action_listen"))
        return events


# --- verification -----------------------------------------------------------------------------------


class ValidateVerifyForm(FormValidationAction):
    """Checks the PIN the caller gave (through the channel's reference, never in clear).

    The form ends (``requested_slot`` None) as soon as there is nothing left to ask: the caller is
    verified, or the call has to go to a person (``handoff_reason`` set: unknown number, three wrong
    PINs, a backend fault). ``action_resume_task`` then carries on or hands over.
    """

    def name(self) -> str:
        return "validate_verify_form"

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        if tracker.get_slot("verified") or tracker.get_slot("handoff_reason"):
            return []
        return domain_slots

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        before: list[EventType] = []
        if not tracker.get_slot("verified") and not tracker.get_slot("handoff_reason"):
            try:
                customer = await backends.store.find_by_phone(tracker.get_slot("caller_number"))
            except StoreError:
                log.warning("store lookup failed conversation=%s", tracker.sender_id)
                before = [SlotSet("handoff_reason", REASON_TECHNICAL)]
            else:
                if customer is None:
                    before = [SlotSet("handoff_reason", REASON_NOT_FOUND)]
            tracker.add_slots(before)
        return before + await super().run(dispatcher, tracker, domain)

    async def validate_pin(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        """``slot_value`` is the channel's reference to the PIN; the PIN itself never becomes a slot."""
        if tracker.get_slot("handoff_reason") or tracker.get_slot("verified"):
            return {"pin": None}
        if slot_value == UNAVAILABLE:
            return {"pin": None, "handoff_reason": REASON_TECHNICAL}
        try:
            pin = await backends.stash.take(str(slot_value), tracker.sender_id)
            customer = await backends.store.find_by_phone(tracker.get_slot("caller_number"))
            ok = (
                customer is not None
                and pin is not None
                and len(pin) == PIN_LENGTH
                and await backends.store.check_pin(customer.customer_id, pin)
            )
        except (SecretStashError, StoreError):
            log.warning("verification backend failed conversation=%s", tracker.sender_id)
            return {"pin": None, "handoff_reason": REASON_TECHNICAL}
        finally:
            pin = None  # drop the PIN as soon as it has been compared
        if customer is None:
            return {"pin": None, "handoff_reason": REASON_NOT_FOUND}
        if ok:
            log.info("verified conversation=%s", tracker.sender_id)
            return {"pin": None, "verified": True, "customer_id": customer.customer_id}
        attempts = int(tracker.get_slot("pin_attempts") or 0) + 1
        log.info("pin mismatch conversation=%s attempt=%d", tracker.sender_id, attempts)
        if attempts >= MAX_PIN_ATTEMPTS:
            return {"pin": None, "pin_attempts": attempts, "handoff_reason": REASON_VERIFICATION_FAILED}
        dispatcher.utter_message(response="utter_pin_wrong")
        return {"pin": None, "pin_attempts": attempts}


class ActionResumeTask(Action):
    """After verification: do what the caller asked for, or hand over if verification could not finish.

    To put another task behind verification: map its intent to a ``pending_task`` value in domain.yml,
    add a rule "intent -> verify_form" in nlu-data/stories/, and a branch here.
    """

    def name(self) -> str:
        return "action_resume_task"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        reason = tracker.get_slot("handoff_reason")
        if reason:
            return hand_off(dispatcher, tracker, reason)
        if not tracker.get_slot("verified"):
            return hand_off(dispatcher, tracker, REASON_TECHNICAL)
        task = tracker.get_slot("pending_task")
        if task == "balance":
            try:
                balance = await backends.store.balance(str(tracker.get_slot("customer_id")))
            except StoreError:
                log.warning("balance lookup failed conversation=%s", tracker.sender_id)
                return hand_off(dispatcher, tracker, REASON_TECHNICAL)
            dispatcher.utter_message(response="utter_balance", amount=say_money(balance.cents))
            dispatcher.utter_message(response="utter_anything_else")
            return [SlotSet("pending_task", None)]
        dispatcher.utter_message(response="utter_how_can_help")
        return [SlotSet("pending_task", None)]


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
