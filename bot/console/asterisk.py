"""The console's link to Asterisk: queue events become desk events, desk requests become AMI actions.

::

    AgentCalled        -> Offered    (the member's agent; the call's ATTENDANT_UUID from ChanVariable)
    AgentRingNoAnswer  -> Withdrawn  "ring-no-answer"
    QueueCallerAbandon -> Withdrawn  "abandoned", for every agent still ringing for that caller
    AgentConnect       -> Answered, and Withdrawn "answered-elsewhere" for the others still ringing
    AgentComplete      -> Completed  (wrap-up seconds from the live queue model: the member's own, else the
                                      queue's)

A queue call without an ``ATTENDANT_UUID`` (a call that did not come through the bot) and a member who is
not in the agents file are skipped: the console only shows calls it can explain. Events are handled in
order, one at a time, so a fast ring-no-answer never overtakes its own offer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from bot.console.agents import Agent, Roster
from bot.console.control import CallControlError
from bot.console.desk import Answered, Completed, DeskEvent, Offered, Withdrawn
from telephony.ami import AmiClient
from telephony.amiactions import AmiError, AmiNoAnswer
from telephony.amievents import (
    AgentCalled,
    AgentComplete,
    AgentConnect,
    AgentRingNoAnswer,
    AmiEvent,
    QueueCallerAbandon,
)
from telephony.queues import QueueModel

log = logging.getLogger(__name__)


class DeskFeed:
    """Turns typed AMI events into desk events for the agents in the roster."""

    def __init__(
        self,
        roster: Roster,
        feed: Callable[[DeskEvent], object],
        model: QueueModel,
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._roster = roster
        self._feed = feed
        self._model = model
        self._wall = wall
        self._ringing: dict[str, set[str]] = {}
        """Caller uniqueid -> agents whose phone rings for it."""

    def _agent(self, interface: str, member_name: str) -> Agent | None:
        return self._roster.by_interface(interface) or self._roster.by_member_name(member_name)

    def translate(self, event: AmiEvent) -> list[DeskEvent]:
        """The desk events one AMI event means (pure, apart from remembering who is ringing)."""
        now = self._wall()
        if isinstance(event, QueueCallerAbandon):
            call = event.caller.attendant_uuid
            agents = self._ringing.pop(event.caller.uniqueid, set())
            return [Withdrawn(a, call, "abandoned", now) for a in sorted(agents)] if call else []
        if not isinstance(event, (AgentCalled, AgentRingNoAnswer, AgentConnect, AgentComplete)):
            return []
        call = event.caller.attendant_uuid
        agent = self._agent(event.interface, event.member_name)
        if not call or agent is None:
            return []
        uniqueid = event.caller.uniqueid
        ringing = self._ringing.setdefault(uniqueid, set())
        if isinstance(event, AgentCalled):
            ringing.add(agent.id)
            return [Offered(agent.id, call, event.queue, uniqueid, now)]
        if isinstance(event, AgentRingNoAnswer):
            ringing.discard(agent.id)
            return [Withdrawn(agent.id, call, "ring-no-answer", now)]
        if isinstance(event, AgentConnect):
            others = sorted(ringing - {agent.id})
            self._ringing.pop(uniqueid, None)
            answered: list[DeskEvent] = [Answered(agent.id, call, now)]
            return answered + [Withdrawn(other, call, "answered-elsewhere", now) for other in others]
        self._ringing.pop(uniqueid, None)
        state = self._model.queue(event.queue)
        member = state.member(event.interface) if state is not None else None
        wrapup = state.wrapup_of(member) if state is not None and member is not None else 0
        return [Completed(agent.id, call, event.queue, float(event.talk_time_s), float(wrapup), now)]


class DeskBridge:
    """Subscribes a :class:`DeskFeed` to the AMI client and feeds the desk in order, off the AMI reader."""

    def __init__(self, client: AmiClient, feed: DeskFeed, desk_feed: Callable[[DeskEvent], object]):
        self._client = client
        self._translate = feed
        self._desk_feed = desk_feed
        self._queue: asyncio.Queue[DeskEvent] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        self._unsubscribe = self._client.subscribe(self._on_event)
        self._task = asyncio.create_task(self._run(), name="desk-feed")

    def _on_event(self, event: AmiEvent) -> None:
        for desk_event in self._translate.translate(event):
            self._queue.put_nowait(desk_event)

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                result = self._desk_feed(event)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("desk event %s failed", type(event).__name__)

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class AmiCallControl:
    """:class:`bot.console.control.CallControl` over the AMI client, each request once per intent."""

    def __init__(self, client: AmiClient, *, timeout_s: float = 5.0) -> None:
        self._client = client
        self._timeout_s = timeout_s
        self._pauses = 0

    async def set_paused(self, interface: str, paused: bool, reason: str = "") -> None:
        self._pauses += 1  # every press is its own intent; the ledger stops a resend of the same one
        intent = f"console-pause:{interface}:{paused}:{self._pauses}:{time.time():.3f}"
        try:
            await self._client.queue_pause(
                interface, paused, intent=intent, reason=reason or None, timeout=self._timeout_s
            )
        except AmiError as exc:
            raise CallControlError(str(exc) or type(exc).__name__) from exc

    async def queue_log(self, queue: str, uniqueid: str, member_name: str, event: str, message: str) -> None:
        """One ``queue_log`` row per (queue, call, agent, event). When the row was sent and its answer lost,
        it is not sent again (a report must not count it twice): logged, and the console carries on with the
        disposition kept in the call record."""
        try:
            await self._client.queue_log(
                queue,
                event,
                intent=f"queue-log:{queue}:{uniqueid}:{member_name}:{event}",
                uniqueid=uniqueid,
                interface=member_name,
                message=message,
                timeout=self._timeout_s,
            )
        except AmiNoAnswer as exc:
            log.warning("queue_log row for call %s sent, not confirmed (%s)", uniqueid, type(exc).__name__)
        except AmiError as exc:
            raise CallControlError(str(exc) or type(exc).__name__) from exc
