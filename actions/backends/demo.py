"""The demo store: the seed's demo data in an in-memory SQLite database (``ATTENDANT_STORE_URL=demo``).

For trying the bot without a database file, and for tests that need the demo customers and nothing on disk.
It is the SQL store itself (same code, same behaviour) over a private in-memory database, built and seeded on
first use. Each instance has its own data, gone when the process ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from sqlalchemy.engine import Connection, Engine

from actions.backends.base import LockPolicy, StoreError
from actions.backends.schema import make_engine
from actions.backends.seed import seed
from actions.backends.sql import SqlStore

T = TypeVar("T")


class DemoStore(SqlStore):
    """The demo customers, catalogue, branches and slots (see :mod:`actions.backends.seed`) in memory."""

    def __init__(
        self,
        *,
        timeout_s: float = 2.0,
        clock: Callable[[], datetime] = datetime.now,
        lock: LockPolicy | None = None,
    ) -> None:
        # One connection (an in-memory database is private to it) used by one worker thread, in turn.
        super().__init__("sqlite://", timeout_s=timeout_s, pool_size=1, clock=clock, lock=lock)

    def _get_engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                engine = make_engine("sqlite://", self.timeout_s, 1)
                seed(engine, now=self._clock())
                self._engine = engine
            return self._engine

    async def _run(
        self,
        op: str,
        fn: Callable[[Connection], T],
        *,
        write: bool = False,
        conflict: type[StoreError] | None = None,
    ) -> T:
        if self._engine is None:
            # Building the data (about half a second of PIN hashing) does not count against the timeout.
            await asyncio.get_running_loop().run_in_executor(self._get_executor(), self._get_engine)
        return await super()._run(op, fn, write=write, conflict=conflict)
