"""The privacy scan: scripted calls say and key card numbers, security codes, PINs and dates of birth at every
point of the dialogue; afterwards nothing of them is found unmasked anywhere the system keeps things.

Everything is real: a Rasa server and action server of the test's own (a fresh SQLite store, its own Redis
database so that "every key" means this test's keys only), the gateway process over TCP in Asterisk's byte
format, FastAGI registration of the caller's number, Piper speaking every reply. The caller's words are
injected as text (after the recogniser) or keyed (DTMF frames).

Where secrets go in: the first utterance (the demo customer's real PIN, bare), mid-task (a card number and its
code, said), a card keyed when nobody asked, at the PIN prompt (the real PIN: verification must still work),
after verification (date of birth and PIN said, PIN keyed), in a support incident's description (a card
spoken as words, its security code, a date of birth), and in the words that ask for a person (the handoff).

What is scanned afterwards: every Redis key of the database (strings, hashes, lists, sets, sorted sets and
streams: trackers, transcripts, call records with the handoff context, secrets put aside), every text column
of every table of the store, and the log files of Rasa, the action server and the gateway.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml

from actions.backends.seed import CUSTOMERS
from actions.shared.masking import luhn_ok
from bot.tools.stack import RasaStack
from telephony.callstate import RETENTION_S, call_key
from telephony.sim import CallerSimulator, CallResult, Turn
from tests.conftest import MODEL, REPO, GatewayProcess, free_port, start_gateway, stop_gateway

pytestmark = pytest.mark.timeout(900)

REDIS_DB = 13
"""This test's own Redis database (flushed at the start): every key in it comes from these calls."""
WORDS = "zero one two three four five six seven eight nine".split()
ALAN = next(c for c in CUSTOMERS if c.customer_id == "C-0003")
assert ALAN.pin is not None and ALAN.dob is not None


def card_number(first: str) -> str:
    """A fresh synthetic 16-digit card number (Luhn-valid) starting with ``first``."""
    body = first + "".join(secrets.choice("0123456789") for _ in range(14))
    return next(body + d for d in "0123456789" if luhn_ok(body + d))


def spoken(digits: str) -> str:
    return " ".join(WORDS[int(d)] for d in digits)


def grouped(digits: str) -> str:
    return " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))


CARD_SAID, CARD_KEYED, CARD_WORDS, CARD_HANDOFF = (card_number(f) for f in "4523")
CVV = f"{secrets.choice('2345678')}{secrets.randbelow(10)}{secrets.choice('2345678')}"
PIN, DOB = ALAN.pin, ALAN.dob


def forbidden() -> dict[str, re.Pattern[str]]:
    """What must never be found: each secret typed (with or without spaces and dashes) or spoken."""

    def typed(digits: str) -> str:
        # not inside a longer number, not the decimals of a timestamp
        return r"(?<![\d.])" + r"[\s-]*".join(digits) + r"(?!\d)"

    def said(digits: str) -> str:
        # not inside a longer number said in words (a ticket number the bot reads out)
        alone = "".join(f"(?<!{w} )" for w in [*WORDS, "oh"])
        more = r"(?!\W+(?:" + "|".join([*WORDS, "oh"]) + r")\b)"
        return alone + r"\b" + r"\W+".join(WORDS[int(d)] for d in digits) + r"\b" + more

    found: dict[str, re.Pattern[str]] = {}
    for name, digits in {
        "card said": CARD_SAID,
        "card keyed": CARD_KEYED,
        "card in words": CARD_WORDS,
        "card at handoff": CARD_HANDOFF,
    }.items():
        found[name] = re.compile(f"{typed(digits)}|{said(digits)}", re.I)
    # three digits are everywhere (times, amounts): the code counts where it was said, after its name
    found["security code"] = re.compile(rf"(?:cvv|code)\W+(?:is\W+)?(?:{CVV}(?!\d)|{said(CVV)})", re.I)
    found["pin"] = re.compile(f"{typed(PIN)}|{said(PIN)}", re.I)
    month = DOB.strftime("%B")
    found["date of birth"] = re.compile(
        "|".join(
            [
                DOB.isoformat(),
                rf"(?<!\d){DOB.month}/{DOB.day}/{DOB.year}",
                rf"{month}\W+twenty\W+third\W+nineteen\W+twelve",
                rf"{month}\W+{DOB.day}\W+{DOB.year}",
            ]
        ),
        re.I,
    )
    return found


