"""Callbacks on the real wire: the dispatcher against AMI sessions on real TCP sockets speaking Asterisk 22's
bytes (``tests/callbackwire.py``) and the real Redis; the clock is the test's. Exactly once is counted at the
AMI servers: every ``Originate`` any gateway sent."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from actions.shared.paths import NLU_DATA
from bot.callbacks import CallbackSettings, Dispatcher, QuietHours, state_key, submit
from bot.callbacks.requests import AlwaysOpen
from bot.config import Config, ConfigError
from bot.console.agents import DEFAULT_DISPOSITIONS, Agent, Roster
from bot.console.asterisk import DeskFeed
from bot.console.desk import Offered
from bot.prompts import Prompts
from bot.whisper import brief
from telephony.ami import AmiClient, AmiConfig
from telephony.callstate import Skill
from telephony.queues import QueueModel
from tests.amitools import FakeClock
from tests.callbackwire import (
    Asterisk,
    Session,
    agent_called,
    asterisk,
    caller_join,
    caller_leave,
    dial_end,
    hangup,
    member_status,
    originate_response,
)
from tests.conftest import free_port

BILLING = "attendant-billing"
CALL = "00000000-0000-4000-8000-000000000001"
T0 = 1796040900.0
AGENTS = [("Alice", "Local/alice@agents"), ("Bob", "Local/bob@agents"), ("Carol", "Local/carol@agents")]


class Names:
    """Keys of one test's own (stream, state hashes)."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.stream = f"test:callbacks:{tag}"
        self.prefix = f"test:callback:{tag}:"

    async def clean(self, redis: aioredis.Redis) -> None:
        keys = [k async for k in redis.scan_iter(match=f"{self.prefix}*")]
        await redis.delete(self.stream, *keys)


@pytest.fixture
async def redis() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url("redis://127.0.0.1:6379/0")
    yield client
    await client.close()


@pytest.fixture
async def names(redis: aioredis.Redis) -> AsyncIterator[Names]:
    n = Names()
    yield n
    await n.clean(redis)


def dispatcher(
    redis: aioredis.Redis, s: Session, names: Names, clock: FakeClock, name: str, **kw: object
) -> Dispatcher:
    settings = kw.pop("settings", None) or CallbackSettings(reclaim_idle_s=0)
    d = Dispatcher(
        redis,
        s.client,
        s.model,
        consumer=name,
        settings=settings,  # type: ignore[arg-type]
        clock=clock,
        stream=names.stream,
        state_prefix=names.prefix,
        call_record=lambda call: f"{names.prefix}call:{call}",
        **kw,  # type: ignore[arg-type]
    )
    d.listen()
    return d


async def request(redis: aioredis.Redis, names: Names, clock: FakeClock, **kw: object) -> str:
    fields: dict[str, object] = {
        "call": CALL,
        "number": "+15550100009",
        "skill": "billing",
        "queue": BILLING,
        "priority": 0,
        "entered": clock.t - 120,
    }
    fields.update(kw)
    req = await submit(redis, stream=names.stream, state_prefix=names.prefix, now=clock, **fields)  # type: ignore[arg-type]
    return req.request


async def state(redis: aioredis.Redis, names: Names, req: str) -> dict[str, str]:
    raw = await redis.hgetall(state_key(req, names.prefix))
    return {k.decode(): v.decode() for k, v in raw.items()}


async def steps(*ds: Dispatcher, n: int = 1) -> None:
    """Let dial tasks run, then one pass of each dispatcher (``n`` times)."""
    for _ in range(n):
        for _ in range(5):
            await asyncio.sleep(0)
        for d in ds:
            await d.step()


async def pending(redis: aioredis.Redis, names: Names) -> int:
    info = await redis.xpending(names.stream, "attendant-dispatch")
    return int(info["pending"])


async def free(ast: Asterisk, *agents: tuple[str, str]) -> None:
    await ast.broadcast(*(member_status(BILLING, n, i, status=1) for n, i in agents or AGENTS[:1]))


# --- one gateway -------------------------------------------------------------------------------------------


