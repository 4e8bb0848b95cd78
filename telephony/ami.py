"""Attendant's AMI client: typed queue and call actions on one long-lived connection, once per intent.

:class:`AmiClient` is the connection of :mod:`telephony.amiconn` (login as the least-privilege user, events
typed at the edge, reconnect with back-off, on-ready hooks such as the queue model's ``QueueStatus``
re-sync) plus the actions: ``QueueStatus``, ``QueueSummary`` and ``Ping`` (read-only), and ``QueueAdd``,
``QueueRemove``, ``QueuePenalty``, ``QueuePause``, ``QueueLog``, ``Hangup`` and ``Originate``
(state-changing). Each takes a timeout and returns a typed result or raises a typed error
(:mod:`telephony.amiactions`).

Failures and what is retried (the exception classes are in :mod:`telephony.amiactions`)::

    connection refused / reset / EOF, login refused,   reconnect with back-off (0.5 s doubling to 30 s,
    on-ready hook failed, heartbeat unanswered          jittered), each drop and reconnect logged
    a message lacking a required field                  logged (event and field, no values), skipped
    action while disconnected                           waits for the connection up to its timeout, then
                                                        AmiNotConnected (nothing sent: retry is safe)
    Response: Error                                     AmiActionError with Asterisk's Message; never retried
    read-only action unanswered (QueueStatus, Ping...)  AmiTimeout / AmiConnectionLost; retry is safe
    state-changing action unanswered                    per its Recovery (telephony.amiintents):
      QueuePause, QueueAdd, QueueRemove, QueuePenalty     wait for the connection, read the state back with
                                                          QueueStatus, send again only if not in effect
      Hangup                                              send again; "No such channel" then counts as done
      QueueLog, Originate                                 never sent again: AmiTimeout/AmiConnectionLost now,
                                                          AmiUnconfirmed on every later call with the key

Every state-changing method takes ``intent``, the caller's key for what it means; within one process the
action is sent at most once per key (see :mod:`telephony.amiintents`), and a second call with the key returns
the first answer (:attr:`Delivery.REPLAYED`) without sending.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Any, TypeVar

from panoramisk.actions import Action

from telephony.amiactions import (
    Acknowledged,
    AmiActionError,
    AmiConnectionLost,
    AmiError,
    AmiNoAnswer,
    AmiNotConnected,
    AmiTimeout,
    AmiUnconfirmed,
    Delivery,
    QueueStatusSnapshot,
    header_value,
    variable_header,
)
from telephony.amiconn import AmiConfig, AmiConnection, Backoff, Headers, Sleep
from telephony.amievents import (
    MemberState,
    OriginateResponse,
    QueueEntry,
    QueueMember,
    QueueParams,
    QueueSummary,
)
from telephony.amiintents import IntentLedger, IntentState, Recovery

__all__ = ["AmiClient", "AmiConfig", "Backoff"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class AmiClient(AmiConnection):
    """The AMI connection with typed actions; every state-changing one at most once per intent (module
    docstring)."""

    def __init__(
        self,
        config: AmiConfig,
        *,
        sleep: Sleep = asyncio.sleep,
        draw: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
        intents: IntentLedger | None = None,
    ) -> None:
        super().__init__(config, sleep=sleep, draw=draw, clock=clock)
        self._intents = intents or IntentLedger(clock=clock)

    # --- state-changing actions: the intent rule -------------------------------------------------------

    async def _change(
        self,
        name: str,
        headers: Headers,
        intent: str,
        recovery: Recovery,
        timeout: float | None,
        *,
        verify: Callable[[float], Awaitable[bool]] | None = None,
        done_if_refused: str | None = None,
        deliver: Callable[[float], Awaitable[T]] | None = None,
    ) -> Any:
        """A state-changing action, at most once per ``intent`` (module docstring)."""
        if not intent:
            raise ValueError("a state-changing AMI action needs an intent key")
        deadline = self._deadline(timeout)
        fingerprint: Hashable = (name, tuple(sorted((k, str(v)) for k, v in headers.items())))
        entry = self._intents.get(intent, fingerprint)
        if entry is not None:
            if entry.state is IntentState.PENDING:
                remaining = max(0.0, deadline - asyncio.get_running_loop().time())
                try:
                    return await asyncio.wait_for(asyncio.shield(self._intents.join(entry)), remaining)
                except asyncio.TimeoutError:
                    raise AmiTimeout(name, "the same intent is still in flight", intent) from None
            if entry.state is IntentState.ANSWERED:
                result = entry.result
                if isinstance(result, Acknowledged):
                    return Acknowledged(result.action, intent, result.message, Delivery.REPLAYED)
                return result
            if entry.state is IntentState.REFUSED and entry.error is not None:
                raise entry.error
            if recovery is Recovery.NEVER:
                raise AmiUnconfirmed(name, "sent before and never answered; not sent again", intent)
        resuming = entry is not None
        self._intents.begin(intent, fingerprint)

        async def send() -> Any:
            if deliver is not None:
                return await deliver(deadline)
            reply = await self._call(name, headers, deadline)
            return Acknowledged(name, intent, str(reply.get("Message", "")), Delivery.ANSWERED)

        async def recover(first: AmiNoAnswer | None) -> Any:
            """The answer to an earlier send was lost: once connected, read the state back, send again only
            if the intent is not in effect. Whatever stops this leaves the intent unconfirmed."""
            await self._wait_ready(deadline)
            if verify is not None:
                try:
                    in_effect = await verify(deadline)
                except AmiError as exc:
                    raise first or AmiUnconfirmed(name, f"state not readable: {exc}", intent) from None
                if in_effect:
                    log.info(
                        "AMI %s (intent %s): answer lost, in effect on Asterisk: not sent again", name, intent
                    )
                    return Acknowledged(name, intent, "", Delivery.VERIFIED)
            log.warning("AMI %s (intent %s): answer lost and not in effect: sending it again", name, intent)
            try:
                return await send()
            except AmiActionError as exc:
                if done_if_refused is not None and exc.message == done_if_refused:
                    return Acknowledged(name, intent, exc.message, Delivery.VERIFIED)
                raise

        try:
            if resuming:
                result = await recover(None)
            else:
                try:
                    result = await send()
                except AmiNoAnswer as exc:
                    if recovery is Recovery.NEVER:
                        raise
                    log.warning("AMI %s (intent %s): %s; recovering", name, intent, exc)
                    try:
                        result = await recover(exc)
                    except AmiNotConnected:
                        raise exc from None
        except AmiActionError as exc:
            self._intents.refused(intent, exc)
            raise
        except AmiNotConnected as exc:  # this attempt sent nothing
            self._intents.not_sent(intent, exc)
            raise
        except AmiNoAnswer as exc:
            exc.intent = intent
            self._intents.unconfirmed(intent, exc)
            log.warning("AMI %s (intent %s): unconfirmed (%s)", name, intent, exc)
            raise
        except BaseException as exc:  # cancelled, or a bug: it may have been sent
            self._intents.unconfirmed(intent, AmiConnectionLost(name, f"interrupted: {exc!r}", intent))
            raise
        self._intents.answered(intent, result)
        return result

    async def queue_status(
        self, queue: str | None = None, member: str | None = None, timeout: float | None = None
    ) -> QueueStatusSnapshot:
        """``QueueStatus`` (all queues, or one; ``member``: a member name or interface). An unknown queue is
        an empty snapshot, as Asterisk answers it."""
        headers: Headers = {"Action": "QueueStatus"}
        if queue is not None:
            headers["Queue"] = header_value("Queue", queue)
        if member is not None:
            headers["Member"] = header_value("Member", member)
        items = await self._listed("QueueStatus", headers, timeout)
        return QueueStatusSnapshot(
            params=tuple(i for i in items if isinstance(i, QueueParams)),
            members=tuple(i.member for i in items if isinstance(i, QueueMember)),
            entries=tuple(i for i in items if isinstance(i, QueueEntry)),
        )

    async def queue_summary(
        self, queue: str | None = None, timeout: float | None = None
    ) -> tuple[QueueSummary, ...]:
        """``QueueSummary`` (``available`` there ignores wrap-up and penalties: use the queue model)."""
        headers: Headers = {"Action": "QueueSummary"}
        if queue is not None:
            headers["Queue"] = header_value("Queue", queue)
        items = await self._listed("QueueSummary", headers, timeout)
        return tuple(i for i in items if isinstance(i, QueueSummary))

    # --- state-changing actions ------------------------------------------------------------------------

    async def _memberships(
        self, queue: str | None, interface: str, deadline: float
    ) -> tuple[MemberState, ...]:
        timeout = max(0.0, deadline - asyncio.get_running_loop().time())
        snapshot = await self.queue_status(queue, member=interface, timeout=timeout)
        return snapshot.member(queue, interface)

    async def queue_add(
        self,
        queue: str,
        interface: str,
        *,
        intent: str,
        penalty: int = 0,
        member_name: str | None = None,
        state_interface: str | None = None,
        paused: bool = False,
        reason: str | None = None,
        wrapup_time_s: int | None = None,
        timeout: float | None = None,
    ) -> Acknowledged:
        """``QueueAdd``: log a member in. Recovery: verified by the membership being there."""
        headers: Headers = {
            "Action": "QueueAdd",
            "Queue": header_value("Queue", queue),
            "Interface": header_value("Interface", interface),
            "Penalty": str(int(penalty)),
        }
        if member_name is not None:
            headers["MemberName"] = header_value("MemberName", member_name)
        if state_interface is not None:
            headers["StateInterface"] = header_value("StateInterface", state_interface)
        if paused:
            headers["Paused"] = "true"
        if reason is not None:
            headers["Reason"] = header_value("Reason", reason)
        if wrapup_time_s is not None:
            headers["Wrapuptime"] = str(int(wrapup_time_s))

        async def verify(deadline: float) -> bool:
            return bool(await self._memberships(queue, interface, deadline))

        result: Acknowledged = await self._change(
            "QueueAdd", headers, intent, Recovery.VERIFY, timeout, verify=verify
        )
        return result

    async def queue_remove(
        self, queue: str, interface: str, *, intent: str, timeout: float | None = None
    ) -> Acknowledged:
        """``QueueRemove``: log a member out. Recovery: verified by the membership being gone."""
        headers: Headers = {
            "Action": "QueueRemove",
            "Queue": header_value("Queue", queue),
            "Interface": header_value("Interface", interface),
        }

        async def verify(deadline: float) -> bool:
            return not await self._memberships(queue, interface, deadline)

        result: Acknowledged = await self._change(
            "QueueRemove", headers, intent, Recovery.VERIFY, timeout, verify=verify
        )
        return result

    async def queue_penalty(
        self,
        interface: str,
        penalty: int,
        *,
        intent: str,
        queue: str | None = None,
        timeout: float | None = None,
    ) -> Acknowledged:
        """``QueuePenalty`` (in ``queue``, or every queue of the member). Recovery: verified by the
        penalty."""
        headers: Headers = {
            "Action": "QueuePenalty",
            "Interface": header_value("Interface", interface),
            "Penalty": str(int(penalty)),
        }
        if queue is not None:
            headers["Queue"] = header_value("Queue", queue)

        async def verify(deadline: float) -> bool:
            found = await self._memberships(queue, interface, deadline)
            return bool(found) and all(m.penalty == penalty for m in found)

        result: Acknowledged = await self._change(
            "QueuePenalty", headers, intent, Recovery.VERIFY, timeout, verify=verify
        )
        return result

    async def queue_pause(
        self,
        interface: str,
        paused: bool,
        *,
        intent: str,
        queue: str | None = None,
        reason: str | None = None,
        timeout: float | None = None,
    ) -> Acknowledged:
        """``QueuePause`` (in ``queue``, or every queue of the member), with an optional ``Reason``.
        Recovery: verified by ``Paused`` (and ``PausedReason`` when pausing with a reason)."""
        headers: Headers = {
            "Action": "QueuePause",
            "Interface": header_value("Interface", interface),
            "Paused": "true" if paused else "false",
        }
        if queue is not None:
            headers["Queue"] = header_value("Queue", queue)
        if reason is not None:
            headers["Reason"] = header_value("Reason", reason)

        async def verify(deadline: float) -> bool:
            found = await self._memberships(queue, interface, deadline)
            return bool(found) and all(
                m.paused == paused and (not paused or reason is None or m.paused_reason == reason)
                for m in found
            )

        result: Acknowledged = await self._change(
            "QueuePause", headers, intent, Recovery.VERIFY, timeout, verify=verify
        )
        return result

    async def queue_log(
        self,
        queue: str,
        event: str,
        *,
        intent: str,
        uniqueid: str | None = None,
        interface: str | None = None,
        message: str | None = None,
        timeout: float | None = None,
    ) -> Acknowledged:
        """``QueueLog``: one custom ``queue_log`` row (``epoch|uniqueid|queue|interface|event|message``).
        Never sent twice for an intent: an unanswered one stays unconfirmed (module docstring)."""
        headers: Headers = {
            "Action": "QueueLog",
            "Queue": header_value("Queue", queue, queue_log=True),
            "Event": header_value("Event", event, queue_log=True),
        }
        if uniqueid is not None:
            headers["UniqueId"] = header_value("UniqueId", uniqueid, queue_log=True)
        if interface is not None:
            headers["Interface"] = header_value("Interface", interface, queue_log=True)
        if message is not None:
            headers["Message"] = header_value("Message", message, queue_log=True)
        result: Acknowledged = await self._change("QueueLog", headers, intent, Recovery.NEVER, timeout)
        return result

    async def hangup(
        self, channel: str, *, intent: str, cause: int | None = None, timeout: float | None = None
    ) -> Acknowledged:
        """``Hangup`` of a channel (needs write class ``call``). ``No such channel`` on the first try raises;
        after a lost answer it means the first one worked."""
        headers: Headers = {"Action": "Hangup", "Channel": header_value("Channel", channel)}
        if cause is not None:
            headers["Cause"] = str(int(cause))
        result: Acknowledged = await self._change(
            "Hangup", headers, intent, Recovery.RESEND, timeout, done_if_refused="No such channel"
        )
        return result

    async def originate(
        self,
        channel: str,
        *,
        intent: str,
        channel_id: str,
        application: str | None = None,
        data: str | None = None,
        context: str | None = None,
        exten: str | None = None,
        priority: int = 1,
        caller_id: str | None = None,
        variables: Mapping[str, str] | None = None,
        ring_timeout_ms: int = 30000,
        timeout: float | None = None,
    ) -> OriginateResponse:
        """Asynchronous ``Originate`` (needs write class ``originate``) with ``ChannelId`` (Asterisk refuses a
        second live channel with it), waiting for its ``OriginateResponse``; ``timeout`` defaults to the ring
        timeout plus ``action_timeout_s``. A failed call is a result (``success`` false, ``reason``), not an
        exception. Never sent twice for an intent."""
        if (application is None) == (context is None):
            raise ValueError("Originate needs either application (and data) or context/exten/priority")
        headers: Headers = {
            "Action": "Originate",
            "Channel": header_value("Channel", channel),
            "ChannelId": header_value("ChannelId", channel_id),
            "Timeout": str(int(ring_timeout_ms)),
            "Async": "true",
        }
        if application is not None:
            headers["Application"] = header_value("Application", application)
            if data is not None:
                headers["Data"] = header_value("Data", data)
        else:
            headers["Context"] = header_value("Context", context)
            headers["Exten"] = header_value("Exten", exten or "s")
            headers["Priority"] = str(int(priority))
        if caller_id is not None:
            headers["CallerID"] = header_value("CallerID", caller_id)
        if variables:
            headers["Variable"] = [variable_header(k, v) for k, v in variables.items()]
        if timeout is None:
            timeout = ring_timeout_ms / 1000 + self.config.action_timeout_s

        async def deliver(deadline: float) -> OriginateResponse:
            return await self._originate(headers, deadline)

        result: OriginateResponse = await self._change(
            "Originate", headers, intent, Recovery.NEVER, timeout, deliver=deliver
        )
        return result

    async def _originate(self, headers: Headers, deadline: float) -> OriginateResponse:
        await self._wait_ready(deadline)
        action = dict(headers)
        waiter: asyncio.Future[OriginateResponse] = asyncio.get_running_loop().create_future()
        action_id = str(Action.action_id_generator())  # panoramisk's own ids; fixed here for the waiter
        action["ActionID"] = action_id
        self._originates[action_id] = waiter
        try:
            await self._call("Originate", action, deadline)
            remaining = max(0.0, deadline - asyncio.get_running_loop().time())
            try:
                return await asyncio.wait_for(asyncio.shield(waiter), remaining)
            except asyncio.TimeoutError:
                raise AmiTimeout("Originate", "queued, but no OriginateResponse in time") from None
        finally:
            self._originates.pop(action_id, None)
