"""What a call leaves in Redis for the other processes.

Keys (all expire after ``RETENTION_S``)::

    attendant:calls:active                set of call UUIDs in progress on any gateway
    attendant:call:<uuid>                 hash: outcome, reason, skill, started_at, ended_at, turns,
                                          context (JSON)
                                          and, when call control registered them, caller_number, channel
    attendant:call:<uuid>:transcript      stream: who (caller|bot|system), text, t (unix seconds)

``outcome`` is one of ``completed`` (the bot finished the call), ``handoff`` (a person takes over: ``reason``
and ``skill`` say why and who), ``abandoned`` (the caller hung up) and ``failed`` (the gateway broke; the
dialplan sends the caller to a queue). The FastAGI ``outcome`` route reads this hash after ``AudioSocket()``.

Redis trouble never breaks a call: a failed write is logged (without content) and the call goes on.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

RETENTION_S = 86400
ACTIVE_KEY = "attendant:calls:active"
TRANSCRIPT_MAXLEN = 1000
OUTCOMES = ("completed", "handoff", "abandoned", "failed")


def call_key(call_id: str) -> str:
    """The call's hash."""
    return f"attendant:call:{call_id}"


def transcript_key(call_id: str) -> str:
    """The call's transcript stream."""
    return f"attendant:call:{call_id}:transcript"


class CallRecord:
    """One call's shared state."""

    def __init__(self, redis: aioredis.Redis, call_id: str) -> None:
        self._r = redis
        self.call_id = call_id

    async def _safely(self, what: str, coro: Any) -> Any:
        try:
            return await coro
        except (RedisError, OSError) as exc:
            log.warning("call %s: redis %s failed: %s", self.call_id, what, type(exc).__name__)
            return None

    async def start(self) -> dict[str, str]:
        """Mark the call active; return what call control registered about it (caller number, channel)."""
        key = call_key(self.call_id)
        pipe = self._r.pipeline()
        pipe.sadd(ACTIVE_KEY, self.call_id)
        pipe.hset(key, mapping={"started_at": f"{time.time():.3f}"})
        pipe.hdel(key, "outcome", "ended_at")
        pipe.expire(key, RETENTION_S)
        pipe.hgetall(key)
        result = await self._safely("start", pipe.execute())
        if not result:
            return {}
        raw: Mapping[Any, Any] = result[-1] or {}
        return {_s(k): _s(v) for k, v in raw.items()}

    async def say(self, who: str, text: str) -> None:
        """Append a line to the transcript."""
        key = transcript_key(self.call_id)
        pipe = self._r.pipeline()
        pipe.xadd(key, {"who": who, "text": text, "t": f"{time.time():.3f}"}, maxlen=TRANSCRIPT_MAXLEN)
        pipe.expire(key, RETENTION_S)
        await self._safely("transcript", pipe.execute())

    async def finish(
        self,
        outcome: str,
        *,
        reason: str = "",
        skill: str = "",
        turns: int = 0,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        """Record how the call ended and drop it from the active set."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        key = call_key(self.call_id)
        fields = {
            "outcome": outcome,
            "reason": reason,
            "skill": skill,
            "turns": str(turns),
            "ended_at": f"{time.time():.3f}",
            "context": json.dumps(dict(context or {}), default=str),
        }
        pipe = self._r.pipeline()
        pipe.hset(key, mapping=fields)
        pipe.expire(key, RETENTION_S)
        pipe.srem(ACTIVE_KEY, self.call_id)
        await self._safely("finish", pipe.execute())


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
