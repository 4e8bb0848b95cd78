"""What the classifier could not settle on its own: a turn it was unsure of, a request out of scope that is
really a fault, a closing after "anything else?", and a caller who is not a customer yet.

- ``action_fallback`` (a turn classed ``nlu_fallback``, or digits or a day nobody asked for), outside a
  form: the answer to the clarifying question picks one of its two requests; a description of something
  not working goes to the support line, a request named outright ("book me in") starts its task; a
  closing ("no that's all thanks", unsure between deny and goodbye, or thanks alone after "anything
  else?") ends the call politely, unless the bot had just asked a yes-or-no question of its own (a
  person? which of two?). Else, when two requests are likeliest, ONE question names both
  (``utter_clarify``: "Sorry, is that about an order you've placed or about a fault?", each topic an
  ``utter_topic_<intent>`` response). Otherwise "say it another way"; the second miss in a row hands over.
- ``action_out_of_scope``'s choice (:func:`out_of_scope`): a fault described in words the classifier took
  for something unrelated ("the box on the wall is blinking orange") goes to the support line, a request
  named outright ("book me in tomorrow morning", :func:`actions.heard.named_task`) starts its task; anything
  else gets the short answer and what the bot can do.
- ``action_more``: "yes" to "anything else?" gets the opening question, but thanks alone ("that's great
  thanks") ends the call: the caller was being polite, not asking for more. Thanks alone the classifier was
  unsure of, after "anything else?", ends it too.
- ``action_prospect``: "i'm not a customer yet": what the bot does for new callers; a later request that
  needs an account goes to a person without "I couldn't find an account".

Every word said is a response in ``nlu-data/domain.yml``; a topic's words are read from the domain the
action server is sent.
"""

from __future__ import annotations

import logging
import re

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.deps import UsesDeps
from actions.faults import is_fault
from actions.handoff import MAX_MISUNDERSTANDINGS, consecutive_misunderstandings, hand_off
from actions.heard import (
    CLOSING_INTENTS,
    INFO_INTENTS,
    TASK_INTENTS,
    intent_of,
    named_task,
    ranking_of,
    sounds_like_closing,
)
from actions.info import info_answer
from actions.lines import say_then_offer_more
from actions.store import EXISTING, StoreError
from actions.tasks import FORM_FOR_TASK
from telephony.callstate import Reason

log = logging.getLogger(__name__)

TOPIC_PREFIX = "utter_topic_"
"""``utter_topic_<intent>``: how the clarifying question names a request ("an order you've placed")."""
CLARIFY_FLOOR = 0.1
"""The second likeliest request must have at least this confidence to be offered as an option."""
CONTENT_FREE = frozenset({"greet", "affirm", "inform_digits", "inform_when", "inform_referral"})
"""Intents that say nothing of what the caller wants ("hi yes im calling about the charger" leans to greet):
passed over when the two likeliest requests are picked."""
NOT_A_CLOSING_AFTER = frozenset({"utter_offer_agent", "utter_clarify"})
"""Questions after which "no thanks" answers the question rather than ends the call."""
_RESPONSE_KEY = "utter" + "_action"
"""Where Rasa notes which response a bot turn said (spelt so the editor check does not take it for one)."""
_POSITION = {"first": 0, "former": 0, "second": 1, "latter": 1}
_WORD = re.compile(r"[a-z]+")
_STOP = frozenset(
    "a an the about your our you you've youve its it's that this with or of to for my is".split()
)


def last_prompt(tracker: Tracker) -> str | None:
    """The response the bot said last, before the caller's latest turn."""
    for event in reversed(tracker.events):
        if event.get("event") == "bot" and event.get("text"):
            return str((event.get("metadata") or {}).get(_RESPONSE_KEY) or "") or None
    return None


def _topic(domain: DomainDict, intent: str) -> str | None:
    """The words of ``utter_topic_<intent>`` in the domain, if it has one."""
    variations = (domain.get("responses") or {}).get(TOPIC_PREFIX + intent) or []
    text = variations[0].get("text") if variations else None
    return str(text) if text else None


