"""FastAGI call control over real TCP, with this test playing Asterisk byte for byte, and the real Redis.

Asterisk's side of a FastAGI session: connect, send ``agi_*: value`` lines and a blank line, then read one
command per line and answer each ``200 result=1``; the server closes the connection when the route is done.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from telephony.agi import (
    AgiConfig,
    AgiServer,
    CallOutcome,
    call_id_from,
    channel_name,
    outcome_from_hash,
    parse_header,
    safe_value,
)
from telephony.audiosocket import audio_rate
from telephony.callstate import Outcome, Reason, Skill, whisper_uuid

REDIS_URL = "redis://127.0.0.1:6379/0"
HEADER_TIMEOUT_S = 0.6


def asterisk_header(
    call: str | None,
    script: str = "outcome",
    *,
    channel: str = "PJSIP/trunk-00000042",
    more_args: tuple[str, ...] = (),
) -> bytes:
    """The header Asterisk 20/22 sends for ``AGI(agi://127.0.0.1/outcome,<call>[,more args])``."""
    lines = [
        "agi_network: yes",
        f"agi_network_script: {script}",
        f"agi_request: agi://127.0.0.1/{script}",
        f"agi_channel: {channel}",
        "agi_language: en",
        "agi_type: PJSIP",
        "agi_uniqueid: 1700000000.42",
        "agi_version: 22.1.0",
        "agi_callerid: 5551234",
        "agi_calleridname: Test Caller",
        "agi_callingpres: 0",
        "agi_dnid: 100",
        "agi_context: attendant",
        "agi_extension: s",
        "agi_priority: 9",
        "agi_enhanced: 0.0",
        "agi_accountcode: ",
        "agi_threadid: 140000000000000",
    ]
    if call is not None:
        lines.append(f"agi_arg_1: {call}")
        lines += [f"agi_arg_{n}: {arg}" for n, arg in enumerate(more_args, start=2)]
    return ("\n".join(lines) + "\n\n").encode()


async def play_asterisk(port: int, header: bytes, *, answer: bytes = b"200 result=1\n") -> list[str]:
    """Send ``header``, answer every command line, return the commands until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(header)
    await writer.drain()
    commands: list[str] = []
    try:
        while True:
            line = await asyncio.wait_for(reader.readline(), timeout=5)
            if not line:
                break
            assert line.endswith(b"\n")
            commands.append(line[:-1].decode())
            writer.write(answer)
            await writer.drain()
    finally:
        writer.close()
    return commands


def expected(
    result: str,
    reason: str,
    skill: str,
    *,
    call: str | None = None,
    queue: str | None = None,
    prio: int = 0,
    max_penalty: int = 1,
    verified: bool = False,
) -> list[str]:
    lines = [f'SET VARIABLE ATTENDANT_REASON "{reason}"', f'SET VARIABLE ATTENDANT_SKILL "{skill}"']
    if result == "handoff":
        assert call is not None
        summary = f"{skill} {reason} {'verified' if verified else 'unverified'} p{prio}"
        lines += [
            f'SET VARIABLE ATTENDANT_QUEUE "{queue or "attendant-" + skill}"',
            f'SET VARIABLE QUEUE_PRIO "{prio}"',
            f'SET VARIABLE QUEUE_MAX_PENALTY "{max_penalty}"',
            'SET VARIABLE ATTENDANT_RULE "attendant-widen"',
            f'SET VARIABLE ATTENDANT_SUMMARY "{summary}"',
            f'SET VARIABLE ATTENDANT_WHISPER "{whisper_uuid(uuid.UUID(call))}"',
        ]
    lines.append(f'SET VARIABLE ATTENDANT_RESULT "{result}"')
    return lines


@pytest.fixture
async def redis() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:  # pragma: no cover - the build machines have Redis
        pytest.fail(f"the tests need the real Redis at {REDIS_URL}: {exc}")
    yield client
    await client.close()


@pytest.fixture
async def agi_port(redis: aioredis.Redis) -> AsyncIterator[int]:
    config = AgiConfig(host="127.0.0.1", port=0, header_timeout_s=HEADER_TIMEOUT_S, max_header_bytes=4096)
    server = AgiServer(config, redis, session_timeout_s=5.0)
    await server.start()
    yield server.port
    await server.close()


@pytest.fixture
async def call(redis: aioredis.Redis) -> AsyncIterator[str]:
    """A fresh call id; its hash is removed afterwards."""
    call_id = str(uuid.uuid4())
    yield call_id
    await redis.delete(f"attendant:call:{call_id}")


async def test_handoff_sets_variables_in_order(agi_port: int, redis: aioredis.Redis, call: str) -> None:
    await redis.hset(
        f"attendant:call:{call}", mapping={"outcome": "handoff", "reason": "requested", "skill": "billing"}
    )
    assert await play_asterisk(agi_port, asterisk_header(call)) == expected(
        "handoff", "requested", "billing", call=call
    )


async def test_register_stores_who_is_calling(agi_port: int, redis: aioredis.Redis, call: str) -> None:
    commands = await play_asterisk(agi_port, asterisk_header(call, script="register"))
    assert commands == ['SET VARIABLE ATTENDANT_REGISTERED "yes"']
    stored = {k.decode(): v.decode() for k, v in (await redis.hgetall(f"attendant:call:{call}")).items()}
    # line: the number dialled (agi_dnid here; argument 3 when the dialplan passes ${ATTENDANT_LINE})
    expected = {
        "caller_number": "5551234",
        "channel": "PJSIP/trunk-00000042",
        "language": "en",
        "line": "100",
    }
    assert stored == expected
    assert 0 < await redis.ttl(f"attendant:call:{call}") <= 86400


async def test_register_keeps_a_local_channel_name_and_the_call_rate(
    agi_port: int, redis: aioredis.Redis, call: str
) -> None:
    """What a real Asterisk 22 sends from ``[attendant-slin16]`` reached through a Local channel: the ``;2``
    is part of the name (without it the name names no channel), and argument 2 is the call's rate."""
    header = asterisk_header(
        call, script="register", channel="Local/s@attendant-slin16-0000000f;2", more_args=("16000",)
    )
    assert await play_asterisk(agi_port, header) == ['SET VARIABLE ATTENDANT_REGISTERED "yes"']
    stored = {k.decode(): v.decode() for k, v in (await redis.hgetall(f"attendant:call:{call}")).items()}
    assert stored["channel"] == "Local/s@attendant-slin16-0000000f;2"
    assert stored["rate"] == "16000"


@pytest.mark.parametrize(
    "channel",
    [
        'PJSIP/x"; Dial(evil)',
        "Local/s@a-1;3",
        "PJSIP/${SHELL(id)}",
        "PJSIP/a b",
        "nochannel",
        "P/" + "a" * 90,
    ],
)
async def test_register_refuses_what_is_not_a_channel_name(
    agi_port: int, redis: aioredis.Redis, call: str, channel: str
) -> None:
    header = asterisk_header(call, script="register", channel=channel, more_args=("44",))
    assert await play_asterisk(agi_port, header) == ['SET VARIABLE ATTENDANT_REGISTERED "yes"']
    stored = {k.decode(): v.decode() for k, v in (await redis.hgetall(f"attendant:call:{call}")).items()}
    assert stored["channel"] == ""
    assert "rate" not in stored  # 44 Hz is no AudioSocket rate


async def test_register_filters_caller_id_and_the_simulator_speaks_it(
    agi_port: int, redis: aioredis.Redis, call: str
) -> None:
    from telephony.sim import agi_register

    hostile = '"Mallory" <+1 555; Dial(evil)> 010-0001'
    variables = await agi_register("127.0.0.1", agi_port, uuid.UUID(call), hostile)
    assert variables == {"ATTENDANT_REGISTERED": "yes"}
    assert await redis.hget(f"attendant:call:{call}", "caller_number") == b"+15550100001"
    withheld = await agi_register("127.0.0.1", agi_port, uuid.UUID(call), "anonymous")
    assert withheld == {"ATTENDANT_REGISTERED": "yes"}
    assert await redis.hget(f"attendant:call:{call}", "caller_number") == b""


async def test_register_without_call_id_says_no(agi_port: int) -> None:
    commands = await play_asterisk(agi_port, asterisk_header(None, script="register"))
    assert commands == ['SET VARIABLE ATTENDANT_REGISTERED "no"']


async def test_completed(agi_port: int, redis: aioredis.Redis, call: str) -> None:
    await redis.hset(f"attendant:call:{call}", mapping={"outcome": "completed"})
    assert await play_asterisk(agi_port, asterisk_header(call)) == expected("completed", "none", "general")


async def test_a_dead_gateways_call_goes_to_the_skill_it_needed(
    agi_port: int, redis: aioredis.Redis, call: str
) -> None:
    """No outcome (the gateway died mid-call) but a kept context: a person of the call's skill takes it,
    with the whisper, as a technical handoff; a context that names no skill changes nothing."""
    context = {"verified": True, "task": "balance", "skill": "billing", "customer": {"name": "Ada Lovelace"}}
    await redis.hset(f"attendant:call:{call}", mapping={"started_at": "1", "context": json.dumps(context)})
    assert await play_asterisk(agi_port, asterisk_header(call)) == expected(
        "handoff", "technical", "billing", call=call, verified=True
    )
    for broken in ("{not json", json.dumps({"skill": "transfer me"}), json.dumps(["billing"])):
        await redis.hset(f"attendant:call:{call}", "context", broken)
        assert await play_asterisk(agi_port, asterisk_header(call)) == expected(
            "none", "no-result", "general"
        )


async def test_missing_hash_is_none(agi_port: int, call: str) -> None:
    assert await play_asterisk(agi_port, asterisk_header(call)) == expected("none", "no-result", "general")


async def test_missing_or_bad_call_id_is_none(agi_port: int) -> None:
    assert await play_asterisk(agi_port, asterisk_header(None)) == expected("none", "no-call-id", "general")
    assert await play_asterisk(agi_port, asterisk_header("not-a-uuid;Dial(x)")) == expected(
        "none", "no-call-id", "general"
    )


async def test_uppercase_uuid_finds_the_lowercase_key(
    agi_port: int, redis: aioredis.Redis, call: str
) -> None:
    await redis.hset(f"attendant:call:{call}", mapping={"outcome": "abandoned", "reason": "caller-hangup"})
    got = await play_asterisk(agi_port, asterisk_header(call.upper()))
    assert got == expected("abandoned", "caller-hangup", "general")


async def test_unsafe_values_are_filtered(agi_port: int, redis: aioredis.Redis, call: str) -> None:
    await redis.hset(
        f"attendant:call:{call}",
        mapping={
            "outcome": "handoff",
            "reason": 'my card was "stolen"; Dial(PJSIP/evil)',
            "skill": "billing,1)\nEXEC System rm",
        },
    )
    got = await play_asterisk(agi_port, asterisk_header(call))
    assert got == expected("handoff", "none", "general", call=call)
    for line in got:
        assert ";" not in line and "Dial" not in line and "EXEC" not in line


async def test_unknown_outcome_is_none(agi_port: int, redis: aioredis.Redis, call: str) -> None:
    await redis.hset(f"attendant:call:{call}", mapping={"outcome": "transfer me now", "skill": "sales"})
    assert await play_asterisk(agi_port, asterisk_header(call)) == expected("none", "no-result", "sales")


async def test_redis_down_is_none() -> None:
    dead = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    config = AgiConfig(host="127.0.0.1", port=0, header_timeout_s=HEADER_TIMEOUT_S)
    server = AgiServer(config, dead)
    await server.start()
    try:
        got = await play_asterisk(server.port, asterisk_header(str(uuid.uuid4())))
        assert got == expected("none", "technical", "general")
    finally:
        await server.close()
        await dead.close()


async def test_channel_hung_up_mid_session(agi_port: int, redis: aioredis.Redis, call: str) -> None:
    """Asterisk answers ``HANGUP`` to the first command: the server stops, then serves the next call."""
    await redis.hset(f"attendant:call:{call}", mapping={"outcome": "handoff"})
    reader, writer = await asyncio.open_connection("127.0.0.1", agi_port)
    writer.write(asterisk_header(call))
    line = await asyncio.wait_for(reader.readline(), timeout=5)
    assert line.startswith(b"SET VARIABLE ATTENDANT_REASON")
    writer.write(b"HANGUP\n")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), timeout=5) == b""  # server gave up, closed
    writer.close()
    # the cut session set no ATTENDANT_RESULT; the next session works normally
    assert await play_asterisk(agi_port, asterisk_header(call)) == expected(
        "handoff", "none", "general", call=call
    )


