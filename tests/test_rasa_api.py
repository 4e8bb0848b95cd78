"""Rasa's HTTP API is closed: the running Rasa (the real stack) has no route that reads a tracker or takes
events — with or without the token, in a header or as ``?token=`` — only the Attendant channel, which refuses
a wrong secret; and the secret is on no process's command line."""

from __future__ import annotations

import json
import os
import secrets
import stat
from pathlib import Path

import pytest
import redis
import requests

from bot.tools.stack import RasaStack

pytestmark = pytest.mark.timeout(300)

# Every route of Rasa 3.6's HTTP API (rasa/server.py) that reads or changes a conversation or the model,
# and what reveals the server's state.
API_PATHS = [
    "/conversations/{sid}/tracker",
    "/conversations/{sid}/tracker/events",
    "/conversations/{sid}/messages",
    "/conversations/{sid}/execute",
    "/conversations/{sid}/trigger_intent",
    "/conversations/{sid}/predict",
    "/conversations/{sid}/story",
    "/model/parse",
    "/model/predict",
    "/model/train",
    "/model/test/intents",
    "/model/test/stories",
    "/model",
    "/domain",
    "/status",
    "/version",
    "/webhooks/rest/webhook",
]
METHODS = ["GET", "POST", "PUT", "DELETE"]
REFUSED = {401, 403, 404, 405}


@pytest.fixture(scope="module")
def live_call(rasa: RasaStack, redis_url: str) -> str:
    """A conversation that exists: started through the channel, as the gateway does."""
    sid = f"door-{secrets.token_hex(6)}"
    r = requests.post(
        rasa.webhook_url,
        json={"sender": sid, "message": "/session_start", "metadata": {"call_id": sid}},
        headers={"Authorization": f"Bearer {rasa.token}"},
        timeout=60,
    )
    assert r.status_code == 200 and r.json(), r.text
    assert redis.Redis.from_url(redis_url).exists(f"attendant:tracker:{sid}")
    return sid


def slot_events(redis_url: str, sid: str) -> list[dict[str, object]]:
    raw = redis.Redis.from_url(redis_url).get(f"attendant:tracker:{sid}")
    assert raw is not None
    return [e for e in json.loads(raw)["events"] if e["event"] == "slot" and e["name"] == "verified"]


def test_no_route_reads_a_tracker_or_takes_events(rasa: RasaStack, live_call: str, redis_url: str) -> None:
    forged = [{"event": "slot", "name": "verified", "value": True}]
    ways = {
        "no token": ({}, {}),
        "?token=": ({"token": rasa.token}, {}),
        "bearer": ({}, {"Authorization": f"Bearer {rasa.token}"}),
    }
    before = slot_events(redis_url, live_call)
    answered: dict[str, int] = {}
    for path in API_PATHS:
        url = rasa.rasa_url + path.format(sid=live_call)
        for method in METHODS:
            for way, (params, headers) in ways.items():
                r = requests.request(method, url, params=params, headers=headers, json=forged, timeout=10)
                answered[f"{method} {path} ({way})"] = r.status_code
                # Nothing of the conversation, whatever the status (a 404 page may echo the path).
                assert "latest_message" not in r.text and '"events"' not in r.text
    let_in = {k: v for k, v in answered.items() if v not in REFUSED}
    assert not let_in, let_in
    assert len(answered) == len(API_PATHS) * len(METHODS) * len(ways)
    # The forged "verified" slot never reached the live conversation.
    assert slot_events(redis_url, live_call) == before
    # What does answer: Rasa's own hello (its version, nothing else) and the channel's health route.
    hello = requests.get(rasa.rasa_url + "/", timeout=5)
    assert hello.status_code == 200 and hello.text.startswith("Hello from Rasa")
    assert requests.get(rasa.health_url, timeout=5).json() == {"status": "ok"}


def test_the_channel_refuses_a_wrong_secret(rasa: RasaStack, live_call: str) -> None:
    body = {"sender": live_call, "message": "what is my balance"}
    for headers, params in [
        ({}, {}),
        ({"Authorization": "Bearer wrong"}, {}),
        ({"Authorization": f"Bearer {rasa.token}x"}, {}),
        ({"Authorization": f"Bearer {rasa.token[1:]}"}, {}),  # the secret starts with "-": all of it counts
        ({"Authorization": rasa.token}, {}),  # no scheme
        ({}, {"token": rasa.token}),  # Rasa's ?token= does not open the channel
    ]:
        for route in ("webhook", "warmup"):
            r = requests.post(
                f"{rasa.channel_url}/{route}", json=body, headers=headers, params=params, timeout=10
            )
            assert r.status_code == 401, (route, headers, params, r.status_code)
    ok = requests.post(
        f"{rasa.channel_url}/warmup", headers={"Authorization": f"Bearer {rasa.token}"}, timeout=60
    )
    assert ok.status_code == 200 and ok.json() == {"status": "ok"}


def test_the_secret_is_on_no_command_line(rasa: RasaStack) -> None:
    assert rasa.token.startswith("-")  # the fixture's secret: a leading "-" must reach the channel intact
    seen = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        seen += 1
        assert rasa.token.encode() not in cmdline, f"pid {proc.name}: {cmdline[:200]!r}"
    assert seen > 3
    pid = rasa.process("rasa").pid  # type: ignore[union-attr]
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"run" in argv and b"--enable-api" not in argv and not any(a.startswith(b"--auth") for a in argv)
    # It travels in the environment, which only the owner (and root) may read.
    environ = Path(f"/proc/{pid}/environ")
    assert f"RASA_TOKEN={rasa.token}".encode() in environ.read_bytes().split(b"\0")
    assert stat.S_IMODE(environ.stat().st_mode) & 0o077 == 0
    assert environ.stat().st_uid == os.getuid()


FORGED_ACTION_CALL = {
    "next_action": "action_resume_task",
    "sender_id": "door-forged",
    "version": "3.6.21",
    "domain": {"responses": {}},
    "tracker": {
        "sender_id": "door-forged",
        "slots": {"verified": True, "active_task": "balance", "customer_id": "C-0001"},
        "latest_message": {"intent": {}, "entities": [], "text": ""},
        "events": [],
        "paused": False,
        "followup_action": None,
        "active_loop": {},
        "latest_action_name": None,
    },
}


def test_the_action_server_refuses_a_forged_tracker_without_the_secret(rasa: RasaStack) -> None:
    """rasa-sdk's /webhook runs any action on a tracker of the caller's making ("verified": true): without the
    stack's secret it now answers 401, and it never tells the balance."""
    url = f"{rasa.action_url}/webhook"
    for headers, params in [
        ({}, {}),
        ({"Authorization": "Bearer wrong"}, {}),
        ({"Authorization": f"Bearer {rasa.token[1:]}"}, {}),
        ({}, {"token": rasa.token}),
    ]:
        r = requests.post(url, json=FORGED_ACTION_CALL, headers=headers, params=params, timeout=10)
        assert r.status_code == 401 and "dollars" not in r.text, (headers, params, r.status_code)
    assert requests.get(f"{rasa.action_url}/actions", timeout=10).status_code == 401
    assert requests.get(f"{rasa.action_url}/health", timeout=10).json() == {"status": "ok"}
    # The check is what stops it: with the secret (what Rasa sends), the same call runs.
    ok = requests.post(
        url, json=FORGED_ACTION_CALL, headers={"Authorization": f"Bearer {rasa.token}"}, timeout=30
    )
    assert ok.status_code == 200 and "dollars" in ok.text
