"""Callbacks in the real gateway process: ``python -m bot`` with ``ATTENDANT_AMI_*`` set runs the dispatcher
(``bot/gateway.py``) against an AMI server on a real TCP socket speaking Asterisk 22's bytes
(``tests/amiserver.py``, events from ``tests/callbackwire.py``) and the real Redis; the request is submitted
with :func:`bot.callbacks.submit` as the caller side does. Then the gateway is killed (``kill -9``) right after
it sent an Originate, a new gateway process takes over, and the AMI server counts the Originates: one per
request.

The gateways run on a Redis database of this test's own (:data:`REDIS_DB`): the dispatcher's stream and state
keys are fixed names (``attendant:callbacks``, ``attendant:callback:<id>``), and on db 0 the gateways would
take up (and settle) the requests other tests leave there. No Rasa is needed: the gateway starts without
waiting for one (``--rasa-wait 0``) and no call is made.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bot.callbacks import state_key, submit
from bot.callbacks.requests import GROUP, STATE_PREFIX, STREAM_KEY
from bot.tools.launch import spawn_gateway
from telephony.callstate import call_key
from tests.amiserver import AmiServer, Received
from tests.amitools import USERS
from tests.callbackwire import QUEUED, dial_end, hangup, member_status, originate_response
from tests.conftest import free_port

REDIS_DB = 12
"""The gateways' Redis database (tests/test_privacy_scan.py has 13)."""
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
CAPTURE = "originate-response"
QUEUE = "attendant-billing"
ALICE = ("Alice", "Local/alice@agents")
POLL_S = 0.2
RECLAIM_S = 1.0


@pytest.fixture
async def redis() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:  # pragma: no cover - environment problem, said plainly
        pytest.fail(f"the test needs the real Redis at {REDIS_URL}: {exc}")

    async def clean() -> None:
        keys = [k async for k in client.scan_iter(match=f"{STATE_PREFIX}*")]
        await client.delete(STREAM_KEY, *keys)

    await clean()  # what an interrupted run left behind
    yield client
    await clean()
    await client.close()


class Gateways:
    """The gateway processes this test starts (each killed at the end if still running)."""

    def __init__(self, tmp: Path, ami: AmiServer) -> None:
        self.tmp = tmp
        self.ami = ami
        self.procs: list[subprocess.Popen[str]] = []
        self.logs: list[Path] = []

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            ATTENDANT_PORT=str(free_port()),
            ATTENDANT_AGI_PORT=str(free_port()),
            ATTENDANT_CONSOLE_PORT="0",
            ATTENDANT_AGENT_TOKENS=str(self.tmp / "agent-tokens.json"),
            ATTENDANT_AFTER_HOURS="off",
            RASA_URL=f"http://127.0.0.1:{free_port()}",  # nobody there: no call is made
            RASA_TOKEN="unused",
            REDIS_URL=REDIS_URL,
            VOSK_MODEL="",
            ATTENDANT_AMI_HOST="127.0.0.1",
            ATTENDANT_AMI_PORT=str(self.ami.port),
            ATTENDANT_AMI_USER=USERS.get(CAPTURE, "harness"),
            ATTENDANT_AMI_SECRET="secret",
            ATTENDANT_CALLBACK_POLL_S=str(POLL_S),
            ATTENDANT_CALLBACK_RECLAIM_S=str(RECLAIM_S),
            PYTHONUNBUFFERED="1",
        )
        env.pop("ATTENDANT_CALLBACKS", None)
        return env

    async def start(self) -> subprocess.Popen[str]:
        log = self.tmp / f"gateway-{len(self.procs) + 1}.log"
        self.logs.append(log)
        # Blocking (it waits for the ready line): off the loop, which serves the AMI socket meanwhile.
        try:
            proc, _ = await asyncio.to_thread(
                spawn_gateway, self.env(), stderr=log.open("w"), rasa_wait_s=0.0, timeout_s=90
            )
        except RuntimeError as exc:
            pytest.fail(f"{exc}:\n{log.read_text()[-3000:]}")
        self.procs.append(proc)
        return proc

    def log(self, n: int) -> str:
        return self.logs[n - 1].read_text()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


