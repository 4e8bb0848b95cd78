"""The AMI connection under :class:`telephony.ami.AmiClient`: connect, log in, reconnect, dispatch events.

One manager session through panoramisk 1.4, with a fresh ``panoramisk.Manager`` per TCP connection,
created inside the running loop: it logs in with the least-privilege user of
``telephony/asterisk/manager.conf`` (``read``/``write`` = ``call,agent``), turns events on (``Events``,
``EventMask: on``), runs the on-ready hooks (the queue model re-syncs there with ``QueueStatus``), and only
then lets actions through. Each incoming event is converted at the edge (:mod:`telephony.amiparse`) and
handed, typed, to the subscribers; a malformed one is logged (event and field, never values) and skipped, and
the connection stays up.

What panoramisk does that is switched off here: its fixed 2 s reconnect loop (replaced by exponential
back-off with jitter, :class:`Backoff`, each drop and reconnect logged), its pinger (replaced by a heartbeat
that drops a connection whose ``Ping`` goes unanswered), and its **resend of unanswered actions** after a
reconnect (it queues them and sends them again on ``FullyBooted``): an unanswered ``QueueLog`` or
``QueuePause`` would happen twice. Whether an unanswered action is ever sent again is decided one level up,
per action (:mod:`telephony.ami`). It also decodes UTF-8 across reads and drops a peer that never ends a
message.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from panoramisk import Manager
from panoramisk.actions import Action
from panoramisk.ami_protocol import AMIProtocol

from telephony.amiactions import (
    AmiActionError,
    AmiConnectionLost,
    AmiError,
    AmiLoginFailed,
    AmiNoAnswer,
    AmiNotConnected,
    AmiTimeout,
    action_error,
)
from telephony.amievents import (
    AmiEvent,
    AmiFieldError,
    OriginateResponse,
    QueueStatusComplete,
    QueueSummaryComplete,
)
from telephony.amiparse import EVENT_NAMES, parse_event
from telephony.amistream import EventStream

log = logging.getLogger(__name__)

Headers = dict[str, "str | list[str]"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Reconnect delays: ``initial_s * factor**attempt``, capped at ``max_s``, minus up to ``jitter`` of it at
    random (so many gateways do not reconnect in step after an Asterisk restart)."""

    initial_s: float = 0.5
    factor: float = 2.0
    max_s: float = 30.0
    jitter: float = 0.5
    """Fraction of the delay drawn at random: the delay lies in ``[base * (1 - jitter), base]``."""

    def delay(self, attempt: int, draw: float) -> float:
        """Seconds before reconnect ``attempt`` (0 = the first after a drop); ``draw`` uniform in [0, 1)."""
        base = min(self.max_s, self.initial_s * self.factor ** min(attempt, 64))
        return base * (1.0 - self.jitter * draw)


@dataclass(frozen=True, slots=True)
class AmiConfig:
    """The AMI connection."""

    secret: str = field(repr=False)
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "attendant"
    ssl: bool = False
    """AMI over TLS (``tlsenable`` in manager.conf): required when Asterisk is not on this host."""
    connect_timeout_s: float = 5.0
    login_timeout_s: float = 5.0
    """For ``Login`` and ``Events`` together (on-ready hooks bound their own actions)."""
    action_timeout_s: float = 5.0
    """Default timeout of an action, waiting for the connection included."""
    ping_interval_s: float = 20.0
    """Heartbeat: a ``Ping`` this often; unanswered within ``action_timeout_s``, the connection is dropped.
    0 = off."""
    backoff: Backoff = Backoff()
    stable_after_s: float = 30.0
    """A connection that lived this long resets the back-off to its first step."""
    max_message_bytes: int = 1 << 20
    """A peer that sends more than this without ending a message is dropped."""

    def __post_init__(self) -> None:
        if not self.secret:
            raise ValueError(
                "AMI secret is empty: set ATTENDANT_AMI_SECRET (manager.conf [attendant] secret)"
            )
        if not 0 < self.port < 65536:
            raise ValueError(f"AMI port {self.port} out of range")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AmiConfig:
        """``ATTENDANT_AMI_HOST``, ``_PORT``, ``_USER``, ``_SECRET`` (required), ``_TLS`` (``1`` = on)."""
        env = os.environ if env is None else env
        return cls(
            secret=env.get("ATTENDANT_AMI_SECRET", ""),
            host=env.get("ATTENDANT_AMI_HOST", "127.0.0.1"),
            port=int(env.get("ATTENDANT_AMI_PORT", "5038")),
            username=env.get("ATTENDANT_AMI_USER", "attendant"),
            ssl=env.get("ATTENDANT_AMI_TLS", "") in ("1", "true", "yes"),
        )


