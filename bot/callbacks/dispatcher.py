"""The callback dispatcher: dials a waiting caller back, agent first, when it is their turn — exactly once.

It runs in every gateway that has an AMI connection, each one a consumer (one name per process) of the group
``attendant-dispatch`` on the stream ``attendant:callbacks`` (the contract: :mod:`bot.callbacks.requests`).

When a request may be dialled::

    state new or retry, now >= not_before and >= next_at (the back-off), calling hours open (opening hours and
    quiet time), the live queue model synced, an eligible agent free in the request's queue (logged in, not
    paused, not in a call, not ringing, not in wrap-up, device not in use, penalty <= max), more free agents
    than callbacks (of any gateway) dialled there whose agent is not ringing yet — a sorted set shared in
    Redis, checked and taken in the same script as the transition to ``dialling`` — and no live caller ahead
    in that queue: nobody with a higher priority, nobody with the same priority who entered earlier than the
    request's ``entered``.

Dialling, agent first (sample dialplan: ``telephony/asterisk/extensions.conf``, ``[attendant-callback-agent]``
and ``[attendant-callback-customer]``)::

    Originate  Channel: Local/queue@attendant-callback-agent     the ;2 half runs Queue(<queue>) with
               ChannelId: <request id>                           QUEUE_PRIO = the request's priority and
               Context: attendant-callback-customer, Exten: s    position 1 (ahead of its own priority, behind
               Async: true, Timeout: agent ring time             higher ones): app_queue picks the agent,
               Variable: ATTENDANT_CALLBACK, _ATTEMPT,           AgentCalled pops the console (ATTENDANT_UUID
                         ATTENDANT_UUID (the original call),     = the original call), the whisper says whose
                         ATTENDANT_WHISPER, ATTENDANT_CB_NUMBER, callback it is; when the agent answers, the
                         ATTENDANT_CB_QUEUE, QUEUE_PRIO          ;1 half answers and dials the customer.

Outcomes, from the events every AMI session reading ``call`` receives (so any gateway can settle any
request)::

    OriginateResponse Success (Reason 4)       the agent answered; the customer is being dialled
    OriginateResponse Failure (Reason 3/5/0)   attempt failed: agent-no-answer / agent-busy / originate-failed
    DialEnd from <request id>, ANSWER          connected (terminal: never dialled again)
    DialEnd from <request id>, other status    attempt failed: customer-noanswer / customer-busy / ...
    Hangup of <request id>                     connected -> done; after the agent answered but before any
                                               DialEnd -> attempt failed (hangup-before-customer)
    a failed attempt                           retry after ATTENDANT_CALLBACK_RETRY_S, or failed after
                                               ATTENDANT_CALLBACK_ATTEMPTS attempts (reason kept)
    not connected by created + EXPIRY_S        expired; past the request's window_end: expired

The state machine (hash ``attendant:callback:<request>``, :mod:`bot.callbacks.store`)::

    new --dial--> dialling(n) --connected--> connected --hangup--> done
    retry --dial--^     |---failed, n < attempts--> retry (next_at = now + retry_s)
                        |---failed, n = attempts--> failed
                        |---no outcome within outcome_s--> failed (outcome-unknown)
                        '---nothing sent (no AMI connection)--> retry (attempt n-1, at once)
    new/retry --too old / window over--> expired

Exactly once — the argument:

1. Only the winner of ``new|retry(attempt n-1) -> dialling(attempt n)`` (one Lua script: one winner, whatever
   number of gateways try) sends the Originate for attempt n, and sends it at most once (the AMI client's
   intent ``callback:<request>:<n>`` is never resent, :mod:`telephony.ami`).
2. A request in ``dialling`` is never dialled by anyone: the next attempt needs ``retry``, which only an
   observed failure of attempt n produces (guarded by ``attempt = n``), or the "nothing was sent" rollback,
   which only the sender makes and only on :class:`AmiNotConnected` (raised before anything is written).
3. A gateway that dies mid-dial leaves ``dialling(n)``; its stream entry stays pending (XACK only in a
   terminal state) and another gateway (or the restarted one, under a new consumer name) takes it with
   ``XAUTOCLAIM`` after ``reclaim_idle_s``. The new holder does not dial: it waits for the outcome, which
   Asterisk broadcasts to every session (the originate runs on in Asterisk when the sender's session is gone).
   If no gateway saw the outcome within ``outcome_s`` the request ends ``failed`` with ``outcome-unknown``:
   the call may have happened, so it is not dialled again (at most once wins over at least once for a call).
4. ``ChannelId`` = request id: should anything still try a second live originate of the same request,
   Asterisk refuses it (Reason 0).
5. Live gateways touch (``XCLAIM ... JUSTID``) the entries they hold every ``reclaim_idle_s / 3``, so
   ``XAUTOCLAIM`` only moves entries of gateways that stopped; a request claimed by two gateways anyway (a
   slow one) is still dialled once by 1-2.

Losing nothing: a request is one ``MULTI`` (stream entry + hash); the entry is acknowledged (and deleted) only
in a terminal state, so a request stays pending through crashes; with Redis' AOF (``appendonly yes``,
``appendfsync always``) an acknowledged ``XADD`` survives a Redis crash (README "Callbacks").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from redis.exceptions import RedisError, ResponseError

from bot.callbacks.requests import (
    GROUP,
    STATE_PREFIX,
    STREAM_KEY,
    CallbackError,
    CallbackRequest,
    CallbackSettings,
    Opening,
    state_key,
)
from bot.callbacks.store import TERMINAL, WAITING, StateStore
from telephony.amiactions import AmiActionError, AmiError, AmiNotConnected
from telephony.amievents import (
    AgentCalled,
    AmiEvent,
    DeviceState,
    DialEnd,
    Hangup,
    OriginateReason,
    OriginateResponse,
)
from telephony.callstate import call_key, whisper_uuid
from telephony.queues import QueueModel

log = logging.getLogger(__name__)

AGENT_CONTEXT = "attendant-callback-agent"
CUSTOMER_CONTEXT = "attendant-callback-customer"
_CALLBACK_LEG = re.compile(r"[0-9a-f]{32};2")
_FREE = (DeviceState.NOT_INUSE, DeviceState.UNKNOWN)
_AGENT_REASONS = {
    OriginateReason.NO_ANSWER: "agent-no-answer",
    OriginateReason.BUSY: "agent-busy",
    OriginateReason.CONGESTION: "agent-congestion",
    OriginateReason.FAILED: "originate-failed",
}


class CallbackAmi(Protocol):
    """What the dispatcher needs of the AMI client (:class:`telephony.ami.AmiClient` is one)."""

    @property
    def ready(self) -> bool: ...

    def subscribe(self, callback: Callable[[AmiEvent], None]) -> Callable[[], None]: ...

    async def originate(
        self,
        channel: str,
        *,
        intent: str,
        channel_id: str,
        context: str | None = None,
        exten: str | None = None,
        priority: int = 1,
        caller_id: str | None = None,
        variables: Mapping[str, str] | None = None,
        ring_timeout_ms: int = 30000,
    ) -> OriginateResponse: ...


@dataclass
class _Held:
    entry: str
    request: CallbackRequest


class Dispatcher:
    """One gateway's consumer of the callback stream (module docstring)."""

    def __init__(
        self,
        redis: Any,
        ami: CallbackAmi,
        model: QueueModel,
        *,
        consumer: str,
        settings: CallbackSettings | None = None,
        opening: Opening | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        stream: str = STREAM_KEY,
        group: str = GROUP,
        state_prefix: str = STATE_PREFIX,
        call_record: Callable[[str], str] = call_key,
    ) -> None:
        self._r = redis
        self._call_record = call_record
        self._ami = ami
        self._model = model
        self.consumer = consumer
        self.settings = settings or CallbackSettings()
        self.hours = self.settings.calling_hours(opening)
        self._clock = clock
        self._sleep = sleep
        self.stream = stream
        self.group = group
        self._prefix = state_prefix
        self._store = StateStore(redis)
        self._held: dict[str, _Held] = {}
        self._events: list[AmiEvent] = []
        self._dials: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._grouped = False
        self._own_read = False
        self._touched_at = float("-inf")
        self._unsubscribe: Callable[[], None] | None = None
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        """Originates this dispatcher sent."""

    # --- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Listen to AMI events and run the loop (inside the running loop)."""
        self.listen()
        self._task = asyncio.create_task(self._run(), name=f"callbacks-{self.consumer}")

    def listen(self) -> None:
        """Listen to AMI events (tests drive :meth:`step` themselves)."""
        if self._unsubscribe is None:
            self._unsubscribe = self._ami.subscribe(self._on_event)

    async def close(self) -> None:
        """Stop; an originate in flight is left to Asterisk (its outcome settles the request anywhere)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        tasks = [t for t in (self._task, *self._dials.values()) if t is not None]
        while any(not t.done() for t in tasks):
            # Python 3.10's wait_for swallows a cancel that arrives as its inner future completes: again.
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=0.05)
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run(self) -> None:
        while True:
            try:
                await self.step()
            except (RedisError, OSError) as exc:
                log.warning("callbacks: redis trouble (%s); trying again", type(exc).__name__)
            except Exception:  # a bug must not stop callbacks for good: logged, and the next pass runs
                log.exception("callbacks: pass failed")
            self._wake.clear()
            waker = asyncio.create_task(self._wake.wait())
            sleeper = asyncio.ensure_future(self._sleep(self.settings.poll_s))
            try:
                await asyncio.wait({waker, sleeper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waker.cancel()
                sleeper.cancel()

    # --- one pass ----------------------------------------------------------------------------------------

    @property
    def held(self) -> tuple[str, ...]:
        """Request ids this dispatcher holds (pending to it)."""
        return tuple(self._held)

    async def step(self) -> None:
        """Settle the outcomes seen, take new and abandoned requests, dial what may be dialled."""
        now = self._clock()
        await self._ensure_group()
        events, self._events = self._events, []
        for event in events:
            await self._settle(event, now)
        await self._take(now)
        held = sorted(self._held.values(), key=lambda h: (-h.request.priority, h.request.entered))
        capacity: dict[str, int] = {}
        for item in held:
            await self._consider(item, now, capacity)

    async def _ensure_group(self) -> None:
        if self._grouped:
            return
        try:
            await self._r.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        # Consumers of gateways long gone (a name per process) with nothing pending are dropped.
        for consumer in await self._r.xinfo_consumers(self.stream, self.group):
            name = _s(consumer.get("name", ""))
            if name != self.consumer and not consumer.get("pending") and consumer.get("idle", 0) > 86400000:
                await self._r.xgroup_delconsumer(self.stream, self.group, name)
        self._grouped = True

    async def _take(self, now: float) -> None:
        entries: list[tuple[Any, Any]] = []
        if not self._own_read:  # what this consumer name held before a restart
            for _, items in await self._r.xreadgroup(self.group, self.consumer, {self.stream: "0"}) or []:
                entries += items
            self._own_read = True
        for _, items in (
            await self._r.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=100) or []
        ):
            entries += items
        start = "0-0"
        while True:  # requests of gateways that stopped (or, at min idle 0, anyone's)
            reply = await self._r.xautoclaim(
                self.stream,
                self.group,
                self.consumer,
                int(self.settings.reclaim_idle_s * 1000),
                start_id=start,
                count=100,
            )
            entries += reply[1]
            start = _s(reply[0])
            if start in ("0-0", "0"):
                break
        for entry_id, fields in entries:
            entry = _s(entry_id)
            if not fields:  # deleted meanwhile (acknowledged elsewhere)
                await self._r.xack(self.stream, self.group, entry)
                continue
            try:
                request = CallbackRequest.parse(fields)
            except CallbackError as exc:
                log.error("callback entry %s refused: %s", entry, exc)
                await self._finish_entry(entry)
                continue
            if request.request not in self._held:
                self._held[request.request] = _Held(entry, request)
                key = state_key(request.request, self._prefix)
                # A bare XADD (no hash yet): the request was made when Redis stamped the entry's id.
                made = int(entry.split("-")[0]) / 1000 if entry.split("-")[0].isdigit() else now
                await self._store.init(key, request.fields(), made)
                await self._r.hset(key, "entry", entry)
        if self._held and now - self._touched_at >= self.settings.reclaim_idle_s / 3:
            ids = [h.entry for h in self._held.values()]
            await self._r.xclaim(self.stream, self.group, self.consumer, 0, ids, justid=True)
            self._touched_at = now

    async def _finish_entry(self, entry: str) -> None:
        pipe = self._r.pipeline(transaction=True)
        pipe.xack(self.stream, self.group, entry)
        pipe.xdel(self.stream, entry)
        await pipe.execute()

    async def _release(self, request: str, state: Mapping[str, str]) -> None:
        """The request is terminal: its outcome goes to the original call's record, its entry is
        acknowledged, and it is forgotten."""
        held = self._held.pop(request, None)
        entry = held.entry if held is not None else state.get("entry")
        final = await self._store.read(state_key(request, self._prefix))
        call = final.get("call", "")
        if call and final.get("state") in TERMINAL:
            record = self._call_record(call)
            with contextlib.suppress(RedisError, OSError):
                if await self._r.exists(record):
                    await self._r.hset(
                        record,
                        mapping={
                            "callback": request,
                            "callback_outcome": final.get("state", ""),
                            "callback_reason": final.get("last_reason", ""),
                            "callback_attempts": final.get("attempt", "0"),
                        },
                    )
        if entry:
            await self._finish_entry(entry)

    # --- deciding ----------------------------------------------------------------------------------------

    async def _consider(self, item: _Held, now: float, capacity: dict[str, int]) -> None:
        req = item.request
        key = state_key(req.request, self._prefix)
        st = await self._store.read(key)
        state = st.get("state", "new")
        attempt = int(st.get("attempt") or 0)
        if state in TERMINAL:
            await self._release(req.request, st)
            return
        if state == "dialling":
            if req.request in self._dials:
                return
            started = float(st.get("dialled_at") or now)
            if now - started >= self.settings.outcome_s and await self._store.move(
                key,
                "dialling",
                "failed",
                expect_attempt=attempt,
                last_reason="outcome-unknown",
                **{f"reason_{attempt}": "outcome-unknown"},
                updated=f"{now:.3f}",
            ):
                log.warning("callback %s: attempt %d has no outcome: not dialled again", req.request, attempt)
                await self._release(req.request, st)
            return
        if state not in WAITING:
            return
        created = float(st.get("created") or now)
        why = ""
        if now >= created + self.settings.expiry_s:
            why = "expired"
        elif req.window_end and now > req.window_end:
            why = "window-ended"
        if why:
            if await self._store.move(key, WAITING, "expired", last_reason=why, updated=f"{now:.3f}"):
                log.info("callback %s: %s", req.request, why)
            await self._release(req.request, st)
            return
        if now < max(req.not_before, float(st.get("next_at") or 0)) or not self.hours.is_open(now):
            return
        if not self._ami.ready or not self._model.synced:
            return
        if req.queue not in capacity:
            capacity[req.queue] = self._free_agents(req.queue)
        if capacity[req.queue] <= 0 or self._someone_ahead(req):
            return
        n = attempt + 1
        won = await self._store.begin_dial(
            key,
            self._slots(req.queue),
            req.request,
            expect_attempt=attempt,
            now=now,
            free_agents=capacity[req.queue],
            lease_s=self.settings.agent_ring_s + 10,
            attempt=n,
            owner=self.consumer,
            dialled_at=f"{now:.3f}",
            agent_at="",
            updated=f"{now:.3f}",
        )
        if not won:
            return
        self._dials[req.request] = asyncio.create_task(self._dial(req, n), name=f"callback-{req.request}")

    def _slots(self, queue: str) -> str:
        """The queue's callback dials whose agent is not ringing yet, shared by all gateways: each holds one
        free agent, so two gateways never dial two callbacks for the same agent."""
        return f"{self._prefix}slots:{queue}"

    def _free_agents(self, queue: str) -> int:
        state = self._model.queue(queue)
        if state is None:
            return 0
        now = self._model.now()
        return sum(
            1
            for m in state.members
            if not m.paused
            and not m.in_call
            and not m.ringing
            and m.status in _FREE
            and m.penalty <= self.settings.max_penalty
            and not state.in_wrapup(m, now)
        )

    def _someone_ahead(self, req: CallbackRequest) -> bool:
        state = self._model.queue(req.queue)
        if state is None:
            return False
        for caller in state.callers:
            if _CALLBACK_LEG.fullmatch(caller.uniqueid):
                continue  # a callback's own queue leg
            prio = caller.priority or 0
            if prio > req.priority or (prio == req.priority and caller.joined_at < req.entered):
                return True
        return False

    # --- dialling ----------------------------------------------------------------------------------------

    async def _dial(self, req: CallbackRequest, n: int) -> None:
        key = state_key(req.request, self._prefix)
        variables = {
            "ATTENDANT_CALLBACK": req.request,
            "ATTENDANT_CALLBACK_ATTEMPT": str(n),
            "ATTENDANT_UUID": req.call,
            "ATTENDANT_CB_NUMBER": req.number,
            "ATTENDANT_CB_QUEUE": req.queue,
            "QUEUE_PRIO": str(req.priority),
        }
        with contextlib.suppress(ValueError):
            variables["ATTENDANT_WHISPER"] = str(whisper_uuid(uuid.UUID(req.call)))
        record = self._call_record(req.call)
        with contextlib.suppress(RedisError, OSError):  # the whisper then says the plain brief
            if await self._r.exists(record):  # tells the whisper it is this call's callback
                await self._r.hset(record, "callback", req.request)
        log.info("callback %s (call %s): attempt %d, agent first in %s", req.request, req.call, n, req.queue)
        try:
            self.sent += 1
            response = await self._ami.originate(
                f"Local/queue@{AGENT_CONTEXT}",
                intent=f"callback:{req.request}:{n}",
                channel_id=req.request,
                context=CUSTOMER_CONTEXT,
                exten="s",
                caller_id=f'"Callback" <{req.number}>',
                variables=variables,
                ring_timeout_ms=int(self.settings.agent_ring_s * 1000),
            )
        except (AmiNotConnected, AmiActionError) as exc:
            # Nothing was dialled: not connected (nothing written), or refused (e.g. the AMI user lacks write
            # class 'originate': a configuration error, so the request waits for it until it expires).
            self.sent -= 1
            refused = isinstance(exc, AmiActionError)
            if refused:
                log.error("callback %s: Originate refused: %s", req.request, exc)
            now = self._clock()
            await self._store.free_slot(self._slots(req.queue), req.request)
            await self._store.move(
                key,
                "dialling",
                "retry",
                expect_attempt=n,
                attempt=n - 1,
                next_at=f"{now + (self.settings.retry_s if refused else 0):.3f}",
                last_reason="originate-refused" if refused else "not-sent",
                updated=f"{now:.3f}",
            )
        except AmiError as exc:  # sent, answer lost: the events or outcome_s decide
            log.warning("callback %s: attempt %d unconfirmed (%s)", req.request, n, type(exc).__name__)
        else:
            await self._settle(response, self._clock())
        finally:
            self._dials.pop(req.request, None)
            self._wake.set()

    # --- outcomes ----------------------------------------------------------------------------------------

    def _on_event(self, event: AmiEvent) -> None:
        if _request_of(event) is not None:
            self._events.append(event)
            self._wake.set()

    async def _settle(self, event: AmiEvent, now: float) -> None:
        request = _request_of(event)
        if request is None:
            return
        key = state_key(request, self._prefix)
        st = await self._store.read(key)
        if not st:
            return  # not one of ours (another deployment's, or long gone)
        state = st.get("state", "")
        attempt = int(st.get("attempt") or 0)
        stamp = f"{now:.3f}"
        queue = st.get("queue", "")
        if isinstance(event, AgentCalled | OriginateResponse) and queue:
            await self._store.free_slot(self._slots(queue), request)  # the agent is ringing (or none)
        if isinstance(event, OriginateResponse):
            if event.success:
                await self._store.move(
                    key, "dialling", "dialling", expect_attempt=attempt, agent_at=stamp, updated=stamp
                )
            else:
                reason = _AGENT_REASONS.get(event.reason, f"agent-reason-{int(event.reason)}")
                await self._attempt_failed(request, reason, now, attempt=attempt)
        elif isinstance(event, DialEnd):
            if event.dial_status == "ANSWER":
                if await self._store.move(
                    key, "dialling", "connected", expect_attempt=attempt, connected_at=stamp, updated=stamp
                ):
                    log.info("callback %s: connected (attempt %d)", request, attempt)
                    await self._release(request, st)
            elif state == "dialling":
                await self._attempt_failed(
                    request, f"customer-{event.dial_status.lower()}", now, attempt=attempt
                )
        elif isinstance(event, Hangup):
            if state == "connected":
                await self._store.move(key, "connected", "done", ended_at=stamp, updated=stamp)
            elif state == "dialling" and st.get("agent_at"):
                await self._attempt_failed(request, "hangup-before-customer", now, attempt=attempt)

    async def _attempt_failed(self, request: str, reason: str, now: float, *, attempt: int) -> None:
        key = state_key(request, self._prefix)
        last = attempt >= self.settings.attempts
        moved = await self._store.move(
            key,
            "dialling",
            "failed" if last else "retry",
            expect_attempt=attempt,
            last_reason=reason,
            next_at=f"{now + self.settings.retry_s:.3f}",
            updated=f"{now:.3f}",
            **{f"reason_{attempt}": reason},
        )
        if not moved:
            return
        if last:
            log.warning("callback %s: given up after %d attempts (%s)", request, attempt, reason)
            await self._release(request, await self._store.read(key))
        else:
            log.info("callback %s: attempt %d failed (%s); retry later", request, attempt, reason)


def _request_of(event: AmiEvent) -> str | None:
    """The callback request an event is about (its channel's unique id is the request id), else None."""
    if isinstance(event, OriginateResponse):
        uid = event.uniqueid
    elif isinstance(event, DialEnd):
        uid = event.caller.uniqueid if event.caller is not None else None
    elif isinstance(event, Hangup):
        uid = event.channel.uniqueid
    elif isinstance(event, AgentCalled) and _CALLBACK_LEG.fullmatch(event.caller.uniqueid):
        uid = event.caller.uniqueid[:-2]  # the queue leg (;2) of a callback: its agent rings
    else:
        return None
    return uid if uid is not None and re.fullmatch(r"[0-9a-f]{32}", uid) else None


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
