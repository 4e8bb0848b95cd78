"""Who is calling: verification first, for every task form, and the rules every form's questions share.

Every task that touches a customer's records is a form (``nlu-data/domain.yml``, ``forms``) whose validation
action is a :class:`TaskForm`. While a form is active it receives every answer (slot mappings ``from_text``);
the ``validate_*`` methods decide what the answer means. Common to every question:

- "agent", "a real person" -> the form ends, ``action_resume_task`` hands over with reason ``requested``
  (only when the words name a person or the classifier is sure: "just the one" is an answer);
- "goodbye" -> the form ends, ``action_resume_task`` says goodbye (while the caller is being verified, the
  form first asks whether they want to end the call: ``utter_ask_end_ok``; no, or anything else, and the
  question comes again);
- a confident new request ("actually what's my balance") -> the form ends and that task's form starts;
- a question the information line answers ("what time do you close on saturday", "how long does delivery
  take") -> the answer, then the form's question again (:meth:`TaskForm.aside`);
- an answer the form cannot use -> the question again (with a hint); the second one in a row ends the form
  and hands over with reason ``no-match``.

Verification (``pin`` or ``dob``): the channel puts the PIN or date of birth aside in Redis and the slot
holds only a reference (:mod:`actions.shared.vault`); it is compared with the store's salted hash and
dropped. Three failures in all hand over with reason ``verification-failed``. "I don't know my PIN" (or
"i dont have it": the don't-know words win over the escape words) switches to the date of birth when one is
on file.

The count in the call is the ``pin_attempts`` slot, which survives a new session in the same call
(``action_session_start``). Across calls the store counts
(:meth:`~actions.store.CustomerStore.verify_identity`): a customer locked out after too many failures is
not asked at all, nor verified even by the right PIN, and goes to a person with reason
``verification-locked``.

When verification succeeds, what the caller already said when asking ("i'd like to order two headsets",
"book me in next tuesday afternoon") fills the task's first questions (:meth:`TaskForm.prefill`), so they
are not asked again.
"""

from __future__ import annotations

import logging
import re
from abc import abstractmethod
from typing import Any

from rasa_sdk import FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.deps import UsesDeps
from actions.faults import is_fault
from actions.heard import (
    INFO_INTENTS,
    TASK_INTENTS,
    asks_for_a_person,
    confidence_of,
    intent_of,
    named_task,
    ranking_of,
    yes_or_no,
)
from actions.history import customer_history
from actions.info import info_answer
from actions.lines import say
from actions.shared.vault import UNAVAILABLE, UNREADABLE, SecretStashError, is_ref
from actions.store import StoreError, Verification
from telephony.callstate import Reason

log = logging.getLogger(__name__)

MAX_VERIFY_ATTEMPTS = 3
MAX_MISSES = 2
PIN_LENGTH = 4
SWITCH_CONFIDENCE = 0.9
"""How sure the classifier must be that an answer is really a new request before the task changes."""
ASIDE_CONFIDENCE = 0.7
"""How sure it must be that an answer is a question for the information line (the words decide as well)."""

_DONT_KNOW = re.compile(
    r"\b(don'?t know|do not know|forgot|forgotten|no idea|not sure|can'?t remember|cannot remember|"
    r"don'?t have|do not have|don'?t remember|lost it)\b"
)
_A_MOMENT = re.compile(
    r"\b(hang on|hold on|wait a (sec|second|moment|minute)|(one|a|just a) (sec|second|moment|minute)|"
    r"give me a (sec|second|moment|minute)|let me (find|get|check|look))\b"
)
"""The caller asks for a moment to find the PIN ("hang on let me find it"): no goodbye, no miss."""
_SAME_TASK = frozenset({"appointment", "reschedule"})
"""Tasks of one form: "can we do wednesday instead" while booking is about this booking, not a move of
another one (and the other way round)."""


def _task_confidence(tracker: Tracker, task: str | None) -> float:
    """How sure the classifier is that the words ask for ``task``: its top intent's confidence, or for an
    appointment the two appointment intents' together — "i want to book an appointment instead" may come
    back as booking 0.86 and moving 0.14, which is doubt about the kind of appointment, not about wanting
    one."""
    confidence = confidence_of(tracker)
    if task in _SAME_TASK:
        family = sum(c for name, c in ranking_of(tracker) if TASK_INTENTS.get(name) in _SAME_TASK)
        confidence = max(confidence, family)
    return confidence