async def test_dead_channel_answer_511(agi_port: int, redis: aioredis.Redis, call: str) -> None:
    await redis.hset(f"attendant:call:{call}", mapping={"outcome": "completed"})
    got = await play_asterisk(
        agi_port, asterisk_header(call), answer=b"511 Command Not Permitted on a dead channel\n"
    )
    assert got == ['SET VARIABLE ATTENDANT_REASON "none"']


async def test_unknown_route_closes(agi_port: int) -> None:
    assert await play_asterisk(agi_port, asterisk_header(str(uuid.uuid4()), script="nothing-here")) == []


async def _closed_within(port: int, data: bytes, *, eof: bool) -> float:
    """Send ``data`` (then EOF if asked) and stay silent; seconds until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = time.monotonic()
    writer.write(data)
    if eof:
        writer.write_eof()
    await writer.drain()
    rest = await asyncio.wait_for(reader.read(), timeout=HEADER_TIMEOUT_S + 3)
    assert rest == b""
    writer.close()
    return time.monotonic() - start


async def test_bad_peers_are_dropped_while_good_sessions_complete(
    agi_port: int, redis: aioredis.Redis, call: str
) -> None:
    """Half a header then EOF (panoramisk's own handler would spin forever on it), a header with no end and
    silence, and an oversize header: each is dropped within its limit; a good session meanwhile completes."""
    await redis.hset(
        f"attendant:call:{call}", mapping={"outcome": "handoff", "reason": "requested", "skill": "sales"}
    )
    half = asterisk_header(call)[:60]
    endless = asterisk_header(call)[:-1]  # no blank line
    oversize = b"agi_network: yes\n" + b"agi_junk: " + b"x" * 8000 + b"\n"

    half_eof = asyncio.create_task(_closed_within(agi_port, half, eof=True))
    silent = asyncio.create_task(_closed_within(agi_port, endless, eof=False))
    big = asyncio.create_task(_closed_within(agi_port, oversize, eof=False))
    await asyncio.sleep(0.05)

    start = time.monotonic()
    good = await play_asterisk(agi_port, asterisk_header(call))
    good_s = time.monotonic() - start
    assert good == expected("handoff", "requested", "sales", call=call)
    assert good_s < HEADER_TIMEOUT_S, "a good session waited on a bad peer"
    assert not silent.done(), "the silent peer should still be waiting for its time limit"

    assert await half_eof < HEADER_TIMEOUT_S  # EOF is noticed at once, no spinning
    assert await big < HEADER_TIMEOUT_S  # size limit, not time limit
    silent_s = await silent
    assert HEADER_TIMEOUT_S - 0.05 <= silent_s < HEADER_TIMEOUT_S + 1.0

    # and the server still serves
    assert await play_asterisk(agi_port, asterisk_header(call)) == expected(
        "handoff", "requested", "sales", call=call
    )


async def test_routes_must_be_async(redis: aioredis.Redis) -> None:
    agi = AgiServer(AgiConfig(port=0), redis)
    await agi.start()
    try:

        def sync_route(request: object) -> None:  # pragma: no cover - never called
            pass

        with pytest.raises(TypeError):
            agi.add_route("sync", sync_route)  # type: ignore[arg-type]
    finally:
        await agi.close()


def test_channel_names_by_their_grammar() -> None:
    for name in (
        "PJSIP/1001-0000002a",
        "SIP/10.0.0.1:5060-00000001",
        "AudioSocket/127.0.0.1:9092-0000000b",
        "DAHDI/i1/5551234-1",
        "Local/s@attendant-0000000f;1",
        "IAX2/peer-12345",
    ):
        assert channel_name(name) == name
    assert channel_name("  PJSIP/1001-0000002a\r") == "PJSIP/1001-0000002a"
    for bad in ("", "PJSIP/", "/x", "PJSIP/a;b", "PJSIP/a,b", "PJSIP/{x}", "Local/s@a-1;2;2"):
        assert channel_name(bad) == ""
    assert audio_rate("16000") == 16000 and audio_rate(8000) == 8000
    assert audio_rate("16") is None and audio_rate("") is None and audio_rate("x") is None


def test_pure_helpers() -> None:
    assert safe_value("Billing", "x") == "billing"
    assert safe_value(b"tech-support_2", "x") == "tech-support_2"
    assert safe_value("a b", "x") == "x"
    assert safe_value("a" * 33, "x") == "x"
    assert safe_value("", "x") == "x"
    assert safe_value(None, "x") == "x"
    assert outcome_from_hash({}) == CallOutcome(Outcome.NONE, Reason.NO_RESULT, Skill.GENERAL)
    assert outcome_from_hash({b"outcome": b"failed", b"reason": b"technical"}) == CallOutcome(
        Outcome.FAILED, Reason.TECHNICAL, Skill.GENERAL
    )
    headers = parse_header(asterisk_header("0f8fad5b-d9cb-469f-a165-70867728950e")[:-2])
    assert headers["agi_network_script"] == "outcome"
    assert headers["agi_accountcode"] == ""
    assert str(call_id_from(headers)) == "0f8fad5b-d9cb-469f-a165-70867728950e"
    assert str(call_id_from({"agi_network_script": "outcome?uuid=0f8fad5b-d9cb-469f-a165-70867728950e"})) == (
        "0f8fad5b-d9cb-469f-a165-70867728950e"
    )


async def test_handoff_route_reaches_the_dialplan(agi_port: int, redis: aioredis.Redis, call: str) -> None:
    """The route the gateway chose (queue per skill and language, priority, max penalty, rule) and the whisper
    leg's UUID, each checked on the way out; ``ATTENDANT_RESULT`` still last."""
    await redis.hset(
        f"attendant:call:{call}",
        mapping={
            "outcome": "handoff",
            "reason": "requested",
            "skill": "support",
            "queue": "attendant-support-fr",
            "priority": "10",
            "max_penalty": "0",
            "rule": "attendant-widen",
            "verified": "yes",
        },
    )
    got = await play_asterisk(agi_port, asterisk_header(call))
    assert got == expected(
        "handoff", "requested", "support", call=call, queue="attendant-support-fr", prio=10, max_penalty=0,
        verified=True,
    )  # fmt: skip


@pytest.mark.parametrize(
    "route",
    [
        {"queue": "attendant-billing; Dial(x)", "priority": "3"},
        {"queue": "sales", "priority": "3"},
        {"queue": "attendant-billing", "priority": "99"},
        {"queue": "attendant-billing", "max_penalty": "-1"},
        {"queue": "attendant-billing", "rule": "${SHELL(id)}"},
    ],
)
async def test_a_bad_route_in_redis_falls_back_to_the_skills_queue(
    agi_port: int, redis: aioredis.Redis, call: str, route: dict[str, str]
) -> None:
    await redis.hset(
        f"attendant:call:{call}",
        mapping={"outcome": "handoff", "reason": "no-match", "skill": "billing", **route},
    )
    assert await play_asterisk(agi_port, asterisk_header(call)) == expected(
        "handoff", "no-match", "billing", call=call
    )