def _content(text: str) -> set[str]:
    return {w.rstrip("s") for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 2}


def pick_option(reply: str, options: list[str], domain: DomainDict) -> str | None:
    """Which of the two requests the caller's answer to the clarifying question names: by the topic's words
    ("the order"), a fault described ("it's not working"), or "the first" / "the second"; ``None`` when it
    names neither or both."""
    words = _content(reply)
    if "report_problem" in options and is_fault(reply):
        return "report_problem"
    for word, index in _POSITION.items():
        if word in words and index < len(options):
            return options[index]
    return named_topic(reply, options, domain)


def named_topic(reply: str, intents: list[str], domain: DomainDict) -> str | None:
    """The one request among ``intents`` whose topic words the reply shares most ("moving it please" ->
    "moving an appointment"); ``None`` when none or several share as many."""
    words = _content(reply)
    scores = [(len(words & _content(_topic(domain, intent) or "")), intent) for intent in intents]
    best = max((score for score, _ in scores), default=0)
    named = [intent for score, intent in scores if score == best]
    return named[0] if best > 0 and len(named) == 1 else None


def topic_intents(domain: DomainDict) -> list[str]:
    """The requests the clarifying question can name (those with an ``utter_topic_<intent>``)."""
    responses = domain.get("responses") or {}
    return [str(name)[len(TOPIC_PREFIX) :] for name in responses if str(name).startswith(TOPIC_PREFIX)]


def request_in_words(text: str) -> str | None:
    """The request the caller's words make whatever the classifier said, as its intent: a fault described
    (the support line), else a request named outright (:func:`actions.heard.named_task`)."""
    return "report_problem" if is_fault(text) else named_task(text)


def start_task(intent: str, words: str) -> list[EventType]:
    """Start the task for ``intent`` (its form verifies the caller first), with the words that asked for
    it, as if the classifier had been sure."""
    task = TASK_INTENTS[intent]
    form = FORM_FOR_TASK.get(task, "verify_form")
    return [SlotSet("pending_task", task), SlotSet("task_words", words), FollowupAction(form)]


