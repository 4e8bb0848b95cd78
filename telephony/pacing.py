"""Real-time pacing, a wire fact: one 20 ms frame every 20 ms, on an absolute schedule.

Asterisk does not re-time the audio it receives, so whoever sends frames (the gateway's outbound pacer, the
caller simulator) must pace them itself. :class:`Schedule` is the pure arithmetic both use: frame *n* is due
at ``t0 + n * period``, so a late wake-up delays one frame and never the ones after it (no drift).

:class:`Clock` is the time source of code that waits on the schedule (the real one is
:class:`MonotonicClock`; tests pass a fake), and :class:`Ticker` waits for one slot after another on a clock.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol

from telephony.frames import FRAME_MS


@dataclass(frozen=True, slots=True)
class Schedule:
    """The absolute frame schedule; pure, so it can be tested on a fake clock."""

    t0: float
    """Time of frame 0, seconds (monotonic)."""
    period_s: float = FRAME_MS / 1000
    """Time between frames, seconds."""

    def due(self, n: int) -> float:
        """When frame ``n`` is due."""
        return self.t0 + n * self.period_s

    def frames_due(self, now: float) -> int:
        """How many frames (0..n) should have been sent by ``now``."""
        return int((now - self.t0) / self.period_s) + 1 if now >= self.t0 else 0


class Clock(Protocol):
    """Time source for pacing; the real one is :class:`MonotonicClock`, tests may pass a fake."""

    def now(self) -> float:
        """Seconds, monotonic."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Return at (or soon after) ``deadline``."""
        ...


class MonotonicClock:
    """``time.monotonic`` and ``asyncio.sleep``."""

    def now(self) -> float:
        """Seconds, monotonic."""
        return time.monotonic()

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until ``deadline``; yields to the loop even when already late."""
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))


class Ticker:
    """Waits for the slots of a :class:`Schedule` that starts at the first :meth:`tick` after :meth:`reset`.

    A late wake-up delays one tick, never the ones after it (no drift), as a real-time source would.
    """

    def __init__(self, clock: Clock, period_s: float = FRAME_MS / 1000) -> None:
        self._clock = clock
        self._period_s = period_s
        self._schedule: Schedule | None = None
        self._n = 0

    def reset(self) -> None:
        """The next tick starts a new schedule at the current time."""
        self._schedule = None

    @property
    def running(self) -> bool:
        """A schedule is in progress."""
        return self._schedule is not None

    async def tick(self) -> float:
        """Wait for the next slot; return its due time."""
        if self._schedule is None:
            self._schedule = Schedule(self._clock.now(), self._period_s)
            self._n = 0
        due = self._schedule.due(self._n)
        await self._clock.sleep_until(due)
        self._n += 1
        return due
