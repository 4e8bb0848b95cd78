"""Keeping PINs and dates of birth out of the conversation record.

Everything a caller says is written into Rasa's tracker (in Redis, for as long as the tracker lives). A PIN
must not be. So while a *sensitive* slot is being asked for, the Attendant channel (``bot/rasa/channel.py``)
takes the digits out of the caller's words, puts them aside here under a random reference, and hands Rasa
only ``/inform_digits{"secret_ref": "<reference>"}``. The verification action takes the value back out
(read and delete in one transaction), checks it, and forgets it.

Redis layout::

    attendant:secret:<ref>  ->  {"sender": <sender id>, "value": <digits>}     expires after 120 s

``<ref>`` is 24 random lower-case letters, so it can never contain (or be mistaken for) digits. A value is
handed out only to the conversation that put it aside.
"""

from __future__ import annotations

import json
import os
import secrets
import string
from typing import Any

KEY_PREFIX = "attendant:secret:"
TTL_S = 120
REF_ALPHABET = string.ascii_lowercase
REF_LEN = 24
UNREADABLE = "?"
"""Put aside instead of words that look like a date of birth but do not make one (never recorded either)."""
UNAVAILABLE = "unavailable"
"""The reference the channel sends when it could not put a value aside: verification becomes a handoff."""


class SecretStashError(Exception):
    """Redis could not be reached; the caller goes to a person with reason ``technical``."""


def new_ref() -> str:
    """A fresh reference: 24 random letters (about 112 bits)."""
    return "".join(secrets.choice(REF_ALPHABET) for _ in range(REF_LEN))


def is_ref(value: Any) -> bool:
    """Whether ``value`` looks like a reference this module hands out."""
    return isinstance(value, str) and len(value) == REF_LEN and all(c in REF_ALPHABET for c in value)


class SecretStash:
    """Short-lived, read-once storage for sensitive caller input (async Redis)."""

    def __init__(self, host: str, port: int, db: int, timeout_s: float = 1.0) -> None:
        import redis.asyncio as aioredis  # imported here: nothing heavy at import time

        self._redis = aioredis.Redis(
            host=host,
            port=port,
            db=db,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            decode_responses=True,
        )

    @classmethod
    def from_env(cls) -> SecretStash:
        """Built from ``REDIS_HOST``, ``REDIS_PORT``, ``REDIS_DB`` (the variables endpoints.yml uses)."""
        return cls(
            os.environ.get("REDIS_HOST", "127.0.0.1"),
            int(os.environ.get("REDIS_PORT", "6379")),
            int(os.environ.get("REDIS_DB", "0")),
        )

    async def put(self, sender: str, value: str) -> str:
        """Put ``value`` aside for ``sender``; returns the reference."""
        ref = new_ref()
        payload = json.dumps({"sender": sender, "value": value})
        try:
            await self._redis.set(KEY_PREFIX + ref, payload, ex=TTL_S)
        except Exception as exc:  # redis errors, timeouts, OS errors
            raise SecretStashError(type(exc).__name__) from exc
        return ref

    async def take(self, ref: str, sender: str) -> str | None:
        """The value put aside under ``ref`` for ``sender``, deleted as it is read.

        ``None`` when the reference is unknown, expired, malformed or belongs to another conversation.
        """
        if not is_ref(ref):
            return None
        key = KEY_PREFIX + ref
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.get(key)
                pipe.delete(key)
                raw, _ = await pipe.execute()
        except Exception as exc:
            raise SecretStashError(type(exc).__name__) from exc
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("sender") != sender:
            return None
        value = data.get("value")
        return value if isinstance(value, str) else None

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.close()
