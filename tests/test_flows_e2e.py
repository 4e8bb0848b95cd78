"""Every self-service flow end to end, on both customer stores at once.

Each test places the same call twice, at the same time: once through the gateway whose stack reads the SQLite
store, once through the gateway whose stack reads the real PostgreSQL (``tests/conftest.py``). Everything is
real (the gateway over TCP in Asterisk's byte format, FastAGI registration of the caller's number, Piper
speaking every reply in real time, Rasa, the action server, Redis); only the recogniser is bypassed: the
caller's words are injected as text. The checks cover what the caller heard and what the store holds after.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import pytest
import redis
from sqlalchemy import create_engine, select

from actions.backends.schema import customers, phone_numbers
from actions.store import CustomerStore, normalise_number, open_store
from telephony.callstate import ACTIVE_KEY, call_key
from telephony.sim import ENDED_BOT_HANGUP, CallerSimulator, CallResult, Turn
from tests.conftest import GatewayProcess

pytestmark = pytest.mark.timeout(600)

WORDS = "zero one two three four five six seven eight nine".split()


@dataclass(frozen=True)
class Backend:
    name: str
    gateway: GatewayProcess
    store_url: str


@pytest.fixture(scope="module")
def backends(
    gateway_text: GatewayProcess,
    gateway_text_pg: GatewayProcess,
    sqlite_store_url: str,
    pg_store_url: str,
) -> list[Backend]:
    return [
        Backend("sqlite", gateway_text, sqlite_store_url),
        Backend("postgresql", gateway_text_pg, pg_store_url),
    ]


@asynccontextmanager
async def store_of(b: Backend) -> AsyncIterator[CustomerStore]:
    store = open_store(b.store_url)
    try:
        yield store
    finally:
        await store.close()


async def call(b: Backend, turns: list[Turn], number: str | None) -> CallResult:
    sim = CallerSimulator(
        "127.0.0.1", b.gateway.port, caller_number=number, agi_port=b.gateway.agi_port if number else None
    )
    return await asyncio.wait_for(sim.run(turns), 240)


async def on_both(backends: list[Backend], check: Callable[[Backend], Awaitable[None]]) -> None:
    """Run ``check`` for both stores at once; report every backend's failure, named."""
    results = await asyncio.gather(*(check(b) for b in backends), return_exceptions=True)
    failures = [
        f"[{b.name}] {r!r}" for b, r in zip(backends, results, strict=True) if isinstance(r, BaseException)
    ]
    assert not failures, "\n".join(failures)


def texts(*words: str) -> list[Turn]:
    return [Turn("text", w) for w in words]


def said(result: CallResult) -> str:
    return " | ".join(result.bot_said())


def digits_after(pattern: str, text: str) -> str:
    match = re.search(pattern + r" ((?:(?:zero|one|two|three|four|five|six|seven|eight|nine) ?){6})", text)
    assert match, text
    return "".join(str(WORDS.index(w)) for w in match[1].split())


def outcome(call_id: object, timeout: float = 15.0) -> dict[str, str]:
    r = redis.Redis(decode_responses=True)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = r.hgetall(call_key(str(call_id)))
            if record.get("outcome") and r.zscore(ACTIVE_KEY, str(call_id)) is None:
                return record
            time.sleep(0.05)
        raise AssertionError(f"no outcome for {call_id}")
    finally:
        r.close()


# --- the flows -------------------------------------------------------------------------------------------


async def test_balance_by_pin_and_by_date_of_birth(backends: list[Backend]) -> None:
    async def check(b: Backend) -> None:
        ada, grace = await asyncio.gather(
            call(b, texts("hi what is my balance", "four seven one nine"), "+1 555 010 0001"),
            call(
                b,
                texts("whats my balance please", "i forgot my pin", "december ninth nineteen oh six"),
                "+1 555 010 0002",
            ),
        )
        lines = ada.bot_said()
        ask = next(i for i, line in enumerate(lines) if "PIN" in line)
        told = next(i for i, line in enumerate(lines) if "one hundred twenty dollars and fifty cents" in line)
        assert ask < told and "dollar" not in " ".join(lines[:ask]), lines
        assert "ninety nine cents" in said(grace), said(grace)
        # Neither secret reached the gateway's transcript: the turns are masked.
        assert [e.text for e in ada.transcript if e.who == "caller"][1] == "[redacted]"
        assert [e.text for e in grace.transcript if e.who == "caller"][2] == "[redacted]"

    await on_both(backends, check)