class ActionFallback(UsesDeps, Action):
    """A turn the classifier was unsure of: a closing, a fault, one clarifying question, or ask again."""

    def name(self) -> str:
        return "action_fallback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        text = str(tracker.latest_message.get("text") or "")
        in_form = bool(tracker.active_loop.get("name"))
        ranking = ranking_of(tracker)
        if not in_form and not text.startswith("/"):
            decided = await self._decide(dispatcher, tracker, domain, text, ranking)
            if decided is not None:
                return decided
        if consecutive_misunderstandings(tracker.events) >= MAX_MISUNDERSTANDINGS:
            if in_form:
                # The form ends on its next run and action_resume_task hands over.
                return [SlotSet("handoff_reason", Reason.NO_MATCH.value)]
            return hand_off(dispatcher, tracker, Reason.NO_MATCH)
        if not in_form and not text.startswith("/") and intent_of(tracker) == "nlu_fallback":
            options = self._options(ranking, domain)
            if options:
                first, second = (_topic(domain, o) for o in options)
                dispatcher.utter_message(response="utter_clarify", first=first, second=second)
                return [SlotSet("clarify", {"options": options, "words": text})]
        # Inside a form the form repeats its question right after, so keep this one short.
        dispatcher.utter_message(response="utter_rephrase_short" if in_form else "utter_rephrase")
        return [SlotSet("clarify", None)]

    async def _decide(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
        text: str,
        ranking: list[tuple[str, float]],
    ) -> list[EventType] | None:
        clarify = tracker.get_slot("clarify")
        if isinstance(clarify, dict) and clarify.get("options") and last_prompt(tracker) == "utter_clarify":
            options = list(clarify["options"])
            chosen = pick_option(text, options, domain)
            if chosen is None and ranking and ranking[0][0] in options:
                chosen = ranking[0][0]  # the classifier leans to one of the two
            if chosen is None:
                chosen = named_topic(text, topic_intents(domain), domain)  # neither: "moving it, actually"
            if chosen is not None:
                log.info("clarified conversation=%s intent=%s", tracker.sender_id, chosen)
                return [
                    SlotSet("clarify", None),
                    *await self._follow(dispatcher, chosen, str(clarify["words"])),
                ]
        asked = request_in_words(text)
        if asked is not None:
            log.info("request in the caller's words conversation=%s intent=%s", tracker.sender_id, asked)
            return [SlotSet("clarify", None), *start_task(asked, text)]
        top_two = {name for name, _ in ranking[:2]}
        prompt = last_prompt(tracker)
        if prompt not in NOT_A_CLOSING_AFTER and (
            top_two <= CLOSING_INTENTS
            or sounds_like_closing(text)
            or (prompt == "utter_anything_else" and thanks_only(text))
        ):
            dispatcher.utter_message(response="utter_goodbye")
            return [SlotSet("clarify", None)]
        return None

    async def _follow(self, dispatcher: CollectingDispatcher, intent: str, words: str) -> list[EventType]:
        """Do what the chosen request asks, with the words of the turn that asked it."""
        if intent in TASK_INTENTS:
            return start_task(intent, words)
        if intent in INFO_INTENTS:
            try:
                lines = await info_answer(self.deps, intent, words)
            except StoreError:
                lines = None
            if lines:
                say_then_offer_more(dispatcher, lines)
                return []
            dispatcher.utter_message(response="utter_faq_unknown")
            return [FollowupAction("utter_offer_agent")]
        return [
            FollowupAction("action_prospect" if intent == "inform_new_customer" else "utter_how_can_help")
        ]

    @staticmethod
    def _options(ranking: list[tuple[str, float]], domain: DomainDict) -> list[str] | None:
        """The two likeliest requests, when both have a topic to name them by."""
        ranking = [(name, conf) for name, conf in ranking if name not in CONTENT_FREE]
        named = [(name, conf) for name, conf in ranking if _topic(domain, name)]
        if len(named) < 2 or [n for n, _ in ranking[:2]] != [n for n, _ in named[:2]]:
            return None
        if named[1][1] < CLARIFY_FLOOR:
            return None
        return [named[0][0], named[1][0]]


def out_of_scope(tracker: Tracker) -> tuple[str | None, list[EventType]]:
    """What ``action_out_of_scope`` does: a fault said in unexpected words goes to the support line
    (no words, the form's events); anything else the short answer for this kind of caller."""
    text = str(tracker.latest_message.get("text") or "")
    asked = request_in_words(text)
    if asked is not None:
        log.info("out of scope overruled by the words conversation=%s intent=%s", tracker.sender_id, asked)
        return None, start_task(asked, text)
    existing = tracker.get_slot("caller_kind") == EXISTING or tracker.get_slot("verified")
    return ("utter_out_of_scope" if existing else "utter_out_of_scope_sales"), []


_THANKS = re.compile(
    r"\b(thanks|thank|cheers|ta|great|lovely|perfect|brilliant|wonderful|awesome|excellent)\b"
)
_MORE = re.compile(
    r"\b(yes|yeah|yep|yup|please|actually|also|another|question|something|help|can|could|need|want|what|"
    r"how|where|when|one more)\b"
)


def thanks_only(text: str) -> bool:
    """ "that's great thanks", "lovely cheers": thanks, and nothing asked for."""
    low = text.lower().replace("\u2019", "'")
    return bool(_THANKS.search(low)) and not _MORE.search(low)


class ActionMore(Action):
    """ "Is there anything else I can help with?" answered with a yes (the classifier's ``affirm``): the
    opening question, or goodbye when the yes was only thanks."""

    def name(self) -> str:
        return "action_more"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if thanks_only(str(tracker.latest_message.get("text") or "")):
            dispatcher.utter_message(response="utter_goodbye")
        else:
            dispatcher.utter_message(response="utter_how_can_help")
        return []


class ActionProspect(Action):
    """ "I'm not a customer yet": what the bot does for new callers; remembered for the rest of the call."""

    def name(self) -> str:
        return "action_prospect"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        dispatcher.utter_message(response="utter_prospect")
        return [SlotSet("prospect", True)]
