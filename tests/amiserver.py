"""Asterisk's side of AMI on a real TCP socket, built from the real captures in ``data/asterisk-captures/``.

A capture (``<name>.txt``) is one AMI session with Asterisk 22.11: ``>>>`` blocks the client sent, ``<<<``
blocks Asterisk sent, each one message byte for byte (README there). :class:`Capture` sorts the ``<<<``
blocks:

- the banner, and what answers ``Login`` (the response, then ``FullyBooted``/``SuccessfulAuth`` when the user
  may read them) and ``Events``;
- the *answers*: every block carrying the ``ActionID`` of a ``>>>`` action and no ``Privilege`` (responses and
  list items), kept with that action;
- the *stream*: everything else (events, including ``OriginateResponse``, which carries the originating
  session's ``ActionID`` but is broadcast with ``Privilege: call,all``), in order.

:class:`AmiServer` listens on 127.0.0.1 and, on every connection, sends the banner and answers the client's
actions from the capture: ``Login`` (checked against the capture's user and secret; a wrong one gets
Asterisk's ``Authentication failed`` and the close), ``Events``, ``Logoff``; ``Ping`` as manager.c writes it;
any other action by the captured action that matches it best (equal headers count for it, different values
against it; ties go to the one sent last before the replay's current position, so a ``QueueStatus`` answers
with the state as of the events replayed so far). A list action with no captured answer up to the current
position gets Asterisk's empty list (as for an unknown queue); an action the capture never saw is looked up
in the other captures, else answered ``Invalid/unknown command`` as manager.c does (``QueuePenalty``, which
no capture has, is answered as app_queue.c does). The only bytes ever changed are the ``ActionID`` lines
(the client's own id replaces the captured one).

The test steps through the stream: ``await server.replay(through="AgentCalled")``, ``replay(before=...)``,
``await server.drop()`` (close the client's socket), ``server.drop_on("QueueLog")`` (take the action, then
close without answering), ``server.hold("QueueStatus")`` (never answer), ``server.reject(2)`` (close the next
two connections at once). Every action received is recorded (:attr:`AmiServer.received`) with its connection
number and exact bytes.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

CAPTURES = Path(__file__).resolve().parent / "data" / "asterisk-captures"
SCENARIOS = (
    "queue-answered",
    "ring-no-answer-then-next",
    "caller-abandons",
    "queue-status",
    "wrapup",
    "least-privilege",
    "originate-response",
)
LIST_ACTIONS = {"queuestatus": "Queue status will follow", "queuesummary": "Queue summary will follow"}
LIST_END = {"queuestatus": "QueueStatusComplete", "queuesummary": "QueueSummaryComplete"}
LOGIN_EVENTS = ("FullyBooted", "SuccessfulAuth")
FROM_SOURCE = {"queuepenalty": "Interface penalty set successfully"}
"""Answers to actions no capture has, as app_queue.c writes them (``manager_queue_member_penalty``)."""


@dataclass(frozen=True)
class Block:
    """One message of a transcript."""

    direction: str
    """``>>>`` sent to Asterisk, ``<<<`` received from it."""
    t: float
    """Seconds since the capture started."""
    data: bytes
    """The message, byte for byte (CRLF lines, closing empty line)."""
    index: int
    """Place in the transcript."""

    @property
    def headers(self) -> list[tuple[str, str]]:
        pairs = []
        for line in self.data.decode("utf-8").split("\r\n"):
            key, sep, value = line.partition(": ")
            if sep:
                pairs.append((key, value))
        return pairs

    def get(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    @property
    def event(self) -> str | None:
        return self.get("Event") if self.direction == "<<<" else None


def read_blocks(path: Path) -> list[Block]:
    """The transcript's blocks (the reader of the captures' README)."""
    blocks: list[Block] = []
    cur: list | None = None
    for line in path.read_bytes().split(b"\n")[:-1]:
        line += b"\n"
        if line.endswith(b"\r\n"):
            assert cur is not None, "AMI bytes outside a block"
            cur[2] += line
            continue
        if cur:
            blocks.append(Block(cur[0], cur[1], bytes(cur[2]), len(blocks)))
            cur = None
        m = re.match(rb"(>>>|<<<) \+(\d+\.\d+)\n$", line)
        if m:
            cur = [m[1].decode(), float(m[2]), bytearray()]
    if cur:
        blocks.append(Block(cur[0], cur[1], bytes(cur[2]), len(blocks)))
    return blocks


def parse_action(raw: bytes) -> list[tuple[str, str]]:
    """An action's header lines as (name, value), in the order sent."""
    pairs = []
    for line in raw.decode("utf-8", errors="replace").split("\r\n"):
        key, sep, value = line.partition(": ")
        if sep:
            pairs.append((key, value))
    return pairs


