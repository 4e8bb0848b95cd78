"""``make soak``: many calls for a long time with a misbehaving peer alongside — nothing dropped, nothing
leaks, nobody's audio late.

Starts the real stack (Rasa server and action server with the trained model, the gateway process, real Piper;
speech recognition off, turns injected as text after the recogniser, as the tests do) and keeps ``--calls``
callers busy for ``--minutes``: each caller phones, waits for the greeting, asks for the opening hours, then
says goodbye and waits for the bot to hang up, and phones again. Meanwhile a bad peer (a thread, so its flood
does not run on the measuring loop) cycles through what the adversarial tests throw at the gateway: audio as
fast as the socket takes it, a DTMF flood, garbage bytes, a header cut in half, idle connections.

Figures (printed, ``--json FILE`` also writes them):

- **dropped calls** — a call that did not end with the bot's goodbye and hangup and its outcome in Redis
  (``completed``): any protocol error, a turn without an answer, a line gone quiet;
- **memory growth** — the gateway's resident memory at the end against after the first minute (warm caches);
- **late frames** — outbound frames arriving more than 20 ms after the one before should have (gap > 40 ms),
  out of all frames the callers received; the gateway sends one every 20 ms for the whole call;
- the time from a caller's turn to the bot's reply in the transcript (p50/p95), and the bad peer's connection
  count, for the record.

Targets (issue 9): 0 dropped, memory growth < 10 %, late frames < 1 %. The exit status is 1 when one is
missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from bench.procstat import rss_mb
from bench.run import pct, running_stack
from telephony import audiosocket as wire
from telephony.callstate import call_key, transcript_key
from telephony.frames import AudioIn, Hangup

FRAME_S = 0.02
LATE_GAP_S = 0.04
TURNS = ("what are your opening hours", "ok thanks bye")
TURN_WAIT_S = 20.0
SILENCE = bytes(320)


@dataclass
class Tally:
    calls: int = 0
    dropped: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    frames: int = 0
    late: int = 0
    latencies: list[float] = field(default_factory=list)

    def drop(self, why: str) -> None:
        self.dropped += 1
        self.reasons[why] = self.reasons.get(why, 0) + 1


def bot_answered(r: redis.Redis, call: str, turn: int) -> bool:
    """Whether the call's transcript has a line of the bot after the caller's ``turn``-th line."""
    callers = 0
    for _id, entry in r.xrange(transcript_key(call)):
        if entry.get("who") == "caller":
            callers += 1
        elif entry.get("who") == "bot" and callers >= turn:
            return True
    return False


async def one_call(port: int, r: redis.Redis, tally: Tally) -> None:
    """One caller as Asterisk's AudioSocket leg: silence every 20 ms, two typed turns, the bot's hangup."""
    call = uuid.uuid4()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(wire.encode_uuid(call))
    decoder = wire.Decoder()
    got_audio = asyncio.Event()
    hung_up = asyncio.Event()
    voiced_at: list[float] = []
    last: list[float] = []

    async def read() -> None:
        while data := await reader.read(65536):
            now = time.monotonic()
            for frame in decoder.feed(data):
                if isinstance(frame, AudioIn):
                    if last and now - last[0] > LATE_GAP_S:
                        tally.late += 1
                    last[:] = [now]
                    tally.frames += 1
                    got_audio.set()
                    if any(frame.pcm):
                        voiced_at.append(now)
                elif isinstance(frame, Hangup):
                    hung_up.set()
                    return

    async def send_silence() -> None:
        next_at = time.monotonic()
        while not hung_up.is_set():
            writer.write(wire.encode_audio(SILENCE, 8000))
            next_at += FRAME_S
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    reading = asyncio.create_task(read())
    talking = asyncio.create_task(send_silence())
    why = ""
    try:
        await asyncio.wait_for(got_audio.wait(), 5)

        async def quiet() -> None:
            """Until the bot has said nothing for 1.5 s (greeting, keypad menu or answer over)."""
            for _ in range(int(TURN_WAIT_S / 0.1)):
                if voiced_at and time.monotonic() - voiced_at[-1] > 1.5:
                    return
                await asyncio.sleep(0.1)

        for n, text in enumerate(TURNS, start=1):
            await quiet()
            sent = time.monotonic()
            writer.write(wire.encode_text(text))
            answered = False
            for _ in range(int(TURN_WAIT_S / 0.05)):
                if bot_answered(r, str(call), n):
                    answered = True
                    break
                await asyncio.sleep(0.05)
            if not answered:
                why = "no answer to a turn"
                break
            tally.latencies.append(time.monotonic() - sent)
        if not why:
            await asyncio.wait_for(hung_up.wait(), TURN_WAIT_S)
    except (asyncio.TimeoutError, ConnectionError, wire.ProtocolError) as exc:
        why = why or f"{type(exc).__name__}"
    finally:
        talking.cancel()
        reading.cancel()
        await asyncio.gather(talking, reading, return_exceptions=True)
        writer.close()
    tally.calls += 1
    if not why:
        outcome = ""
        for _ in range(50):
            outcome = r.hget(call_key(str(call)), "outcome") or ""
            if outcome:
                break
            await asyncio.sleep(0.1)
        if outcome != "completed":
            why = f"outcome {outcome or 'missing'}"
    if why:
        tally.drop(why)


async def caller_loop(port: int, r: redis.Redis, tally: Tally, until: float) -> None:
    while time.monotonic() < until:
        try:
            await one_call(port, r, tally)
        except OSError:
            tally.calls += 1
            tally.drop("connection refused")
            await asyncio.sleep(1)


class BadPeer(threading.Thread):
    """Misbehaves against the gateway until stopped, reconnecting whenever it is dropped."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port, self.connections, self._halt = port, 0, threading.Event()

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        rnd = random.Random(9)
        burst = b"".join(wire.encode_audio(rnd.randbytes(320), 8000) for _ in range(100))
        keys = b"".join(wire.encode_dtmf(d) for d in "1234567890#*" * 20)
        while not self._halt.is_set():
            kind = self.connections % 5
            self.connections += 1
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    s.settimeout(2)
                    if kind == 2:
                        s.sendall(rnd.randbytes(rnd.randint(1, 4000)))
                    elif kind == 3:
                        s.sendall(wire.encode_uuid(uuid.uuid4())[:10])
                    else:
                        s.sendall(wire.encode_uuid(uuid.uuid4()))
                    t_end = time.monotonic() + rnd.uniform(2, 8)
                    while time.monotonic() < t_end and not self._halt.is_set():
                        if kind == 0:
                            s.sendall(burst)
                        elif kind == 1:
                            s.sendall(keys)
                        else:
                            time.sleep(0.2)
            except OSError:
                time.sleep(0.05)


