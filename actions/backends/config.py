"""Which customer store to use: :class:`StoreConfig`, read once from the environment and validated.

:mod:`actions.store` opens the store it names; the seed command (:mod:`actions.backends.seed`) reads its URL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from actions.backends.base import LockPolicy, StoreError
from actions.shared.paths import REPO_ROOT

DEFAULT_TIMEOUT_S = 2.0
DEFAULT_POOL_SIZE = 4
DEFAULT_LOCK_ATTEMPTS = 5
DEFAULT_LOCK_S = 900.0
DEMO_URL = "demo"
SQL_SCHEMES = ("sqlite", "postgresql", "postgres")
HTTP_SCHEMES = ("http", "https")


class StoreConfigError(StoreError):
    """The configuration names no usable store (unknown scheme, bad timeout, missing adapter)."""


def default_url() -> str:
    """``sqlite:///<repo>/.run/attendant.db``."""
    return f"sqlite:///{REPO_ROOT / '.run' / 'attendant.db'}"


def url_scheme(url: str) -> str:
    head = url.split(":", 1)[0].lower()
    return head.split("+", 1)[0]


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """Which store, and how long any one call to it may take. Validated on construction."""

    url: str = field(default_factory=default_url)
    """Database URL, ``demo``, or an HTTP base URL (with ``adapter``)."""
    timeout_s: float = DEFAULT_TIMEOUT_S
    """Seconds; every backend call gives up after this and raises :class:`BackendUnavailable`."""
    pool_size: int = DEFAULT_POOL_SIZE
    """Database connections (and worker threads) per action-server process."""
    adapter: str | None = None
    """``package.module:ClassName`` of the :class:`~actions.backends.http.HttpStore` subclass (HTTP only)."""
    lock_attempts: int = DEFAULT_LOCK_ATTEMPTS
    """Failed verifications in a row, across calls, that lock a customer out (SQL stores; a CRM keeps
    its own)."""
    lock_s: float = DEFAULT_LOCK_S
    """Seconds a locked-out customer waits before the next attempt."""

    @property
    def lock(self) -> LockPolicy:
        """The verification lockout these settings describe."""
        return LockPolicy(self.lock_attempts, self.lock_s)

    def __post_init__(self) -> None:
        if not self.url or not self.url.strip():
            raise StoreConfigError("ATTENDANT_STORE_URL is empty")
        if not 0 < self.timeout_s <= 60:
            raise StoreConfigError(f"store timeout must be in (0, 60] seconds, not {self.timeout_s}")
        if not 1 <= self.pool_size <= 64:
            raise StoreConfigError(f"store pool size must be 1..64, not {self.pool_size}")
        try:
            self.lock  # noqa: B018 - validates the lockout settings
        except ValueError as exc:
            raise StoreConfigError(str(exc)) from None
        url = self.url.strip()
        scheme = url_scheme(url)
        if url != DEMO_URL and scheme not in SQL_SCHEMES + HTTP_SCHEMES:
            raise StoreConfigError(
                f"ATTENDANT_STORE_URL scheme {scheme!r} is not known "
                "(use sqlite:///path, postgresql://..., demo, or http(s):// with ATTENDANT_STORE_ADAPTER)"
            )
        if scheme in HTTP_SCHEMES and not self.adapter:
            raise StoreConfigError(
                "an http(s) store URL needs ATTENDANT_STORE_ADAPTER=package.module:ClassName"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StoreConfig:
        """Built from ``ATTENDANT_STORE_URL``, ``..._TIMEOUT_S``, ``..._POOL_SIZE``, ``..._ADAPTER``,
        ``..._LOCK_ATTEMPTS`` and ``..._LOCK_S``."""
        env = os.environ if env is None else env
        try:
            timeout_s = float(env.get("ATTENDANT_STORE_TIMEOUT_S") or DEFAULT_TIMEOUT_S)
            pool_size = int(env.get("ATTENDANT_STORE_POOL_SIZE") or DEFAULT_POOL_SIZE)
            lock_attempts = int(env.get("ATTENDANT_STORE_LOCK_ATTEMPTS") or DEFAULT_LOCK_ATTEMPTS)
            lock_s = float(env.get("ATTENDANT_STORE_LOCK_S") or DEFAULT_LOCK_S)
        except ValueError as exc:
            raise StoreConfigError(f"a store setting is not a number: {exc}") from None
        return cls(
            url=(env.get("ATTENDANT_STORE_URL") or "").strip() or default_url(),
            timeout_s=timeout_s,
            pool_size=pool_size,
            adapter=(env.get("ATTENDANT_STORE_ADAPTER") or "").strip() or None,
            lock_attempts=lock_attempts,
            lock_s=lock_s,
        )