def fields_of(message: Mapping[str, Any]) -> dict[str, str | list[str]]:
    """A panoramisk ``Message`` as plain fields, header names as Asterisk sent them."""
    return {k: v for k, v in message.items() if k != "content" and isinstance(v, str | list)}


class _QuietLog:
    """panoramisk's logger: its debug and info lines print whole messages and actions (caller numbers, queue
    log notes) and are dropped; its warnings and errors go to this module's log."""

    def debug(self, *args: object, **kwargs: Any) -> None:
        pass

    info = debug

    def warning(self, msg: str, *args: object, **kwargs: Any) -> None:
        log.warning("panoramisk: " + msg, *args, **kwargs)

    def error(self, msg: str, *args: object, **kwargs: Any) -> None:
        log.error("panoramisk: " + msg, *args, **kwargs)

    def exception(self, msg: str, *args: object, **kwargs: Any) -> None:
        log.exception("panoramisk: " + msg, *args, **kwargs)


class _Protocol(AMIProtocol):  # type: ignore[misc]
    """panoramisk's protocol, decoding UTF-8 across reads (it decodes each read alone, dropping a character
    split between two) and dropping a peer that never ends a message."""

    max_message_bytes = 1 << 20

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.log = _QuietLog()
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def data_received(self, data: bytes) -> None:
        super().data_received(self._decoder.decode(data).encode("utf-8"))
        if self.queue and len(self.queue[-1]) > self.max_message_bytes:
            log.error(
                "AMI peer sent %d characters without ending a message: dropping it", len(self.queue[-1])
            )
            self.transport.close()

    def handle_message(self, message: Any) -> None:
        """panoramisk's, for messages it can take: one whose ``Event``, ``ActionID`` or ``CommandID`` is given
        twice (a list) would raise inside the protocol (an unhashable key, ``list.lower``) and drop the
        connection; it is skipped with a log line naming the field."""
        for name in ("Event", "ActionID", "CommandID"):
            if isinstance(message.get(name.lower()), list):
                log.error("AMI message with field %s given twice: message skipped", name)
                return
        super().handle_message(message)