async def test_an_agent_frees_then_one_originate_agent_first_then_connected(
    redis: aioredis.Redis, names: Names
) -> None:
    clock = FakeClock(T0)
    async with asterisk(clock) as ast:
        s = await ast.session()
        d = dispatcher(redis, s, names, clock, "gw-1")
        await redis.hset(f"{names.prefix}call:{CALL}", "skill", "billing")  # the original call's record
        req = await request(redis, names, clock)
        await steps(d, n=3)
        assert ast.originates() == []  # nobody logged in: nothing dialled
        assert (await state(redis, names, req))["state"] == "new"
        await ast.broadcast(member_status(BILLING, "Alice", "Local/alice@agents", status=1, paused=1))
        await steps(d)
        assert ast.originates() == []  # paused
        await free(ast)
        await steps(d)
        sent = await s.server.wait_action("originate")
        assert sent.get("ChannelId") == req
        assert sent.get("Channel") == "Local/queue@attendant-callback-agent"  # agent first: Queue()
        assert sent.get("Context") == "attendant-callback-customer" and sent.get("Async") == "true"
        variables = [v for k, v in sent.headers if k == "Variable"]
        assert f"ATTENDANT_UUID={CALL}" in variables and f"ATTENDANT_CALLBACK={req}" in variables
        assert "QUEUE_PRIO=0" in variables and "ATTENDANT_CB_NUMBER=+15550100009" in variables
        assert f"ATTENDANT_CB_QUEUE={BILLING}" in variables
        assert "ATTENDANT_WHISPER=00000000-0000-8000-8000-000000000001" in variables  # the call's whisper leg
        assert await redis.hget(f"{names.prefix}call:{CALL}", "callback") == req.encode()  # "Callback: ..."
        st = await state(redis, names, req)
        assert (st["state"], st["attempt"], st["owner"]) == ("dialling", "1", "gw-1")
        await steps(d, n=3)
        assert len(ast.originates()) == 1  # still dialling: not again
        action_id = sent.get("ActionID") or ""
        await ast.broadcast(originate_response(action_id, req, BILLING, 4))  # the agent answered
        await steps(d)
        assert (await state(redis, names, req))["agent_at"]
        await ast.broadcast(dial_end(req, BILLING, "ANSWER"))
        await steps(d)
        assert (await state(redis, names, req))["state"] == "connected"
        assert await pending(redis, names) == 0 and req not in d.held
        record = await redis.hgetall(f"{names.prefix}call:{CALL}")  # the outcome in the call's record
        assert record[b"callback_outcome"] == b"connected" and record[b"callback_attempts"] == b"1"
        await ast.broadcast(hangup(req, BILLING))
        await steps(d)
        assert (await state(redis, names, req))["state"] == "done"
        assert len(ast.originates()) == 1
        await d.close()


async def test_no_answer_is_retried_after_the_back_off_then_given_up_with_the_reason(
    redis: aioredis.Redis, names: Names
) -> None:
    clock = FakeClock(T0)
    async with asterisk(clock) as ast:
        s = await ast.session()
        d = dispatcher(redis, s, names, clock, "gw-1")
        req = await request(redis, names, clock)
        await free(ast)
        outcomes = [
            [originate_response("", req, BILLING, 3)],  # the agent side rang out (Reason 3)
            [originate_response("", req, BILLING, 4), dial_end(req, BILLING, "NOANSWER")],  # the customer
            [originate_response("", req, BILLING, 5)],  # busy (Reason 5)
        ]
        for attempt, events in enumerate(outcomes, 1):
            await steps(d)
            sent = await s.server.wait_action("originate", attempt)
            assert sent.get("ChannelId") == req
            action_id = sent.get("ActionID") or ""
            await ast.broadcast(
                *(e.replace(b"ActionID: \r\n", f"ActionID: {action_id}\r\n".encode()) for e in events)
            )
            await steps(d)
            st = await state(redis, names, req)
            if attempt < 3:
                assert (st["state"], st["attempt"]) == ("retry", str(attempt))
                clock.t += 299  # not before the back-off
                await steps(d, n=2)
                assert len(ast.originates()) == attempt
                clock.t += 1
        assert (st["state"], st["attempt"], st["last_reason"]) == ("failed", "3", "agent-busy")
        assert (st["reason_1"], st["reason_2"]) == ("agent-no-answer", "customer-noanswer")
        assert await pending(redis, names) == 0
        await steps(d, n=3)
        clock.t += 3600
        await steps(d, n=2)
        reasons = ", ".join(st[f"reason_{n}"] for n in (1, 2, 3))
        print(f"\nretry: attempts {len(ast.originates())}, reasons {reasons}")
        assert len(ast.originates()) == 3
        await d.close()


