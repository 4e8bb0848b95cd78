"""The AudioSocket media server: accepts Asterisk's TCP connections and hands typed frames to a call handler.

Per connection: the first message must be the call UUID (within ``first_frame_timeout_s``); then every
message is decoded into a frame (``telephony/frames.py``) and delivered through the handler's one entry
point, ``on_frame``, while the handler's ``run()`` drives the call. A closed socket is delivered as a
``Hangup``, a protocol violation as a ``PeerError(None)``. Injected text (the simulator's 0x40 frames) is
delivered only when this server allows it from that peer (``text_injection``); otherwise it is dropped
here, with a log line. A malformed message gets an error frame and closes *that* connection; other calls
are untouched. When the server is full, a new connection gets an error frame and is closed at once, so the
dialplan moves on to a person instead of waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Callable
from typing import Protocol

from telephony import audiosocket as wire
from telephony.frames import Hangup, InboundFrame, PeerError, Transcript

log = logging.getLogger(__name__)

Clock = Callable[[], float]

READ_SIZE = 65536
WRITE_HIGH_WATER = 256 * 1024
"""Bytes buffered towards a peer that is not reading before the call is given up."""
INBOUND_PER_S = 100.0
"""Messages per second read from one connection: a real channel sends 50 audio frames a second and a few
keys. A peer sending faster is read more slowly (TCP pushes back on it), so it cannot take the event loop
from the other calls."""
INBOUND_BURST = 100
"""Messages one connection may send ahead of that rate (2 s of audio: jitter after a network stall)."""
MAX_TURN_CHARS = 2000
"""Longest injected text delivered as a turn: the assistant refuses longer messages."""


class InboundBudget:
    """A token bucket: ``take()`` one message, get back how long to wait before reading on (seconds)."""

    def __init__(self, rate: float = INBOUND_PER_S, burst: float = INBOUND_BURST, clock: Clock | None = None):
        self._rate = rate
        self._burst = burst
        self._clock = clock or time.monotonic
        self._tokens = burst
        self._at = self._clock()
        self.throttled_s = 0.0
        """Seconds this connection was made to wait, in all."""

    def take(self) -> float:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate) - 1
        self._at = now
        if self._tokens >= 0:
            return 0.0
        wait = -self._tokens / self._rate
        self.throttled_s += wait
        return wait


class CallHandler(Protocol):
    """What a call looks like to the edge (implemented by ``bot.session.CallSession``)."""

    def on_frame(self, frame: InboundFrame) -> None:
        """One frame from the caller's side, on the event loop; must not block. After a ``Hangup`` or a
        ``PeerError`` no more frames come."""

    async def run(self) -> None:
        """Drive the call to its end."""


class HandlerFactory(Protocol):
    """Builds a handler for a new call."""

    def __call__(self, call_id: str, out: Connection) -> CallHandler: ...


class Connection:
    """The send side of one AudioSocket connection (what a session may write)."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self.closed = False
        self.hangup_sent = False

    def _write(self, data: bytes) -> None:
        if self.closed or self._writer.is_closing():
            return
        if self._writer.transport.get_write_buffer_size() > WRITE_HIGH_WATER:
            log.warning("peer is not reading; closing the connection")
            self.closed = True
            self._writer.close()
            return
        self._writer.write(data)

    def send_audio(self, pcm: bytes, rate: int) -> None:
        """One frame of bot audio."""
        if not self.hangup_sent:
            self._write(wire.encode_audio(pcm, rate))

    def send_hangup(self) -> None:
        """Tell Asterisk the bot is done (the dialplan continues)."""
        if not self.hangup_sent:
            self.hangup_sent = True
            self._write(wire.encode_hangup())

    def send_error(self) -> None:
        """Report an error to the peer."""
        self._write(wire.encode_error())


def is_loopback(peer: object) -> bool:
    """Whether a socket peer address is on this machine."""
    host = peer[0] if isinstance(peer, tuple) and peer else None
    try:
        return host is not None and ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


