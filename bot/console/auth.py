"""Agent login: a personal token for a session cookie.

- The token is compared as its sha256 with every agent's ``token_sha256`` using ``hmac.compare_digest``,
  all of them every time (the time taken says nothing about which agent, or how close the guess was).
- A session is 32 random bytes in an ``HttpOnly``, ``SameSite=Strict`` cookie; Redis keeps only its sha256
  (:func:`console_session_key`) with the agent id, for ``session_ttl_s``: a leaked Redis dump opens nothing.
- Failed logins are limited per client address and in total over a sliding window (:class:`LoginLimiter`):
  past the limit every attempt is refused with 429 and ``Retry-After`` until the window frees up.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from bot.console.agents import Agent, Roster, hash_token
from telephony.callstate import console_session_key

log = logging.getLogger(__name__)

COOKIE = "attendant_console"


def find_agent(roster: Roster, token: str) -> Agent | None:
    """The agent whose token this is, comparing in constant time against every agent."""
    digest = hash_token(token).encode()
    found = None
    for agent in roster:
        expected = (agent.token_sha256 or "").encode()
        if hmac.compare_digest(digest, expected) and expected:
            found = agent
    return found


@dataclass
class LoginLimiter:
    """Failed logins allowed per address (``per_client``) and in all (``total``) within ``window_s``."""

    clock: Callable[[], float]
    per_client: int = 5
    total: int = 50
    window_s: float = 300.0

    def __post_init__(self) -> None:
        self._by_client: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()

    def _trim(self, q: deque[float], now: float) -> None:
        while q and q[0] <= now - self.window_s:
            q.popleft()

    def retry_after(self, client: str) -> float:
        """Seconds until ``client`` may try again (0: now)."""
        now = self.clock()
        waits = []
        q = self._by_client.get(client)
        if q is not None:
            self._trim(q, now)
            if len(q) >= self.per_client:
                waits.append(q[0] + self.window_s - now)
            if not q:
                del self._by_client[client]
        self._trim(self._all, now)
        if len(self._all) >= self.total:
            waits.append(self._all[0] + self.window_s - now)
        return max(waits, default=0.0)

    def failed(self, client: str) -> None:
        now = self.clock()
        self._by_client.setdefault(client, deque()).append(now)
        self._all.append(now)


class Sessions:
    """Login sessions in Redis, by the sha256 of the cookie value."""

    def __init__(self, redis: Any, ttl_s: int) -> None:
        self._r = redis
        self.ttl_s = ttl_s

    @staticmethod
    def _key(cookie: str) -> str:
        return console_session_key(hashlib.sha256(cookie.encode("utf-8", "replace")).hexdigest())

    async def create(self, agent_id: str) -> str:
        """A new session for ``agent_id``: the cookie value. Raises ``RedisError``."""
        cookie = secrets.token_urlsafe(32)
        await self._r.set(self._key(cookie), agent_id, ex=self.ttl_s)
        return cookie

    async def agent_id(self, cookie: str | None) -> str | None:
        """The agent of a session cookie, or None (absent, expired, unknown, Redis down)."""
        if not cookie or len(cookie) > 100:
            return None
        try:
            raw = await self._r.get(self._key(cookie))
        except (RedisError, OSError) as exc:
            log.warning("console: redis session read failed: %s", type(exc).__name__)
            return None
        if raw is None:
            return None
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    async def end(self, cookie: str | None) -> None:
        if cookie:
            try:
                await self._r.delete(self._key(cookie))
            except (RedisError, OSError) as exc:
                log.warning("console: redis session delete failed: %s", type(exc).__name__)
