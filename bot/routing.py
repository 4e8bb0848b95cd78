"""Where a handed-off caller waits: the skill's queue, how far ahead they enter, which agents first.

Asterisk's ``app_queue`` distributes the calls; Attendant only chooses, per call, what ``Queue()`` is given
(``telephony.callstate.Route``, delivered by the FastAGI ``outcome`` route):

- **queue** — ``attendant-<skill>``, or ``attendant-<skill>-<language>`` for a caller in another language
  (the dialplan falls back to ``attendant-<skill>`` and then ``attendant-general`` when that queue does not
  exist);
- **priority** (``QUEUE_PRIO``, higher enters ahead) — 10 for a priority-1 incident (a total outage), 5 for a
  verified gold customer, 3 for a priority-2 incident, 2 for a verified silver customer, else 0;
- **max penalty** (``QUEUE_MAX_PENALTY``) — 1 (agents of proficiency 5 and 4) at entry, widened by the
  ``attendant-widen`` rule every 30 s; a priority-1 incident starts at 4 (every agent with the skill: for an
  outage, speed beats proficiency).

What the assistant learned comes in the handoff context: ``verified``, ``incident_priority`` (1..4) and
``loyalty_tier`` (``none``/``silver``/``gold``; only present for a verified customer).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from telephony.callstate import PENALTY_MAX, Route, Skill, queue_name

OUTAGE_PRIORITY = 10
GOLD_PRIORITY = 5
PARTIAL_OUTAGE_PRIORITY = 3
SILVER_PRIORITY = 2
START_PENALTY = 1


def priority_for(context: Mapping[str, Any]) -> int:
    """``QUEUE_PRIO`` for the caller (see the module docstring)."""
    verified = context.get("verified") is True
    incident = context.get("incident_priority")
    tier = context.get("loyalty_tier") if verified else None
    candidates = [0]
    if incident == 1:
        candidates.append(OUTAGE_PRIORITY)
    if incident == 2:
        candidates.append(PARTIAL_OUTAGE_PRIORITY)
    if tier == "gold":
        candidates.append(GOLD_PRIORITY)
    if tier == "silver":
        candidates.append(SILVER_PRIORITY)
    return max(candidates)


def choose_route(skill: Skill, context: Mapping[str, Any], language: str | None = None) -> Route:
    """The route for a caller handed off to ``skill``."""
    priority = priority_for(context)
    max_penalty = PENALTY_MAX if priority == OUTAGE_PRIORITY else START_PENALTY
    return Route(queue_name(skill, language), priority=priority, max_penalty=max_penalty)
