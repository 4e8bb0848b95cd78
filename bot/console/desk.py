"""The agents' desks: what each agent's screen holds, fed by the AMI side with four typed events.

The AMI client turns Asterisk's queue events into these (``call_id`` is the ``ATTENDANT_UUID`` that the
events carry as ``ChanVariable``; ``agent_id`` comes from the member's ``Interface``/``MemberName`` through
:meth:`bot.console.agents.Roster.by_interface`)::

    AgentCalled                          -> Offered(agent_id, call_id, queue, uniqueid, at)
    AgentRingNoAnswer                    -> Withdrawn(agent_id, call_id, "ring-no-answer")
    QueueCallerAbandon (agent ringing)   -> Withdrawn(agent_id, call_id, "abandoned")
    AgentConnect                         -> Answered(agent_id, call_id, at)
    AgentComplete                        -> Completed(agent_id, call_id, queue, talk_s, wrapup_s, at)

and calls ``await desk.feed(event)``. A card's life::

    ringing --Answered--> answered --Completed--> wrapup --ready / countdown over--> done
       |  (Offered again after a ring-no-answer: ringing again)
       +--Withdrawn--> withdrawn

On ``Offered`` the call is recorded in the agent's offers (Redis, :func:`agent_offers_key`): the only calls
whose context and transcript the agent may read. On ``Completed`` the desk pauses the member
(``QueuePause``, reason ``wrap-up``) for the wrap-up time and unpauses it when the agent says "ready" or the
countdown ends (:meth:`Desk.expire`, driven by the console's timer on the injected clock). A disposition is
written once per (agent, call): to Asterisk's queue_log (``QueueLog`` event ``DISPOSITION``, the code as
data) and to the call record (:func:`disposition_key`); the agent's note goes only to the call record.

Every change is pushed to the agent's open streams (server-sent events) as the card's JSON.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Literal

from redis.exceptions import RedisError

from bot.console.agents import Agent, Roster
from bot.console.control import CallControl, CallControlError
from bot.console.view import call_view
from telephony.callstate import (
    RETENTION_S,
    agent_offers_key,
    call_key,
    disposition_key,
    transcript_key,
)

log = logging.getLogger(__name__)

WithdrawReason = Literal["ring-no-answer", "abandoned", "answered-elsewhere"]
Status = Literal["ringing", "answered", "withdrawn", "wrapup", "done"]
NOTE_MAX = 2000
"""Characters of an agent's note kept."""
STREAM_BACKLOG = 200
"""Messages an open stream may fall behind before it is dropped (the browser reconnects and resyncs)."""


@dataclass(frozen=True, slots=True)
class Offered:
    """``AgentCalled``: the agent's phone rings with this call."""

    agent_id: str
    call_id: str
    """The call's ATTENDANT_UUID."""
    queue: str
    uniqueid: str
    """The caller channel's ``Uniqueid`` (queue_log's call id)."""
    at: float
    """Unix seconds."""


@dataclass(frozen=True, slots=True)
class Withdrawn:
    """``AgentRingNoAnswer`` or ``QueueCallerAbandon``: the offer is gone."""

    agent_id: str
    call_id: str
    why: WithdrawReason
    at: float = 0.0
    """Unix seconds (0: unknown)."""


@dataclass(frozen=True, slots=True)
class Answered:
    """``AgentConnect``: the agent took the call."""

    agent_id: str
    call_id: str
    at: float
    """Unix seconds."""


@dataclass(frozen=True, slots=True)
class Completed:
    """``AgentComplete``: the call is over; wrap-up starts."""

    agent_id: str
    call_id: str
    queue: str
    talk_s: float
    """Seconds talked (``TalkTime``)."""
    wrapup_s: float
    """The wrap-up time of the queue or member, seconds (0: none)."""
    at: float
    """Unix seconds."""


DeskEvent = Offered | Withdrawn | Answered | Completed


@dataclass(frozen=True, slots=True)
class Card:
    """One call on one agent's desk."""

    call_id: str
    queue: str
    uniqueid: str
    status: Status
    offered_at: float
    view: dict[str, Any]
    """:func:`bot.console.view.call_view` of the call when it was offered (or answered)."""
    answered_at: float | None = None
    why: str | None = None
    talk_s: float | None = None
    wrapup_s: float | None = None
    wrapup_ends_at: float | None = None
    ended_at: float | None = None
    disposition: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Saved:
    """The answer to a disposition."""

    code: str
    duplicate: bool
    """True when this (agent, call) already had one: nothing was sent or written again."""


