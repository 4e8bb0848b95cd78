"""The live model of Asterisk's ACD: queues, their members (agents) and their waiting callers.

Pure logic, driven by the typed AMI events (:mod:`telephony.amievents`) on an injectable clock (Unix
seconds), testable without a socket. :meth:`QueueModel.rebuild` replaces everything with a ``QueueStatus``
snapshot (at every (re)connect, see :mod:`telephony.queuetracker`); :meth:`QueueModel.apply` keeps it current
from then on. Readers get frozen snapshots (:class:`QueueState`, :class:`Member`, :class:`Caller`).

What each event does here, and why:

- ``QueueCallerJoin``/``Leave``: the caller is inserted at its ``Position`` / removed, and the others are
  renumbered 1..n in their order (not shifted by arithmetic: an event that crossed a re-sync must not
  corrupt the positions). A member ringing for a caller who left stops ringing (an abandoned call sends no
  ``AgentRingNoAnswer``). ``QueueCallerAbandon`` counts the abandon.
- ``AgentCalled`` marks the member ringing; ``AgentRingNoAnswer`` unmarks it.
- ``AgentConnect`` puts the member in a call started now (Asterisk sends no member event for it: ``InCall: 1``
  shows only in ``QueueStatus``) and folds the hold time into the queue's average as app_queue does
  (``recalc_holdtime``: the first call sets it, then ``(3 * old + new) / 4``, integer).
- ``AgentComplete`` ends the call: the member's last call is now (the start of its wrap-up) and its calls
  taken grow, in every queue it belongs to when ``shared_lastcall`` is on (as in the sample
  ``queues.conf``); the queue's completed count and talk-time average follow app_queue's ``update_queue``.
  The ``QueueMemberStatus`` Asterisk sends next carries its own ``LastCall``, which then wins.
- ``QueueMemberStatus``/``Added``/``Pause``/``Penalty`` carry the whole member and replace it; what only
  events tell (ringing, when the call started) is kept. An ``InCall: 0`` older than the call's start
  (``LastCall`` before it) is ignored: the call is still up.
- ``QueueMemberRemoved`` removes the member. Queues named by an event but absent from the last snapshot are
  created with empty statistics.

A queue's ``wrapuptime`` is not in ``QueueStatus``: it comes from :class:`QueueSettings` (the sample's 15 s
unless configured per queue). ``QueueEntry`` carries the caller's queue priority; a caller known only from
``QueueCallerJoin`` has ``priority`` ``None`` until the next snapshot. Service-level figures are as of the
last snapshot.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from telephony.amiactions import QueueStatusSnapshot
from telephony.amievents import (
    AgentCalled,
    AgentComplete,
    AgentConnect,
    AgentRingNoAnswer,
    AmiEvent,
    DeviceState,
    MemberState,
    QueueCallerAbandon,
    QueueCallerJoin,
    QueueCallerLeave,
    QueueMemberAdded,
    QueueMemberPause,
    QueueMemberPenalty,
    QueueMemberRemoved,
    QueueMemberStatus,
    QueueParams,
)

DEFAULT_WRAPUP_S = 15
"""The sample ``queues.conf`` template's ``wrapuptime``, seconds."""


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """What the model must know about queues that AMI does not report."""

    wrapup_s: Mapping[str, int] = field(default_factory=dict)
    """Queue name -> its ``wrapuptime`` in queues.conf, seconds."""
    default_wrapup_s: int = DEFAULT_WRAPUP_S
    """For queues not in :attr:`wrapup_s`."""
    shared_lastcall: bool = True
    """queues.conf ``[general] shared_lastcall``: a call in one queue starts wrap-up in all the member's."""

    def wrapup_of(self, queue: str) -> int:
        return self.wrapup_s.get(queue, self.default_wrapup_s)


