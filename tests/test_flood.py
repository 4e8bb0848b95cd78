"""A flooding peer must not hurt the other calls, and a line of noise must not hold a seat for 15 minutes.

Over real TCP with the real server and sessions (fake engines, as in ``test_session.py``): a peer blasts
320-byte audio frames and keypad presses as fast as its socket allows (from a thread, so the flood does not
run on the loop under test) while a well-behaved call goes on; the loop's timers stay on time and the good
call's frames keep their 20 ms pace.
"""

from __future__ import annotations

import asyncio
import random
import socket
import statistics
import threading
import time
import uuid

import redis as redis_sync

from telephony import audiosocket as wire
from tests.test_session import GREETING, Caller, Harness, ScriptedDialogue, stop, sync_redis, wait_ended

__all__ = ["sync_redis"]  # the fixture, shared


def flood(port: int, seconds: float, sent: list[int]) -> None:
    """Blast audio and keys at the gateway for ``seconds`` (blocking; run in a thread)."""
    burst = b"".join(wire.encode_audio(random.randbytes(320), 8000) for _ in range(200))
    keys = b"".join(wire.encode_dtmf(d) for d in "1234567890" * 20)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(wire.encode_uuid(uuid.uuid4()))
        s.settimeout(0.2)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                s.sendall(burst + keys)
                sent[0] += 400
            except (TimeoutError, OSError):
                continue  # the gateway reads this peer slowly: its socket fills up, as it should


async def test_a_flooding_peer_does_not_delay_other_calls(sync_redis: redis_sync.Redis) -> None:
    h = Harness(ScriptedDialogue({"/session_start": GREETING}))
    await h.server.start()
    lags: list[float] = []

    async def monitor() -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.02)
            lags.append((time.perf_counter() - t - 0.02) * 1000)

    watcher = asyncio.create_task(monitor())
    try:
        good = await Caller.dial(h.server.port)
        await good.wait_voiced(3)
        sent = [0]
        flooder = threading.Thread(target=flood, args=(h.server.port, 3.0, sent))
        start_frames = len(good.frames)
        started = time.monotonic()
        flooder.start()
        while flooder.is_alive():
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - started
        received = len(good.frames) - start_frames
        lags_sorted = sorted(lags)
        p99 = lags_sorted[int(len(lags_sorted) * 0.99) - 1]
        assert sent[0] > 2000, "the flood never got going"
        assert p99 < 50, f"loop lag p99 {p99:.1f} ms during the flood (median {statistics.median(lags):.1f})"
        # The good call kept its pace: about one frame per 20 ms throughout.
        assert received >= 0.9 * elapsed / 0.02, (received, elapsed)
        # The flooding peer was read at most at the inbound budget (100 messages a second, 100 ahead).
        flooded = next(s for call_id, s in h.sessions.items() if call_id != str(good.call))
        assert 100 <= flooded.frames_in <= 100 * (elapsed + 0.5) + 100, (flooded.frames_in, sent[0])
        await good.send(wire.encode_hangup())
        await good.close()
        await wait_ended(h, sync_redis, good.call)
    finally:
        watcher.cancel()
        await stop(h)


async def test_a_line_of_noise_ends_with_a_goodbye(sync_redis: redis_sync.Redis) -> None:
    """No recogniser, loud noise at real time: the VAD keeps hearing "speech" so the no-input reprompts never
    come; after ``max_no_turn_s`` without a usable turn the call ends with the goodbye prompt."""
    h = Harness(ScriptedDialogue({"/session_start": GREETING}), max_no_turn_s=2.0)
    await h.server.start()
    try:
        caller = await Caller.dial(h.server.port)
        rng = random.Random(1)
        started = time.monotonic()
        while not caller.hangup.is_set() and time.monotonic() - started < 10:
            await caller.send(wire.encode_audio(rng.randbytes(320), 8000))
            await asyncio.sleep(0.02)
        assert caller.hangup.is_set(), "the noise call was never ended"
        record = await wait_ended(h, sync_redis, caller.call)
        assert (record["outcome"], record["reason"]) == ("completed", "no-input")
        assert h.synth.texts[-1] == h.sessions[str(caller.call)]._d.prompts["no_input_goodbye"]
        await caller.close()
    finally:
        await stop(h)
