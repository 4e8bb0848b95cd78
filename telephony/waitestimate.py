"""The estimated wait of a caller about to join a queue, from the live model — not Asterisk's own hold time.

Asterisk announces an exponential average of past waits that ignores where the caller will stand in line.
:func:`estimate_wait` instead counts the callers who will be served first and the agents who can serve them,
and when each of those agents is next free::

    ahead  = callers waiting with a higher priority than P, plus those with priority P (already waiting,
             so ahead of a newcomer); a caller whose priority is not known yet counts as priority 0
    pool   = members of the queue who are not paused, whose penalty is within [min_penalty, max_penalty]
             (QUEUE_MIN_PENALTY / QUEUE_MAX_PENALTY) and whose device is not unavailable or invalid
             (an empty pool is NobodyCanTakeIt, not an infinite wait)
    T      = the queue's average talk time (app_queue's TalkTime), or default_talk_s before any call completed
    U_i    = agent i's wrap-up: its own Wrapuptime, else the queue's wrapuptime
    H_i    = T + U_i, the time agent i spends per caller (average handle time)
    f_i    = seconds until agent i is next free:
               0                        idle, or ringing for a queue caller (that caller is in `ahead`)
               last_call + U_i - now    in wrap-up
               max(T - talked, 0) + U_i in a queue call answered `talked` seconds ago
               T / 2 + U_i              in a queue call of unknown start (on average half is left)
               T / 2                    busy on a call outside the queue (no wrap-up follows)
    wait W = the smallest W >= 0 with   sum_i max(0, W - f_i) / H_i  >=  ahead

Each agent serves callers ahead at a rate of 1/H_i once it is free, and the newcomer is taken when the callers
ahead have all been taken. With every agent free now and one handle time H this is the plain rule
``W = ahead / agents * H``; an agent still in a call or in wrap-up joins in at its ``f_i``. Solving for W
(``f`` sorted ascending, the first k agents busy serving):

    W = (ahead + sum_{i<=k} f_i / H_i) / sum_{i<=k} 1 / H_i      for the smallest k with W <= f_{k+1}

and with nobody ahead, W is the first f_i. Example (the issue's): two agents, five callers ahead, one paused,
the other 10 s from the end of a 15 s wrap-up, T = 240 s: W = 10 + 5 * (240 + 15) = 1285 s.
"""

from __future__ import annotations

from dataclasses import dataclass

from telephony.amievents import DeviceState
from telephony.queues import Member, QueueState

DEFAULT_TALK_S = 180.0
"""Talk time assumed while a queue has no completed call to average, seconds."""

_OFF = (DeviceState.INVALID, DeviceState.UNAVAILABLE)
_BUSY = (DeviceState.INUSE, DeviceState.BUSY, DeviceState.RINGINUSE, DeviceState.ONHOLD)


@dataclass(frozen=True, slots=True)
class WaitEstimate:
    """How long a new caller should expect to wait."""

    seconds: float
    """Expected wait, seconds (to the millisecond)."""
    ahead: int
    """Callers who will be served first."""
    agents: int
    """Agents who can take the call (the pool)."""
    talk_s: float
    """Average talk time used, seconds."""
    free_in_s: tuple[float, ...]
    """When each agent of the pool is next free, seconds from now, ascending."""


@dataclass(frozen=True, slots=True)
class NobodyCanTakeIt:
    """No member of the queue can take the call now: send the caller to the fallback queue."""

    queue: str
    members: int
    """Members logged in to the queue."""
    paused: int
    out_of_range: int
    """Members whose penalty is outside the caller's range."""
    unavailable: int
    """Members whose device is unavailable or invalid."""


def free_in(member: Member, queue: QueueState, now: float, talk_s: float) -> float:
    """Seconds until ``member`` is next free (``f_i`` in the module docstring)."""
    wrapup = queue.wrapup_of(member)
    if member.in_call:
        if member.call_started_at is None:
            return talk_s / 2 + wrapup
        return max(talk_s - (now - member.call_started_at), 0.0) + wrapup
    if member.ringing:
        return 0.0
    if queue.in_wrapup(member, now):
        return queue.wrapup_ends_at(member) - now
    if member.status in _BUSY:
        return talk_s / 2
    return 0.0


def estimate_wait(
    queue: QueueState,
    *,
    now: float,
    priority: int = 0,
    max_penalty: int | None = None,
    min_penalty: int = 0,
    default_talk_s: float = DEFAULT_TALK_S,
) -> WaitEstimate | NobodyCanTakeIt:
    """The expected wait of a caller with queue priority ``priority`` joining ``queue`` at ``now`` (Unix
    seconds), served by members with ``min_penalty <= penalty <= max_penalty`` (no maximum when ``None``).
    The formula is in the module docstring."""
    paused = out_of_range = unavailable = 0
    pool: list[Member] = []
    for member in queue.members:
        if member.paused:
            paused += 1
        elif member.penalty < min_penalty or (max_penalty is not None and member.penalty > max_penalty):
            out_of_range += 1
        elif member.status in _OFF:
            unavailable += 1
        else:
            pool.append(member)
    if not pool:
        return NobodyCanTakeIt(queue.name, len(queue.members), paused, out_of_range, unavailable)
    stats = queue.stats
    talk = float(stats.talk_time_s) if stats.talk_time_s or stats.completed else default_talk_s
    ahead = sum(1 for c in queue.callers if (c.priority or 0) >= priority)
    agents = sorted(
        ((free_in(m, queue, now, talk), talk + queue.wrapup_of(m)) for m in pool),
        key=lambda fh: fh[0],
    )
    return WaitEstimate(
        seconds=round(_fluid_wait(ahead, agents), 3),
        ahead=ahead,
        agents=len(pool),
        talk_s=talk,
        free_in_s=tuple(f for f, _ in agents),
    )


def _fluid_wait(ahead: int, agents: list[tuple[float, float]]) -> float:
    """The smallest W with ``sum max(0, W - f_i) / H_i >= ahead``; ``agents`` = (f_i, H_i) by f_i."""
    rate = 0.0
    offset = 0.0
    for k, (f, handle) in enumerate(agents):
        if handle <= 0:  # no talk and no wrap-up: this agent clears the line the moment it is free
            return f
        rate += 1.0 / handle
        offset += f / handle
        wait = (ahead + offset) / rate
        following = agents[k + 1][0] if k + 1 < len(agents) else None
        if following is None or wait <= following:
            return max(wait, f)
    raise AssertionError("unreachable: the last agent always settles the wait")