@dataclass(frozen=True, slots=True)
class Member:
    """An agent logged in to one queue."""

    name: str
    interface: str
    state_interface: str
    penalty: int
    """Lower is rung first; an agent's skill in this queue."""
    paused: bool
    paused_reason: str
    status: DeviceState
    in_call: bool
    """In a queue call now."""
    last_call: float
    """When its last queue call ended, Unix seconds; 0 = never."""
    calls_taken: int
    wrapup_time_s: int
    """Its own wrap-up, seconds; 0 = the queue's applies (:meth:`QueueState.wrapup_of`)."""
    login_time: int
    """Unix seconds."""
    last_pause: int
    """Unix seconds; 0 = never."""
    ringing: bool = False
    """Being offered a queue call (``AgentCalled``, not yet answered or given up)."""
    call_started_at: float | None = None
    """When the current queue call was answered, Unix seconds (``None``: not in a call, or it started before
    the model saw it)."""
    caller: str | None = None
    """Uniqueid of the caller it is ringing for or talking to."""

    @classmethod
    def from_state(cls, state: MemberState) -> Member:
        return cls(
            name=state.name,
            interface=state.interface,
            state_interface=state.state_interface,
            penalty=state.penalty,
            paused=state.paused,
            paused_reason=state.paused_reason,
            status=state.status,
            in_call=state.in_call,
            last_call=float(state.last_call),
            calls_taken=state.calls_taken,
            wrapup_time_s=state.wrapup_time_s,
            login_time=state.login_time,
            last_pause=state.last_pause,
        )


@dataclass(frozen=True, slots=True)
class Caller:
    """A caller waiting in a queue."""

    uniqueid: str
    channel: str
    position: int
    """1-based; 1 is answered next."""
    joined_at: float
    """Unix seconds."""
    priority: int | None = None
    """Queue priority (``QUEUE_PRIO``, higher waits ahead); ``None``: not known yet (joined after the last
    snapshot)."""
    attendant_uuid: str | None = None
    """The call's ``ATTENDANT_UUID`` (its context in Redis), when the channel carries it."""

    def wait_s(self, now: float) -> float:
        """Seconds waited so far."""
        return max(0.0, now - self.joined_at)


@dataclass(frozen=True, slots=True)
class QueueStats:
    """A queue's settings and running statistics."""

    strategy: str = ""
    hold_time_s: int = 0
    """Running average of answered callers' waits (app_queue's), seconds."""
    talk_time_s: int = 0
    """Running average of talk time (app_queue's), seconds."""
    completed: int = 0
    abandoned: int = 0
    service_level_s: int = 0
    service_level_perf: float = 0.0
    """Percent of completed calls answered within ``service_level_s`` (as of the last snapshot)."""
    max_callers: int = 0
    weight: int = 0

    @classmethod
    def from_params(cls, p: QueueParams) -> QueueStats:
        return cls(
            strategy=p.strategy,
            hold_time_s=p.hold_time_s,
            talk_time_s=p.talk_time_s,
            completed=p.completed,
            abandoned=p.abandoned,
            service_level_s=p.service_level_s,
            service_level_perf=p.service_level_perf,
            max_callers=p.max_callers,
            weight=p.weight,
        )


@dataclass(frozen=True, slots=True)
class QueueState:
    """One queue at one moment."""

    name: str
    stats: QueueStats
    wrapup_time_s: int
    """The queue's ``wrapuptime`` (configured, :class:`QueueSettings`), seconds."""
    members: tuple[Member, ...]
    """By penalty, then name."""
    callers: tuple[Caller, ...]
    """By position."""

    def member(self, interface: str) -> Member | None:
        return next((m for m in self.members if m.interface == interface), None)

    def member_named(self, name: str) -> Member | None:
        return next((m for m in self.members if m.name == name), None)

    def wrapup_of(self, member: Member) -> int:
        """The member's wrap-up, seconds: its own ``Wrapuptime``, else the queue's (app_queue's rule)."""
        return member.wrapup_time_s or self.wrapup_time_s

    def wrapup_ends_at(self, member: Member) -> float:
        """When the member's wrap-up ends (Unix seconds); 0 when it never took a call."""
        if not member.last_call:
            return 0.0
        return member.last_call + self.wrapup_of(member)

    def in_wrapup(self, member: Member, now: float) -> bool:
        """app_queue's test: ``lastcall && wrapuptime && now - wrapuptime < lastcall``."""
        return not member.in_call and bool(member.last_call) and now < self.wrapup_ends_at(member)