async def test_a_caller_ahead_keeps_the_callback_waiting(redis: aioredis.Redis, names: Names) -> None:
    clock = FakeClock(T0)
    async with asterisk(clock) as ast:
        s = await ast.session()
        d = dispatcher(redis, s, names, clock, "gw-1")
        clock.t = T0 - 600
        await ast.broadcast(caller_join("1796040300.7", BILLING))  # a live caller who joined 10 min ago
        clock.t = T0
        req = await request(redis, names, clock, entered=T0 - 60)  # this request's caller: 1 min ago
        await free(ast)
        await steps(d, n=2)
        assert ast.originates() == []
        await ast.broadcast(caller_leave("1796040300.7", BILLING))
        await steps(d)
        assert (await s.server.wait_action("originate")).get("ChannelId") == req
        await d.close()


class ClosedUntil:
    """Opening hours: closed before ``opens``."""

    def __init__(self, opens: float) -> None:
        self.opens = opens

    def is_open(self, t: float) -> bool:
        return t >= self.opens

    def next_open(self, t: float) -> float:
        return max(t, self.opens)


async def test_a_request_outside_calling_hours_waits_for_the_window(
    redis: aioredis.Redis, names: Names
) -> None:
    clock = FakeClock(T0)
    async with asterisk(clock) as ast:
        s = await ast.session()
        d = dispatcher(redis, s, names, clock, "gw-1", opening=ClosedUntil(T0 + 3600))
        later = await request(redis, names, clock, not_before=T0 + 7200)
        await free(ast)
        await steps(d, n=2)
        clock.t = T0 + 3599
        await steps(d, n=2)
        assert ast.originates() == []
        clock.t = T0 + 3600
        await steps(d)
        assert ast.originates() == []  # open, but this one asked for not before T0 + 2 h
        clock.t = T0 + 7200
        await steps(d)
        assert (await s.server.wait_action("originate")).get("ChannelId") == later
        await d.close()


def test_settings_from_the_environment() -> None:
    config = Config.from_env(
        {
            "ATTENDANT_CALLBACK_ATTEMPTS": "5",
            "ATTENDANT_CALLBACK_RETRY_S": "120",
            "ATTENDANT_CALLBACK_QUIET": "22:00-07:30",
        }
    )
    assert config.callbacks is not None
    assert (config.callbacks.attempts, config.callbacks.retry_s, config.callbacks.expiry_s) == (
        5,
        120.0,
        86400.0,
    )
    assert Config.from_env({"ATTENDANT_CALLBACKS": "off"}).callbacks is None
    with pytest.raises(ConfigError, match="ATTENDANT_CALLBACK_RETRY_S"):
        Config.from_env({"ATTENDANT_CALLBACK_RETRY_S": "soon"})
    with pytest.raises(ConfigError, match="quiet time"):
        Config.from_env({"ATTENDANT_CALLBACK_QUIET": "late"})


def test_quiet_hours_across_midnight() -> None:
    hours = QuietHours.parse(AlwaysOpen(), "21:00-08:00", "UTC")
    ten_pm = 1796076000.0  # 2026-12-01 22:00 UTC
    assert time.strftime("%H:%M", time.gmtime(ten_pm)) == "22:00"
    assert not hours.is_open(ten_pm) and hours.is_open(ten_pm - 3600 * 2)
    assert hours.next_open(ten_pm) == ten_pm + 10 * 3600  # 08:00


