"""What the caller hears from an action, rendered from ``nlu-data/domain.yml`` (or a copy) exactly as the Rasa
server renders it: its ``TemplatedNaturalLanguageGenerator`` and the code path that turns an action server's
messages into bot utterances. A response that is missing, renders empty or leaves a ``{variable}`` unfilled
fails the test that asked for it."""

from __future__ import annotations

import asyncio
import copy
import functools
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rasa.core.actions.action import RemoteAction
from rasa.core.channels.channel import CollectingOutputChannel
from rasa.core.nlg.response import TemplatedNaturalLanguageGenerator
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import SlotSet
from rasa.shared.core.trackers import DialogueStateTracker

from actions.lines import Line

DOMAIN = Path(__file__).resolve().parent.parent / "nlu-data" / "domain.yml"
CHANNEL = "attendant"


@functools.lru_cache(maxsize=8)
def load_domain(path: Path = DOMAIN) -> Domain:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Slot auto-fill has been removed", UserWarning)  # on every load
        return Domain.load(str(path))


def _checked(response: str, rendered: Mapping[str, Any] | None) -> str:
    assert rendered is not None and rendered.get("text"), f"{response} renders nothing"
    text = str(rendered["text"])
    assert "{" not in text and "None" not in text, f"{response} left a variable unfilled: {text!r}"
    return text


def say_lines(lines: Iterable[Line], slots: Mapping[str, Any] | None = None, domain: Path = DOMAIN) -> str:
    """The lines as said, joined by spaces (as the channel's test helpers join a reply's texts)."""
    nlg = TemplatedNaturalLanguageGenerator(load_domain(domain).responses)
    said = []
    for line in lines:
        rendered = nlg.generate_from_slots(line.response, dict(slots or {}), CHANNEL, **line.values)
        said.append(_checked(line.response, rendered))
    return " ".join(said)


def heard(
    messages: list[dict[str, Any]], slots: Mapping[str, Any] | None = None, domain: Path = DOMAIN
) -> list[dict[str, Any]]:
    """A ``CollectingDispatcher``'s messages as the Rasa server turns them into bot utterances, each
    ``{"text": ...}`` and/or ``{"custom": ...}``, with the conversation's ``slots`` filled in."""
    loaded = load_domain(domain)
    tracker = DialogueStateTracker("test", loaded.slots)
    for name, value in (slots or {}).items():
        tracker.update(SlotSet(name, value))
    nlg = TemplatedNaturalLanguageGenerator(loaded.responses)
    out: list[dict[str, Any]] = []
    for message in messages:
        events = asyncio.run(
            RemoteAction._utter_responses([copy.deepcopy(message)], CollectingOutputChannel(), nlg, tracker)
        )
        assert len(events) == 1, f"{message.get('response')} renders nothing"
        item: dict[str, Any] = {}
        if events[0].text is not None:
            item["text"] = _checked(str(message.get("response")), {"text": events[0].text})
        if events[0].data.get("custom"):
            item["custom"] = events[0].data["custom"]
        out.append(item)
    return out
