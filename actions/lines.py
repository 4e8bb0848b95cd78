"""What an action says: responses of ``nlu-data/domain.yml``, with the values of their variables.

Editors own every sentence the caller hears; the code chooses which response fits and renders the values that
go into it (amounts, dates, times, digits, names and lists, by :mod:`actions.shared.speech`). A reply that
depends on the data (opening hours per branch, an order's status) is a list of :class:`Line` s, one sentence
each, said in order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from rasa_sdk.executor import CollectingDispatcher

_SENTENCE = re.compile(r"[.?!]+")


@dataclass(frozen=True, slots=True)
class Line:
    """One response to say and the values of its variables (``{branch}`` in it is ``values["branch"]``)."""

    response: str
    values: Mapping[str, str] = field(default_factory=dict)
    sentences: int = 1
    """How many sentences it says (responses are one sentence each; an FAQ answer may be two)."""


def count_sentences(text: str) -> int:
    return len([s for s in _SENTENCE.split(text) if s.strip()])


def say(dispatcher: CollectingDispatcher, lines: Iterable[Line]) -> None:
    """Utter each line: its response, rendered by Rasa with its values."""
    for line in lines:
        dispatcher.utter_message(response=line.response, **line.values)


def say_then_offer_more(dispatcher: CollectingDispatcher, lines: Sequence[Line]) -> None:
    """An answer, then "anything else?" unless the answer already took two sentences."""
    say(dispatcher, lines)
    if sum(line.sentences for line in lines) < 2:
        dispatcher.utter_message(response="utter_anything_else")
