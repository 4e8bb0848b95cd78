"""Faults of the real stack, through the real gateway process over real TCP.

- A hung action server (SIGSTOP: it accepts the connection and never answers): the caller hears the holding
  phrase at ~1.5 s and the technical line (a person) by 5 s — never more than 4 s of silence. The existing
  tests in test_faults.py hang a fake Rasa; this hangs the real action server behind the real Rasa.
- A killed action server, supervised as ``make run`` does: its death is logged with its exit status and its
  log file, it is back within seconds, and meanwhile the gateway's FastAGI still answers the dialplan's
  ``outcome`` and a caller goes to a person.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
import uuid

import pytest
import redis
import requests

from bot.tools.stack import RasaStack
from bot.tools.supervise import Supervisor
from telephony import audiosocket as wire
from telephony.callstate import call_key, transcript_key
from tests.conftest import GatewayProcess
from tests.test_agi import asterisk_header, expected, play_asterisk
from tests.test_end_to_end import wait_outcome
from tests.test_session import Caller

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def r(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


def prompts(r: redis.Redis, call: uuid.UUID) -> list[str]:
    return [f["prompt"] for _, f in r.xrange(transcript_key(str(call))) if f.get("prompt")]


async def opening_heard(caller: Caller) -> None:
    """Until the gateway's own opening (greeting, then the keypad menu: no recogniser) has played out."""
    await caller.wait_voiced(25, timeout=30)
    last, quiet_since = caller.voiced_frames(), time.monotonic()
    while time.monotonic() - quiet_since < 1.0:
        await asyncio.sleep(0.05)
        if caller.voiced_frames() != last:
            last, quiet_since = caller.voiced_frames(), time.monotonic()


def longest_silence_from(caller: Caller, first: int) -> float:
    """Longest run of silent frames from frame ``first`` on (until the hangup), seconds."""
    longest = run = 0
    for kind, pcm in caller.frames[first:]:
        if kind == wire.Kind.HANGUP:
            break
        run = 0 if any(pcm) else run + 1
        longest = max(longest, run)
    return longest * 0.02


async def test_a_hung_action_server_holding_phrase_then_a_person(
    rasa: RasaStack, gateway_text: GatewayProcess, r: redis.Redis
) -> None:
    actions = rasa.process("actions")
    assert actions is not None and actions.poll() is None
    os.kill(actions.pid, signal.SIGSTOP)
    try:
        caller = await Caller.dial(gateway_text.port)
        await opening_heard(caller)  # the gateway's own greeting: no assistant needed yet
        first, started = len(caller.frames), time.monotonic()
        await caller.send(wire.encode_text("what's my balance"))  # action_session_start runs now: it hangs
        await asyncio.wait_for(caller.hangup.wait(), 20)
        took = time.monotonic() - started
        record = wait_outcome(r, str(caller.call))
        said = prompts(r, caller.call)
        silence = longest_silence_from(caller, first)
        await caller.close()
    finally:
        os.kill(actions.pid, signal.SIGCONT)
    print(
        f"\nhung action server: longest silence {silence:.2f} s, hung up after {took:.1f} s, prompts {said}"
    )
    assert (record["outcome"], record["reason"]) == ("handoff", "technical")
    assert said[-2:] == ["holding", "technical"], said
    assert silence <= 4.0, f"{silence:.2f} s of silence: {caller.voiced_runs()}"


def health(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


async def test_a_killed_action_server_comes_back_and_fastagi_answers_meanwhile(
    rasa: RasaStack, gateway_text: GatewayProcess, r: redis.Redis
) -> None:
    said: list[str] = []
    sup = Supervisor(say=said.append, poll_s=0.1)
    actions = rasa.process("actions")
    assert actions is not None and actions.poll() is None
    sup.add("actions", lambda: rasa.spawn("actions"), log_path=rasa.log_path("actions"), running=actions)
    stop = threading.Event()
    runner = threading.Thread(target=sup.run, args=(stop.is_set,), daemon=True)
    runner.start()
    done = str(uuid.uuid4())
    r.hset(call_key(done), mapping={"outcome": "completed"})
    try:
        caller = await Caller.dial(gateway_text.port)
        await opening_heard(caller)  # the gateway's own greeting: no assistant needed yet
        os.killpg(actions.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        # A caller's turn in the window: no dead line, a person.
        await caller.send(wire.encode_text("what's my balance"))
        # FastAGI answers the dialplan all along, until the action server is back.
        answered = 0
        while not health(f"{rasa.action_url}/health"):
            assert time.monotonic() - killed_at < 90, said
            commands = await play_asterisk(gateway_text.agi_port, asterisk_header(done))
            assert commands == expected("completed", "none", "general")
            answered += 1
            await asyncio.sleep(0.1)
        back_after = time.monotonic() - killed_at
        await asyncio.wait_for(caller.hangup.wait(), 20)
        record = wait_outcome(r, str(caller.call))
        in_window = prompts(r, caller.call)
        await caller.close()
        # Back in the chain: a new call's first turn is answered (action_session_start runs on the new
        # server).
        after = await Caller.dial(gateway_text.port)
        await opening_heard(after)
        opening = after.voiced_frames()
        await after.send(wire.encode_text("what are your opening hours"))
        await after.wait_voiced(opening + 25, timeout=30)
        await after.send(wire.encode_hangup())
        after_record = wait_outcome(r, str(after.call))
        await after.close()
    finally:
        stop.set()
        runner.join(5)
        r.delete(call_key(done))
    print(
        f"\naction server back after {back_after:.1f} s; FastAGI answered {answered} times meanwhile; {said}"
    )
    assert answered >= 3
    assert record["outcome"] == "handoff", (record, in_window)
    assert after_record["outcome"] == "abandoned" and after_record["turns"] == "1", after_record
    new = rasa.process("actions")
    assert new is not None and new.pid != actions.pid and new.poll() is None
    assert said[0].startswith("actions was killed by SIGKILL after ")
    assert said[0].endswith(f"; restarting in 1 s (log {rasa.log_path('actions')})")
    assert said[1] == f"actions restarted (pid {new.pid}, restart 1)"