async def test_an_old_request_expires_without_a_call(redis: aioredis.Redis, names: Names) -> None:
    clock = FakeClock(T0)
    async with asterisk(clock) as ast:
        s = await ast.session()
        d = dispatcher(redis, s, names, clock, "gw-1")
        req = await request(redis, names, clock)
        await steps(d)
        clock.t += 86400
        await free(ast)
        await steps(d)
        st = await state(redis, names, req)
        assert (st["state"], st["last_reason"]) == ("expired", "expired") and ast.originates() == []
        assert await pending(redis, names) == 0
        await d.close()


async def test_the_callback_leg_pops_the_original_call_on_the_console() -> None:
    """AgentCalled for the callback's queue leg carries the original call's ATTENDANT_UUID (the originate's
    Variable): the DeskFeed offers the original call's context, no console code of its own."""
    clock = FakeClock(T0)
    roster = Roster(
        agents=(
            Agent("alice", "Alice", "Local/alice@agent-answer-2s", "Alice", ((Skill.BILLING, 5),), ("en",)),
        ),
        dispositions=DEFAULT_DISPOSITIONS,
    )
    async with asterisk(clock) as ast:
        s = await ast.session()
        seen: list[object] = []
        feed = DeskFeed(roster, seen.append, s.model, wall=clock)
        s.client.subscribe(lambda e: seen.extend(feed.translate(e)))
        req = uuid.uuid4().hex
        await ast.broadcast(agent_called(req, CALL, BILLING))
        assert seen == [Offered("alice", CALL, BILLING, f"{req};2", T0)]


def test_the_whisper_of_a_callback_says_so() -> None:
    words = Prompts.load(NLU_DATA / "prompts.yml").whisper
    record = {
        "skill": "billing",
        "ended_at": str(T0 - 7200),
        "context": json.dumps({"verified": True, "customer": {"name": "Ada Lovelace"}, "task": "balance"}),
    }
    plain = brief(record, words, now=T0)
    callback = brief({**record, "callback": uuid.uuid4().hex}, words, now=T0)
    print(f"\nwhisper: {plain!r} -> {callback!r}")
    assert callback.startswith("Callback: Verified customer Ada Lovelace, billing, asks about their balance")
    assert callback.endswith("asked two hours ago.")
    assert not plain.startswith("Callback")


# --- restarts and two gateways ---------------------------------------------------------------------------


@pytest.mark.parametrize("outcome_seen", [True, False], ids=["outcome-seen", "outcome-lost"])
async def test_a_gateway_killed_mid_dial_and_restarted_dials_exactly_once(
    redis: aioredis.Redis, names: Names, outcome_seen: bool
) -> None:
    clock = FakeClock(T0)
    async with asterisk(clock) as ast:
        first = await ast.session()
        d1 = dispatcher(redis, first, names, clock, "gw-1")
        req = await request(redis, names, clock)
        await free(ast)
        await steps(d1)
        sent = await first.server.wait_action("originate")
        await d1.close()  # killed right after sending the Originate: no outcome recorded
        await first.client.close()
        second = await ast.session()  # the restarted gateway: new process, new consumer name
        d2 = dispatcher(redis, second, names, clock, "gw-1-restarted")
        await free(ast)  # its model sees the agent free: it would dial if the state let it
        await steps(d2, n=3)
        assert req in d2.held  # reclaimed (XAUTOCLAIM)
        assert len(ast.originates()) == 1
        if outcome_seen:  # Asterisk broadcasts the outcome of the first gateway's originate
            await ast.broadcast(
                originate_response(sent.get("ActionID") or "", req, BILLING, 4),
                dial_end(req, BILLING, "ANSWER"),
            )
            await steps(d2)
            assert (await state(redis, names, req))["state"] == "connected"
        else:  # nobody saw it: after outcome_s the request is closed, not dialled again
            clock.t += 299
            await steps(d2, n=2)
            assert (await state(redis, names, req))["state"] == "dialling"
            clock.t += 1
            await steps(d2)
            st = await state(redis, names, req)
            assert (st["state"], st["last_reason"]) == ("failed", "outcome-unknown")
        clock.t += 3600
        await steps(d2, n=2)
        seen = "outcome seen" if outcome_seen else "outcome lost"
        print(f"\nrestart mid-dial ({seen}): originates {len(ast.originates())}")
        assert len(ast.originates()) == 1 and await pending(redis, names) == 0
        await d2.close()


