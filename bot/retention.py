"""Retention: what is kept of a call, and for how long.

A call leaves, in Redis: its record (``attendant:call:<uuid>``: outcome, route, context), its redacted
transcript (``…:transcript``), the agent's disposition (``…:disposition``) and Rasa's tracker
(``attendant:tracker:<uuid>``). Every one of them carries a Redis expiry as a backstop; on top of that the
gateway runs :class:`Purge` every ``period_s``: calls that ended (or, if they never ended, started) more than
``window_s`` ago are deleted, all keys of a call together, and the purge is logged (a count, never content).
Several gateways may purge at once: deleting twice is harmless.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from telephony.callstate import call_key, transcript_key

log = logging.getLogger(__name__)

CALL_KEYS = "attendant:call:*"
TRACKER_PREFIX = "attendant:tracker:"
"""Rasa's tracker store key of a call (``bot/rasa/endpoints.yml``: key_prefix ``attendant``)."""


def call_keys(call_id: str) -> tuple[str, ...]:
    """Every key a call leaves."""
    return (
        call_key(call_id),
        transcript_key(call_id),
        f"{call_key(call_id)}:disposition",
        f"{TRACKER_PREFIX}{call_id}",
    )


class Purge:
    """Deletes what is older than the retention window."""

    def __init__(
        self,
        redis: Any,
        *,
        window_s: float,
        period_s: float = 600.0,
        clock: Callable[[], float] = time.time,
        batch: int = 500,
    ) -> None:
        self._r = redis
        self.window_s = window_s
        self.period_s = period_s
        self._clock = clock
        self._batch = batch

    async def once(self) -> int:
        """One pass; returns how many calls were purged."""
        cutoff = self._clock() - self.window_s
        purged = 0
        async for raw in self._r.scan_iter(match=CALL_KEYS, count=self._batch):
            key = raw.decode() if isinstance(raw, bytes) else str(raw)
            call_id = key.removeprefix("attendant:call:")
            if ":" in call_id:
                continue  # a transcript or disposition: handled with its call's hash
            ended, started = await self._r.hmget(key, "ended_at", "started_at")
            when = _seconds(ended) or _seconds(started)
            if when is None or when >= cutoff:
                continue
            await self._r.delete(*call_keys(call_id))
            purged += 1
        if purged:
            log.info("retention: purged %d call(s) older than %.0f h", purged, self.window_s / 3600)
        return purged

    async def run(self) -> None:
        """Purge every ``period_s`` until cancelled; Redis trouble is logged and retried next period."""
        while True:
            try:
                await self.once()
            except (RedisError, OSError) as exc:
                log.warning("retention purge failed: %s", type(exc).__name__)
            await asyncio.sleep(self.period_s)


def _seconds(raw: object) -> float | None:
    if raw is None:
        return None
    try:
        return float(raw.decode() if isinstance(raw, bytes) else str(raw))
    except ValueError:
        return None
