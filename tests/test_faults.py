"""Faults a caller must never hear as a dead line: a hung or slow assistant. Over real TCP (fake engines), the
longest silence between the caller's turn and the handoff stays within 4 s: the holding phrase at 1.5 s, the
technical line (a person) by 5 s."""

from __future__ import annotations

import asyncio

import redis as redis_sync
from aiohttp import web

from bot.dialogue import RasaClient, Reply
from telephony import audiosocket as wire
from telephony.callstate import transcript_key
from tests.test_session import GREETING, Caller, Harness, ScriptedDialogue, stop, sync_redis, wait_ended

__all__ = ["sync_redis"]


async def hung_rasa() -> tuple[web.AppRunner, str]:
    """A Rasa channel that greets, then never answers a caller turn."""

    async def webhook(request: web.Request) -> web.Response:
        body = await request.json()
        if body["message"] == "/session_start":
            return web.json_response([{"recipient_id": body["sender"], "text": GREETING.texts[0]}])
        await asyncio.sleep(3600)
        return web.json_response([])

    app = web.Application()
    app.router.add_post("/webhooks/attendant/webhook", webhook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


def longest_silence_s(caller: Caller, after_voiced: int) -> float:
    """Longest run of silent frames after the first ``after_voiced`` voiced frames, seconds."""
    seen, longest, run = 0, 0, 0
    for kind, pcm in caller.frames:
        if kind == wire.Kind.HANGUP:
            break
        if any(pcm):
            seen += 1
            run = 0
        elif seen >= after_voiced:
            run += 1
            longest = max(longest, run)
    return longest * 0.02


async def test_a_hung_assistant_holding_phrase_then_a_person(sync_redis: redis_sync.Redis) -> None:
    runner, url = await hung_rasa()
    client = RasaClient(url, "token", timeout_s=4.5)
    h = Harness(client)  # type: ignore[arg-type]
    await h.server.start()
    try:
        caller = await Caller.dial(h.server.port)
        greeting = len(GREETING.texts[0].split()) * 5
        await caller.wait_voiced(greeting)
        await asyncio.sleep(8 * 0.1 + 0.2)  # the keypad menu (no recogniser) plays out first
        sent_at = asyncio.get_running_loop().time()
        before = caller.voiced_frames()
        await caller.send(wire.encode_text("what is my balance"))
        await asyncio.wait_for(caller.hangup.wait(), 12)
        took = asyncio.get_running_loop().time() - sent_at
        record = await wait_ended(h, sync_redis, caller.call)
        assert (record["outcome"], record["reason"]) == ("handoff", "technical")
        lines = [f.get("prompt") for _, f in sync_redis.xrange(transcript_key(str(caller.call)))]
        assert [p for p in lines if p][-2:] == ["holding", "technical"], lines
        silence = longest_silence_s(caller, before)
        assert silence <= 4.0, f"{silence:.2f} s of silence"
        assert took < 4.5 + 6.0  # the technical line (about 5 s of speech at 100 ms a word) starts by 5 s
        await caller.close()
    finally:
        await stop(h)
        await client.close()
        await runner.cleanup()


async def test_a_slow_answer_gets_the_holding_phrase_once(sync_redis: redis_sync.Redis) -> None:
    slow = Reply(texts=("Your balance is ready.",))
    h = Harness(ScriptedDialogue({"/session_start": GREETING, "balance": slow}, delays={"balance": 2.2}))
    await h.server.start()
    try:
        caller = await Caller.dial(h.server.port)
        await caller.wait_voiced(3)
        await caller.send(wire.encode_text("balance"))
        for _ in range(200):
            if slow.texts[0] in h.synth.texts:
                break
            await asyncio.sleep(0.02)
        assert h.synth.texts.count("One moment, please.") == 1
        assert h.synth.texts[-1] == slow.texts[0]
        await caller.send(wire.encode_hangup())
        await wait_ended(h, sync_redis, caller.call)
        await caller.close()
    finally:
        await stop(h)