async def test_two_gateways_on_one_redis_dial_exactly_once_50_rounds(
    redis: aioredis.Redis, names: Names
) -> None:
    clock = FakeClock(T0)
    rng = random.Random(11)
    rounds, per_round = 50, 3
    async with asterisk(clock) as ast:
        sessions = [await ast.session(), await ast.session()]
        ds = [dispatcher(redis, s, names, clock, f"gw-{i}") for i, s in enumerate(sessions, 1)]
        await free(ast, *AGENTS)
        requested: list[str] = []
        connected = 0

        async def jittered(d: Dispatcher) -> None:
            for _ in range(rng.randint(0, 6)):
                await asyncio.sleep(0)
            await asyncio.sleep(rng.random() * 0.002)
            await d.step()

        for _ in range(rounds):
            mine = [
                await request(redis, names, clock, entered=clock.t - rng.random() * 300)
                for _ in range(per_round)
            ]
            requested += mine
            for _ in range(rng.randint(2, 4)):
                await asyncio.gather(*(jittered(d) for d in rng.sample(ds, 2)))
            await asyncio.sleep(0.01)
            by_request = {r.get("ChannelId"): r for r in ast.originates()}
            assert set(mine) <= set(by_request), "every request of the round was dialled"
            for req in mine:
                sent = by_request[req]
                await ast.broadcast(
                    originate_response(sent.get("ActionID") or "", req, BILLING, 4),
                    dial_end(req, BILLING, "ANSWER"),
                )
            for _ in range(2):
                await asyncio.gather(*(jittered(d) for d in ds))
            for req in mine:
                connected += (await state(redis, names, req))["state"] == "connected"
            clock.t += 60
        originates = [r.get("ChannelId") for r in ast.originates()]
        duplicates = len(originates) - len(set(originates))
        lost = len(set(requested) - set(originates))
        print(
            f"\ntwo gateways, {rounds} rounds x {per_round} requests: attempts {len(originates)}, "
            f"duplicates: {duplicates}, lost: {lost}, connected {connected}, "
            f"sent by gateway {[d.sent for d in ds]}"
        )
        assert duplicates == 0 and lost == 0 and connected == len(requested)
        assert await pending(redis, names) == 0
        for d in ds:
            await d.close()


async def test_two_gateways_and_one_free_agent_dial_one_callback_at_a_time(
    redis: aioredis.Redis, names: Names
) -> None:
    """Both gateways see the one free agent; the shared slots let only one callback ring it. The next is
    dialled once the agent is free again."""
    clock = FakeClock(T0)
    async with asterisk(clock) as ast:
        sessions = [await ast.session(), await ast.session()]
        ds = [dispatcher(redis, s, names, clock, f"gw-{i}") for i, s in enumerate(sessions, 1)]
        first = await request(redis, names, clock, entered=T0 - 300)
        second = await request(redis, names, clock, entered=T0 - 200)
        await free(ast)
        for _ in range(3):
            await asyncio.gather(*(d.step() for d in ds))
            await steps(*ds)
        assert [r.get("ChannelId") for r in ast.originates()] == [first]  # the earlier caller, alone
        await ast.broadcast(
            agent_called(first, CALL, BILLING, "Local/alice@agents")
        )  # Alice rings: slot freed
        await steps(*ds, n=2)
        assert len(ast.originates()) == 1  # Alice is ringing: nobody free
        sent = ast.originates()[0]
        alice = (first, CALL, BILLING, "Local/alice@agents")
        await ast.broadcast(
            agent_called(*alice, event="AgentConnect"),
            originate_response(sent.get("ActionID") or "", first, BILLING, 4),
            dial_end(first, BILLING, "ANSWER"),
        )
        await steps(*ds)
        await ast.broadcast(hangup(first, BILLING), agent_called(*alice, event="AgentComplete"))
        await steps(*ds)
        assert len(ast.originates()) == 1
        done = int(clock.t)  # as Asterisk sends it after AgentComplete: LastCall, the start of the wrap-up
        await ast.broadcast(member_status(BILLING, "Alice", "Local/alice@agents", status=1, last_call=done))
        await steps(*ds)
        assert len(ast.originates()) == 1  # in wrap-up
        clock.t += 60
        await steps(*ds, n=2)
        await steps(*ds, n=2)
        # Each gateway's session lists its own originates; which gateway dialled which is chance. The first
        # caller was dialled alone above; now the second, once.
        assert sorted(r.get("ChannelId") for r in ast.originates()) == sorted([first, second])
        for d in ds:
            await d.close()


