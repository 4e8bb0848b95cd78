"""Parts the console tests share: a controllable clock, a CallControl that records what it was asked, the
roster with known tokens, a reader of server-sent events over a real HTTP connection, and voicemails (a real
WAV, the stream entry the FastAGI route writes)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import soundfile as sf

from bot.console.agents import AGENTS_FILE, Roster, hash_token, load_agents
from bot.console.control import CallControlError
from telephony.callstate import VOICEMAILS_KEY, voicemail_key

TOKENS = {name: f"{name}-token-" + name[0] * 24 for name in ("maya", "sam", "priya")}


def roster() -> Roster:
    """The shipped demo agents, each with a known token."""
    return load_agents(AGENTS_FILE).with_token_hashes({k: hash_token(v) for k, v in TOKENS.items()})


def new_call_id() -> str:
    return str(uuid.uuid4())


@dataclass
class FakeClock:
    """Unix seconds that move only when told."""

    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeControl:
    """Implements :class:`bot.console.control.CallControl`; records every call; can be told to fail."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)
    fail: int = 0
    """Fail this many of the next calls."""
    delay_s: float = 0.0

    async def _maybe_fail(self) -> None:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail:
            self.fail -= 1
            raise CallControlError("Response: Error")

    async def set_paused(self, interface: str, paused: bool, reason: str = "") -> None:
        await self._maybe_fail()
        self.calls.append(("set_paused", interface, paused, reason))

    async def queue_log(self, queue: str, uniqueid: str, member_name: str, event: str, message: str) -> None:
        await self._maybe_fail()
        self.calls.append(("queue_log", queue, uniqueid, member_name, event, message))


class SseReader:
    """Reads ``event:``/``data:`` messages from an open event-stream response."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next(self, timeout: float = 2.0) -> tuple[str, dict[str, Any]]:
        """The next message (comments skipped); ``asyncio.TimeoutError`` when none comes in time."""
        return await asyncio.wait_for(self._next(), timeout)

    async def _next(self) -> tuple[str, dict[str, Any]]:
        event, data = "message", []
        while True:
            raw = await self.response.content.readline()
            if not raw:
                raise ConnectionError("stream ended")
            line = raw.decode().rstrip("\r\n")
            if line.startswith(":"):
                continue
            if not line:
                if data:
                    return event, json.loads("\n".join(data))
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)


def write_wav(path: Path, seconds: float, rate: int = 8000) -> Path:
    """A real small WAV as Asterisk's ``Record()`` leaves it (16-bit mono, 8 kHz): a quiet 440 Hz tone."""
    t = np.arange(int(seconds * rate)) / rate
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate, subtype="PCM_16")
    return path


async def add_voicemail(
    redis: Any, call_id: str, file: str, *, skill: str = "general", context: dict[str, Any] | None = None
) -> str:
    """A voicemail entry exactly as the FastAGI ``voicemail`` route writes it; its id."""
    context = context if context is not None else {"after_hours": {"line": "default"}}
    entry = {
        "call": call_id,
        "file": file,
        "status": "dtmf",
        "caller_number": str(context.get("caller_number", "+15550100077")),
        "line": "default",
        "skill": skill,
        "reason": "after-hours",
        "context": json.dumps(context),
        "at": f"{time.time():.3f}",
    }
    entry_id = await redis.xadd(VOICEMAILS_KEY, entry)
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


async def drop_voicemails(redis: Any, under: Path) -> None:
    """Delete the voicemail entries (and their marks) whose file is under ``under``: a test's own."""
    for entry_id, fields in await redis.xrange(VOICEMAILS_KEY):
        if fields.get(b"file", b"").decode().startswith(str(under)):
            await redis.xdel(VOICEMAILS_KEY, entry_id)
            await redis.delete(voicemail_key(entry_id.decode()))