@dataclass(slots=True)
class _Queue:
    """A queue as the model holds it (mutable inside the model only)."""

    stats: QueueStats = QueueStats()
    members: dict[str, Member] = field(default_factory=dict)
    """Interface -> member."""
    callers: list[Caller] = field(default_factory=list)
    """In queue order."""


class QueueModel:
    """Queues, members and callers, kept from ``QueueStatus`` and events (module docstring)."""

    def __init__(
        self, settings: QueueSettings | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings or QueueSettings()
        self._clock = clock
        self._queues: dict[str, _Queue] = {}
        self.synced_at: float | None = None
        """When the last snapshot was applied (Unix seconds); ``None`` before the first."""
        self.synced = False
        """A snapshot was applied and the connection has not been lost since."""

    def now(self) -> float:
        """The model's clock, Unix seconds."""
        return self._clock()

    # --- reading ---------------------------------------------------------------------------------------

    def queue_names(self) -> tuple[str, ...]:
        return tuple(self._queues)

    def queue(self, name: str) -> QueueState | None:
        """The queue as it is now, ``None`` when the model does not know it."""
        q = self._queues.get(name)
        if q is None:
            return None
        members = sorted(q.members.values(), key=lambda m: (m.penalty, m.name, m.interface))
        return QueueState(name, q.stats, self.settings.wrapup_of(name), tuple(members), tuple(q.callers))

    def find_caller(self, uniqueid: str) -> tuple[str, Caller] | None:
        """(queue, caller) for a waiting caller's uniqueid."""
        for name, q in self._queues.items():
            for caller in q.callers:
                if caller.uniqueid == uniqueid:
                    return name, caller
        return None

    # --- snapshot ----------------------------------------------------------------------------------------

    def rebuild(self, snapshot: QueueStatusSnapshot) -> None:
        """Replace every queue with ``snapshot`` (what only events told is kept where still true)."""
        now = self._clock()
        old = self._queues
        queues: dict[str, _Queue] = {}
        for params in snapshot.params:
            queues[params.queue] = _Queue(QueueStats.from_params(params))
        for state in snapshot.members:
            q = queues.setdefault(state.queue, _Queue())
            before = old[state.queue].members.get(state.interface) if state.queue in old else None
            member = Member.from_state(state)
            if member.in_call and before is not None and before.in_call:
                member = replace(member, call_started_at=before.call_started_at, caller=before.caller)
            q.members[state.interface] = member
        for entry in sorted(snapshot.entries, key=lambda e: (e.queue, e.position)):
            q = queues.setdefault(entry.queue, _Queue())
            earlier = old[entry.queue].callers if entry.queue in old else []
            known = next((c for c in earlier if c.uniqueid == entry.uniqueid), None)
            q.callers.append(
                Caller(
                    uniqueid=entry.uniqueid,
                    channel=entry.channel,
                    position=entry.position,
                    joined_at=now - entry.wait_s,
                    priority=entry.priority,
                    attendant_uuid=known.attendant_uuid if known else None,
                )
            )
        for q in queues.values():
            _renumber(q)
        self._queues = queues
        self.synced_at = now
        self.synced = True

    def mark_stale(self) -> None:
        """The connection was lost: events may be missing until the next snapshot."""
        self.synced = False

    # --- events ------------------------------------------------------------------------------------------

    def apply(self, event: AmiEvent) -> None:
        """Fold one event into the model; events the model does not use are ignored."""
        if isinstance(event, QueueCallerJoin):
            self._join(event)
        elif isinstance(event, QueueCallerLeave):
            self._leave(event.queue, event.caller.uniqueid)
        elif isinstance(event, QueueCallerAbandon):
            q = self._ensure(event.queue)
            q.stats = replace(q.stats, abandoned=q.stats.abandoned + 1)
        elif isinstance(event, AgentCalled):
            caller = event.caller.uniqueid
            self._update(event.queue, event.interface, lambda m: replace(m, ringing=True, caller=caller))
        elif isinstance(event, AgentRingNoAnswer):
            self._update(event.queue, event.interface, lambda m: replace(m, ringing=False, caller=None))
        elif isinstance(event, AgentConnect):
            self._connect(event)
        elif isinstance(event, AgentComplete):
            self._complete(event)
        elif isinstance(event, QueueMemberStatus | QueueMemberAdded | QueueMemberPause | QueueMemberPenalty):
            self._member(event.member)
        elif isinstance(event, QueueMemberRemoved):
            self._ensure(event.member.queue).members.pop(event.member.interface, None)

    def _ensure(self, name: str) -> _Queue:
        q = self._queues.get(name)
        if q is None:
            q = self._queues[name] = _Queue()
        return q

    def _update(self, queue: str, interface: str, change: Callable[[Member], Member]) -> None:
        q = self._ensure(queue)
        member = q.members.get(interface)
        if member is not None:
            q.members[interface] = change(member)

    def _join(self, event: QueueCallerJoin) -> None:
        q = self._ensure(event.queue)
        uniqueid = event.caller.uniqueid
        before = next((c for c in q.callers if c.uniqueid == uniqueid), None)
        q.callers = [c for c in q.callers if c.uniqueid != uniqueid]
        caller = Caller(
            uniqueid=uniqueid,
            channel=event.caller.channel,
            position=event.position,
            joined_at=before.joined_at if before else self._clock(),
            priority=before.priority if before else None,
            attendant_uuid=event.caller.attendant_uuid,
        )
        q.callers.insert(max(0, min(event.position - 1, len(q.callers))), caller)
        _renumber(q)

    def _leave(self, queue: str, uniqueid: str) -> None:
        q = self._ensure(queue)
        q.callers = [c for c in q.callers if c.uniqueid != uniqueid]
        _renumber(q)
        for interface, member in q.members.items():
            if member.ringing and member.caller == uniqueid:
                q.members[interface] = replace(member, ringing=False, caller=None)

    def _connect(self, event: AgentConnect) -> None:
        q = self._ensure(event.queue)
        q.callers = [c for c in q.callers if c.uniqueid != event.caller.uniqueid]
        _renumber(q)
        s = q.stats
        first = s.completed + s.abandoned == 0
        hold = event.hold_time_s if first else (3 * s.hold_time_s + event.hold_time_s) >> 2
        q.stats = replace(s, hold_time_s=hold)
        started, caller = self._clock(), event.caller.uniqueid
        self._update(
            event.queue,
            event.interface,
            lambda m: replace(m, in_call=True, ringing=False, call_started_at=started, caller=caller),
        )

    def _complete(self, event: AgentComplete) -> None:
        now = float(int(self._clock()))  # app_queue's time(NULL)
        q = self._ensure(event.queue)
        s = q.stats
        completed = s.completed + 1
        talk = event.talk_time_s if completed == 1 else (3 * s.talk_time_s + event.talk_time_s) >> 2
        q.stats = replace(s, completed=completed, talk_time_s=talk)
        queues = self._queues.values() if self.settings.shared_lastcall else [q]
        for other in queues:
            member = other.members.get(event.interface)
            if member is None:
                continue
            other.members[event.interface] = replace(
                member, last_call=now, calls_taken=member.calls_taken + 1
            )
        self._update(
            event.queue,
            event.interface,
            lambda m: replace(m, in_call=False, call_started_at=None, caller=None),
        )

    def _member(self, state: MemberState) -> None:
        q = self._ensure(state.queue)
        before = q.members.get(state.interface)
        member = Member.from_state(state)
        if before is not None:
            started = before.call_started_at
            still_in_call = (
                before.in_call
                and not member.in_call
                and started is not None
                and member.last_call < int(started)
            )
            member = replace(
                member,
                in_call=member.in_call or still_in_call,
                ringing=before.ringing,
                call_started_at=started if (member.in_call or still_in_call) else None,
                caller=before.caller if (before.ringing or member.in_call or still_in_call) else None,
            )
        q.members[state.interface] = member


def _renumber(q: _Queue) -> None:
    q.callers = [c if c.position == i else replace(c, position=i) for i, c in enumerate(q.callers, 1)]
