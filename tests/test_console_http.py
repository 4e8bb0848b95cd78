"""The agent console over real HTTP with the real Redis: login, the session cookie, the event stream (a pop
for the agent rung and nothing for the others), reads refused for calls not offered, withdraw, answer, and
the wrap-up round trip to a recording CallControl (pause, QueueLog once on a double-click, ready)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
import redis.asyncio as aioredis

from bot.console import Answered, Completed, Console, ConsoleSettings, Offered, Withdrawn, build_console
from bot.console.demo import DEMO_CONTEXT, seed_call
from telephony.callstate import agent_offers_key, disposition_key
from tests.console_helpers import TOKENS, FakeClock, FakeControl, SseReader, new_call_id, roster

QUEUE = "attendant-billing"


@dataclass
class Setup:
    console: Console
    control: FakeControl
    clock: FakeClock
    redis: aioredis.Redis
    url: str


@pytest.fixture
async def setup(redis_url: str) -> AsyncIterator[Setup]:
    r = aioredis.from_url(redis_url)
    control = FakeControl()
    clock = FakeClock(time.time())
    console = build_console(roster(), r, control, clock, ConsoleSettings(ping_s=1.0, timer_s=3600))
    await console.start("127.0.0.1", 0)
    yield Setup(console, control, clock, r, console.url)
    await console.close()
    await r.close()


async def login(http: aiohttp.ClientSession, url: str, token: str) -> aiohttp.ClientResponse:
    return await http.post(url + "login", data={"token": token}, allow_redirects=False)


async def logged_in(url: str, agent: str) -> aiohttp.ClientSession:
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with http.post(url + "login", data={"token": TOKENS[agent]}, allow_redirects=False) as resp:
        assert resp.status == 303, await resp.text()
    return http


async def events(http: aiohttp.ClientSession, url: str) -> tuple[aiohttp.ClientResponse, SseReader]:
    resp = await http.get(url + "api/events", timeout=aiohttp.ClientTimeout(total=None, sock_read=None))
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    reader = SseReader(resp)
    kind, snapshot = await reader.next()
    assert kind == "snapshot"
    return resp, reader


async def test_login_sets_a_strict_httponly_cookie_and_a_bad_token_is_refused(setup: Setup) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(setup.url, allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/login"
        async with http.get(setup.url + "api/me") as resp:
            assert resp.status == 401
        async with http.get(setup.url + "login") as resp:
            page = await resp.text()
            assert resp.status == 200 and 'name="token"' in page and "{{" not in page
            assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
        async with http.post(setup.url + "login", data={"token": "guess"}, allow_redirects=False) as resp:
            assert resp.status == 401
            assert "not valid" in await resp.text()
            assert "Set-Cookie" not in resp.headers
        async with await login(http, setup.url, TOKENS["maya"]) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/"
            cookie = resp.headers["Set-Cookie"]
            assert "attendant_console=" in cookie
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
            assert TOKENS["maya"] not in cookie
        async with http.get(setup.url + "api/me") as resp:
            me = await resp.json()
            assert me["id"] == "maya" and me["name"] == "Maya Chen"
            assert me["skills"][0] == {"skill": "billing", "proficiency": 5}
            assert {"code": "resolved", "label": "Resolved"} in me["dispositions"]
        async with http.get(setup.url) as resp:
            assert resp.status == 200 and 'id="card-tpl"' in await resp.text()
        async with http.get(setup.url + "static/console.js") as resp:
            assert resp.status == 200 and "EventSource" in await resp.text()
        async with http.post(setup.url + "logout", allow_redirects=False) as resp:
            assert resp.status == 303
        async with http.get(setup.url + "api/me") as resp:
            assert resp.status == 401


async def test_failed_logins_are_rate_limited_per_client(setup: Setup) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        for _ in range(5):
            async with http.post(setup.url + "login", data={"token": "wrong"}) as resp:
                assert resp.status == 401
        async with await login(http, setup.url, TOKENS["sam"]) as resp:
            assert resp.status == 429  # even the right token waits
            assert 1 <= int(resp.headers["Retry-After"]) <= 301
        setup.clock.advance(301)
        async with await login(http, setup.url, TOKENS["sam"]) as resp:
            assert resp.status == 303


async def test_a_pop_reaches_the_agent_rung_and_nobody_else(setup: Setup) -> None:
    call_id = new_call_id()
    await seed_call(setup.redis, call_id)
    maya = await logged_in(setup.url, "maya")
    sam = await logged_in(setup.url, "sam")
    try:
        _, maya_events = await events(maya, setup.url)
        _, sam_events = await events(sam, setup.url)
        started = time.monotonic()
        await setup.console.desk.feed(Offered("maya", call_id, QUEUE, "1796040783.1", setup.clock()))
        kind, message = await maya_events.next(timeout=1.0)
        took = time.monotonic() - started
        assert kind == "card" and took < 1.0
        card = message["card"]
        assert card["call_id"] == call_id and card["status"] == "ringing" and card["queue"] == QUEUE
        view = card["view"]
        assert view["customer"] == {"id": "C-0005", "name": "Hedy Lamarr", "kind": "existing"}
        assert view["reason"] == "requested" and view["skill"] == "billing"
        assert view["verified"] is True and view["verified_how"] == "pin"
        assert view["caller_number"] == "+15550100005" and view["waited_s"] == 74
        assert view["intents"][0] == {"name": "ask_balance", "confidence": 0.94}
        assert {"name": "order_ref", "value": "100005"} in view["slots"]
        assert view["history"]["incidents"][0][0] == ["id", "500001"]
        assert view["history"]["bookings"] == []
        said = [line["text"] for line in view["transcript"]]
        assert said[1].startswith("hi I want to know why") and "[redacted]" in said
        assert "3141" not in json.dumps(card)  # the demo caller's PIN

        with pytest.raises(asyncio.TimeoutError):
            await sam_events.next(timeout=0.5)

        # the direct URL: maya may read it, sam may not, nor anyone a made-up call
        async with maya.get(setup.url + f"api/calls/{call_id}") as resp:
            assert resp.status == 200 and (await resp.json())["view"]["customer"]["name"] == "Hedy Lamarr"
        async with sam.get(setup.url + f"api/calls/{call_id}") as resp:
            assert resp.status == 403
            assert "Hedy" not in await resp.text()
        async with maya.get(setup.url + f"api/calls/{new_call_id()}") as resp:
            assert resp.status == 403
        async with maya.get(setup.url + "api/calls/..%2F..%2Fetc") as resp:
            assert resp.status in (403, 404)
        assert await setup.redis.zscore(agent_offers_key("maya"), call_id) is not None
        assert await setup.redis.zscore(agent_offers_key("sam"), call_id) is None

        # withdrawn (ring-no-answer), offered again, answered
        await setup.console.desk.feed(Withdrawn("maya", call_id, "ring-no-answer", setup.clock()))
        kind, message = await maya_events.next()
        assert message["card"]["status"] == "withdrawn" and message["card"]["why"] == "ring-no-answer"
        await setup.console.desk.feed(Offered("maya", call_id, QUEUE, "1796040783.1", setup.clock()))
        assert (await maya_events.next())[1]["card"]["status"] == "ringing"
        await setup.console.desk.feed(Answered("maya", call_id, setup.clock()))
        kind, message = await maya_events.next()
        assert message["card"]["status"] == "answered"
        with pytest.raises(asyncio.TimeoutError):
            await sam_events.next(timeout=0.3)

        # a new stream (a reload) starts with the desk as it is
        _, again = await events(maya, setup.url)
        assert setup.console.desk.cards("maya")[0].status == "answered"
    finally:
        await maya.close()
        await sam.close()


async def test_abandoned_withdraws_only_a_ringing_offer(setup: Setup) -> None:
    call_id = new_call_id()
    await seed_call(setup.redis, call_id)
    await setup.console.desk.feed(Offered("priya", call_id, QUEUE, "u1", setup.clock()))
    await setup.console.desk.feed(Withdrawn("priya", call_id, "abandoned"))
    card = setup.console.desk.cards("priya")[0]
    assert card.status == "withdrawn" and card.why == "abandoned"
    await setup.console.desk.feed(Answered("priya", call_id, setup.clock()))
    await setup.console.desk.feed(Withdrawn("priya", call_id, "abandoned"))  # too late: ignored
    assert setup.console.desk.cards("priya")[0].status == "answered"
    await setup.console.desk.feed(Offered("nobody", call_id, QUEUE, "u1", setup.clock()))  # logged, ignored


async def test_wrap_up_round_trip(setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    call_id = new_call_id()
    await seed_call(setup.redis, call_id)
    desk = setup.console.desk
    maya = await logged_in(setup.url, "maya")
    note = '<script>alert("x")</script> Refund of $15 promised & agreed'
    try:
        _, maya_events = await events(maya, setup.url)
        url = setup.url + f"api/calls/{call_id}/disposition"
        await desk.feed(Offered("maya", call_id, QUEUE, "1796040783.7", setup.clock()))
        await desk.feed(Answered("maya", call_id, setup.clock()))
        async with maya.post(url, json={"code": "resolved", "note": ""}) as resp:
            assert resp.status == 409  # not before the call is over
        setup.clock.advance(95)
        await desk.feed(Completed("maya", call_id, QUEUE, talk_s=95, wrapup_s=30, at=setup.clock()))
        for _ in range(3):
            kind, message = await maya_events.next()
            if message["card"]["status"] == "wrapup":
                break
        card = message["card"]
        assert card["wrapup_s"] == 30 and card["wrapup_remaining_s"] == 30 and card["talk_s"] == 95
        assert setup.control.calls == [("set_paused", "PJSIP/1001", True, "wrap-up")]

        async with maya.post(url, json={"code": "no-such-code", "note": ""}) as resp:
            assert resp.status == 400
        async with maya.post(url, data="code=resolved") as resp:
            assert resp.status == 415  # a form from anywhere cannot post
        evil = {"Origin": "http://evil.example"}
        async with maya.post(url, json={"code": "resolved"}, headers=evil) as resp:
            assert resp.status == 403

        setup.control.delay_s = 0.05  # a slow Asterisk: the double-click lands while the first is in flight
        body = {"code": "callback-promised", "note": note}
        first, second = await asyncio.gather(maya.post(url, json=body), maya.post(url, json=body))
        answers = sorted([await first.json(), await second.json()], key=lambda a: a["duplicate"])
        assert [a["duplicate"] for a in answers] == [False, True]
        assert all(a["code"] == "callback-promised" for a in answers)
        logged = [c for c in setup.control.calls if c[0] == "queue_log"]
        assert logged == [
            ("queue_log", QUEUE, "1796040783.7", "Maya Chen", "DISPOSITION", "callback-promised")
        ]
        stored = json.loads(await setup.redis.hget(disposition_key(call_id), "maya"))
        assert stored["code"] == "callback-promised" and stored["note"] == note
        assert stored["member"] == "Maya Chen" and stored["uniqueid"] == "1796040783.7"
        assert await setup.redis.ttl(disposition_key(call_id)) > 0

        async with maya.post(setup.url + "api/ready", json={}) as resp:
            assert resp.status == 200 and (await resp.json())["changed"] is True
        assert setup.control.calls[-1] == ("set_paused", "PJSIP/1001", False, "")
        async with maya.post(setup.url + "api/ready", json={}) as resp:  # clicked twice
            assert (await resp.json())["changed"] is False
        assert sum(1 for c in setup.control.calls if c[0] == "set_paused") == 2
        assert desk.cards("maya")[0].status == "done"

        async with maya.get(setup.url + f"api/calls/{call_id}") as resp:
            shown = await resp.json()
            assert shown["note"] == note and shown["disposition"] == "callback-promised"
    finally:
        await maya.close()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "Refund" not in text and "<script>" not in text, "the note never reaches a log line"
    assert "fifteen dollar" not in text and "+15550100005" not in text and "Hedy" not in text
    assert TOKENS["maya"] not in text


async def test_queue_log_failure_lets_the_agent_retry_and_the_countdown_unpauses(setup: Setup) -> None:
    call_id = new_call_id()
    await seed_call(setup.redis, call_id)
    desk = setup.console.desk
    await desk.feed(Offered("sam", call_id, "attendant-orders", "u-9", setup.clock()))
    await desk.feed(Answered("sam", call_id, setup.clock()))
    await desk.feed(Completed("sam", call_id, "attendant-orders", 40, 10, setup.clock()))
    sam = await logged_in(setup.url, "sam")
    try:
        url = setup.url + f"api/calls/{call_id}/disposition"
        setup.control.fail = 1
        async with sam.post(url, json={"code": "resolved", "note": "n"}) as resp:
            assert resp.status == 502
        async with sam.post(url, json={"code": "resolved", "note": "n"}) as resp:
            assert resp.status == 200 and (await resp.json())["duplicate"] is False
    finally:
        await sam.close()
    assert [c for c in setup.control.calls if c[0] == "queue_log"] == [
        ("queue_log", "attendant-orders", "u-9", "Sam Okafor", "DISPOSITION", "resolved")
    ]
    setup.clock.advance(9)
    await desk.expire()
    assert desk.cards("sam")[0].status == "wrapup"
    assert desk.payload(desk.cards("sam")[0])["wrapup_remaining_s"] == 1
    setup.clock.advance(1)
    await desk.expire()
    assert desk.cards("sam")[0].status == "done"
    assert setup.control.calls[-1] == ("set_paused", "PJSIP/1002", False, "")
    await desk.expire()
    assert sum(1 for c in setup.control.calls if c == ("set_paused", "PJSIP/1002", False, "")) == 1


async def test_a_console_restart_keeps_what_was_offered_readable(setup: Setup, redis_url: str) -> None:
    call_id = new_call_id()
    await seed_call(setup.redis, call_id, {**DEMO_CONTEXT, "customer": {"name": "Katherine Johnson"}})
    await setup.console.desk.feed(Offered("priya", call_id, "attendant-support", "u2", setup.clock()))
    r = aioredis.from_url(redis_url)
    other = build_console(roster(), r, FakeControl(), setup.clock)
    await other.start("127.0.0.1", 0)
    try:
        priya = await logged_in(other.url, "priya")
        async with priya.get(other.url + f"api/calls/{call_id}") as resp:
            assert resp.status == 200
            assert (await resp.json())["view"]["customer"]["name"] == "Katherine Johnson"
        await priya.close()
    finally:
        await other.close()
        await r.close()
