"""AMI events as an async iterator, for consumers that prefer ``async for`` to a callback.

The AMI reader never waits for a consumer: each stream has a bounded buffer, and when a consumer falls that
far behind the newest events are dropped (counted in :attr:`EventStream.dropped`, logged once per burst)
rather than slowing every other subscriber and the connection itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

from telephony.amievents import AmiEvent

log = logging.getLogger(__name__)

E = TypeVar("E")


class EventStream:
    """``async with client.events() as events: async for event in events: ...``"""

    def __init__(
        self, subscribe: Callable[[Callable[[AmiEvent], None]], Callable[[], None]], maxsize: int
    ) -> None:
        self._queue: asyncio.Queue[AmiEvent] = asyncio.Queue(maxsize)
        self._unsubscribe = subscribe(self._put)
        self._overflowing = False
        self.dropped = 0
        """Events lost because the consumer was ``maxsize`` events behind."""

    def _put(self, event: AmiEvent) -> None:
        try:
            self._queue.put_nowait(event)
            self._overflowing = False
        except asyncio.QueueFull:
            self.dropped += 1
            if not self._overflowing:
                log.warning("AMI event stream full (%d): dropping events", self._queue.maxsize)
            self._overflowing = True

    def close(self) -> None:
        self._unsubscribe()

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> AmiEvent:
        return await self._queue.get()

    async def next(self, kind: type[E], timeout: float | None = None) -> E:
        """The next event of type ``kind`` (others before it are consumed); ``TimeoutError`` after
        ``timeout`` seconds."""

        async def find() -> E:
            while True:
                event = await self._queue.get()
                if isinstance(event, kind):
                    return event

        return await asyncio.wait_for(find(), timeout)
