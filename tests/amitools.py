"""Helpers for the AMI tests: a controllable clock and back-off sleep, and a client wired to a model."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from telephony.ami import AmiClient, AmiConfig
from telephony.amievents import AmiEvent
from telephony.queues import QueueModel, QueueSettings
from telephony.queuetracker import QueueTracker
from tests.amiserver import AmiServer

EPOCH = {
    # Unix time at +0.000 of each capture (from LoginTime / Uniqueid; the captures' clocks are whole seconds)
    "queue-answered": 1796040782.0,
    "ring-no-answer-then-next": 1796040796.0,
    "caller-abandons": 1796040816.0,
    "queue-status": 1796040829.0,
    "wrapup": 1796040975.0,
    "least-privilege": 1796041002.0,
    "originate-response": 1796040894.0,
}
USERS = {"least-privilege": "attendant"}
"""The AMI user each capture logged in as (``harness`` unless listed)."""


@dataclass
class FakeClock:
    """Unix seconds, moved by the test."""

    t: float = 0.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Sleeps:
    """Back-off sleep that records each delay and returns at once (the next attempt follows immediately)."""

    delays: list[float] = field(default_factory=list)

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


@dataclass
class Wired:
    """A client logged in to an :class:`AmiServer`, with a model kept by a tracker, and every event seen."""

    server: AmiServer
    client: AmiClient
    model: QueueModel
    tracker: QueueTracker
    clock: FakeClock
    sleeps: Sleeps
    events: list[AmiEvent]

    async def step(self, through: object = None, *, at: float | None = None, **kw: object) -> list[AmiEvent]:
        """Replay the capture through ``through`` with the model's clock at capture time ``at`` (seconds
        since the capture started), then wait until the client has dispatched all of it (a Ping round trip:
        one TCP stream, handled in order). Returns the typed events of this step."""
        if at is not None:
            self.clock.t = EPOCH[self.server.capture.name] + at
        seen = len(self.events)
        await self.server.replay(through, **kw)  # type: ignore[arg-type]
        await self.client.ping()
        return self.events[seen:]


def config(server: AmiServer, **overrides: object) -> AmiConfig:
    values: dict[str, object] = {
        "secret": "secret",
        "port": server.port,
        "username": USERS.get(server.capture.name, "harness"),
        "ping_interval_s": 0,
        "action_timeout_s": 2.0,
    }
    values.update(overrides)
    return AmiConfig(**values)  # type: ignore[arg-type]


@asynccontextmanager
async def wired(
    scenario: str, *, settings: QueueSettings | None = None, draw: float = 0.0, **overrides: object
) -> AsyncIterator[Wired]:
    """Server for ``scenario``, client connected and ready, model re-synced once."""
    async with AmiServer(scenario) as server:
        clock = FakeClock(EPOCH[scenario])
        sleeps = Sleeps()
        client = AmiClient(config(server, **overrides), sleep=sleeps, draw=lambda: draw, clock=clock)
        model = QueueModel(settings, clock=clock)
        tracker = QueueTracker(client, model)
        events: list[AmiEvent] = []
        client.subscribe(events.append)
        client.start()
        try:
            await client.wait_ready(5)
            yield Wired(server, client, model, tracker, clock, sleeps, events)
        finally:
            await client.close()
