"""Voicemails on the agent console, over real HTTP with the real Redis and real WAV files: one recorded
through the real FastAGI ``voicemail`` route reaches the open page of an agent with its skill (and only
theirs), the list and the recording need a login, the recording is served only from inside the voicemail
directory (a record pointing elsewhere, through ``..`` or a symlink, is a 404), Range requests, and
"heard"/"handled": the first agent wins, the call record gets the outcome, the others' pages are told."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from bot.console import Console, ConsoleSettings, build_console
from bot.console.demo import DEMO_CONTEXT, seed_call
from telephony.agi import AgiConfig, AgiServer
from telephony.callstate import call_key, voicemail_key
from tests.console_helpers import (
    FakeClock,
    FakeControl,
    SseReader,
    add_voicemail,
    drop_voicemails,
    new_call_id,
    roster,
    write_wav,
)
from tests.test_agi import asterisk_header, play_asterisk
from tests.test_console_http import events, logged_in


@dataclass
class Setup:
    console: Console
    clock: FakeClock
    redis: aioredis.Redis
    url: str
    vm_dir: Path
    outside: Path


@pytest.fixture
async def setup(redis_url: str, tmp_path: Path) -> AsyncIterator[Setup]:
    r = aioredis.from_url(redis_url)
    clock = FakeClock()
    vm_dir = tmp_path / "vm"
    vm_dir.mkdir()
    settings = ConsoleSettings(ping_s=1.0, timer_s=3600, voicemail_dir=vm_dir)
    console = build_console(roster(), r, FakeControl(), clock, settings)
    await console.start("127.0.0.1", 0)
    yield Setup(console, clock, r, console.url, vm_dir, tmp_path / "elsewhere")
    await drop_voicemails(r, tmp_path)
    await console.close()
    await r.close()


async def until_voicemail(
    reader: SseReader,
    vm_id: str,
    timeout: float = 3.0,
    *,
    key: str = "id",
    seen: list[str] | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    """The next ``voicemail`` event whose ``key`` is ``vm_id`` (others, e.g. from other tests, skipped);
    with ``status``, the next one in that state (the voicemail's own arrival may still be on its way)."""

    async def wait() -> dict[str, Any]:
        while True:
            kind, data = await reader.next(timeout)
            if kind == "voicemail" and seen is not None:
                seen.append(data["voicemail"]["id"])
            if kind == "voicemail" and data["voicemail"][key] == vm_id:
                if status is None or data["voicemail"]["status"] == status:
                    return dict(data["voicemail"])

    return await asyncio.wait_for(wait(), timeout)


async def ids(http: aiohttp.ClientSession, url: str) -> list[str]:
    async with http.get(url + "api/voicemails") as resp:
        assert resp.status == 200
        return [v["id"] for v in (await resp.json())["voicemails"]]


async def test_a_voicemail_recorded_through_fastagi_pops_for_its_skill_only(setup: Setup) -> None:
    call = new_call_id()
    await seed_call(setup.redis, call, DEMO_CONTEXT)  # verified Hedy Lamarr, billing
    await setup.redis.hset(call_key(call), mapping={"outcome": "voicemail", "reason": "after-hours"})
    path = write_wav(setup.vm_dir / f"{call}.wav", 1.5)
    agi = AgiServer(AgiConfig(host="127.0.0.1", port=0), setup.redis, session_timeout_s=5.0)
    await agi.start()
    maya = await logged_in(setup.url, "maya")  # billing
    priya = await logged_in(setup.url, "priya")  # no billing
    try:
        maya_stream, maya_events = await events(maya, setup.url)
        priya_stream, priya_events = await events(priya, setup.url)
        header = asterisk_header(call, "voicemail", more_args=(str(path), "DTMF"))
        assert await play_asterisk(agi.port, header) == ['SET VARIABLE ATTENDANT_VM_STORED "yes"']

        pushed = await until_voicemail(maya_events, call, key="call_id")
        assert pushed["status"] == "new" and pushed["record_status"] == "dtmf"
        assert pushed["skill"] == "billing" and pushed["reason"] == "after-hours"
        assert pushed["name"] == "Hedy Lamarr" and pushed["caller_number"] == "+15550100005"
        assert pushed["length_s"] == 1.5
        assert pushed["view"]["customer"]["id"] == "C-0005"  # the context, as on a call card
        vm_id = pushed["id"]

        # priya's page gets nothing for it; a general one reaches both, and is priya's first
        general_call = new_call_id()
        general = await add_voicemail(
            setup.redis, general_call, str(write_wav(setup.vm_dir / f"{general_call}.wav", 0.5))
        )
        assert (await until_voicemail(maya_events, general))["skill"] == "general"
        seen: list[str] = []
        got = await until_voicemail(priya_events, general, seen=seen)  # vm_id, had it come, came first
        assert got["name"] is None  # nobody verified: no name shown
        assert vm_id not in seen

        mine, theirs = await ids(maya, setup.url), await ids(priya, setup.url)
        assert mine.index(general) < mine.index(vm_id)  # newest first
        assert vm_id not in theirs and general in theirs
        for url in (f"api/voicemails/{vm_id}", f"api/voicemails/{vm_id}/audio"):
            async with priya.get(setup.url + url) as resp:
                assert resp.status == 404, url  # as if it did not exist
        async with priya.post(setup.url + f"api/voicemails/{vm_id}/handled", json={}) as resp:
            assert resp.status == 404
        async with maya.get(setup.url + f"api/voicemails/{vm_id}") as resp:
            detail = await resp.json()
            assert "fifteen dollar fee" in " ".join(line["text"] for line in detail["view"]["transcript"])
        maya_stream.close()
        priya_stream.close()
    finally:
        await agi.close()
        await maya.close()
        await priya.close()


async def test_no_login_no_voicemails(setup: Setup) -> None:
    call = new_call_id()
    vm_id = await add_voicemail(setup.redis, call, str(write_wav(setup.vm_dir / f"{call}.wav", 0.3)))
    async with aiohttp.ClientSession() as http:
        for url in ("api/voicemails", f"api/voicemails/{vm_id}", f"api/voicemails/{vm_id}/audio"):
            async with http.get(setup.url + url) as resp:
                assert resp.status == 401, url
                assert (await resp.read())[:4] != b"RIFF"
        async with http.post(setup.url + f"api/voicemails/{vm_id}/handled", json={}) as resp:
            assert resp.status == 401
    assert await setup.redis.hgetall(voicemail_key(vm_id)) == {}
    maya = await logged_in(setup.url, "maya")
    try:  # another site's page cannot mark one on an agent's behalf
        headers = {"Origin": "http://evil.example"}
        async with maya.post(setup.url + f"api/voicemails/{vm_id}/handled", json={}, headers=headers) as resp:
            assert resp.status == 403
        assert await setup.redis.hgetall(voicemail_key(vm_id)) == {}
    finally:
        await maya.close()


async def test_the_recording_is_served_only_from_the_voicemail_directory(setup: Setup) -> None:
    maya = await logged_in(setup.url, "maya")
    try:
        good_call = new_call_id()
        good = write_wav(setup.vm_dir / f"{good_call}.wav", 2.0)
        good_id = await add_voicemail(setup.redis, good_call, str(good))
        async with maya.get(setup.url + f"api/voicemails/{good_id}/audio") as resp:
            assert resp.status == 200 and resp.headers["Content-Type"] == "audio/wav"
            assert await resp.read() == good.read_bytes()
        ranged = {"Range": "bytes=0-99"}
        async with maya.get(setup.url + f"api/voicemails/{good_id}/audio", headers=ranged) as resp:
            assert resp.status == 206 and resp.headers["Content-Range"].startswith("bytes 0-99/")
            assert await resp.read() == good.read_bytes()[:100]

        secret = write_wav(setup.outside / "secret.wav", 0.5)
        (setup.outside / "passwd").write_text("root:x:0:0\n")
        link = setup.vm_dir / f"{new_call_id()}.wav"
        link.symlink_to(secret)
        bad_paths = {
            "outside": str(secret),
            "dot-dot": f"{setup.vm_dir}/../elsewhere/secret.wav",
            "symlink out": str(link),
            "not a wav": str(setup.outside / "passwd"),
            "relative": f"vm/{good_call}.wav",
            "missing": str(setup.vm_dir / f"{new_call_id()}.wav"),
            "the directory": str(setup.vm_dir),
        }
        for why, stored in bad_paths.items():
            vm_id = await add_voicemail(setup.redis, new_call_id(), stored)
            async with maya.get(setup.url + f"api/voicemails/{vm_id}/audio") as resp:
                assert resp.status == 404, why
                assert b"RIFF" not in await resp.read(), why
            async with maya.get(setup.url + "api/voicemails") as resp:
                listed = {v["id"]: v for v in (await resp.json())["voicemails"]}
            assert listed[vm_id]["length_s"] is None, why  # not even its header was read

        # nothing from the request is a path: odd ids are simply not found
        for odd in ("..%2F..%2Fetc%2Fpasswd", "0-0", "1-1.wav", f"{good_id}%00"):
            async with maya.get(setup.url + f"api/voicemails/{odd}/audio") as resp:
                assert resp.status == 404, odd
    finally:
        await maya.close()


async def test_heard_then_handled_first_agent_wins_and_the_call_record_says_so(setup: Setup) -> None:
    call = new_call_id()
    context = {**DEMO_CONTEXT, "handoff": {"reason": "after-hours", "skill": "general"}}
    await seed_call(setup.redis, call, context)
    vm_id = await add_voicemail(setup.redis, call, str(write_wav(setup.vm_dir / f"{call}.wav", 0.4)))
    maya, sam = await logged_in(setup.url, "maya"), await logged_in(setup.url, "sam")
    try:
        sam_stream, sam_events = await events(sam, setup.url)
        setup.clock.now = 1_800_000_100.0
        async with maya.post(setup.url + f"api/voicemails/{vm_id}/heard", json={}) as resp:
            body = await resp.json()
            assert resp.status == 200 and not body["duplicate"]
            assert body["voicemail"]["status"] == "heard" and body["voicemail"]["heard_by"] == "maya"
        assert (await until_voicemail(sam_events, vm_id, status="heard"))["heard_by"] == "maya"

        setup.clock.now = 1_800_000_160.0
        async with maya.post(setup.url + f"api/voicemails/{vm_id}/handled", json={}) as resp:
            body = await resp.json()
            assert resp.status == 200 and not body["duplicate"]
            vm = body["voicemail"]
            assert (vm["status"], vm["handled_by"], vm["handled_at"]) == ("handled", "maya", 1_800_000_160.0)
        pushed = await until_voicemail(sam_events, vm_id, status="handled")
        assert pushed["handled_by"] == "maya"

        setup.clock.now = 1_800_000_200.0
        async with sam.post(setup.url + f"api/voicemails/{vm_id}/handled", json={}) as resp:
            body = await resp.json()
            assert body["duplicate"] and body["voicemail"]["handled_by"] == "maya"  # one winner
        state = {k.decode(): v.decode() for k, v in (await setup.redis.hgetall(voicemail_key(vm_id))).items()}
        assert state == {
            "heard_by": "maya",
            "heard_at": "1800000100.000",
            "handled_by": "maya",
            "handled_at": "1800000160.000",
        }
        ttl = await setup.redis.ttl(voicemail_key(vm_id))  # the backstop: retention window + a day
        assert 30 * 86400 < ttl <= 31 * 86400
        record = await setup.redis.hgetall(call_key(call))
        assert record[b"voicemail_handled_by"] == b"maya"
        assert record[b"voicemail_handled_at"] == b"1800000160.000"
        assert record[b"voicemail_heard_by"] == b"maya"
        async with sam.get(setup.url + "api/voicemails") as resp:
            listed = (await resp.json())["voicemails"]
        assert next(v for v in listed if v["id"] == vm_id)["status"] == "handled"

        # a call record that is gone is not re-created by a mark
        gone = new_call_id()
        gone_id = await add_voicemail(setup.redis, gone, str(write_wav(setup.vm_dir / f"{gone}.wav", 0.2)))
        async with sam.post(setup.url + f"api/voicemails/{gone_id}/handled", json={}) as resp:
            assert resp.status == 200
        assert await setup.redis.exists(call_key(gone)) == 0
        async with sam.post(setup.url + f"api/voicemails/{gone_id}/deleted", json={}) as resp:
            assert resp.status in (404, 405)
        sam_stream.close()
        assert json.dumps(pushed)  # what the page got is plain JSON
    finally:
        await maya.close()
        await sam.close()
