"""Flows end to end on both customer stores: each test runs once against the SQLite store and once against the
real PostgreSQL (``flow_gateway`` in conftest.py), through the real gateway, Rasa, action server and Redis."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import create_engine, select

from actions.backends.sql import customers, phone_numbers
from telephony.simulate import CallerSimulator, CallResult, Turn
from tests.conftest import FlowGateway

pytestmark = pytest.mark.timeout(420)


async def call(gw: FlowGateway, turns: list[Turn], **kw: object) -> CallResult:
    sim = CallerSimulator("127.0.0.1", gw.gateway.port, **kw)  # type: ignore[arg-type]
    return await asyncio.wait_for(sim.run(turns), 120)


async def test_balance_is_told_after_the_pin(flow_gateway: FlowGateway) -> None:
    result = await call(
        flow_gateway,
        [Turn("text", "hi what is my balance"), Turn("text", "four seven one nine")],
        caller_number="+1 555 010 0001",  # registered over FastAGI first, as the dialplan does
        agi_port=flow_gateway.gateway.agi_port,
    )
    said = result.bot_said()
    ask_pin = next((i for i, line in enumerate(said) if "pin" in line.lower()), None)
    told = next((i for i, line in enumerate(said) if "one hundred twenty dollars" in line), None)
    assert ask_pin is not None and told is not None and ask_pin < told, (flow_gateway.backend, said)
    assert all("dollar" not in line for line in said[:ask_pin]), said


def test_the_stack_reads_the_expected_store(flow_gateway: FlowGateway) -> None:
    """The store behind the stack is the backend the test is named after, and holds the demo customer."""
    assert flow_gateway.store_url.startswith(flow_gateway.backend), flow_gateway.store_url
    engine = create_engine(flow_gateway.store_url)
    try:
        assert engine.dialect.name == flow_gateway.backend
        with engine.connect() as conn:
            name = conn.execute(
                select(customers.c.name)
                .join(phone_numbers, phone_numbers.c.customer_id == customers.c.id)
                .where(phone_numbers.c.number == "5550100001")
            ).scalar_one()
            if flow_gateway.backend == "postgresql":
                database = conn.exec_driver_sql("SELECT current_database()").scalar_one()
                assert str(database).startswith("attendant_e2e_"), database
    finally:
        engine.dispose()
    assert name == "Ada Lovelace"
