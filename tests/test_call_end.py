"""How a call ends, as Asterisk sees it: the outcome is in Redis before the AudioSocket hangup frame, since
the dialplan's ``outcome`` step asks for it the moment the leg ends (the harness of ``test_session.py``)."""

from __future__ import annotations

import asyncio

import redis as redis_sync

from bot.dialogue import HandoffRequested, Reply
from telephony import audiosocket as wire
from telephony.callstate import Reason, Skill, call_key
from tests.test_session import GREETING, Caller, Harness, ScriptedDialogue, start, stop, sync_redis

__all__ = ["sync_redis"]  # the fixture, shared


async def test_the_outcome_is_in_redis_before_the_hangup_frame(sync_redis: redis_sync.Redis) -> None:
    """Asterisk asks FastAGI for the outcome the moment the AudioSocket leg ends: it must already be there.
    Read synchronously when the hangup frame arrives (the gateway shares this loop, so nothing it does can
    slip in between)."""
    handoff = Reply(
        texts=("Let me get you a colleague.",),
        handoff=HandoffRequested(Reason.REQUESTED, Skill.BILLING, {"skill": "billing"}),
    )
    h = Harness(ScriptedDialogue({"/session_start": GREETING, "a real person please": handoff}))
    await start(h)
    try:
        caller = await Caller.dial(h.server.port)
        seen: list[dict[str, str]] = []

        def on_hangup() -> None:
            seen.append(sync_redis.hgetall(call_key(str(caller.call))))

        caller.on_hangup = on_hangup
        await caller.wait_voiced(5)
        await caller.send(wire.encode_text("a real person please"))
        await asyncio.wait_for(caller.hangup.wait(), 10)
        assert seen and seen[0].get("outcome") == "handoff", seen
        assert seen[0].get("queue") == "attendant-billing"
        await caller.close()
    finally:
        await stop(h)