class AudioSocketServer:
    """Listens for Asterisk and runs one handler per connection."""

    def __init__(
        self,
        factory: HandlerFactory,
        *,
        host: str,
        port: int,
        text_injection: str = "loopback",
        max_calls: int = 50,
        first_frame_timeout_s: float = 5.0,
    ) -> None:
        self._factory = factory
        self._host, self._port = host, port
        self._text_injection = text_injection
        self._max_calls = max_calls
        self._first_timeout = first_frame_timeout_s
        self._server: asyncio.Server | None = None
        self._calls: set[asyncio.Task[None]] = set()
        self.active = 0
        self.rejected = 0
        self.protocol_errors = 0

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        assert self._server is not None and self._server.sockets
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Bind and listen."""
        self._server = await asyncio.start_server(self._accept, self._host, self._port, limit=READ_SIZE)

    async def close(self) -> None:
        """Stop listening and end every call."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._calls):
            task.cancel()
        await asyncio.gather(*self._calls, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._calls.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            self._calls.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if self.active >= self._max_calls:
            self.rejected += 1
            log.warning("at capacity (%d calls); refusing a connection", self._max_calls)
            writer.write(wire.encode_error())
            return
        decoder = wire.Decoder()
        conn = Connection(writer)
        try:
            first = await asyncio.wait_for(self._first_message(reader, decoder), self._first_timeout)
        except (asyncio.TimeoutError, wire.ProtocolError, ConnectionError) as exc:
            self.protocol_errors += 1
            log.warning("connection dropped before a call UUID: %s", str(exc) or type(exc).__name__)
            conn.send_error()
            return
        if first is None:
            return
        allow_text = self._text_injection == "on" or (
            self._text_injection == "loopback" and is_loopback(peer)
        )
        call_id = str(first.uuid)
        handler = self._factory(call_id, conn)
        self.active += 1
        run = asyncio.create_task(handler.run(), name=f"call-{call_id}")
        pump = asyncio.create_task(
            self._pump(reader, decoder, handler, conn, call_id, allow_text), name=f"read-{call_id}"
        )
        try:
            await asyncio.wait({run, pump}, return_when=asyncio.FIRST_COMPLETED)
            if not run.done():
                # The reader finished (hangup, EOF or bad frame): let the session wind down and record it.
                await run
        finally:
            for task in (run, pump):
                task.cancel()
            await asyncio.gather(run, pump, return_exceptions=True)
            self.active -= 1

    async def _first_message(self, reader: asyncio.StreamReader, decoder: wire.Decoder) -> wire.CallId | None:
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                return None
            for message in decoder.feed(data):
                if not isinstance(message, wire.CallId):
                    raise wire.ProtocolError(
                        f"first message must be the call UUID, got {type(message).__name__}"
                    )
                # Bytes after the UUID in the same read stay in the decoder; the pump drains them first.
                return message

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        decoder: wire.Decoder,
        handler: CallHandler,
        conn: Connection,
        call_id: str,
        allow_text: bool,
    ) -> None:
        data = b""
        budget = InboundBudget()
        warned = False
        try:
            while True:
                for message in decoder.feed(data):
                    if isinstance(message, wire.CallId):
                        raise wire.ProtocolError("second call UUID on one connection")
                    if isinstance(message, Transcript):
                        if not allow_text:
                            log.warning(
                                "call %s: text injection refused (not allowed from this peer)", call_id
                            )
                            continue
                        if len(message.text) > MAX_TURN_CHARS:
                            log.warning(
                                "call %s: injected text of %d characters cut to %d",
                                call_id,
                                len(message.text),
                                MAX_TURN_CHARS,
                            )
                            message = Transcript(message.text[:MAX_TURN_CHARS], source=message.source)
                    handler.on_frame(message)
                    if isinstance(message, (Hangup, PeerError)):
                        return
                    wait = budget.take()
                    if wait > 0:
                        if not warned:
                            warned = True
                            log.warning(
                                "call %s: peer sends faster than real time; reading it slower", call_id
                            )
                        await asyncio.sleep(wait)
                data = await reader.read(READ_SIZE)
                if not data:
                    handler.on_frame(Hangup(by="caller"))
                    return
        except wire.ProtocolError as exc:
            self.protocol_errors += 1
            log.warning("call %s: protocol error, closing: %s", call_id, exc)
            conn.send_error()
            handler.on_frame(PeerError(None))
        except ConnectionError:
            handler.on_frame(Hangup(by="caller"))