@contextmanager
def gateways(tmp: Path, ami: AmiServer) -> Iterator[Gateways]:
    gws = Gateways(tmp, ami)
    try:
        yield gws
    finally:
        gws.stop()


async def until(what: str, condition: Callable[[], object], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def state(redis: aioredis.Redis, req: str) -> dict[str, str]:
    raw = await redis.hgetall(state_key(req))
    return {k.decode(): v.decode() for k, v in raw.items()}


async def until_state(redis: aioredis.Redis, req: str, wanted: str, timeout: float = 10.0) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while (st := await state(redis, req)).get("state") != wanted:
        if time.monotonic() > deadline:
            raise AssertionError(f"request {req}: state {st.get('state')!r}, never {wanted!r}")
        await asyncio.sleep(0.05)
    return st


def originates(ami: AmiServer, req: str) -> list[Received]:
    return [r for r in ami.sent("originate") if r.get("ChannelId") == req]


async def pending_to(redis: aioredis.Redis) -> dict[str, int]:
    """Pending entries of the dispatch group, by consumer."""
    info = await redis.xpending(STREAM_KEY, GROUP)
    return {c["name"].decode(): int(c["pending"]) for c in info.get("consumers") or []}


async def synced(gws: Gateways, n: int) -> None:
    """Gateway ``n``'s queue model has its snapshot (events sent from now on are folded in on top)."""
    await until(f"gateway {n}'s queue model", lambda: "queue model re-synced" in gws.log(n))


async def test_the_gateway_process_dials_a_callback_once_and_a_restarted_one_never_again(
    redis: aioredis.Redis, tmp_path: Path
) -> None:
    started = time.monotonic()
    call = str(uuid.uuid4())
    record = call_key(call)
    async with AmiServer(CAPTURE) as ami:
        ami.script("Originate", QUEUED)  # "Originate successfully queued", as Asterisk answers an async one
        with gateways(tmp_path, ami) as gws:
            try:
                await redis.hset(record, mapping={"skill": "billing"})  # the original call's record
                gw1 = await gws.start()
                await synced(gws, 1)
                assert ami.connections == 1

                # 1. A request for a queue nobody is free in waits; an agent frees: one Originate, agent first.
                first = await submit(
                    redis,
                    call=call,
                    number="+15550100009",
                    skill="billing",
                    queue=QUEUE,
                    priority=2,
                    entered=time.time() - 60,
                )
                await asyncio.sleep(5 * POLL_S)
                assert ami.sent("originate") == []
                assert (await state(redis, first.request))["state"] == "new"
                await ami.send(member_status(QUEUE, *ALICE, status=1))
                sent = await ami.wait_action("originate", timeout=10)
                assert sent.connection == 1
                assert sent.get("ChannelId") == first.request
                assert sent.get("Channel") == "Local/queue@attendant-callback-agent"
                assert (sent.get("Context"), sent.get("Exten"), sent.get("Async")) == (
                    "attendant-callback-customer",
                    "s",
                    "true",
                )
                variables = {v.partition("=")[0]: v.partition("=")[2] for k, v in sent.headers if k == "Variable"}
                assert variables["ATTENDANT_CALLBACK"] == first.request
                assert variables["ATTENDANT_CALLBACK_ATTEMPT"] == "1"
                assert variables["ATTENDANT_UUID"] == call
                assert variables["ATTENDANT_CB_NUMBER"] == "+15550100009"
                assert variables["ATTENDANT_CB_QUEUE"] == QUEUE
                assert variables["QUEUE_PRIO"] == "2"
                st = await state(redis, first.request)
                assert (st["state"], st["attempt"], st["owner"]) == (
                    "dialling",
                    "1",
                    f"{socket.gethostname()}-{gw1.pid}",
                )
                assert await redis.hget(record, "callback") == first.request.encode()
                await asyncio.sleep(5 * POLL_S)
                assert len(originates(ami, first.request)) == 1  # dialling: not again

                # Asterisk's outcome: the agent answered (Reason 4), the customer answered, then hung up.
                await ami.send(originate_response(sent.get("ActionID") or "", first.request, QUEUE, 4))
                deadline = time.monotonic() + 10
                while not (await state(redis, first.request)).get("agent_at"):
                    assert time.monotonic() < deadline, "the agent's answer never recorded"
                    await asyncio.sleep(0.05)
                await ami.send(dial_end(first.request, QUEUE, "ANSWER"))
                st = await until_state(redis, first.request, "connected")
                assert st["agent_at"] and st["connected_at"]
                await ami.send(hangup(first.request, QUEUE))
                st = await until_state(redis, first.request, "done")
                assert st["ended_at"]
                outcome = {k.decode(): v.decode() for k, v in (await redis.hgetall(record)).items()}
                assert outcome["callback"] == first.request
                assert (outcome["callback_outcome"], outcome["callback_attempts"]) == ("connected", "1")
                assert await pending_to(redis) == {}  # acknowledged: terminal
                assert len(originates(ami, first.request)) == 1

                # 2. The next request: the gateway is killed right after its Originate left (unanswered).
                ami.hold("Originate")
                second = await submit(
                    redis,
                    call=call,
                    number="+15550100010",
                    skill="billing",
                    queue=QUEUE,
                    priority=0,
                    entered=time.time() - 30,
                )
                lost = await ami.wait_action("originate", 2, timeout=10)
                gw1.kill()  # kill -9
                gw1.wait(10)
                assert lost.get("ChannelId") == second.request and lost.connection == 1
                st = await state(redis, second.request)
                assert (st["state"], st["attempt"]) == ("dialling", "1")

                # 3. A new gateway process: it takes the dead one's entry over and waits for the outcome.
                gw2 = await gws.start()
                await synced(gws, 2)
                assert ami.connections == 2
                await ami.send(member_status(QUEUE, *ALICE, status=1))  # Alice is free, the request dialling
                gw2_name = f"{socket.gethostname()}-{gw2.pid}"
                deadline = time.monotonic() + 10
                while (await pending_to(redis)).get(gw2_name) != 1:
                    assert time.monotonic() < deadline, f"never taken over: {await pending_to(redis)}"
                    await asyncio.sleep(0.05)
                await asyncio.sleep(5 * POLL_S)
                assert len(originates(ami, second.request)) == 1  # taken over, not dialled again
                assert (await state(redis, second.request))["state"] == "dialling"

                # Asterisk ran the originate on; its outcome reaches the new gateway's session.
                await ami.send(originate_response(lost.get("ActionID") or "", second.request, QUEUE, 4))
                await ami.send(dial_end(second.request, QUEUE, "ANSWER"))
                st = await until_state(redis, second.request, "connected")
                await ami.send(hangup(second.request, QUEUE))
                st = await until_state(redis, second.request, "done")
                assert st["attempt"] == "1"
                deadline = time.monotonic() + 10
                while await pending_to(redis):
                    assert time.monotonic() < deadline, f"not acknowledged: {await pending_to(redis)}"
                    await asyncio.sleep(0.05)
                await asyncio.sleep(5 * POLL_S)
                outcome = {k.decode(): v.decode() for k, v in (await redis.hgetall(record)).items()}
                assert (outcome["callback"], outcome["callback_outcome"]) == (second.request, "connected")
                counted = [r.get("ChannelId") for r in ami.sent("originate")]
                took = time.monotonic() - started
                print(
                    f"\ngateway process: originates {len(counted)} for 2 requests "
                    f"(first {counted.count(first.request)}, killed-mid-dial {counted.count(second.request)}), "
                    f"AMI connections {ami.connections}, {took:.1f} s"
                )
                assert counted == [first.request, second.request]
                assert gw2.poll() is None
            except BaseException:
                for n in range(1, len(gws.logs) + 1):
                    print(f"--- gateway {n} log ---\n{gws.log(n)[-4000:]}")
                raise
            finally:
                await redis.delete(record)
