"""The bot's words: the call's transcript stream in Redis, followed while the call runs.

The gateway writes ``attendant:call:<uuid>:transcript`` (fields ``who``, ``text``, ``t`` in unix seconds; see
:mod:`telephony.callstate`). Audio tells the simulator *when* the bot spoke; this stream tells it *what* it
said and what the recogniser heard. Redis is optional: when it cannot be reached the call runs on audio
alone and the report says so.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from telephony.callstate import transcript_key

GRACE_S = 0.5
"""After the call ends, how long to keep reading the transcript for the last lines."""


@dataclass(frozen=True, slots=True)
class TranscriptLine:
    """One entry of the stream, as written."""

    who: str
    """``caller``, ``bot`` or ``system``."""
    text: str
    t: float | None
    """Unix seconds, when the entry carried a readable time."""


class TranscriptReader:
    """XREADs one call's transcript stream: ``on_line`` gets each entry, ``on_problem`` a note when Redis
    fails. Use :meth:`open` before dialling, :meth:`follow` in a task during the call, :meth:`finish` after.
    """

    def __init__(
        self,
        redis_url: str,
        call_id: uuid.UUID,
        *,
        on_line: Callable[[TranscriptLine], None],
        on_problem: Callable[[str], None],
    ) -> None:
        self._url = redis_url
        self._key = transcript_key(call_id)
        self._on_line = on_line
        self._on_problem = on_problem
        self._redis: Any = None
        self._last_id = "0-0"
        self._stop = asyncio.Event()
        self.ok = False
        """The stream could be read (so far)."""

    async def open(self) -> bool:
        """Connect; False (after telling ``on_problem``) when Redis is unreachable."""
        try:
            import redis.asyncio as aioredis  # only when a transcript is wanted (--no-redis skips it)

            client = aioredis.from_url(self._url, socket_connect_timeout=1.0, socket_timeout=5.0)
            await asyncio.wait_for(client.ping(), timeout=2.0)
        except Exception as exc:  # any failure: show audio only
            self._on_problem(f"Redis unreachable ({type(exc).__name__}); the bot's words are not shown")
            return False
        self._redis = client
        self.ok = True
        return True

    async def follow(self, *, block_ms: int | None = 250) -> None:
        """Read new entries until :meth:`finish` stops it (``block_ms=None``: read what is there, once).

        Stopping is a flag checked between reads, not a cancellation: a redis-py command cancelled mid-flight
        costs its connection."""
        while not self._stop.is_set() or block_ms is None:
            try:
                response = await self._redis.xread({self._key: self._last_id}, count=100, block=block_ms)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.ok = False
                self._on_problem(f"transcript stream unreadable ({type(exc).__name__})")
                return
            for _key, entries in response or []:
                for entry_id, fields in entries:
                    self._last_id = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                    self._on_line(_line(fields))
            if block_ms is None:
                return

    async def finish(self, follower: asyncio.Task[None] | None, *, grace_s: float = GRACE_S) -> None:
        """After the call: wait ``grace_s`` for the gateway's last lines, stop ``follower``, read the rest,
        close the connection."""
        if self._redis is None:
            return
        if follower is not None:
            await asyncio.sleep(grace_s)  # the gateway writes its last lines as the call closes
            self._stop.set()
            try:
                await asyncio.wait_for(asyncio.shield(follower), timeout=2.0)
            except asyncio.TimeoutError:
                follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
            if self.ok:
                await self.follow(block_ms=None)  # whatever came after the last blocking read
        await self.close()

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._redis is not None:
            redis, self._redis = self._redis, None
            await redis.close()


def _line(fields: dict[Any, Any]) -> TranscriptLine:
    def get(name: str) -> str:
        value = fields.get(name.encode(), fields.get(name, b""))
        return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)

    try:
        t: float | None = float(get("t"))
    except ValueError:
        t = None
    return TranscriptLine(get("who") or "system", get("text"), t)
