"""The request's state hash ``attendant:callback:<request>`` and its guarded transitions (one winner each).

Fields: the request's own (contract fields), ``state``, ``attempt`` (dial attempts started), ``owner`` (the
consumer that started the current attempt), ``created``, ``updated``, ``dialled_at``, ``agent_at`` (the
agent answered: Originate succeeded), ``connected_at``, ``ended_at``, ``next_at`` (no dial before),
``last_reason`` and ``reason_<n>`` (why attempt n ended).

Every transition is one Lua script: it changes the hash only when the state (and, where given, the attempt
number) is still what the caller read; otherwise it changes nothing and answers 0. Redis runs a script
alone, so of any number of gateways trying the same transition exactly one wins.
"""

from __future__ import annotations

from typing import Any

TERMINAL = frozenset({"connected", "done", "failed", "expired"})
"""States after which the request is never dialled again (the stream entry is acknowledged)."""
WAITING = ("new", "retry")

_TRANSITION = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 0 end
local allowed = false
for s in string.gmatch(ARGV[1], '[^,]+') do
  if s == state then allowed = true end
end
if not allowed then return 0 end
if ARGV[2] ~= '' and redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[3])
for i = 5, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
if tonumber(ARGV[4]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
return 1
"""


_BEGIN_DIAL = """
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return 0 end
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'new' and state ~= 'retry' then return 0 end
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', 'dialling')
for i = 7, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return 1
"""


class StateStore:
    """Reads and guarded writes of request state hashes."""

    def __init__(self, redis: Any, *, retention_s: int = 7 * 86400) -> None:
        self._r = redis
        self._script = redis.register_script(_TRANSITION)
        self._begin = redis.register_script(_BEGIN_DIAL)
        self.retention_s = retention_s
        """How long a finished request's hash is kept (the record of what happened)."""

    async def read(self, key: str) -> dict[str, str]:
        raw = await self._r.hgetall(key)
        return {_s(k): _s(v) for k, v in (raw or {}).items()}

    async def init(self, key: str, fields: dict[str, str], now: float) -> None:
        """Create the hash as ``new`` when the stream entry came without one (another writer)."""
        pipe = self._r.pipeline(transaction=True)
        pipe.hsetnx(key, "state", "new")
        pipe.hsetnx(key, "attempt", "0")
        pipe.hsetnx(key, "created", f"{now:.3f}")
        for name, value in fields.items():
            pipe.hsetnx(key, name, value)
        await pipe.execute()

    async def move(
        self,
        key: str,
        from_states: tuple[str, ...] | str,
        to_state: str,
        *,
        expect_attempt: int | None = None,
        **fields: object,
    ) -> bool:
        """``from_states`` (and attempt ``expect_attempt``) -> ``to_state`` with ``fields``; True for the one
        winner."""
        if isinstance(from_states, str):
            from_states = (from_states,)
        ttl = self.retention_s if to_state in TERMINAL else 0
        expect = "" if expect_attempt is None else str(expect_attempt)
        args: list[str] = [",".join(from_states), expect, to_state, str(ttl)]
        for name, value in fields.items():
            args += [name, str(value)]
        return bool(await self._script(keys=[key], args=args))

    async def begin_dial(
        self,
        key: str,
        slots: str,
        request: str,
        *,
        expect_attempt: int,
        now: float,
        free_agents: int,
        lease_s: float,
        **fields: object,
    ) -> bool:
        """``new|retry(attempt) -> dialling`` with ``fields``, only while the queue's dials in flight (the
        sorted set ``slots``: request -> lease end, shared by every gateway) are fewer than ``free_agents``;
        the request then takes a slot until ``now + lease_s`` (or until :meth:`free_slot`)."""
        args: list[str] = [
            str(expect_attempt),
            request,
            f"{now:.3f}",
            str(int(free_agents)),
            f"{now + lease_s:.3f}",
            str(int(lease_s * 1000) + 1),
        ]
        for name, value in fields.items():
            args += [name, str(value)]
        return bool(await self._begin(keys=[key, slots], args=args))

    async def free_slot(self, slots: str, request: str) -> None:
        """The request's agent was found (or its dial ended): its slot is free."""
        await self._r.zrem(slots, request)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
