"""Handing the call to a person: which skill, what the agent may see, and the line the caller hears.

Every path that cannot go on ends here: the caller asked for a person (``requested``), was not understood
twice in a row (``no-match``), could not be verified (``verification-failed``), is locked out of
verification after too many failed checks across calls (``verification-locked``), calls from a number that is
no customer's (``not-found``), or a backend failed (``technical``). The reasons and skills are the
call-state vocabulary (:mod:`telephony.callstate`); the payload is built by
:func:`actions.shared.handoff.handoff_payload`, the same builder the Rasa channel uses. Logs carry the
conversation id and the reason only.
"""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActiveLoop, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.heard import intent_of
from actions.shared.context import call_context
from actions.shared.context import skill_for as context_skill_for
from actions.shared.handoff import HANDOFF_LINES, handoff_payload, handoff_reason
from actions.store import NEW, RETURNING
from telephony.callstate import Reason, Skill

log = logging.getLogger(__name__)

MAX_MISUNDERSTANDINGS = 2


def skill_for(tracker: Tracker) -> Skill:
    """The skill the call needs: by its task, else by who is calling."""
    return context_skill_for(tracker.get_slot)


def handoff_context(tracker: Tracker) -> dict[str, Any]:
    """What the bot learned, for the agent's screen: nothing about the account before verification."""
    return call_context(tracker.get_slot, tracker.events)


def is_prospect(tracker: Tracker) -> bool:
    """Whether the caller is no customer yet: said so, or calls from a number no account has."""
    return bool(tracker.get_slot("prospect")) or tracker.get_slot("caller_kind") in (NEW, RETURNING)


def hand_off(dispatcher: CollectingDispatcher, tracker: Tracker, reason: Reason | str) -> list[EventType]:
    """Say the handoff line for ``reason`` and emit the handoff payload; ends any active form.

    A reason that is not a handoff reason becomes ``technical``.
    """
    why = handoff_reason(reason)
    line = HANDOFF_LINES[why]
    if why is Reason.NOT_FOUND and is_prospect(tracker):
        line = "utter_handoff_new_customer"  # no account is expected: not "I couldn't find one"
    dispatcher.utter_message(response=line)
    payload = handoff_payload(why, skill_for(tracker), handoff_context(tracker))
    dispatcher.utter_message(json_message={"handoff": payload})
    log.info("handoff conversation=%s reason=%s", tracker.sender_id, why)
    events: list[EventType] = [SlotSet("handoff_reason", why.value)]
    if tracker.active_loop.get("name"):
        events += [ActiveLoop(None), SlotSet("requested_slot", None)]
    return events


class ActionHandoff(Action):
    """Hand the call to a person. The reason follows from how we got here."""

    def name(self) -> str:
        return "action_handoff"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        intent = intent_of(tracker)
        reason = tracker.get_slot("handoff_reason")
        if not reason:
            if intent == "deny":
                reason = Reason.VERIFICATION_FAILED  # only reached from the PIN prompt: "I don't know it"
            elif intent == "nlu_fallback":
                reason = Reason.NO_MATCH
            else:
                reason = Reason.REQUESTED  # asked for a person, or accepted our offer of one
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