async def test_order_status_then_a_new_order(backends: list[Backend]) -> None:
    async def check(b: Backend) -> None:
        result = await call(
            b,
            texts(
                "where is my order",
                "four seven one nine",
                "one zero zero zero zero four",
                "yes",
                "yes",
                "i would like to order a phone charger",
                "yes",
                "no thanks",
                "no that's all",
            ),
            "+1 555 010 0001",
        )
        text = said(result)
        assert "That's order one zero zero zero zero four. Is that right?" in text
        assert "is being prepared and should arrive" in text
        assert (
            "One phone charger for nineteen dollars and ninety nine cents. Shall I place the order?" in text
        )
        number = digits_after("Your order number is", text)
        async with store_of(b) as store:
            order = await store.get_order(number, "C-0001")
        assert order is not None and [(i.product_id, i.qty) for i in order.items] == [("P-100", 1)]
        assert result.ended_by == ENDED_BOT_HANGUP and "Thank you for calling" in text

    await on_both(backends, check)


async def test_book_move_and_cancel_an_appointment(backends: list[Backend]) -> None:
    async def check(b: Backend) -> None:
        result = await call(
            b,
            texts(
                "can i book an appointment next thursday morning",
                "eight zero eight six",
                "yes",
                "yes",
                "when is my appointment",
                "yes",
                "i need to move my appointment",
                "next friday afternoon",
                "yes",
                "yes",
                "cancel my appointment please",
                "yes",
            ),
            "+1 555 010 0003",
        )
        text = said(result)
        assert "You're booked on Thursday" in text, text
        assert "Your appointment is on Thursday" in text, text
        assert "Your appointment is now on Friday" in text, text
        assert "Your appointment is cancelled." in text, text
        async with store_of(b) as store:
            assert await store.next_booking("C-0003") is None

    await on_both(backends, check)


async def test_support_incident_and_its_status(backends: list[Backend]) -> None:
    async def check(b: Backend) -> None:
        result = await call(
            b,
            texts(
                "my headset stopped working completely",
                "three one four one",
                "yes",
                "tomorrow between two and four",
                "yes",
                "whats happening with my ticket",
            ),
            "+1 555 010 0005",
        )
        text = said(result)
        ticket = digits_after("Your ticket number is", text)
        assert "we'll call you back tomorrow between two p m and four p m" in text, text
        async with store_of(b) as store:
            incident = await store.get_incident(ticket, "C-0005")
        assert incident is not None and incident.priority == 1 and incident.product_id == "P-200"
        assert normalise_number(incident.callback_number) == "5550100005"
        spoken_ticket = " ".join(WORDS[int(d)] for d in ticket)
        assert f"Ticket {spoken_ticket} is open" in text, text

    await on_both(backends, check)


async def test_information_line_and_a_referral(backends: list[Backend]) -> None:
    async def check(b: Backend) -> None:
        number = f"+1555{datetime.now():%H%M%S}{'1' if b.name == 'sqlite' else '2'}"
        result = await call(
            b,
            texts(
                "hello a friend recommended you",
                "what are your opening hours on saturday",
                "where is your riverside branch",
                "how long does delivery take",
            ),
            number,
        )
        text = said(result)
        assert "welcome" in result.bot_said()[0].lower(), text
        assert "recommendation" in text and "Saturday" in text and "River Road" in text, text
        assert "delivery" in text.lower() or "working days" in text, text
        async with store_of(b) as store:
            customer = await store.find_customer_by_number(number)
        assert customer is not None and customer.referral_source == "friend"

    await on_both(backends, check)


async def test_a_person_mid_task_gets_the_context(backends: list[Backend]) -> None:
    async def check(b: Backend) -> None:
        result = await call(
            b,
            texts("i want to place an order", "four seven one nine", "actually get me a real person"),
            "+1 555 010 0001",
        )
        assert result.ended_by == ENDED_BOT_HANGUP, result.summary()
        record = await asyncio.to_thread(outcome, result.call_id)
        assert (record["outcome"], record["reason"], record.get("skill")) == ("handoff", "requested", "sales")

    await on_both(backends, check)


async def test_the_stacks_read_the_expected_stores(backends: list[Backend]) -> None:
    """Each backend's stack reads its own database, which holds the demo customer."""
    for b in backends:
        engine = create_engine(b.store_url)
        try:
            assert engine.dialect.name == b.name
            with engine.connect() as conn:
                name = conn.execute(
                    select(customers.c.name)
                    .join(phone_numbers, phone_numbers.c.customer_id == customers.c.id)
                    .where(phone_numbers.c.number == "5550100001")
                ).scalar_one()
                if b.name == "postgresql":
                    database = conn.exec_driver_sql("SELECT current_database()").scalar_one()
                    assert str(database).startswith("attendant_e2e_"), database
        finally:
            engine.dispose()
        assert name == "Ada Lovelace"
