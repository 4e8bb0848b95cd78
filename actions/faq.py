"""Frequent questions, answered from ``nlu-data/faq.yml`` (the editors' answers, matched by
:mod:`actions.shared.faq`); no close answer -> the offer of a person."""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.deps import UsesDeps
from actions.lines import Line, count_sentences, say_then_offer_more


class ActionFaq(UsesDeps, Action):
    """The answer whose questions are closest to what the caller said, as the editors wrote it."""

    def name(self) -> str:
        return "action_faq"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        entry = self.deps.faq.answer(tracker.latest_message.get("text") or "")
        if entry is None:
            dispatcher.utter_message(response="utter_faq_unknown")
            return [FollowupAction("utter_offer_agent")]
        answer = Line("utter_info", {"info_text": entry.answer}, sentences=count_sentences(entry.answer))
        say_then_offer_more(dispatcher, [answer])
        return []