async def soak(port: int, pid: int, calls: int, seconds: float) -> dict[str, Any]:
    r = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), decode_responses=True)
    tally = Tally()
    peer = BadPeer(port)
    peer.start()
    start = time.monotonic()
    until = start + seconds
    loops = [asyncio.create_task(caller_loop(port, r, tally, until)) for _ in range(calls)]
    await asyncio.sleep(min(60.0, seconds / 4))
    rss_warm = rss_mb(pid)
    await asyncio.gather(*loops)
    rss_end = rss_mb(pid)
    peer.stop()
    peer.join(10)
    lat = tally.latencies
    return {
        "calls_placed": tally.calls,
        "dropped": tally.dropped,
        "dropped_why": tally.reasons,
        "rss_mb_after_warmup": round(rss_warm, 1),
        "rss_mb_end": round(rss_end, 1),
        "memory_growth_pct": round(100 * (rss_end - rss_warm) / rss_warm, 2) if rss_warm else None,
        "frames_received": tally.frames,
        "late_frames": tally.late,
        "late_frames_pct": round(100 * tally.late / tally.frames, 3) if tally.frames else None,
        "reply_ms_p50": round(1000 * statistics.median(lat)) if lat else None,
        "reply_ms_p95": round(1000 * pct(lat, 0.95)) if lat else None,
        "bad_peer_connections": peer.connections,
        "minutes": round(seconds / 60, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--calls", type=int, default=10, help="callers at once")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    from actions.backends.seed import main as seed

    store = Path(tempfile.mkdtemp(prefix="attendant-soak-store-")) / "attendant.db"
    store_url = f"sqlite:///{store}"  # a store of the soak's own, with the demo data
    if seed(["--url", store_url]) != 0:
        sys.exit("could not seed the soak's store")
    gateway_env = {
        "ATTENDANT_CONSOLE_PORT": "0",
        "ATTENDANT_AGENT_TOKENS": str(store.parent / "agent-tokens.json"),
        "ATTENDANT_AFTER_HOURS": "off",
        "ATTENDANT_TEXT_INJECTION": "loopback",
        "VOSK_MODEL": "",
    }
    with running_stack("attendant-soak-", gateway_env, store_url) as run:
        print(f"{args.calls} callers for {args.minutes:g} min, a bad peer alongside ...", flush=True)
        figures = asyncio.run(soak(run.port, run.pid, args.calls, args.minutes * 60))
    figures["targets_met"] = (
        figures["dropped"] == 0
        and (figures["memory_growth_pct"] or 0) < 10
        and (figures["late_frames_pct"] or 0) < 1
    )
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0 if figures["targets_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
