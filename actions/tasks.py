"""After a task's form: do what the caller asked for, or hand over, or say goodbye (``action_resume_task``).

The task is the one the form started with (``active_task``), even if the caller's later answers looked like
other requests. To add a task: an intent, a ``pending_task`` value for it in ``nlu-data/domain.yml``, a form
(or ``verify_form``) in the rules, its form's validation (a :class:`~actions.verify.TaskForm`), a skill in
:data:`actions.shared.context.SKILL_BY_TASK`, and what is done at its end in :data:`TASKS`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import account, bookings, orders, support
from actions.deps import Deps, UsesDeps
from actions.handoff import hand_off
from actions.store import StoreError
from telephony.callstate import Reason

log = logging.getLogger(__name__)

TaskEnd = Callable[[Deps, CollectingDispatcher, Tracker, str], Awaitable[list[EventType]]]
"""What a task does once its form is over: ``(deps, dispatcher, tracker, customer_id) -> events``."""

TASKS: Mapping[str, TaskEnd] = {
    "balance": account.tell_balance,
    "order_status": orders.tell_order_status,
    "place_order": orders.place_order,
    "appointment": bookings.tell_booked,
    "reschedule": bookings.tell_rescheduled,
    "cancel_appointment": bookings.tell_cancelled,
    "ask_appointment": bookings.tell_next_booking,
    "support": support.register_incident,
    "incident_status": support.tell_incident_status,
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


class ActionResumeTask(UsesDeps, Action):
    """After a task's form: the task's end, a handoff, goodbye, or the next task the caller asked for."""

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
            return hand_off(dispatcher, tracker, Reason.TECHNICAL)
        if tracker.get_slot("task_result") == "switch":
            # The caller asked for something else in the middle: start that task's form (already verified).
            form = FORM_FOR_TASK.get(str(tracker.get_slot("pending_task")), "verify_form")
            return [
                SlotSet("task_result", None),
                SlotSet("active_task", None),
                SlotSet("task_words", None),
                FollowupAction(form),
            ]
        task = tracker.get_slot("active_task")
        end = TASKS.get(str(task))
        if end is None:
            dispatcher.utter_message(response="utter_how_can_help")
            return [SlotSet("active_task", None)]
        customer_id = str(tracker.get_slot("customer_id"))
        try:
            events = await end(self.deps, dispatcher, tracker, customer_id)
        except StoreError:
            log.warning("task failed conversation=%s task=%s", tracker.sender_id, task)
            return hand_off(dispatcher, tracker, Reason.TECHNICAL)
        dispatcher.utter_message(response="utter_anything_else")
        return [
            *events,
            SlotSet("active_task", None),
            SlotSet("task_result", None),
            SlotSet("task_words", None),
        ]
