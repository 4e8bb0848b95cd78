"""The conversation around the tasks: the start of a call (counted once, at the first turn), a referral, and
requests the bot cannot help with.
"""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, EventType, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.deps import UsesDeps
from actions.store import StoreError
from actions.understanding import out_of_scope

log = logging.getLogger(__name__)

_METADATA_LIMITS = {"call_id": 64, "caller_number": 32, "language": 8}


def _clean(metadata: dict[str, Any], key: str) -> str | None:
    value = metadata.get(key)
    if value is None:
        return None
    text = str(value).strip()
    return text[: _METADATA_LIMITS[key]] or None


CARRIED_OVER = ("pin_attempts", "caller_kind")
"""Slots a new session in the same call keeps (besides call id and number): the failed checks so far, so
nothing said in the call can reset them, and who is calling."""


def _caller_had_turns(events: list[dict[str, Any]]) -> bool:
    """Whether the conversation already holds a caller's turn (then this is not the start of the call)."""
    return any(e.get("event") == "user" for e in events)


class ActionSessionStart(UsesDeps, Action):
    """Start of a conversation: keep the call id and caller number; count the call at its start.

    The gateway greets the caller itself (``prompts.yml`` ``greeting:``, by who is calling) and opens the
    conversation only with the caller's first turn, whose metadata carries ``call_id``, ``caller_number``,
    ``channel`` and ``language`` (so a connection that never says anything leaves no tracker). Rasa runs
    this action before that first turn is read: the call is counted in the store then, once, and who is
    calling kept in ``caller_kind``. A session that expires mid-call restarts silently, keeping call id
    and number, and counts nothing.

    A new session never resets what guards verification: the failed checks of this call (``pin_attempts``)
    carry over. ``/session_start`` as a message (the gateway never sends it; a caller cannot send it at
    all, see ``bot/rasa/channel.py``) neither greets nor counts the call: the caller hears the opening
    question.
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
            SlotSet("language", _clean(metadata, "language") or tracker.get_slot("language") or "en"),
        ]
        for name in CARRIED_OVER:
            value = tracker.get_slot(name)
            if value:
                events.append(SlotSet(name, value))
        if (latest.get("intent") or {}).get("name") == "session_start":
            log.warning("session start sent as a message conversation=%s", tracker.sender_id)
            dispatcher.utter_message(response="utter_how_can_help")
        elif not _caller_had_turns(tracker.events) and not tracker.get_slot("caller_kind"):
            events.append(SlotSet("caller_kind", await self._record_call(caller_number, tracker.sender_id)))
        events.append(ActionExecuted("action_listen"))
        return events

    async def _record_call(self, caller_number: str | None, conversation: str) -> str | None:
        """Count the call in the store: new, returning or existing caller (None: withheld number, or no
        store)."""
        if not caller_number:
            return None
        try:
            record = await self.deps.store.record_call(caller_number)
        except StoreError:
            log.warning("could not record the call conversation=%s", conversation)
            return None
        return record.kind if record is not None else None


class ActionOutOfScope(Action):
    """One short answer, and what the bot can do for this kind of caller; a fault in unexpected words goes
    to the support line instead (:func:`actions.understanding.out_of_scope`)."""

    def name(self) -> str:
        return "action_out_of_scope"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        response, events = out_of_scope(tracker)
        if response:
            dispatcher.utter_message(response=response)
        return events


class ActionReferral(UsesDeps, Action):
    """ "A friend recommended you": welcome them, and remember how they came to us."""

    def name(self) -> str:
        return "action_referral"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        try:
            customer = await self.deps.store.find_customer_by_number(tracker.get_slot("caller_number"))
            if customer is not None and customer.referral_source is None:
                await self.deps.store.set_referral_source(customer.customer_id, "friend")
        except StoreError:
            log.warning("could not record the referral conversation=%s", tracker.sender_id)
        dispatcher.utter_message(response="utter_referral")
        return [SlotSet("referral", True)]
