"""Keeps a :class:`~telephony.queues.QueueModel` current from an AMI connection.

At every (re)connect, before other callers' actions go through, the model is rebuilt from ``QueueStatus``
(all queues, or the configured ones); between snapshots every typed event is folded in as it arrives, on the
loop, in order; when the connection is lost the model is marked stale (it may miss events until the next
snapshot). A failed ``QueueStatus`` fails the connect, which is retried with back-off: the model is never
served as synced without a snapshot.

Events that arrive while the snapshot is being answered are applied to the old model and then overwritten by
the snapshot; those after it are applied on top. The model's handlers are idempotent where an event may
straddle the snapshot (joins and leaves by uniqueid, members replaced whole); the averages of a call that
completes exactly then may be folded in twice until the next snapshot.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from telephony.amiactions import QueueStatusSnapshot
from telephony.amievents import AmiEvent
from telephony.queues import QueueModel

log = logging.getLogger(__name__)


class QueueSource(Protocol):
    """What the tracker needs of an AMI client (:class:`telephony.ami.AmiClient` is one)."""

    def subscribe(self, callback: Callable[[AmiEvent], None]) -> Callable[[], None]: ...

    def on_ready(self, hook: Callable[[], Awaitable[None]]) -> None: ...

    def on_lost(self, hook: Callable[[], None]) -> None: ...

    async def queue_status(
        self, queue: str | None = None, member: str | None = None, timeout: float | None = None
    ) -> QueueStatusSnapshot: ...


class QueueTracker:
    """Wires ``model`` to ``client`` (call once, before ``client.start()``)."""

    def __init__(self, client: QueueSource, model: QueueModel, *, queues: tuple[str, ...] = ()) -> None:
        self.client = client
        self.model = model
        self.queues = queues
        """Queues to snapshot; empty = all of Asterisk's."""
        self.resyncs = 0
        client.subscribe(model.apply)
        client.on_ready(self.resync)
        client.on_lost(model.mark_stale)

    async def resync(self) -> None:
        """Rebuild the model from ``QueueStatus``."""
        if not self.queues:
            snapshot = await self.client.queue_status()
        else:
            parts = [await self.client.queue_status(q) for q in self.queues]
            snapshot = QueueStatusSnapshot(
                params=tuple(p for s in parts for p in s.params),
                members=tuple(m for s in parts for m in s.members),
                entries=tuple(e for s in parts for e in s.entries),
            )
        self.model.rebuild(snapshot)
        self.resyncs += 1
        log.info(
            "queue model re-synced: %d queues, %d members, %d callers waiting",
            len(snapshot.queue_names()),
            len(snapshot.members),
            len(snapshot.entries),
        )