class DeskError(Exception):
    """A request the desk refuses; ``status`` is the HTTP status the console answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Stream:
    """One open event stream of one agent."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(STREAM_BACKLOG)
        self.closed = False

    def put(self, message: dict[str, Any] | None) -> None:
        if self.closed:
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.closed = True  # too far behind: end it; the browser reconnects and gets a snapshot
            self.queue.get_nowait()
            self.queue.put_nowait(None)

    async def get(self, timeout: float) -> dict[str, Any] | None:
        """The next message; ``{}`` after ``timeout`` seconds without one; None when the stream ends."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return {}


class Desk:
    """Every agent's cards and open streams (see the module docstring)."""

    def __init__(
        self,
        roster: Roster,
        redis: Any,
        control: CallControl,
        clock: Callable[[], float],
        *,
        pause_in_wrapup: bool = True,
        keep: int = 20,
    ) -> None:
        self.roster = roster
        self._r = redis
        self._control = control
        self._clock = clock
        self._pause_in_wrapup = pause_in_wrapup
        self._keep = keep
        self._cards: dict[str, OrderedDict[str, Card]] = {a.id: OrderedDict() for a in roster}
        self._streams: dict[str, set[Stream]] = {a.id: set() for a in roster}
        self._paused: set[str] = set()
        """Agents the desk paused for wrap-up."""
        self._locks: dict[str, asyncio.Lock] = {}

    # --- the AMI side's entry point -----------------------------------------------------------------------

    async def feed(self, event: DeskEvent) -> None:
        """Apply one event; never raises for Redis or Asterisk trouble (logged without content)."""
        agent = self.roster.get(event.agent_id)
        if agent is None:
            log.warning("desk: event %s for unknown agent %r ignored", type(event).__name__, event.agent_id)
            return
        async with self._lock(agent.id):
            if isinstance(event, Offered):
                await self._offered(agent, event)
            elif isinstance(event, Withdrawn):
                self._withdrawn(agent, event)
            elif isinstance(event, Answered):
                await self._answered(agent, event)
            elif isinstance(event, Completed):
                await self._completed(agent, event)

    async def _offered(self, agent: Agent, event: Offered) -> None:
        await self._record_offer(agent.id, event.call_id, event.at)
        view = await self.load_view(event.call_id)
        card = Card(event.call_id, event.queue, event.uniqueid, "ringing", event.at, view)
        old = self._cards[agent.id].pop(event.call_id, None)
        if old is not None and old.disposition:
            card = replace(card, disposition=old.disposition, note=old.note)
        self._put(agent.id, card)
        log.info("desk: call %s offered to %s (queue %s)", event.call_id, agent.id, event.queue)

    def _withdrawn(self, agent: Agent, event: Withdrawn) -> None:
        card = self._cards[agent.id].get(event.call_id)
        if card is None or card.status != "ringing":
            return
        self._put(
            agent.id, replace(card, status="withdrawn", why=event.why, ended_at=event.at or self._clock())
        )
        log.info("desk: call %s withdrawn from %s (%s)", event.call_id, agent.id, event.why)

    async def _answered(self, agent: Agent, event: Answered) -> None:
        card = self._cards[agent.id].get(event.call_id)
        view = await self.load_view(event.call_id)  # the transcript may have grown while it rang
        if card is None:  # the console started while the phone rang: the call was offered all the same
            await self._record_offer(agent.id, event.call_id, event.at)
            card = Card(event.call_id, "", "", "answered", event.at, view)
        self._put(agent.id, replace(card, status="answered", answered_at=event.at, view=view or card.view))
        log.info("desk: call %s answered by %s", event.call_id, agent.id)

    async def _completed(self, agent: Agent, event: Completed) -> None:
        card = self._cards[agent.id].get(event.call_id)
        if card is None:
            await self._record_offer(agent.id, event.call_id, event.at)
            card = Card(
                event.call_id, event.queue, "", "answered", event.at, await self.load_view(event.call_id)
            )
        ends = event.at + event.wrapup_s if event.wrapup_s > 0 else None
        self._put(
            agent.id,
            replace(
                card,
                status="wrapup",
                queue=card.queue or event.queue,
                talk_s=event.talk_s,
                wrapup_s=event.wrapup_s,
                wrapup_ends_at=ends,
                ended_at=event.at,
            ),
        )
        log.info("desk: call %s completed by %s, wrap-up %.0f s", event.call_id, agent.id, event.wrapup_s)
        if ends is not None and self._pause_in_wrapup and agent.id not in self._paused:
            try:
                await self._control.set_paused(agent.interface, True, "wrap-up")
                self._paused.add(agent.id)
            except CallControlError as exc:
                log.warning("desk: pausing %s for wrap-up failed: %s", agent.id, type(exc).__name__)

    # --- the agent's requests -----------------------------------------------------------------------------

    async def may_read(self, agent_id: str, call_id: str) -> bool:
        """Whether ``call_id`` was offered to ``agent_id`` (this desk's memory, else Redis)."""
        if agent_id in self._cards and call_id in self._cards[agent_id]:
            return True
        try:
            return await self._r.zscore(agent_offers_key(agent_id), call_id) is not None
        except (RedisError, OSError) as exc:
            log.warning("desk: redis offers check failed: %s", type(exc).__name__)
            return False

    async def card(self, agent_id: str, call_id: str) -> dict[str, Any]:
        """The card's JSON for ``agent_id``; refused (403) unless the call was offered to them."""
        if not await self.may_read(agent_id, call_id):
            raise DeskError(403, "this call was not offered to you")
        card = self._cards[agent_id].get(call_id) if agent_id in self._cards else None
        if card is None:  # offered before a restart: what Redis still has
            card = Card(call_id, "", "", "done", 0.0, await self.load_view(call_id))
        return self.payload(card)

    async def dispose(self, agent_id: str, call_id: str, code: str, note: str) -> Saved:
        """Record the wrap-up disposition, once. Raises :class:`DeskError` or :class:`CallControlError`."""
        agent = self.roster.get(agent_id)
        if agent is None or not await self.may_read(agent_id, call_id):
            raise DeskError(403, "this call was not offered to you")
        disposition = self.roster.disposition(code)
        if disposition is None:
            raise DeskError(400, "unknown disposition")
        note = clean_note(note)
        async with self._lock(f"{agent_id}/{call_id}"):
            card = self._cards[agent_id].get(call_id)
            if card is None or card.status not in ("wrapup", "done"):
                raise DeskError(409, "a disposition is given after the call")
            if card.disposition:
                return Saved(card.disposition, duplicate=True)
            await self._control.queue_log(card.queue, card.uniqueid, agent.member_name, "DISPOSITION", code)
            record = {
                "code": code,
                "label": disposition.label,
                "note": note,
                "queue": card.queue,
                "uniqueid": card.uniqueid,
                "member": agent.member_name,
                "at": round(self._clock(), 3),
            }
            try:
                pipe = self._r.pipeline()
                pipe.hsetnx(disposition_key(call_id), agent_id, json.dumps(record))
                pipe.expire(disposition_key(call_id), RETENTION_S)
                await pipe.execute()
            except (RedisError, OSError) as exc:
                log.warning("desk: call %s disposition not written to redis: %s", call_id, type(exc).__name__)
            self._put(agent_id, replace(card, disposition=code, note=note), move=False)
        log.info("desk: call %s disposition %s by %s", call_id, code, agent_id)
        return Saved(code, duplicate=False)

    async def ready(self, agent_id: str) -> bool:
        """End the agent's wrap-up now and unpause them; False when there was nothing to end.
        Raises :class:`CallControlError` (nothing changes then)."""
        agent = self.roster.get(agent_id)
        if agent is None:
            return False
        async with self._lock(agent_id):
            return await self._end_wrapup(agent, lambda card: True)

    async def expire(self) -> None:
        """End the wrap-ups whose countdown is over (unpausing their agents)."""
        now = self._clock()
        for agent in self.roster:
            if not any(c.status == "wrapup" and c.wrapup_ends_at for c in self._cards[agent.id].values()):
                continue
            async with self._lock(agent.id):
                try:
                    await self._end_wrapup(
                        agent, lambda c: c.wrapup_ends_at is not None and c.wrapup_ends_at <= now
                    )
                except CallControlError as exc:
                    log.warning("desk: unpausing %s after wrap-up failed: %s", agent.id, type(exc).__name__)

    async def run_timer(self, period_s: float = 0.25) -> None:
        """:meth:`expire` every ``period_s`` until cancelled."""
        while True:
            await asyncio.sleep(period_s)
            await self.expire()

    async def _end_wrapup(self, agent: Agent, due: Callable[[Card], bool]) -> bool:
        cards = self._cards[agent.id]
        ending = [c for c in cards.values() if c.status == "wrapup" and due(c)]
        still = [c for c in cards.values() if c.status == "wrapup" and not due(c)]
        if not ending and agent.id not in self._paused:
            return False
        if agent.id in self._paused and not still:
            await self._control.set_paused(agent.interface, False, "")
            self._paused.discard(agent.id)
        now = self._clock()
        for card in ending:
            self._put(
                agent.id, replace(card, status="done", wrapup_ends_at=min(card.wrapup_ends_at or now, now))
            )
        log.info("desk: %s ready", agent.id)
        return True

    # --- streams ------------------------------------------------------------------------------------------

    @contextmanager
    def subscribe(self, agent_id: str) -> Iterator[Stream]:
        """An open stream of the agent's changes; starts with a snapshot message."""
        stream = Stream()
        stream.put({"event": "snapshot", "cards": [self.payload(c) for c in self.cards(agent_id)]})
        self._streams[agent_id].add(stream)
        try:
            yield stream
        finally:
            self._streams[agent_id].discard(stream)

    def close_streams(self, agent_id: str | None = None) -> None:
        """End the open streams (of one agent, or all)."""
        for aid, streams in self._streams.items():
            if agent_id is None or aid == agent_id:
                for stream in list(streams):
                    stream.put(None)
                    stream.closed = True

    def push(self, agent_id: str, message: dict[str, Any]) -> None:
        """One message (``{"event": ..., ...}``, shared: never changed) onto the agent's open streams."""
        for stream in list(self._streams.get(agent_id, ())):
            stream.put(message)

    def cards(self, agent_id: str) -> list[Card]:
        """The agent's cards, newest first."""
        return list(reversed(self._cards.get(agent_id, {}).values()))

    def payload(self, card: Card) -> dict[str, Any]:
        """A card as the browser gets it."""
        remaining = None
        if card.status == "wrapup" and card.wrapup_ends_at is not None:
            remaining = max(0.0, round(card.wrapup_ends_at - self._clock(), 1))
        return {
            "call_id": card.call_id,
            "queue": card.queue,
            "status": card.status,
            "why": card.why,
            "offered_at": card.offered_at,
            "answered_at": card.answered_at,
            "talk_s": card.talk_s,
            "wrapup_s": card.wrapup_s,
            "wrapup_remaining_s": remaining,
            "disposition": card.disposition,
            "note": card.note,
            "view": card.view,
        }

    # --- helpers ------------------------------------------------------------------------------------------

    def _put(self, agent_id: str, card: Card, *, move: bool = True) -> None:
        cards = self._cards[agent_id]
        cards[card.call_id] = card
        if move:
            cards.move_to_end(card.call_id)
        while len(cards) > self._keep:
            oldest = next((cid for cid, c in cards.items() if c.status in ("done", "withdrawn")), None)
            if oldest is None:
                break
            del cards[oldest]
            self._locks.pop(f"{agent_id}/{oldest}", None)
        message = {"event": "card", "card": self.payload(card)}
        for stream in list(self._streams[agent_id]):
            stream.put(message)

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    async def _record_offer(self, agent_id: str, call_id: str, at: float) -> None:
        key = agent_offers_key(agent_id)
        try:
            pipe = self._r.pipeline()
            pipe.zadd(key, {call_id: at})
            pipe.zremrangebyscore(key, "-inf", at - RETENTION_S)
            pipe.expire(key, RETENTION_S)
            await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("desk: call %s offer to %s not recorded: %s", call_id, agent_id, type(exc).__name__)

    async def load_view(self, call_id: str) -> dict[str, Any]:
        """The call's context and transcript from Redis (``{"unavailable": True}`` when Redis fails)."""
        try:
            pipe = self._r.pipeline()
            pipe.hgetall(call_key(call_id))
            pipe.xrevrange(transcript_key(call_id), count=200)
            fields, entries = await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("desk: call %s context not read: %s", call_id, type(exc).__name__)
            return {"unavailable": True}
        return call_view(fields or {}, reversed(entries or []))


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_note(note: str) -> str:
    """An agent's note as stored: control characters dropped, at most :data:`NOTE_MAX` characters."""
    return _CONTROL.sub("", note)[:NOTE_MAX].strip()
