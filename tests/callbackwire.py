"""Asterisk's side for the callback tests: AMI sessions on real TCP sockets (one per gateway, as each gateway
has its own manager session), answering ``Originate`` as Asterisk 22 did in the capture
``originate-response`` and sending events that are captured Asterisk 22 messages with only the ids, names
and statuses of this test changed (:func:`edit`).

Asterisk sends every event of class ``call``/``agent`` to every session that reads it — ``OriginateResponse``
included, with the ``ActionID`` of the session that sent the Originate — so :meth:`Asterisk.broadcast` sends
to all sessions.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from telephony.ami import AmiClient
from telephony.queues import QueueModel
from telephony.queuetracker import QueueTracker
from tests.amiserver import AmiServer, Capture, Received
from tests.amitools import FakeClock, Sleeps, config

ORIGINATE = Capture.load("originate-response")
ANSWERED = Capture.load("queue-answered")
QUEUED = next(a for a in ORIGINATE.actions if a.action_id == "a03").answer[0]
"""``Response: Success`` / ``Message: Originate successfully queued`` (async Originate)."""


def _stream_block(capture: Capture, event: str, nth: int = 1, **match: str) -> bytes:
    return capture.stream[capture.find(event, nth, **match)].data


def edit(data: bytes, **values: str) -> bytes:
    """A captured message with the values of the named headers replaced (every line with that exact key)."""
    lines = data.split(b"\r\n")
    for i, line in enumerate(lines):
        key, sep, _ = line.partition(b": ")
        if sep and key.decode() in values:
            lines[i] = key + b": " + values[key.decode()].encode()
    return b"\r\n".join(lines)


def member_status(
    queue: str, name: str, interface: str, *, status: int = 1, paused: int = 0, last_call: int = 0
) -> bytes:
    """``QueueMemberStatus`` (queue-answered, Alice's first)."""
    block = _stream_block(ANSWERED, "QueueMemberStatus")
    return edit(
        block,
        LastCall=str(last_call),
        Queue=queue,
        MemberName=name,
        Interface=interface,
        StateInterface=interface,
        Status=str(status),
        Paused=str(paused),
    )


def local_leg(queue: str, half: int) -> str:
    return f"Local/queue@attendant-callback-agent-0000c0b1;{half}"


def originate_response(action_id: str, request: str, queue: str, reason: int) -> bytes:
    """``OriginateResponse`` for the agent-first originate: Reason 4 Success (captured a03), 3 or 5 Failure
    (a06: rang without answer, a07: busy). The capture originated to an application (``Application``/
    ``Data``); an originate to a context carries ``Context``/``Exten`` there instead (manager.c)."""
    captured = {4: "a03", 3: "a06", 5: "a07", 0: "a08"}[reason]
    block = _stream_block(ORIGINATE, "OriginateResponse", ActionID=captured)
    channel = local_leg(queue, 1) if reason == 4 else "Local/queue@attendant-callback-agent"
    block = edit(block, ActionID=action_id, Uniqueid=request, Channel=channel)
    block = block.replace(
        b"Application: Wait\r\nData: 20\r\n", b"Context: attendant-callback-customer\r\nExten: s\r\n"
    )
    lines = [ln for ln in block.split(b"\r\n") if not ln.startswith(b"ChanVariable(")]
    return b"\r\n".join(lines)


def dial_end(request: str, queue: str, status: str) -> bytes:
    """``DialEnd`` of the ;1 half dialling the customer (queue-answered's DialEnd with a calling channel)."""
    block = _stream_block(ANSWERED, "DialEnd", 2)
    return edit(
        block,
        Channel=local_leg(queue, 1),
        Uniqueid=request,
        Linkedid=request,
        DestChannel="PJSIP/trunk-0000c0b2",
        DestUniqueid="1796040900.42",
        DestLinkedid=request,
        DialStatus=status,
    )


def hangup(request: str, queue: str) -> bytes:
    """``Hangup`` of the ;1 half (originate-response's first)."""
    block = _stream_block(ORIGINATE, "Hangup")
    return edit(block, Channel=local_leg(queue, 1), Uniqueid=request, Linkedid=request)


def agent_called(
    request: str,
    call: str,
    queue: str,
    interface: str = "Local/alice@agent-answer-2s",
    name: str = "Alice",
    *,
    event: str = "AgentCalled",
) -> bytes:
    """``AgentCalled`` (or ``AgentConnect``, ``AgentComplete``: queue-answered's) for the callback's queue leg
    (;2) carrying the original call's ATTENDANT_UUID."""
    block = _stream_block(ANSWERED, event)
    return edit(
        block,
        Channel=local_leg(queue, 2),
        Uniqueid=f"{request};2",
        Linkedid=request,
        ChanVariable=f"ATTENDANT_UUID={call}",
        Queue=queue,
        Interface=interface,
        MemberName=name,
    )


def caller_join(uniqueid: str, queue: str, position: int = 1, count: int = 1) -> bytes:
    block = _stream_block(ANSWERED, "QueueCallerJoin")
    return edit(block, Uniqueid=uniqueid, Queue=queue, Position=str(position), Count=str(count))


def caller_leave(uniqueid: str, queue: str) -> bytes:
    block = _stream_block(ANSWERED, "QueueCallerLeave")
    return edit(block, Uniqueid=uniqueid, Queue=queue, Position="1", Count="0")


@dataclass
class Session:
    """One gateway's manager session: the server side, the client, the live model."""

    server: AmiServer
    client: AmiClient
    model: QueueModel


class Asterisk:
    """One Asterisk, N manager sessions (module docstring)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.sessions: list[Session] = []

    async def session(self) -> Session:
        """A new gateway's session: server, client logged in, model re-synced."""
        server = await AmiServer("originate-response").start()
        server.script("Originate", QUEUED)
        client = AmiClient(config(server), sleep=Sleeps(), clock=self.clock)
        model = QueueModel(clock=self.clock)
        QueueTracker(client, model)
        client.start()
        await client.wait_ready(5)
        session = Session(server, client, model)
        self.sessions.append(session)
        return session

    async def broadcast(self, *raw: bytes) -> None:
        """Send to every live session, then wait until each client has dispatched it (a Ping round trip)."""
        live = [s for s in self.sessions if s.client.ready]
        for s in live:
            for data in raw:
                await s.server.send(data)
        for s in live:
            await s.client.ping()
        await asyncio.sleep(0)

    def originates(self) -> list[Received]:
        return [r for s in self.sessions for r in s.server.sent("originate")]

    async def close(self) -> None:
        for s in self.sessions:
            await s.client.close()
            await s.server.close()


@asynccontextmanager
async def asterisk(clock: FakeClock) -> AsyncIterator[Asterisk]:
    ast = Asterisk(clock)
    try:
        yield ast
    finally:
        await ast.close()