def _matchable(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {k.lower(): v for k, v in pairs if k.lower() != "actionid"}


@dataclass
class CapturedAction:
    """An action the capture's client sent, and Asterisk's answer to it."""

    block: Block
    name: str
    """Lower-case action name."""
    action_id: str
    fields: dict[str, str]
    """Lower-case header -> value, without ``ActionID``."""
    position: int
    """How many stream blocks came before it."""
    answer: list[bytes] = field(default_factory=list)
    used: int = 0


@dataclass
class Capture:
    """One scenario, sorted for replay (module docstring)."""

    name: str
    blocks: list[Block]
    banner: bytes
    login: CapturedAction
    login_events: list[bytes]
    actions: list[CapturedAction]
    stream: list[Block]

    @classmethod
    def load(cls, name: str) -> Capture:
        blocks = read_blocks(CAPTURES / f"{name}.txt")
        by_id: dict[str, CapturedAction] = {}
        actions: list[CapturedAction] = []
        stream: list[Block] = []
        login_events: list[bytes] = []
        banner = blocks[0].data
        for block in blocks[1:]:
            if block.direction == ">>>":
                pairs = block.headers
                act = CapturedAction(
                    block,
                    (block.get("Action") or "").lower(),
                    block.get("ActionID") or "",
                    _matchable(pairs),
                    len(stream),
                )
                by_id[act.action_id] = act
                actions.append(act)
                continue
            action_id = block.get("ActionID")
            if action_id in by_id and block.get("Privilege") is None:
                by_id[action_id].answer.append(block.data)
            elif block.event in LOGIN_EVENTS:
                login_events.append(block.data)
            else:
                stream.append(block)
        login = next(a for a in actions if a.name == "login")
        return cls(
            name, blocks, banner, login, login_events, [a for a in actions if a.name != "login"], stream
        )

    def find(self, event: str, nth: int = 1, **fields: str) -> int:
        """Index in :attr:`stream` of the ``nth`` ``event`` whose fields match (``Interface=...``)."""
        seen = 0
        for i, block in enumerate(self.stream):
            if block.event == event and all(block.get(k) == v for k, v in fields.items()):
                seen += 1
                if seen == nth:
                    return i
        raise LookupError(f"{self.name}: no {event} #{nth} with {fields}")


@dataclass(frozen=True)
class Received:
    """An action the client sent."""

    connection: int
    name: str
    """Lower-case action name."""
    headers: tuple[tuple[str, str], ...]
    raw: bytes

    def get(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


def _with_action_id(data: bytes, captured: str, client: str | None) -> bytes:
    old = b"ActionID: " + captured.encode() + b"\r\n"
    new = b"ActionID: " + client.encode() + b"\r\n" if client else b""
    return data.replace(old, new, 1)


def _error(action_id: str | None, message: str) -> bytes:
    """``astman_send_error`` (manager.c)."""
    head = b"Response: Error\r\n" + (f"ActionID: {action_id}\r\n".encode() if action_id else b"")
    return head + f"Message: {message}\r\n\r\n".encode()


class AmiServer:
    """Asterisk's AMI side for one capture (module docstring)."""

    def __init__(self, capture: str | Capture, *, library: Iterable[str] = SCENARIOS) -> None:
        self.capture = capture if isinstance(capture, Capture) else Capture.load(capture)
        self._library = [Capture.load(n) for n in library if n != self.capture.name]
        self.cursor = 0
        """Stream blocks replayed so far."""
        self.received: list[Received] = []
        self.connections = 0
        self._server: asyncio.base_events.Server | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._changed = asyncio.Condition()
        self._hold: set[str] = set()
        self._drop_on: dict[str, int] = {}
        self._reject = 0
        self._scripted: dict[str, list[bytes]] = {}
        self._ids: dict[str, str] = {}
        """Captured ActionID -> the client's, for stream blocks that carry it (OriginateResponse)."""
        self.port = 0

    # --- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> AmiServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        await self.drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> AmiServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- behaviour ------------------------------------------------------------------------------------

    def hold(self, action: str) -> None:
        """Never answer ``action``."""
        self._hold.add(action.lower())

    def drop_on(self, action: str, times: int = 1) -> None:
        """The next ``times`` ``action``s are taken (recorded), then the connection is closed unanswered."""
        self._drop_on[action.lower()] = times

    def reject(self, connections: int) -> None:
        """Close the next ``connections`` connections as soon as they are accepted (no banner)."""
        self._reject = connections

    def script(self, action: str, *answer: bytes) -> None:
        """Answer ``action`` with these blocks (their ``ActionID`` line replaced), e.g. a block of another
        capture."""
        self._scripted[action.lower()] = list(answer)

    # --- the stream -----------------------------------------------------------------------------------

    async def replay(
        self,
        through: str | Callable[[Block], bool] | int | None = None,
        *,
        before: str | Callable[[Block], bool] | int | None = None,
    ) -> list[Block]:
        """Send stream blocks from the cursor: up to and including the first that matches ``through`` (an
        event name, a predicate, or a stream index), or up to but not including ``before``; to the end
        when neither is given."""
        sent: list[Block] = []
        while self.cursor < len(self.capture.stream):
            block = self.capture.stream[self.cursor]
            if before is not None and self._matches(before, block, self.cursor):
                break
            await self.send(self._rewrite(block.data))
            sent.append(block)
            self.cursor += 1
            if through is not None and self._matches(through, block, self.cursor - 1):
                break
        else:
            if through is not None or before is not None:
                raise LookupError(f"{self.capture.name}: stream ended before {through or before}")
        return sent

    @staticmethod
    def _matches(spec: str | Callable[[Block], bool] | int, block: Block, index: int) -> bool:
        if isinstance(spec, int):
            return index == spec
        if isinstance(spec, str):
            return block.event == spec
        return spec(block)

    def _rewrite(self, data: bytes) -> bytes:
        m = re.search(rb"ActionID: ([^\r]*)\r\n", data)
        if m and m[1].decode() in self._ids:
            return _with_action_id(data, m[1].decode(), self._ids[m[1].decode()])
        return data

    async def send(self, raw: bytes) -> None:
        """Raw bytes to the client's current connection."""
        writer = self._writer
        assert writer is not None, "no client connected"
        writer.write(raw)
        await writer.drain()

    async def drop(self) -> None:
        """Close the client's current connection (as a crashed or restarted Asterisk would)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    # --- waiting for the client ---------------------------------------------------------------------

    async def wait(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        async def until() -> None:
            async with self._changed:
                await self._changed.wait_for(condition)

        await asyncio.wait_for(until(), timeout)

    async def wait_action(self, name: str, count: int = 1, timeout: float = 5.0) -> Received:
        """The ``count``-th ``name`` action the client sent, once it has arrived."""
        await self.wait(lambda: len(self.sent(name)) >= count, timeout)
        return self.sent(name)[count - 1]

    async def wait_connections(self, count: int, timeout: float = 5.0) -> None:
        await self.wait(lambda: self.connections >= count and self._writer is not None, timeout)

    def sent(self, name: str) -> list[Received]:
        """Every ``name`` action received, on every connection."""
        return [r for r in self.received if r.name == name.lower()]

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # --- one connection -----------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._reject > 0:
            self._reject -= 1
            writer.close()
            return
        await self.drop()
        self.connections += 1
        connection = self.connections
        self._writer = writer
        writer.write(self.capture.banner)
        await self._notify()
        try:
            while True:
                raw = await reader.readuntil(b"\r\n\r\n")
                pairs = parse_action(raw)
                name = next((v for k, v in pairs if k.lower() == "action"), "").lower()
                self.received.append(Received(connection, name, tuple(pairs), raw))
                await self._notify()
                if self._drop_on.get(name, 0) > 0:
                    self._drop_on[name] -= 1
                    break
                if name in self._hold:
                    continue
                answer, close = self._answer(name, pairs)
                for data in answer:
                    writer.write(data)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if self._writer is writer:
                self._writer = None
            writer.close()
            await self._notify()

    def _answer(self, name: str, pairs: list[tuple[str, str]]) -> tuple[list[bytes], bool]:
        """The blocks that answer one action, and whether to close after them."""
        fields = _matchable(pairs)
        client_id = next((v for k, v in pairs if k.lower() == "actionid"), None)
        if name == "login":
            login = self.capture.login
            if (fields.get("username"), fields.get("secret")) != (
                login.fields.get("username"),
                login.fields.get("secret"),
            ):
                return [_error(client_id, "Authentication failed")], True
            return [_with_action_id(b, login.action_id, client_id) for b in login.answer] + list(
                self.capture.login_events
            ), False
        if name == "ping":  # action_ping, manager.c
            head = b"Response: Success\r\n" + (f"ActionID: {client_id}\r\n".encode() if client_id else b"")
            return [head + b"Ping: Pong\r\nTimestamp: 1796040782.000000\r\n\r\n"], False
        if name in self._scripted:
            blocks = self._scripted[name]
            return [_with_action_id(b, _action_id_of(b), client_id) for b in blocks], False
        chosen = self._choose(name, fields)
        if chosen is None:
            if name in LIST_ACTIONS:
                return [self._empty_list(name, client_id)], False
            return [
                _error(
                    client_id,
                    f"Invalid/unknown command: {pairs[0][1]}. Use Action: ListCommands "
                    "to show available commands.",
                )
            ], False
        chosen.used += 1
        self._ids[chosen.action_id] = client_id or ""
        return [_with_action_id(b, chosen.action_id, client_id) for b in chosen.answer], name == "logoff"

    def _choose(self, name: str, fields: dict[str, str]) -> CapturedAction | None:
        def best(candidates: list[CapturedAction]) -> list[CapturedAction]:
            if not candidates:
                return []
            score = {id(c): _score(fields, c.fields) for c in candidates}
            top = max(score.values())
            return [c for c in candidates if score[id(c)] == top]

        own = best([a for a in self.capture.actions if a.name == name])
        past = [a for a in own if a.position <= self.cursor]
        if past:
            unused = [a for a in past if not a.used] or past
            latest = max(a.position for a in unused)
            return next(a for a in unused if a.position == latest)
        if name in LIST_ACTIONS:
            return None
        if own:
            return next((a for a in own if not a.used), own[-1])
        others = best([a for c in self._library for a in c.actions if a.name == name])
        if others:
            return others[0]
        if name in FROM_SOURCE:
            block = Block(
                "<<<",
                0.0,
                f"Response: Success\r\nActionID: -\r\nMessage: {FROM_SOURCE[name]}\r\n\r\n".encode(),
                -1,
            )
            return CapturedAction(block, name, "-", {}, 0, [block.data])
        return None

    @staticmethod
    def _empty_list(name: str, client_id: str | None) -> bytes:
        """What Asterisk answers for a queue that does not exist (captured: queue-status, ``QueueStatus`` of
        ``attendant-nosuch``)."""
        aid = f"ActionID: {client_id}\r\n" if client_id else ""
        return (
            f"Response: Success\r\n{aid}EventList: start\r\nMessage: {LIST_ACTIONS[name]}\r\n\r\n"
            f"Event: {LIST_END[name]}\r\n{aid}EventList: Complete\r\nListItems: 0\r\n\r\n"
        ).encode()


def _score(asked: dict[str, str], captured: dict[str, str]) -> int:
    """How well a captured action matches the one asked: +1 per equal header, -2 per header with another
    value (another queue, another member: the wrong answer), -1 per header only one of them has."""
    shared = set(asked) & set(captured)
    equal = sum(asked[k] == captured[k] for k in shared)
    return equal - 2 * (len(shared) - equal) - len(set(asked) ^ set(captured))


def _action_id_of(data: bytes) -> str:
    m = re.search(rb"ActionID: ([^\r]*)\r\n", data)
    return m[1].decode() if m else ""