class TaskForm(UsesDeps, FormValidationAction):
    """Verification, the escape words, and the misunderstanding count, for every task form.

    A task's form subclasses this with its ``form`` name, the slots it clears when it starts, and
    :meth:`task_slots` (the questions still to ask); :meth:`start` and :meth:`prefill` are optional.
    """

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
            if tracker.get_slot("end_asked"):
                return ["end_ok"]
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

    @abstractmethod
    def task_slots(self, tracker: Tracker) -> list[str]:
        """The task's own questions still to ask, in order (verification is done)."""

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
        aside = await self.aside(dispatcher, tracker)
        if aside is not None:
            return aside
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
            customer = await self.deps.store.find_customer_by_number(tracker.get_slot("caller_number"))
        except StoreError:
            log.warning("store lookup failed conversation=%s", tracker.sender_id)
            return {"handoff_reason": Reason.TECHNICAL.value}
        if customer is None or not (customer.has_pin or customer.has_dob):
            return {"handoff_reason": Reason.NOT_FOUND.value}
        try:
            locked = await self.deps.store.verification_lock(customer.customer_id)
        except StoreError:
            log.warning("store lock lookup failed conversation=%s", tracker.sender_id)
            return {"handoff_reason": Reason.TECHNICAL.value}
        if locked is not None:
            log.info("verification locked conversation=%s: not asking", tracker.sender_id)
            return {"handoff_reason": Reason.VERIFICATION_LOCKED.value}
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
            return {"handoff_reason": Reason.TECHNICAL.value}
        return changes

    # a question in the middle, the escape words and misunderstandings

    async def aside(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType] | None:
        """A question for the information line asked instead of the answer ("what time do you close on
        saturday" while asked for a day): the answer, and the question asked again (the slot stays empty,
        so the form asks it). ``None`` when the answer is no such question."""
        requested = tracker.get_slot("requested_slot")
        intent = intent_of(tracker)
        if requested in (None, "end_ok") or intent not in INFO_INTENTS:
            return None
        if confidence_of(tracker) < ASIDE_CONFIDENCE:
            return None
        text = str(tracker.latest_message.get("text") or "")
        try:
            lines = await info_answer(self.deps, intent, text, aside=True)
        except StoreError:
            log.warning("store failed for a question mid-form conversation=%s", tracker.sender_id)
            return None
        if not lines:
            return None
        log.info("question answered mid-form conversation=%s form=%s", tracker.sender_id, self.form)
        say(dispatcher, lines)
        # The same question next (Rasa would otherwise ask the domain's first empty slot, the PIN).
        return [SlotSet(str(requested), None), SlotSet("requested_slot", requested)]

    def escape(self, slot: str, tracker: Tracker, *, answered: bool = False) -> dict[str, Any] | None:
        """What the caller's turn does to the form instead of answering ``slot``: a person asked for,
        goodbye, or another task (``task_result: switch``). ``answered``: the words are a usable answer to
        ``slot`` (a product, a number, a short yes or no), which no other task pre-empts. Only a described
        fault switches to the support line (:func:`actions.faults.is_fault`): the classifier alone also
        reads "purple" or "just the one" as a fault report."""
        intent = intent_of(tracker)
        said = str(tracker.latest_message.get("text") or "")
        if intent == "request_agent" and (
            confidence_of(tracker) >= SWITCH_CONFIDENCE or asks_for_a_person(said)
        ):
            return {slot: None, "handoff_reason": Reason.REQUESTED.value}
        if intent == "goodbye":
            return {slot: None, "end_call": True}
        other = TASK_INTENTS.get(intent or "")
        if other is not None and (answered or other == TASK_INTENTS["report_problem"]) and not is_fault(said):
            other = None
        confidence = _task_confidence(tracker, other)
        named = named_task(said)
        if other is not None and named is not None and not is_fault(said):
            # "i want to book an appointment instead" read as moving one: the words name the task outright
            # (a fault described stays a fault: "the app won't show my balance" is for the support line)
            other = TASK_INTENTS[named]
        if (
            other is not None
            and other != tracker.get_slot("active_task")
            and {other, tracker.get_slot("active_task")} != _SAME_TASK
            and confidence >= SWITCH_CONFIDENCE
            and tracker.get_slot("verified")
        ):
            # action_resume_task starts the other task
            return {slot: None, "task_result": "switch", "pending_task": other}
        return None

    def missed(
        self, slot: str, tracker: Tracker, dispatcher: CollectingDispatcher, hint: str | None, **kw: Any
    ) -> dict[str, Any]:
        """An answer the form cannot use: the question again, or a person after two in a row."""
        misses = int(tracker.get_slot("misses") or 0) + 1
        if misses >= MAX_MISSES:
            return {slot: None, "misses": misses, "handoff_reason": Reason.NO_MATCH.value}
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
        intent = intent_of(tracker)
        if not is_ref(value) and intent != "request_agent" and _DONT_KNOW.search(str(value or "").lower()):
            # "i dont have it" may sound like goodbye to the classifier: the words decide first.
            return await self._other_way(slot, dispatcher, tracker)
        if not is_ref(value) and _A_MOMENT.search(str(value or "").lower()):
            dispatcher.utter_message(response="utter_take_your_time")  # then the same question again
            return {slot: None}
        if intent == "goodbye":
            return {slot: None, "end_asked": True}  # the form asks utter_ask_end_ok before hanging up
        escaped = self.escape(slot, tracker)
        if escaped:
            return escaped
        if value == UNAVAILABLE:
            return {slot: None, "handoff_reason": Reason.TECHNICAL.value}
        if not is_ref(value):
            # Not a PIN or a date: "i don't know it", or something else entirely.
            if intent == "deny":
                return await self._other_way(slot, dispatcher, tracker)
            not_understood = intent_of(tracker) == "nlu_fallback"
            dispatcher.utter_message(
                response="utter_rephrase_short" if not_understood else "utter_pin_needed"
            )
            return self.missed(slot, tracker, dispatcher, None)
        try:
            secret = await self.deps.stash.take(str(value), tracker.sender_id)
            if secret == UNREADABLE:  # words like a date that make none: ask again, not a failed check
                return self.missed(slot, tracker, dispatcher, "utter_dob_unclear")
            customer = await self.deps.store.find_customer_by_number(tracker.get_slot("caller_number"))
            if customer is None:
                return {slot: None, "handoff_reason": Reason.NOT_FOUND.value}
            # Every guess counts in the store, across calls; a locked customer is refused unchecked.
            verdict = (
                await self.deps.store.verify_identity(customer.customer_id, slot, secret)
                if secret
                else Verification(False)
            )
            ok = verdict.ok and (slot != "pin" or len(secret or "") == PIN_LENGTH)
        except (SecretStashError, StoreError):
            log.warning("verification backend failed conversation=%s", tracker.sender_id)
            return {slot: None, "handoff_reason": Reason.TECHNICAL.value}
        finally:
            secret = None  # drop it as soon as it has been compared
        if ok:
            log.info("verified conversation=%s by=%s", tracker.sender_id, slot)
            result: dict[str, Any] = {
                slot: None,
                "verified": True,
                "customer_id": customer.customer_id,
                "customer_name": customer.name,
                "loyalty_tier": customer.loyalty_tier,
                "customer_history": await customer_history(
                    self.deps.store, customer.customer_id, self.deps.now()
                ),
                "misses": 0,
            }
            _apply(tracker, result)
            result.update(await self._begin_task(dispatcher, tracker, domain))
            return result
        attempts = int(tracker.get_slot("pin_attempts") or 0) + 1
        log.info("verification mismatch conversation=%s attempt=%d", tracker.sender_id, attempts)
        if verdict.locked:
            return {slot: None, "pin_attempts": attempts, "handoff_reason": Reason.VERIFICATION_LOCKED.value}
        if attempts >= MAX_VERIFY_ATTEMPTS:
            return {slot: None, "pin_attempts": attempts, "handoff_reason": Reason.VERIFICATION_FAILED.value}
        dispatcher.utter_message(response="utter_pin_wrong" if slot == "pin" else "utter_dob_wrong")
        return {slot: None, "pin_attempts": attempts}

    async def validate_end_ok(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """ "Do you want to end the call?" after a goodbye during verification: yes ends it; no, or anything
        else, and the verification question comes again."""
        done: dict[str, Any] = {"end_ok": None, "end_asked": False}
        intent = intent_of(tracker)
        if is_ref(slot_value):
            # A PIN said instead of yes or no was put aside by the channel: drop it unread, ask again.
            try:
                await self.deps.stash.take(str(slot_value), tracker.sender_id)
            except SecretStashError:
                pass
            return done
        if intent == "request_agent":
            return {**done, "handoff_reason": Reason.REQUESTED.value}
        if intent == "goodbye" or yes_or_no(tracker, slot_value) is True:
            return {**done, "end_call": True}
        return done

    async def _other_way(
        self, slot: str, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> dict[str, Any]:
        """ "I don't know my PIN": the date of birth instead when there is one, else a person."""
        if slot == "pin":
            try:
                customer = await self.deps.store.find_customer_by_number(tracker.get_slot("caller_number"))
            except StoreError:
                return {slot: None, "handoff_reason": Reason.TECHNICAL.value}
            if customer is not None and customer.has_dob:
                dispatcher.utter_message(response="utter_dob_instead")
                return {slot: None, "verify_by": "dob", "misses": 0}
        return {slot: None, "handoff_reason": Reason.VERIFICATION_FAILED.value}


def _apply(tracker: Tracker, changes: dict[str, Any]) -> None:
    """Make slot changes visible to the rest of this run without adding events to validate."""
    tracker.slots.update(changes)


class ValidateVerifyForm(TaskForm):
    """Balance, "when is my appointment", ticket status: verification is all the form asks."""

    form = "verify_form"

    def task_slots(self, tracker: Tracker) -> list[str]:
        return []