@pytest.fixture(scope="module")
def redis_db_url() -> Iterator[str]:
    url = f"redis://127.0.0.1:6379/{REDIS_DB}"
    r = redis.Redis.from_url(url)
    try:
        r.ping()
    except redis.RedisError as exc:  # pragma: no cover - environment problem, said plainly
        pytest.fail(f"the test needs the real Redis at {url}: {exc}")
    r.flushdb()
    r.close()
    yield url


@pytest.fixture(scope="module")
def store_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from actions.backends.seed import main as seed

    path = tmp_path_factory.mktemp("privacy-store") / "attendant.db"
    assert seed(["--url", f"sqlite:///{path}"]) == 0
    return path


@pytest.fixture(scope="module")
def stack(
    redis_db_url: str, store_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RasaStack]:
    if not MODEL.exists():
        pytest.fail("no trained model: run the tests with 'make test' (it trains first)")
    s = RasaStack(
        rasa_port=free_port(),
        action_port=free_port(),
        token=secrets.token_urlsafe(16),
        redis_url=redis_db_url,
        model_path=MODEL,
        log_dir=tmp_path_factory.mktemp("privacy-logs"),
        extra_env={"ATTENDANT_STORE_URL": f"sqlite:///{store_file}"},
    )
    with s:
        s.wait_ready(timeout=300)
        yield s