# --- Redis restart with AOF ------------------------------------------------------------------------------


async def _start_redis(port: int, data: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(  # noqa: ASYNC220 - starting a server: returns at once
        [
            shutil.which("redis-server") or "redis-server",
            "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
            "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = aioredis.from_url(f"redis://127.0.0.1:{port}/0")
    for _ in range(200):
        try:
            await client.ping()
            break
        except Exception:
            await asyncio.sleep(0.025)
    await client.close()
    return proc


async def test_a_redis_restart_with_aof_loses_no_request(tmp_path: Path) -> None:
    port = free_port()
    proc = await _start_redis(port, tmp_path)
    names = Names()
    clock = FakeClock(T0)
    r = aioredis.from_url(f"redis://127.0.0.1:{port}/0")
    unconnected_ami = AmiClient(AmiConfig(secret="x"))  # never started: not ready, nothing is dialled
    try:
        before = [await request(r, names, clock) for _ in range(10)]
        d1 = Dispatcher(r, unconnected_ami, QueueModel(clock=clock), consumer="gw-1", clock=clock,
                        stream=names.stream, state_prefix=names.prefix,
                        settings=CallbackSettings(reclaim_idle_s=0))  # fmt: skip
        await d1.step()  # these ten are now pending to gw-1
        assert set(d1.held) == set(before)
        after = [await request(r, names, clock) for _ in range(10)]  # acknowledged XADDs, never read
        proc.kill()  # kill -9
        proc.wait()
        await r.close()
        proc = await _start_redis(port, tmp_path)
        r = aioredis.from_url(f"redis://127.0.0.1:{port}/0")
        d2 = Dispatcher(r, unconnected_ami, QueueModel(clock=clock), consumer="gw-2", clock=clock,
                        stream=names.stream, state_prefix=names.prefix,
                        settings=CallbackSettings(reclaim_idle_s=0))  # fmt: skip
        await d2.step()
        held = set(d2.held)
        states = [(await r.hget(state_key(q, names.prefix), "state")) for q in before + after]
        lost = len(set(before + after) - held)
        print(f"\nredis kill -9 and restart (appendfsync always): requests 20, lost: {lost}")
        assert held == set(before + after) and lost == 0
        assert states == [b"new"] * 20
    finally:
        await r.close()
        proc.kill()
        proc.wait()


async def test_a_bare_xadd_by_the_contract_is_dialled_too(redis: aioredis.Redis, names: Names) -> None:
    """The caller side may write only the stream entry (string fields, digits-only number): the dispatcher
    makes the state hash itself, dated by the entry's id."""
    clock = FakeClock(T0)
    async with asterisk(clock) as ast:
        s = await ast.session()
        d = dispatcher(redis, s, names, clock, "gw-1")
        req = uuid.uuid4().hex
        fields = {
            "request": req, "call": CALL, "number": "5550100009", "skill": "billing", "queue": BILLING,
            "priority": "2", "entered": repr(T0 - 30), "not_before": "0", "window_end": "0", "language": "en",
        }  # fmt: skip
        entry = (await redis.xadd(names.stream, fields)).decode()
        await free(ast)
        await steps(d)
        sent = await s.server.wait_action("originate")
        assert sent.get("ChannelId") == req and "QUEUE_PRIO=2" in [
            v for k, v in sent.headers if k == "Variable"
        ]
        st = await state(redis, names, req)
        assert st["entry"] == entry and abs(float(st["created"]) - int(entry.split("-")[0]) / 1000) < 0.01
        await d.close()
