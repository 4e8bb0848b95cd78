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
from tests.test_faults import longest_silence_s
from tests.test_session import Caller

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def r(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


def prompts(r: redis.Redis, call: uuid.UUID) -> list[str]:
    return [f["prompt"] for _, f in r.xrange(transcript_key(str(call))) if f.get("prompt")]


async def test_a_hung_action_server_holding_phrase_then_a_person(
    rasa: RasaStack, gateway_text: GatewayProcess, r: redis.Redis
) -> None:
    actions = rasa.process("actions")
    assert actions is not None and actions.poll() is None
    os.kill(actions.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        caller = await Caller.dial(gateway_text.port)  # the greeting turn runs action_session_start: it hangs
        await asyncio.wait_for(caller.hangup.wait(), 20)
        took = time.monotonic() - started
        record = wait_outcome(r, str(caller.call))
        said = prompts(r, caller.call)
        silence = longest_silence_s(caller, 0)
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
        os.killpg(actions.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        # A caller in the window: no dead line, a person.
        caller = await Caller.dial(gateway_text.port)
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
        # Back in the chain: a new call gets its greeting (action_session_start runs on the new server).
        after = await Caller.dial(gateway_text.port)
        await after.wait_voiced(25, timeout=30)
        await after.send(wire.encode_hangup())
        wait_outcome(r, str(after.call))
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
    new = rasa.process("actions")
    assert new is not None and new.pid != actions.pid and new.poll() is None
    assert said[0].startswith("actions was killed by SIGKILL after ")
    assert said[0].endswith(f"; restarting in 1 s (log {rasa.log_path('actions')})")
    assert said[1] == f"actions restarted (pid {new.pid}, restart 1)"
