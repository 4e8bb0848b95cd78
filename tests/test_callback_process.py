"""Callbacks in the real gateway process: ``python -m bot`` with ``ATTENDANT_AMI_*`` set runs the dispatcher
(``bot/gateway.py``) against an AMI server on a real TCP socket speaking Asterisk 22's bytes
(``tests/amiserver.py``, events from ``tests/callbackwire.py``) and the real Redis; requests are submitted
with :func:`bot.callbacks.submit` as the caller side does. Then the gateway is killed (``kill -9``) right
after it sent an Originate, a new gateway process takes over, and the AMI server counts the Originates: one
per request.

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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bot.callbacks import state_key, submit
from bot.callbacks.requests import GROUP, STATE_PREFIX, STREAM_KEY
from bot.tools.launch import spawn_gateway
from telephony.callstate import call_key, whisper_uuid
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
    """The gateway processes of one test (killed at the end if still running; their logs printed, which
    pytest shows when the test failed)."""

    def __init__(self, tmp: Path, ami: AmiServer) -> None:
        self.tmp = tmp
        self.ami = ami
        self.procs: list[subprocess.Popen[str]] = []
        self.logs: list[Path] = []

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("ATTENDANT_CALLBACKS", None)
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
        return env

    async def start(self) -> subprocess.Popen[str]:
        """One more gateway process, once it printed its ready line and its queue model has the snapshot."""
        n = len(self.logs) + 1
        log = self.tmp / f"gateway-{n}.log"
        self.logs.append(log)
        try:
            with log.open("w") as err:  # the child keeps its own descriptor
                # Blocking (it waits for the ready line): off the loop, which serves the AMI socket meanwhile.
                proc, _ = await asyncio.to_thread(
                    spawn_gateway, self.env(), stderr=err, rasa_wait_s=0.0, timeout_s=90
                )
        except RuntimeError as exc:
            pytest.fail(f"{exc}:\n{log.read_text()[-3000:]}")
        self.procs.append(proc)
        # Events sent from now on are folded in on top of the snapshot, not overwritten by it.
        await until(f"gateway {n}'s queue model", lambda: "queue model re-synced" in log.read_text())
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
        for n, log in enumerate(self.logs, 1):
            print(f"--- gateway {n} ---\n{log.read_text()[-4000:]}")


@pytest.fixture
async def ami() -> AsyncIterator[AmiServer]:
    async with AmiServer(CAPTURE) as server:
        server.script(
            "Originate", QUEUED
        )  # "Originate successfully queued", as Asterisk answers an async one
        yield server


@pytest.fixture
def gws(tmp_path: Path, ami: AmiServer) -> Iterator[Gateways]:
    gws = Gateways(tmp_path, ami)
    yield gws
    gws.stop()


@pytest.fixture
async def record(redis: aioredis.Redis) -> AsyncIterator[str]:
    """The original call (its record in Redis, as the gateway left it when the caller hung up)."""
    call = str(uuid.uuid4())
    await redis.hset(call_key(call), mapping={"skill": "billing"})
    yield call
    await redis.delete(call_key(call))


async def until(
    what: str, condition: Callable[[], object | Awaitable[object]], timeout: float = 10.0
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        ok = condition()
        if isinstance(ok, Awaitable):
            ok = await ok
        if ok:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def state(redis: aioredis.Redis, req: str) -> dict[str, str]:
    raw = await redis.hgetall(state_key(req))
    return {k.decode(): v.decode() for k, v in raw.items()}


async def until_state(redis: aioredis.Redis, req: str, wanted: str) -> dict[str, str]:
    async def reached() -> bool:
        return (await state(redis, req)).get("state") == wanted

    await until(f"request {req} {wanted}", reached)
    return await state(redis, req)


async def originate(ami: AmiServer, count: int) -> Received:
    """The ``count``-th Originate the AMI server received (any connection), once it has arrived."""
    try:
        return await ami.wait_action("originate", count, timeout=10)
    except asyncio.TimeoutError:
        raise AssertionError(f"Originate #{count} never reached the AMI server") from None


def originates(ami: AmiServer, req: str) -> list[Received]:
    return [r for r in ami.sent("originate") if r.get("ChannelId") == req]


async def pending_to(redis: aioredis.Redis) -> dict[str, int]:
    """Pending entries of the dispatch group, by consumer."""
    info = await redis.xpending(STREAM_KEY, GROUP)
    return {c["name"].decode(): int(c["pending"]) for c in info.get("consumers") or []}


async def outcome(redis: aioredis.Redis, call: str) -> dict[str, str]:
    raw = await redis.hgetall(call_key(call))
    return {k.decode(): v.decode() for k, v in raw.items()}


async def test_the_gateway_process_dials_a_callback_once_and_a_restarted_one_never_again(
    redis: aioredis.Redis, ami: AmiServer, gws: Gateways, record: str
) -> None:
    started = time.monotonic()
    gw1 = await gws.start()
    assert ami.connections == 1

    # 1. A request for a queue where nobody is free waits; an agent frees: one Originate, agent first.
    first = await submit(
        redis,
        call=record,
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
    sent = await originate(ami, 1)
    assert (sent.connection, sent.get("ChannelId")) == (1, first.request)
    assert sent.get("Channel") == "Local/queue@attendant-callback-agent"
    assert (sent.get("Context"), sent.get("Exten"), sent.get("Async")) == (
        "attendant-callback-customer",
        "s",
        "true",
    )
    variables = dict(v.partition("=")[::2] for k, v in sent.headers if k == "Variable")
    assert variables == {
        "ATTENDANT_CALLBACK": first.request,
        "ATTENDANT_CALLBACK_ATTEMPT": "1",
        "ATTENDANT_UUID": record,
        "ATTENDANT_CB_NUMBER": "+15550100009",
        "ATTENDANT_CB_QUEUE": QUEUE,
        "QUEUE_PRIO": "2",
        "ATTENDANT_WHISPER": str(whisper_uuid(uuid.UUID(record))),
    }
    st = await state(redis, first.request)
    assert (st["state"], st["attempt"], st["owner"]) == ("dialling", "1", f"{socket.gethostname()}-{gw1.pid}")
    assert (await outcome(redis, record))["callback"] == first.request  # the whisper says "Callback: ..."
    await asyncio.sleep(5 * POLL_S)
    assert len(originates(ami, first.request)) == 1  # dialling: not again

    # Asterisk's outcome: the agent answered (Reason 4), then the customer; then the call ends.
    await ami.send(originate_response(sent.get("ActionID") or "", first.request, QUEUE, 4))

    async def agent_answered() -> bool:
        return bool((await state(redis, first.request)).get("agent_at"))

    await until("the agent's answer recorded", agent_answered)
    await ami.send(dial_end(first.request, QUEUE, "ANSWER"))
    st = await until_state(redis, first.request, "connected")
    assert st["connected_at"]
    await ami.send(hangup(first.request, QUEUE))
    st = await until_state(redis, first.request, "done")
    assert st["ended_at"]
    call = await outcome(redis, record)
    assert (call["callback_outcome"], call["callback_attempts"]) == ("connected", "1")
    assert await pending_to(redis) == {}  # final: the entry is acknowledged
    assert len(originates(ami, first.request)) == 1

    # 2. The next request: the gateway is killed right after its Originate left, before any answer.
    ami.hold("Originate")
    second = await submit(
        redis,
        call=record,
        number="+15550100010",
        skill="billing",
        queue=QUEUE,
        priority=0,
        entered=time.time() - 30,
    )
    lost = await originate(ami, 2)
    gw1.kill()  # kill -9
    await asyncio.to_thread(gw1.wait, 10)
    assert (lost.connection, lost.get("ChannelId")) == (1, second.request)
    st = await state(redis, second.request)
    assert (st["state"], st["attempt"]) == ("dialling", "1")

    # 3. A new gateway process takes the dead one's entry over and waits for the outcome, the agent free.
    gw2 = await gws.start()
    assert ami.connections == 2
    await ami.send(member_status(QUEUE, *ALICE, status=1))
    gw2_name = f"{socket.gethostname()}-{gw2.pid}"

    async def taken_over() -> bool:
        return (await pending_to(redis)).get(gw2_name) == 1

    await until("the new gateway holding the request", taken_over)
    await asyncio.sleep(5 * POLL_S)
    assert len(originates(ami, second.request)) == 1  # held, not dialled again
    assert (await state(redis, second.request))["state"] == "dialling"

    # Asterisk ran the originate on; its outcome reaches the new gateway's session.
    await ami.send(originate_response(lost.get("ActionID") or "", second.request, QUEUE, 4))
    await ami.send(dial_end(second.request, QUEUE, "ANSWER"))
    await until_state(redis, second.request, "connected")
    await ami.send(hangup(second.request, QUEUE))
    st = await until_state(redis, second.request, "done")
    assert st["attempt"] == "1"

    async def acknowledged() -> bool:
        return not await pending_to(redis)

    await until("the entry acknowledged", acknowledged)
    call = await outcome(redis, record)
    assert (call["callback"], call["callback_outcome"]) == (second.request, "connected")
    await asyncio.sleep(5 * POLL_S)
    counted = [r.get("ChannelId") for r in ami.sent("originate")]
    print(
        f"\ngateway processes: {len(counted)} Originates for 2 requests (killed mid-dial: "
        f"{counted.count(second.request)}), AMI connections {ami.connections}, "
        f"{time.monotonic() - started:.1f} s"
    )
    assert counted == [first.request, second.request]
    assert gw2.poll() is None
