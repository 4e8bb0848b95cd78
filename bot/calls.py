"""What a call leaves in Redis for the other processes (key names and vocabulary: ``telephony/callstate.py``).

The call's hash and transcript expire ``RETENTION_S`` after their last write. A call is *active* while its
gateway keeps vouching for it: every gateway refreshes the score of each call it is serving every
``heartbeat_s`` (:class:`ActiveCalls`) and removes entries nobody has vouched for in ``3 x heartbeat_s``; so a
gateway that dies (``kill -9``, a power cut) leaves no call "active" for longer than that, and the set itself
expires when no gateway at all is left to refresh it. Read it with :meth:`ActiveCalls.live`.

The FastAGI ``outcome`` route reads the call's hash after ``AudioSocket()``.

Redis trouble never breaks a call: a failed write is logged (without content) and the call goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from telephony.callstate import (
    ACTIVE_KEY,
    RETENTION_S,
    TRANSCRIPT_MAXLEN,
    Outcome,
    Reason,
    Route,
    Skill,
    call_key,
    transcript_key,
)

log = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
"""How often a gateway vouches for its calls; a call not vouched for in ``STALE_BEATS`` beats is dropped."""
STALE_BEATS = 3


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
        pipe.zadd(ACTIVE_KEY, {self.call_id: time.time()})
        pipe.hset(key, mapping={"started_at": f"{time.time():.3f}"})
        pipe.hdel(key, "outcome", "ended_at")
        pipe.expire(key, RETENTION_S)
        pipe.hgetall(key)
        result = await self._safely("start", pipe.execute())
        if not result:
            return {}
        raw: Mapping[Any, Any] = result[-1] or {}
        return {_s(k): _s(v) for k, v in raw.items()}

    async def say(self, who: str, text: str, *, prompt: str | None = None) -> None:
        """Append a line to the transcript; ``prompt`` names the gateway's own phrase it is."""
        key = transcript_key(self.call_id)
        fields = {"who": who, "text": text, "t": f"{time.time():.3f}"}
        if prompt:
            fields["prompt"] = prompt
        pipe = self._r.pipeline()
        pipe.xadd(key, fields, maxlen=TRANSCRIPT_MAXLEN)
        pipe.expire(key, RETENTION_S)
        await self._safely("transcript", pipe.execute())

    async def keep_context(self, context: Mapping[str, Any]) -> None:
        """What the assistant knows so far (after every turn): an agent gets it even if this gateway dies."""
        key = call_key(self.call_id)
        pipe = self._r.pipeline()
        pipe.hset(key, mapping={"context": json.dumps(dict(context), default=str)})
        pipe.expire(key, RETENTION_S)
        await self._safely("context", pipe.execute())

    async def finish(
        self,
        outcome: Outcome,
        *,
        reason: Reason | None = None,
        skill: Skill | None = None,
        turns: int = 0,
        context: Mapping[str, Any] | None = None,
        route: Route | None = None,
    ) -> None:
        """Record how the call ended (for a handoff, where the caller waits) and drop it from the active
        set."""
        key = call_key(self.call_id)
        fields = {
            "outcome": Outcome(outcome).value,
            "reason": Reason(reason).value if reason else "",
            "skill": Skill(skill).value if skill else "",
            "turns": str(turns),
            "ended_at": f"{time.time():.3f}",
            "context": json.dumps(dict(context or {}), default=str),
            "verified": "yes" if (context or {}).get("verified") is True else "no",
        }
        if route is not None:
            fields.update(route.fields())
        pipe = self._r.pipeline()
        pipe.hset(key, mapping=fields)
        pipe.expire(key, RETENTION_S)
        pipe.zrem(ACTIVE_KEY, self.call_id)
        await self._safely("finish", pipe.execute())


_BEAT = """
-- KEYS[1] the active set, KEYS[1+i] call i's hash; ARGV: now, stale bound, set ttl, then the call ids.
-- One script, so a call's end (its outcome and its removal, one MULTI) lands wholly before or after it.
for i = 2, #KEYS do
    if redis.call('HEXISTS', KEYS[i], 'outcome') == 0 then
        redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2 + i])
    end
end
local dropped = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return dropped
"""


class ActiveCalls:
    """The calls in progress on all gateways, kept true when a gateway dies (see the module docstring)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        heartbeat_s: float = HEARTBEAT_S,
        clock: Callable[[], float] = time.time,
        key: str = ACTIVE_KEY,
    ) -> None:
        self._r = redis
        self._key = key
        self.heartbeat_s = heartbeat_s
        self._clock = clock
        self._beat = redis.register_script(_BEAT)

    @property
    def stale_s(self) -> float:
        """A call nobody vouched for this long is no longer active, seconds."""
        return self.heartbeat_s * STALE_BEATS

    async def migrate(self) -> None:
        """Drop a plain set left by an older release (it held calls that never ended)."""
        try:
            if await self._r.type(self._key) in (b"set", "set"):
                await self._r.delete(self._key)
                log.info("dropped the old set of active calls (replaced by a scored set)")
        except (RedisError, OSError) as exc:
            log.warning("redis active-call migration failed: %s", type(exc).__name__)

    async def beat(self, call_ids: Iterable[str]) -> int:
        """Vouch for ``call_ids`` (this gateway's calls) and drop calls nobody vouched for; returns how many
        were dropped. A call whose outcome is recorded is not vouched for: its end may have been written
        between the caller's snapshot and this beat, and it must not come back (the dialplan and the
        console take an ended call for a live one while it does). Redis trouble is logged and ignored (the
        next beat catches up)."""
        ids = list(call_ids)
        now = self._clock()
        try:
            dropped = int(
                await self._beat(
                    keys=[self._key, *(call_key(call_id) for call_id in ids)],
                    args=[f"{now:.3f}", f"({now - self.stale_s:.3f}", int(self.stale_s * 2) + 1, *ids],
                )
            )
        except (RedisError, OSError) as exc:
            log.warning("redis active-call heartbeat failed: %s", type(exc).__name__)
            return 0
        if dropped:
            log.warning(
                "%d call(s) no gateway vouched for in %.0f s dropped from the active set",
                dropped,
                self.stale_s,
            )
        return dropped

    async def live(self) -> list[str]:
        """UUIDs of the calls some gateway has vouched for recently."""
        raw = await self._r.zrangebyscore(self._key, self._clock() - self.stale_s, "+inf")
        return [_s(v) for v in raw]

    async def run(self, call_ids: Callable[[], Iterable[str]]) -> None:
        """Beat every ``heartbeat_s`` until cancelled."""
        await self.migrate()
        while True:
            await self.beat(list(call_ids()))
            await asyncio.sleep(self.heartbeat_s)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