class _Manager(Manager):  # type: ignore[misc]
    """One connection's panoramisk Manager, with reconnecting, pinging and resending left to the client."""

    def __init__(self, on_lost: Callable[[object], None], **config: Any) -> None:
        super().__init__(**config)
        self._on_lost = on_lost
        self.opened: asyncio.Future[None] = self.loop.create_future()
        self._connecting: asyncio.Task[Any] | None = None

    def open(self) -> asyncio.Future[None]:
        self._connecting = self.connect()
        return self.opened

    def abandon(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
        self.close()

    def connection_made(self, f: asyncio.Future[Any]) -> None:
        failure = AmiNotConnected("connect cancelled") if f.cancelled() else f.exception()
        if failure is not None:
            if not self.opened.done():
                self.opened.set_exception(failure)
            return
        super().connection_made(f)
        if self.opened.done():  # given up on meanwhile
            self.close()
        else:
            self.opened.set_result(None)

    def ping(self) -> None:
        """panoramisk's pinger: off (the client's heartbeat checks the answers)."""

    async def send_awaiting_actions(self, *_: object) -> None:
        """panoramisk resends unanswered actions on ``FullyBooted``: never."""
        self.awaiting_actions.clear()

    def connection_lost(self, exc: object) -> None:
        self._connected = False
        self.awaiting_actions.clear()
        if self.pinger is not None:
            self.pinger.cancel()
        self._on_lost(exc)


Sleep = Callable[[float], Awaitable[None]]
ReadyHook = Callable[[], Awaitable[None]]


class AmiConnection:
    """The connection, its events, and sending one action (the typed actions are in
    :class:`telephony.ami.AmiClient`)."""

    def __init__(
        self,
        config: AmiConfig,
        *,
        sleep: Sleep = asyncio.sleep,
        draw: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._sleep = sleep
        self._draw = draw
        self._clock = clock
        self._subscribers: list[Callable[[AmiEvent], None]] = []
        self._ready_hooks: list[ReadyHook] = []
        self._lost_hooks: list[Callable[[], None]] = []
        self._originates: dict[str, asyncio.Future[OriginateResponse]] = {}
        self._manager: _Manager | None = None
        self._generation = 0
        self._link_up = False
        self._ready = asyncio.Event()
        self._lost = asyncio.Event()
        self._gone = 0
        """The last connection generation whose socket closed."""
        self._inflight: dict[str, tuple[str, asyncio.Future[Any]]] = {}
        self._supervisor: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._closing = False
        self.connections = 0
        """Logins that succeeded (1 after the first connect, 2 after one reconnect, ...)."""
        self.malformed = 0
        """Messages skipped for a missing or malformed required field."""

    # --- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting (and reconnecting) in the background; call inside the running loop."""
        if self._supervisor is None:
            self._supervisor = asyncio.get_running_loop().create_task(self._supervise(), name="ami")

    async def close(self) -> None:
        """Log nothing more, drop the connection, fail what is in flight."""
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            try:
                await self._supervisor
            except asyncio.CancelledError:
                pass
        self._drop(self._generation, "client closed")

    @property
    def ready(self) -> bool:
        """Logged in, events on, on-ready hooks done."""
        return self._ready.is_set()

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Until the connection is ready; :class:`AmiNotConnected` after ``timeout`` seconds."""
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except asyncio.TimeoutError:
            raise AmiNotConnected(f"no AMI connection to {self._where()} within {timeout} s") from None

    # --- events ----------------------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[AmiEvent], None]) -> Callable[[], None]:
        """Call ``callback`` with every typed event, in order, on the loop; returns the unsubscribe."""
        self._subscribers.append(callback)
        return partial(self._unsubscribe, callback)

    def _unsubscribe(self, callback: Callable[[AmiEvent], None]) -> None:
        if callback in self._subscribers:
            self._subscribers.remove(callback)

    def events(self, maxsize: int = 1000) -> EventStream:
        """An async iterator of events (``async with client.events() as events: async for e in events``)."""
        return EventStream(self.subscribe, maxsize)

    def on_ready(self, hook: ReadyHook) -> None:
        """Run ``hook`` after every login, before other callers' actions are let through; its own actions go
        through, each with its timeout. A failure drops the connection (and it is tried again)."""
        self._ready_hooks.append(hook)

    def on_lost(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` whenever the connection is lost."""
        self._lost_hooks.append(hook)

    def _dispatch(self, _manager: object, message: Mapping[str, Any]) -> None:
        name = message.get("Event")
        if name not in EVENT_NAMES:
            return
        try:
            event = parse_event(fields_of(message))
        except AmiFieldError as exc:
            self.malformed += 1
            log.error("%s: message skipped", exc)
            return
        if event is None:
            return
        if isinstance(event, OriginateResponse) and event.action_id in self._originates:
            waiter = self._originates.pop(event.action_id)
            if not waiter.done():
                waiter.set_result(event)
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:
                log.exception("AMI subscriber %r failed on %s", callback, type(event).__name__)

    # --- connection ------------------------------------------------------------------------------------

    def _where(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    async def _supervise(self) -> None:
        attempt = 0
        while not self._closing:
            started = self._clock()
            try:
                await self._connect_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = self.config.backoff.delay(attempt, self._draw())
                attempt += 1
                level = logging.ERROR if isinstance(exc, AmiLoginFailed) else logging.WARNING
                log.log(
                    level,
                    "AMI %s: connect failed (%s); retry %d in %.2f s",
                    self._where(),
                    exc,
                    attempt,
                    delay,
                )
                await self._sleep(delay)
                continue
            self.connections += 1
            log.info(
                "AMI %s: connected as %s (connection %d)",
                self._where(),
                self.config.username,
                self.connections,
            )
            await self._lost.wait()
            if self._closing:
                return
            if self._clock() - started >= self.config.stable_after_s:
                attempt = 0
            delay = self.config.backoff.delay(attempt, self._draw())
            attempt += 1
            log.warning("AMI %s: connection lost; reconnecting in %.2f s", self._where(), delay)
            await self._sleep(delay)

    async def _connect_once(self) -> None:
        self._generation += 1
        generation = self._generation
        self._lost.clear()
        loop = asyncio.get_running_loop()
        protocol = type("_SizedProtocol", (_Protocol,), {"max_message_bytes": self.config.max_message_bytes})
        manager = _Manager(
            partial(self._connection_lost, generation),
            host=self.config.host,
            port=self.config.port,
            ssl=self.config.ssl,
            loop=loop,
            protocol_factory=protocol,
            log=_QuietLog(),
        )
        manager.register_event("*", self._dispatch)
        try:
            await asyncio.wait_for(manager.open(), self.config.connect_timeout_s)
        except BaseException:
            manager.abandon()
            raise
        if self._gone == generation:  # closed before this coroutine even saw it open
            raise AmiNotConnected(f"{self._where()} closed the connection at once")
        self._manager = manager
        self._link_up = True
        deadline = loop.time() + self.config.login_timeout_s
        try:
            login = {"Action": "Login", "Username": self.config.username, "Secret": self.config.secret}
            try:
                await self._call("Login", dict(login), deadline, wait=False)
            except AmiActionError as exc:
                raise AmiLoginFailed(f"login as {self.config.username} refused: {exc.message}") from None
            await self._call("Events", {"Action": "Events", "EventMask": "on"}, deadline, wait=False)
            for hook in self._ready_hooks:  # in this task: their actions pass the readiness gate
                await hook()
        except BaseException:
            self._drop(generation, "set-up failed")
            raise
        if self._link_up and generation == self._generation:
            self._ready.set()
            if self.config.ping_interval_s > 0:
                self._heartbeat = loop.create_task(self._beat(generation), name="ami-heartbeat")

    def _connection_lost(self, generation: int, reason: object) -> None:
        if generation == self._generation:
            self._gone = generation
        if generation != self._generation or not self._link_up:
            return
        self._link_up = False
        self._ready.clear()
        self._manager = None
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        for action_id, (name, future) in list(self._inflight.items()):
            if not future.done():
                future.set_exception(AmiConnectionLost(name, "connection lost before the answer"))
            self._inflight.pop(action_id, None)
        for waiter in self._originates.values():
            if not waiter.done():
                waiter.set_exception(
                    AmiConnectionLost("Originate", "connection lost before OriginateResponse")
                )
                waiter.exception()
        self._originates.clear()
        for hook in self._lost_hooks:
            try:
                hook()
            except Exception:
                log.exception("AMI on-lost hook %r failed", hook)
        self._lost.set()

    def _drop(self, generation: int, reason: str) -> None:
        """Close this connection on purpose (panoramisk then reports nothing: report it here)."""
        manager = self._manager
        if generation != self._generation:
            return
        if manager is not None:
            manager.close()
        self._connection_lost(generation, reason)

    async def _beat(self, generation: int) -> None:
        while generation == self._generation and self._link_up:
            await self._sleep(self.config.ping_interval_s)
            try:
                await self.ping()
            except AmiNoAnswer:
                log.warning("AMI %s: heartbeat Ping unanswered: dropping the connection", self._where())
                self._drop(generation, "heartbeat")
                return
            except AmiError:
                return

    # --- sending ---------------------------------------------------------------------------------------

    def _deadline(self, timeout: float | None) -> float:
        return asyncio.get_running_loop().time() + (
            self.config.action_timeout_s if timeout is None else timeout
        )

    async def _wait_ready(self, deadline: float) -> None:
        if self._ready.is_set():
            return
        if self._link_up and asyncio.current_task() is self._supervisor:
            return  # an on-ready hook, running before the gate opens
        await self.wait_ready(max(0.0, deadline - asyncio.get_running_loop().time()))

    async def _call(
        self, name: str, headers: Headers, deadline: float, *, wait: bool = True, listed: bool = False
    ) -> Any:
        """Send one action, return its answer (a Message, or a list for ``listed``), raise per the tree."""
        if wait:
            await self._wait_ready(deadline)
        manager = self._manager
        if manager is None or not self._link_up:
            raise AmiNotConnected(f"no AMI connection to {self._where()}")
        action = Action(headers, as_list=None if listed else False)
        future = manager.send_action(action, as_list=None if listed else False)
        self._inflight[action.id] = (name, future)
        try:
            reply = await asyncio.wait_for(future, max(0.0, deadline - asyncio.get_running_loop().time()))
        except asyncio.TimeoutError:
            manager.protocol.responses.pop(action.id, None)
            raise AmiTimeout(name, "no answer in time") from None
        finally:
            self._inflight.pop(action.id, None)
        first = reply[0] if isinstance(reply, list) else reply
        if first.get("Response") == "Error":
            raise action_error(name, str(first.get("Message", "")))
        return reply

    # --- read-only actions -----------------------------------------------------------------------------

    async def ping(self, timeout: float | None = None) -> None:
        """``Ping``: a round trip. Everything Asterisk sent before the answer has been dispatched by then."""
        await self._call("Ping", {"Action": "Ping"}, self._deadline(timeout))

    async def _listed(self, name: str, headers: Headers, timeout: float | None) -> list[AmiEvent]:
        """A list action's items (between the ``Response`` and the ``…Complete``), each converted at the edge;
        a malformed item is logged and skipped."""
        reply = await self._call(name, headers, self._deadline(timeout), listed=True)
        messages = reply[1:] if isinstance(reply, list) else []
        items: list[AmiEvent] = []
        listed: int | None = None
        for message in messages:
            try:
                item = parse_event(fields_of(message))
            except AmiFieldError as exc:
                self.malformed += 1
                log.error("%s: list item skipped", exc)
                continue
            if isinstance(item, QueueStatusComplete | QueueSummaryComplete):
                listed = item.list_items
            elif item is not None:
                items.append(item)
        if listed is not None and listed != len(items):
            log.warning("AMI %s: %d items received, Asterisk listed %d", name, len(items), listed)
        return items
