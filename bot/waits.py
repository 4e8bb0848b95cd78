"""How long a handed-off caller will wait, and how the bot says it.

The estimate comes from the live queue model (``telephony.queues``, kept by the AMI connection) through
``telephony.waitestimate.estimate_wait`` — callers ahead of this one at this priority, the agents who can take
the call and when each is next free — never from Asterisk's own hold-time average. The caller enters with
``QUEUE_MAX_PENALTY`` at the route's value and the ``attendant-widen`` rule lets one more penalty level in
every ``WIDEN_STEP_S``; so the wait is the best over the levels of ``max(time until that level is let in,
the estimate with that level)``.

The sentence is the editors' (``nlu-data/prompts.yml``, ``wait:``): "All our billing specialists are busy;
the expected wait is about four minutes."; with nobody who can take the call: "Nobody from billing is
available right now, so I'm putting you through to the first free colleague." (and the caller goes to the
general queue); with no live model (no AMI connection, or not synced yet), nothing is said.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from bot.prompts import WaitWords
from telephony.callstate import PENALTY_MAX, Route, Skill, queue_name
from telephony.queues import QueueModel
from telephony.waitestimate import WaitEstimate, estimate_wait

WIDEN_STEP_S = 30.0
"""``queuerules.conf`` ``attendant-widen``: one more penalty level every 30 s."""


@dataclass(frozen=True, slots=True)
class Wait:
    """What the gateway knows of a handed-off caller's wait."""

    seconds: float | None
    """Expected wait, seconds; ``None`` when nobody can take the call."""
    route: Route
    """The route to use (the general queue when nobody in the skill's queue can take the call)."""

    @property
    def nobody(self) -> bool:
        return self.seconds is None


class Waits(Protocol):
    """Estimates waits (the real one is :class:`ModelWaits`)."""

    def estimate(self, route: Route, skill: Skill) -> Wait | None:
        """``None``: not known (no live model)."""


class ModelWaits:
    """Waits from the live queue model."""

    def __init__(self, model: QueueModel, clock: Callable[[], float]) -> None:
        self._model = model
        self._clock = clock

    def estimate(self, route: Route, skill: Skill) -> Wait | None:
        if not self._model.synced:
            return None
        now = self._clock()
        for queue in (route.queue, queue_name(skill), queue_name(Skill.GENERAL)):
            state = self._model.queue(queue)
            if state is None:
                continue  # the dialplan falls back the same way when a queue does not exist
            if queue != route.queue:
                route = replace(route, queue=queue)
            best: float | None = None
            for level in range(route.max_penalty, PENALTY_MAX + 1):
                found = estimate_wait(state, now=now, priority=route.priority, max_penalty=level)
                if isinstance(found, WaitEstimate):
                    delay = (level - route.max_penalty) * WIDEN_STEP_S
                    seconds = max(delay, found.seconds)
                    best = seconds if best is None else min(best, seconds)
            if best is not None:
                return Wait(best, route)
            if queue == queue_name(Skill.GENERAL):
                break
            general = queue_name(Skill.GENERAL)
            return Wait(None, replace(route, queue=general, max_penalty=PENALTY_MAX))
        return Wait(None, replace(route, queue=queue_name(Skill.GENERAL), max_penalty=PENALTY_MAX))


def duration(seconds: float, words: WaitWords) -> str:
    """ "less than a minute", "one minute", "four minutes", "an hour and a half", "five hours" (to the nearest
    minute, then as :meth:`bot.prompts.DurationWords.say` says them)."""
    if seconds < 60:
        return words.under_a_minute
    return words.duration.say(round(seconds / 60))


def wait_sentence(wait: Wait, skill: Skill, words: WaitWords) -> str:
    """What the caller hears about the wait before the bot lets the call go."""
    team = words.teams.get(skill.value, skill.value)
    if wait.seconds is None:
        return words.nobody.format(team=team)
    if wait.seconds < words.soon_s:
        return words.soon.format(team=team)
    return words.busy.format(team=team, wait=duration(wait.seconds, words))