@pytest.fixture(scope="module")
def gateway(
    stack: RasaStack, redis_db_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    gw = start_gateway(
        stack, redis_db_url, tmp_path_factory.mktemp("privacy-gw") / "gateway.log", VOSK_MODEL=""
    )
    yield gw
    stop_gateway(gw)


async def place(gw: GatewayProcess, redis_url: str, turns: list[Turn]) -> CallResult:
    sim = CallerSimulator(
        "127.0.0.1",
        gw.port,
        caller_number="+1 555 010 0003",
        agi_port=gw.agi_port,
        redis_url=redis_url,
    )
    return await asyncio.wait_for(sim.run(turns), 300)


def text(words: str) -> Turn:
    return Turn("text", words)


def redis_dump(url: str) -> dict[str, str]:
    """Every key of the database and everything in it, as text."""
    r = redis.Redis.from_url(url, decode_responses=True)
    out: dict[str, str] = {}
    try:
        for key in r.scan_iter(count=500):
            kind = r.type(key)
            if kind == "string":
                value: object = r.get(key)
            elif kind == "hash":
                value = r.hgetall(key)
            elif kind == "list":
                value = r.lrange(key, 0, -1)
            elif kind == "set":
                value = sorted(r.smembers(key))
            elif kind == "zset":
                value = r.zrange(key, 0, -1, withscores=True)
            elif kind == "stream":
                value = r.xrange(key)
            else:
                value = f"<{kind}>"
            out[f"redis {kind} {key}"] = str(value)
    finally:
        r.close()
    return out


def store_dump(path: Path) -> dict[str, str]:
    """Every row of every table of the SQLite store, as text."""
    out: dict[str, str] = {}
    with sqlite3.connect(path) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            rows = db.execute(f'SELECT * FROM "{table}"').fetchall()  # table names from the schema
            out[f"store table {table}"] = "\n".join(" | ".join(str(v) for v in row) for row in rows)
    return out


def log_dump(stack: RasaStack, gw: GatewayProcess) -> dict[str, str]:
    return {
        "log rasa": stack.log_path("rasa").read_text(errors="replace"),
        "log actions": stack.log_path("actions").read_text(errors="replace"),
        "log gateway": gw.log.read_text(errors="replace"),
    }


def leaks(places: dict[str, str]) -> list[str]:
    found = []
    for where, content in places.items():
        for what, pattern in forbidden().items():
            m = pattern.search(content)
            if m:
                around = content[max(0, m.start() - 60) : m.end() + 60].replace("\n", " ")
                found.append(f"{what} in {where}: ...{around}...")
    return found


def test_the_scan_finds_what_it_looks_for() -> None:
    """The patterns see the secrets in every form the calls use (so a clean scan means something)."""
    samples = {
        "card said": grouped(CARD_SAID),
        "card keyed": CARD_KEYED,
        "card in words": spoken(CARD_WORDS),
        "card at handoff": CARD_HANDOFF,
        "security code": f"my cvv is {CVV}",
        "pin": spoken(PIN),
        "date of birth": DOB.isoformat(),
    }
    patterns = forbidden()
    for what, sample in samples.items():
        assert patterns[what].search(sample), what
    assert not leaks({"clean": "my card number is [card] and my cvv is [cvv]; t=1764518100.1234"})
    longer = f"Your ticket number is one {spoken(PIN)} two."  # a PIN's words inside a longer number
    assert not patterns["pin"].search(longer)
    assert patterns["pin"].search(f"my pin is {spoken(PIN)}.")


async def test_no_secret_said_or_keyed_is_kept_anywhere(
    gateway: GatewayProcess, stack: RasaStack, redis_db_url: str, store_file: Path
) -> None:
    month = DOB.strftime("%B").lower()
    first = await place(
        gateway,
        redis_db_url,
        [
            text(PIN),  # the first words: the real PIN, out of turn
            text("what are your opening hours"),  # (understood turns between: two misses hand over)
            text(f"my card number is {grouped(CARD_SAID)} and my cvv is {CVV}"),
            text("what are your opening hours on saturday"),
            Turn("dtmf", CARD_KEYED + "#"),  # keyed, nobody asked
            text("what is my balance"),
            text(spoken(PIN)),  # at the PIN prompt: verification must still work
            text(f"my date of birth is {month} twenty third nineteen twelve and my pin is {PIN}"),
            text("where is your riverside branch"),
            Turn("dtmf", PIN + "#"),  # the PIN keyed after verification
            text("what are your opening hours"),
            text(f"i want to speak to a real person my card is {CARD_HANDOFF}"),
        ],
    )
    heard = " | ".join(first.bot_said())
    assert "one thousand two hundred thirty four dollars" in heard, first.summary() + heard
    assert not any(t.skipped for t in first.turns), first.summary() + heard
    r = redis.Redis.from_url(redis_db_url, decode_responses=True)
    try:
        record = r.hgetall(call_key(first.call_id))
    finally:
        r.close()
    assert record.get("outcome") == "handoff", record

    second = await place(
        gateway,
        redis_db_url,
        [
            text("i have a problem"),
            text("i forgot my pin"),
            text(f"{month} twenty third nineteen twelve"),  # at the date-of-birth prompt
            text(  # the incident's description
                "my headset stopped working completely after i read out my card number "
                f"{spoken(CARD_WORDS)} and the security code {spoken(CVV)} and my birthday {DOB.month}/"
                f"{DOB.day}/{DOB.year}"
            ),
            text("yes"),
            text("tomorrow between two and four"),
            text("yes"),
        ],
    )
    heard = " | ".join(second.bot_said())
    assert "ticket number" in heard.lower(), second.summary() + heard
    with sqlite3.connect(store_file) as db:
        descriptions = [row[0] for row in db.execute("SELECT description FROM incidents")]
    assert any("headset" in d for d in descriptions), descriptions

    await asyncio.sleep(1.0)  # the last writes (call record, logs) land
    places = {**redis_dump(redis_db_url), **store_dump(store_file), **log_dump(stack, gateway)}
    assert any(k.startswith("redis string attendant:tracker:") for k in places), sorted(places)
    assert any(k.startswith("redis stream attendant:call:") for k in places), sorted(places)
    found = leaks(places)
    assert not found, "\n".join(found)

    # Trackers expire like every other key of a call; the store and the logs are the owner's only.
    r = redis.Redis.from_url(redis_db_url)
    try:
        for result in (first, second):
            ttl = r.ttl(f"attendant:tracker:{result.call_id}")
            assert 0 < ttl <= RETENTION_S, ttl
    finally:
        r.close()
    for path in (store_file, stack.log_path("rasa"), stack.log_path("actions")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, (path, oct(path.stat().st_mode))


def test_trackers_expire_with_the_calls_retention() -> None:
    endpoints = yaml.safe_load((REPO / "bot" / "rasa" / "endpoints.yml").read_text())
    assert endpoints["tracker_store"]["record_exp"] == RETENTION_S


def test_a_new_store_file_is_the_owners_only(tmp_path: Path) -> None:
    from actions.backends.schema import make_engine

    path = tmp_path / "run" / "store.db"
    engine = make_engine(f"sqlite:///{path}", 2.0, 1, create=True)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x TEXT)")
    finally:
        engine.dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    path.chmod(0o644)  # an older store, readable by all: opened again, it is the owner's only
    make_engine(f"sqlite:///{path}", 2.0, 1).dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
