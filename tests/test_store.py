"""The customer store: one behaviour suite over SQLite (a temporary file) and the real PostgreSQL (a fresh
database per test, created and dropped here), plus timeouts, the seed command and the HTTP adapter point.

PostgreSQL is reached through ``ATTENDANT_TEST_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``,
used only to create and drop the per-test databases).

Why this file is long: it is one suite over one interface, every section on the same database fixtures (each
test runs on both databases), so splitting it would spread those fixtures over several files.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import fields
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from sqlalchemy.engine import make_url

from actions.backends.base import caller_kind
from actions.backends.schema import make_engine
from actions.backends.seed import NEW_NUMBER, seed
from actions.backends.sql import SqlStore
from actions.store import (
    EXISTING,
    NEW,
    RETURNING,
    BackendUnavailable,
    Booking,
    Customer,
    LockPolicy,
    NotFound,
    OrderLine,
    SlotTaken,
    StoreConfig,
    StoreConfigError,
    Verification,
    open_store,
)

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("ATTENDANT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")

ADA = {
    "id": "C-0001",
    "number": "+15550100001",
    "pin": "4719",
    "dob": date(1815, 12, 10),
    "name": "Ada Lovelace",
}
KATHERINE = {"id": "C-0004", "number": "+15550100004", "pin": "1968", "dob": date(1918, 8, 26)}
HEDY = {"id": "C-0005", "number": "+15550100005"}
RETURNING_CALLER = {"id": "C-0006", "number": "+15550100006"}
SLACK_S = 0.75
"""How much later than its timeout a call may give up (scheduling on a busy test machine)."""
SECRETS_IN_CLEAR = ("4719", "2580", "8086", "1968", "3141", "1815-12-10", "1918-08-26")


# --- databases ------------------------------------------------------------------------------------------


def _pg_admin() -> Any:
    try:
        conn = psycopg2.connect(PG_ADMIN_URL, connect_timeout=3)
    except psycopg2.OperationalError as exc:  # pragma: no cover - environment problem, said plainly
        pytest.fail(f"these tests need the real PostgreSQL at {PG_ADMIN_URL}: {exc}")
    conn.autocommit = True
    return conn


@contextmanager
def fresh_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """A URL for an empty database of ``kind``; a PostgreSQL one is dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'attendant.db'}"
        return
    name = f"attendant_test_{secrets.token_hex(6)}"
    admin = _pg_admin()
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database, once per backend."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def seeded_url(db_url: str) -> str:
    """The database with the schema and the demo data."""
    engine = make_engine(db_url, 30.0, 1, create=True)
    try:
        seed(engine)
    finally:
        engine.dispose()
    return db_url


@pytest.fixture
async def store(seeded_url: str) -> AsyncIterator[SqlStore]:
    s = SqlStore(seeded_url, timeout_s=2.0)
    yield s
    await s.close()


def _now() -> datetime:
    return datetime.now()


# --- callers --------------------------------------------------------------------------------------------


SPELLINGS = ("+15550100001", "15550100001", "5550100001", "(555) 010-0001", "+1 555.010.0001", "+15550100011")


async def test_lookup_by_number_in_any_format(store: SqlStore) -> None:
    for spelling in SPELLINGS:  # the last is her second number
        customer = await store.find_customer_by_number(spelling)
        assert customer is not None, spelling
        assert customer.customer_id == ADA["id"] and customer.name == ADA["name"]
        assert (
            customer.has_pin
            and customer.has_dob
            and customer.has_bought
            and customer.loyalty_tier == "silver"
        )


async def test_unknown_and_withheld_numbers(store: SqlStore) -> None:
    assert await store.find_customer_by_number(NEW_NUMBER) is None
    assert await store.find_customer_by_number(None) is None
    assert await store.find_customer_by_number("") is None
    assert await store.find_customer_by_number("123") is None
    assert await store.find_by_phone(ADA["number"]) == await store.get_customer(ADA["id"])


async def test_caller_kinds_from_the_seed(store: SqlStore) -> None:
    assert caller_kind(await store.find_customer_by_number(NEW_NUMBER)) == NEW
    returning = await store.find_customer_by_number(RETURNING_CALLER["number"])
    assert returning is not None and returning.name is None and not returning.has_pin
    assert caller_kind(returning) == RETURNING and returning.call_count == 2
    katherine = await store.find_customer_by_number(KATHERINE["number"])
    assert katherine is not None and caller_kind(katherine) == EXISTING
    assert katherine.loyalty_tier == "gold" and katherine.referral_source == "friend"


async def test_record_call_keeps_caller_history(store: SqlStore) -> None:
    at = _now().replace(microsecond=0)
    first = await store.record_call(NEW_NUMBER, at=at)
    assert first is not None and first.kind == NEW
    assert (
        first.customer.call_count == 1
        and first.customer.first_contact == at
        and not first.customer.has_bought
    )
    second = await store.record_call("(555) 010-0009", at=at + timedelta(minutes=5))
    assert second is not None and second.kind == RETURNING
    assert second.customer.customer_id == first.customer.customer_id
    assert second.customer.call_count == 2 and second.customer.last_call == at + timedelta(minutes=5)
    assert second.customer.first_contact == at

    before = await store.get_customer(ADA["id"])
    assert before is not None
    ada = await store.record_call(ADA["number"], at=at)
    assert ada is not None and ada.kind == EXISTING
    assert ada.customer.call_count == before.call_count + 1 and ada.customer.last_call == at
    assert ada.customer.first_contact == before.first_contact

    assert await store.record_call(None) is None
    await store.set_referral_source(first.customer.customer_id, "friend")
    referred = await store.get_customer(first.customer.customer_id)
    assert referred is not None and referred.referral_source == "friend"
    with pytest.raises(NotFound):
        await store.set_referral_source("C-NOPE", "friend")


async def test_concurrent_first_calls_from_one_number_make_one_record(
    store: SqlStore, seeded_url: str
) -> None:
    other = SqlStore(seeded_url, timeout_s=2.0)
    try:
        results = await asyncio.gather(*(s.record_call("+15550100077") for s in (store, other) * 3))
    finally:
        await other.close()
    ids = {r.customer.customer_id for r in results if r is not None}
    assert len(ids) == 1
    assert sorted(r.customer.call_count for r in results if r is not None) == [1, 2, 3, 4, 5, 6]
    assert [r.kind for r in results if r is not None].count(NEW) == 1


# --- verification ---------------------------------------------------------------------------------------


async def test_verify_pin(store: SqlStore) -> None:
    assert await store.verify_pin(ADA["id"], ADA["pin"])
    assert await store.check_pin(ADA["id"], ADA["pin"])
    assert not await store.verify_pin(ADA["id"], "0000")
    assert not await store.verify_pin(ADA["id"], KATHERINE["pin"])  # someone else's PIN
    assert not await store.verify_pin(ADA["id"], "")
    assert not await store.verify_pin("C-NOPE", ADA["pin"])
    assert not await store.verify_pin(RETURNING_CALLER["id"], "")  # no PIN on file
    assert await store.verify_pin(KATHERINE["id"], KATHERINE["pin"])


async def test_verify_dob(store: SqlStore) -> None:
    assert await store.verify_dob(ADA["id"], ADA["dob"])
    assert await store.verify_dob(ADA["id"], "1815-12-10")
    assert await store.verify_dob(ADA["id"], datetime(1815, 12, 10, 8, 30))
    assert not await store.verify_dob(ADA["id"], date(1815, 12, 11))
    assert not await store.verify_dob(ADA["id"], KATHERINE["dob"])
    assert not await store.verify_dob(ADA["id"], "tenth of december")
    assert not await store.verify_dob("C-NOPE", ADA["dob"])
    assert not await store.verify_dob(RETURNING_CALLER["id"], ADA["dob"])


async def test_no_pin_or_date_of_birth_in_clear(store: SqlStore, seeded_url: str) -> None:
    """Records never carry them, and the database holds only salted hashes."""
    names = {f.name for f in fields(Customer)}
    assert not names & {"pin", "dob", "pin_hash", "dob_hash", "pin_salt", "dob_salt", "date_of_birth"}
    ada = await store.get_customer(ADA["id"])
    assert not any(secret in repr(ada) for secret in SECRETS_IN_CLEAR)
    engine = make_engine(seeded_url, 5.0, 1)
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT * FROM customers").all()
    finally:
        engine.dispose()
    secret_cols = ("pin_hash", "pin_salt", "dob_hash", "dob_salt")
    for row in rows:
        cells = row._mapping
        for col in ("pin_hash", "dob_hash"):  # hex digests may contain any digits: check their shape
            assert cells[col] is None or re.fullmatch(r"pbkdf2_sha256\$\d+\$[0-9a-f]{64}", cells[col])
        for col in ("pin_salt", "dob_salt"):
            assert cells[col] is None or re.fullmatch(r"[0-9a-f]{32}", cells[col])
        rest = repr([v for k, v in cells.items() if k not in secret_cols])
        assert not any(secret in rest for secret in SECRETS_IN_CLEAR)
    salts = [r.pin_salt for r in rows if r.pin_salt]
    assert len(salts) == len(set(salts)) == 5  # a different salt per customer


# --- the verification lockout ---------------------------------------------------------------------------


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 10, 0, 0)

    def __call__(self) -> datetime:
        return self.now

    def wait(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def test_failed_checks_lock_the_customer_across_calls_and_cool_off(seeded_url: str) -> None:
    """Two action servers (two stores on one database, as two calls on two channels would be): failures
    add up, the fifth locks, then even the right PIN or date of birth is refused until the cooling-off ends;
    one attempt then; a success resets the count."""
    clock = Clock()
    policy = LockPolicy(attempts=5, lock_s=900)
    one = SqlStore(seeded_url, timeout_s=5.0, clock=clock, lock=policy)
    two = SqlStore(seeded_url, timeout_s=5.0, clock=clock, lock=policy)
    try:
        for n, (store, wrong) in enumerate([(one, "0000"), (one, "1111"), (one, "2222"), (two, "3333")], 1):
            result = await store.verify_identity(ADA["id"], "pin", wrong)
            assert (result.ok, result.locked, result.failures) == (False, False, n)
        assert await one.verification_lock(ADA["id"]) is None
        fifth = await two.verify_identity(ADA["id"], "dob", "2000-01-01")  # PIN and date of birth add up
        assert fifth.locked and fifth.failures == 5
        assert fifth.locked_until == clock.now + timedelta(seconds=900)
        for store in (one, two):
            assert await store.verification_lock(ADA["id"]) == fifth.locked_until
            for kind, right in (("pin", ADA["pin"]), ("dob", ADA["dob"].isoformat())):
                refused = await store.verify_identity(ADA["id"], kind, right)
                assert not refused.ok and refused.locked, (kind, refused)
        assert await one.verify_pin(ADA["id"], ADA["pin"]), "the hash itself is untouched"
        # Somebody else is not affected.
        assert (await two.verify_identity(KATHERINE["id"], "pin", KATHERINE["pin"])).ok
        assert await one.verification_lock(KATHERINE["id"]) is None

        clock.wait(899)
        assert (await one.verify_identity(ADA["id"], "pin", ADA["pin"])).locked
        clock.wait(2)
        assert await one.verification_lock(ADA["id"]) is None
        # After the cooling-off: one attempt; a failure locks again at once.
        again = await one.verify_identity(ADA["id"], "pin", "4444")
        assert again.locked and again.failures == 6
        assert (await two.verify_identity(ADA["id"], "pin", ADA["pin"])).locked
        clock.wait(901)
        assert (await two.verify_identity(ADA["id"], "pin", ADA["pin"])) == Verification(True)
        # The count starts again from nothing.
        for n in range(1, 5):
            assert (await one.verify_identity(ADA["id"], "pin", "0000")).failures == n
        assert await one.verification_lock(ADA["id"]) is None
        assert (await one.verify_identity(ADA["id"], "pin", ADA["pin"])).ok
    finally:
        await one.close()
        await two.close()


async def test_unknown_customers_and_bad_kinds(store: SqlStore) -> None:
    assert await store.verify_identity("C-NOPE", "pin", ADA["pin"]) == Verification(False)
    assert await store.verification_lock("C-NOPE") is None
    with pytest.raises(ValueError):
        await store.verify_identity(ADA["id"], "password", "x")


async def test_parallel_guesses_never_check_more_than_the_limit(seeded_url: str) -> None:
    """Fifty calls guessing at once: at most ``attempts`` PINs are ever compared."""
    checked: list[str] = []

    class Counting(SqlStore):
        async def verify_pin(self, customer_id: str, pin: str) -> bool:
            checked.append(pin)
            return await super().verify_pin(customer_id, pin)

    store = Counting(seeded_url, timeout_s=20.0, pool_size=4, lock=LockPolicy(attempts=5, lock_s=900))
    try:
        guesses = [f"{n:04d}" for n in range(50)] + [ADA["pin"]]
        results = await asyncio.gather(*(store.verify_identity(ADA["id"], "pin", g) for g in guesses))
    finally:
        await store.close()
    assert len(checked) <= 5, checked
    assert not any(r.ok for r in results[:-1])
    assert sum(r.locked for r in results) >= len(guesses) - 5


async def test_a_success_resets_the_count_and_an_agent_can_unlock(store: SqlStore) -> None:
    for _ in range(4):
        await store.verify_identity(ADA["id"], "pin", "0000")
    assert (await store.verify_identity(ADA["id"], "pin", ADA["pin"])).ok
    for n in range(1, 5):
        assert (await store.verify_identity(ADA["id"], "pin", "0000")).failures == n
    assert (await store.verify_identity(ADA["id"], "pin", "0000")).locked
    await store.clear_verification_failures(ADA["id"])
    assert await store.verification_lock(ADA["id"]) is None
    assert (await store.verify_identity(ADA["id"], "pin", ADA["pin"])).ok


def test_the_lock_survives_a_reseed_and_new_tables_reach_old_databases(db_url: str) -> None:
    """Seeding stays idempotent and keeps the lock; a database seeded before the lockout existed gains its
    table from the seed (or any create_schema) without losing data."""
    engine = make_engine(db_url, 30.0, 1, create=True)
    try:
        seed(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE verification_failures")  # as a database from before
        counts = seed(engine)
        assert counts["verification_failures"] == 0 and counts["customers"] == 6

        async def lock() -> None:
            store = SqlStore(db_url, lock=LockPolicy(attempts=1, lock_s=60))
            try:
                assert (await store.verify_identity(ADA["id"], "pin", "0000")).locked
            finally:
                await store.close()

        asyncio.run(lock())
        assert seed(engine)["verification_failures"] == 1
    finally:
        engine.dispose()


# --- accounts and orders --------------------------------------------------------------------------------


async def test_account(store: SqlStore) -> None:
    account = await store.get_account(ADA["id"])
    assert account is not None
    assert (account.balance_cents, account.currency) == (12050, "USD")
    assert account.last_payment_cents == 5000
    assert account.last_payment_date == date.today() - timedelta(days=12)
    assert (await store.balance(ADA["id"])).cents == 12050
    assert (await store.balance("C-0002")).cents == 99
    assert (await store.balance("C-0003")).cents == 123400
    hedy = await store.get_account(HEDY["id"])
    assert hedy is not None and hedy.balance_cents == -1500
    assert await store.get_account(RETURNING_CALLER["id"]) is None
    with pytest.raises(NotFound):
        await store.balance(RETURNING_CALLER["id"])


async def test_orders(store: SqlStore) -> None:
    last = await store.last_order(KATHERINE["id"])
    assert last is not None and last.number == "100003" and last.status == "shipped"
    assert last.eta == date.today() + timedelta(days=2)
    first = await store.get_order("100001", KATHERINE["id"])
    assert first is not None and first.status == "delivered" and len(first.items) == 2
    assert first.total_cents == 5900 + 2900
    assert await store.get_order("1 0 0 0 0 2", KATHERINE["id"]) is not None  # keyed or spoken digits
    assert await store.get_order("100004", KATHERINE["id"]) is None  # Ada's order: never disclosed
    assert await store.get_order("999999", KATHERINE["id"]) is None
    assert await store.get_order("no digits", KATHERINE["id"]) is None
    assert await store.last_order(RETURNING_CALLER["id"]) is None


async def test_catalogue_and_promotion(store: SqlStore) -> None:
    products = await store.list_products()
    assert [p.product_id for p in products] == ["P-400", "P-100", "P-300", "P-200"]  # by name, active only
    headset = await store.find_product("Wireless Headset")
    assert headset is not None and headset.product_id == "P-200" and headset.price_cents == 5900
    assert await store.find_product("P-100") is not None
    assert await store.find_product("desk phone") is None  # discontinued
    assert await store.find_product("  ") is None
    promotion = await store.promotion_for("P-200")
    assert promotion is not None and "headset" in promotion.text
    assert await store.promotion_for("P-100") is None
    assert await store.promotion_for("P-200", on=date.today() + timedelta(days=60)) is None


async def test_create_order(store: SqlStore) -> None:
    prospect = RETURNING_CALLER["id"]
    order = await store.create_order(prospect, [OrderLine("P-100", 2), OrderLine("P-300")])
    assert re.fullmatch(r"[1-9]\d{5}", order.number)
    assert order.status == "received" and order.customer_id == prospect
    assert order.total_cents == 2 * 1999 + 950
    assert order.eta == date.today() + timedelta(days=3)
    assert await store.last_order(prospect) == order
    assert await store.get_order(order.number, prospect) == order
    buyer = await store.get_customer(prospect)
    assert buyer is not None and buyer.has_bought and caller_kind(buyer) == EXISTING

    second = await store.create_order(prospect, [OrderLine("P-200")])
    assert second.number != order.number
    with pytest.raises(NotFound):
        await store.create_order(prospect, [OrderLine("P-900")])  # discontinued
    with pytest.raises(NotFound):
        await store.create_order(prospect, [OrderLine("P-NOPE")])
    with pytest.raises(NotFound):
        await store.create_order("C-NOPE", [OrderLine("P-100")])
    with pytest.raises(ValueError):
        await store.create_order(prospect, [OrderLine("P-100", 0)])
    with pytest.raises(ValueError):
        await store.create_order(prospect, [])


# --- appointments ---------------------------------------------------------------------------------------


async def test_free_slots(store: SqlStore) -> None:
    now = _now()
    found = await store.free_slots(now - timedelta(days=1), now + timedelta(days=7), n=5)
    assert len(found) == 5
    assert all(s.free and s.starts >= now for s in found)
    assert [s.starts for s in found] == sorted(s.starts for s in found)
    riverside = await store.free_slots(now, now + timedelta(days=7), n=3, branch_id="B-RS")
    assert riverside and all(s.branch_id == "B-RS" for s in riverside)
    assert await store.free_slots(now + timedelta(days=30), now + timedelta(days=31)) == []


async def test_book_reschedule_cancel(store: SqlStore) -> None:
    now = _now()
    existing = await store.next_booking(KATHERINE["id"])
    assert existing is not None and existing.status == "booked" and existing.slot.starts.hour == 10
    assert await store.next_booking(ADA["id"]) is None

    first, second, third = await store.free_slots(now, now + timedelta(days=7), n=3)
    booking = await store.book(ADA["id"], first.slot_id)
    assert booking.status == "booked" and booking.slot.slot_id == first.slot_id and not booking.slot.free
    assert await store.next_booking(ADA["id"]) == booking
    free_now = await store.free_slots(now, now + timedelta(days=7), n=3)
    assert first.slot_id not in {s.slot_id for s in free_now}
    with pytest.raises(SlotTaken):
        await store.book(HEDY["id"], first.slot_id)
    with pytest.raises(SlotTaken):
        await store.book(HEDY["id"], existing.slot.slot_id)
    with pytest.raises(NotFound):
        await store.book(HEDY["id"], 10_000_000)

    moved = await store.reschedule(ADA["id"], booking.booking_id, second.slot_id)
    assert moved.booking_id == booking.booking_id and moved.slot.slot_id == second.slot_id
    assert first.slot_id in {s.slot_id for s in await store.free_slots(now, now + timedelta(days=7), n=3)}
    with pytest.raises(SlotTaken):  # onto Katherine's slot: refused, nothing changes
        await store.reschedule(ADA["id"], booking.booking_id, existing.slot.slot_id)
    assert await store.next_booking(ADA["id"]) == moved
    with pytest.raises(NotFound):  # not her booking
        await store.reschedule(HEDY["id"], booking.booking_id, third.slot_id)

    with pytest.raises(NotFound):
        await store.cancel(HEDY["id"], booking.booking_id)
    cancelled = await store.cancel(ADA["id"], booking.booking_id)
    assert cancelled.status == "cancelled" and cancelled.slot.free
    assert await store.next_booking(ADA["id"]) is None
    with pytest.raises(NotFound):
        await store.cancel(ADA["id"], booking.booking_id)
    with pytest.raises(NotFound):
        await store.reschedule(ADA["id"], booking.booking_id, third.slot_id)
    rebooked = await store.book(HEDY["id"], second.slot_id)  # the freed slot can be booked again
    assert rebooked.customer_id == HEDY["id"]


async def test_past_slot_cannot_be_booked(seeded_url: str) -> None:
    later = SqlStore(seeded_url, timeout_s=2.0, clock=lambda: datetime.now() + timedelta(days=30))
    now = SqlStore(seeded_url, timeout_s=2.0)
    try:
        slot = (await now.free_slots(datetime.now(), datetime.now() + timedelta(days=7), n=1))[0]
        with pytest.raises(SlotTaken):
            await later.book(ADA["id"], slot.slot_id)
    finally:
        await later.close()
        await now.close()


async def test_racing_bookings_for_one_slot_exactly_one_wins(store: SqlStore, seeded_url: str) -> None:
    """Six callers on two action servers (two stores, separate pools) book the same slot at once."""
    other = SqlStore(seeded_url, timeout_s=2.0)
    now = _now()
    try:
        slot = (await store.free_slots(now, now + timedelta(days=7), n=1))[0]
        racers = [("C-0001", store), ("C-0002", other), ("C-0003", store), ("C-0005", other)]
        racers += [("C-0006", store), ("C-0004", other)]
        results = await asyncio.gather(
            *(s.book(cid, slot.slot_id) for cid, s in racers), return_exceptions=True
        )
        wins = [r for r in results if isinstance(r, Booking)]
        assert len(wins) == 1, results
        assert all(isinstance(r, SlotTaken) for r in results if not isinstance(r, Booking)), results

        # Two reschedules racing onto one free slot: one moves, the other keeps its old slot.
        target, spare_a, spare_b = await store.free_slots(now, now + timedelta(days=7), n=3)
        a = await store.book("C-0002", spare_a.slot_id)
        b = await other.book("C-0003", spare_b.slot_id)
        moves = await asyncio.gather(
            store.reschedule("C-0002", a.booking_id, target.slot_id),
            other.reschedule("C-0003", b.booking_id, target.slot_id),
            return_exceptions=True,
        )
        assert sum(isinstance(m, Booking) for m in moves) == 1, moves
        assert sum(isinstance(m, SlotTaken) for m in moves) == 1, moves
    finally:
        await other.close()
    engine = make_engine(seeded_url, 5.0, 1)
    try:
        with engine.connect() as conn:
            active = conn.exec_driver_sql(
                f"SELECT count(*) FROM bookings WHERE slot_id = {int(slot.slot_id)} AND status = 'booked'"
            ).scalar_one()
            ids = f"({target.slot_id}, {spare_a.slot_id}, {spare_b.slot_id})"
            booked = conn.exec_driver_sql(
                f"SELECT count(*) FROM bookings WHERE status = 'booked' AND slot_id IN {ids}"
            ).scalar_one()
            flagged = conn.exec_driver_sql(
                f"SELECT count(*) FROM slots WHERE booked AND id IN {ids}"
            ).scalar_one()
    finally:
        engine.dispose()
    assert active == 1
    assert booked == flagged == 2  # slot flags agree with the bookings


# --- incidents and branches -----------------------------------------------------------------------------


async def test_incidents(store: SqlStore) -> None:
    tomorrow = date.today() + timedelta(days=1)
    window = (datetime.combine(tomorrow, dtime(9)), datetime.combine(tomorrow, dtime(11)))
    created = {}
    for priority in (1, 2, 3, 4):
        incident = await store.create_incident(
            HEDY["id"], "P-200", priority, f"priority {priority} problem", "+1 555 010 0005", window
        )
        assert re.fullmatch(r"[1-9]\d{5}", incident.ticket)
        assert incident.status == "open" and incident.priority == priority
        created[priority] = incident
    fetched = await store.get_incident(created[2].ticket, HEDY["id"])
    assert fetched == created[2]
    assert (
        fetched.callback_number == "+1 555 010 0005"
        and (fetched.callback_from, fetched.callback_until) == window
    )
    assert await store.get_incident(created[2].ticket, ADA["id"]) is None  # not hers
    no_callback = await store.create_incident(ADA["id"], None, 4, "which charger fits")
    assert no_callback.product_id is None and no_callback.callback_number is None

    seeded = await store.get_incident("500001", HEDY["id"])
    assert seeded is not None and seeded.priority == 2 and seeded.status == "open"
    open_tickets = {i.ticket for i in await store.open_incidents(HEDY["id"])}
    assert open_tickets == {"500001"} | {i.ticket for i in created.values()}
    resolved = await store.get_incident("500002", KATHERINE["id"])
    assert resolved is not None and resolved.status == "resolved"
    assert await store.open_incidents(KATHERINE["id"]) == []

    for bad in (0, 5, True):
        with pytest.raises(ValueError):
            await store.create_incident(HEDY["id"], "P-200", bad, "x")
    with pytest.raises(ValueError):
        await store.create_incident(HEDY["id"], "P-200", 3, "x", None, (window[1], window[0]))
    with pytest.raises(NotFound):
        await store.create_incident(HEDY["id"], "P-NOPE", 3, "x")
    with pytest.raises(NotFound):
        await store.create_incident("C-NOPE", "P-200", 3, "x")


async def test_branches(store: SqlStore) -> None:
    branches = await store.branches()
    assert [b.name for b in branches] == ["Downtown", "Riverside"]
    downtown = branches[0]
    assert downtown.address == "100 Main Street" and downtown.hours_on(6) is None  # closed on Sundays
    monday = downtown.hours_on(0)
    assert monday is not None and (monday.opens, monday.closes) == (dtime(9), dtime(17, 30))
    monday_evening = datetime(2026, 11, 23, 17, 0)  # a Monday
    assert downtown.is_open(monday_evening) and not downtown.is_open(monday_evening.replace(minute=30))


# --- timeouts and failures ------------------------------------------------------------------------------


@contextmanager
def writer_lock_held(url: str) -> Iterator[None]:
    """Another client holds the lock a write needs (SQLite: the database; PostgreSQL: the customers table)."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(str(make_url(url).database), isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
    else:
        conn = psycopg2.connect(url)
        conn.cursor().execute("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")
    try:
        yield
    finally:
        conn.rollback() if not url.startswith("sqlite") else conn.execute("ROLLBACK")
        conn.close()


async def test_a_locked_backend_times_out_within_the_bound_and_recovers(seeded_url: str) -> None:
    timeout = 0.5
    store = SqlStore(seeded_url, timeout_s=timeout)
    try:
        assert await store.find_customer_by_number(ADA["number"]) is not None  # pool warm
        with writer_lock_held(seeded_url):
            started = time.monotonic()
            with pytest.raises(BackendUnavailable):
                await store.record_call(ADA["number"])
            elapsed = time.monotonic() - started
            assert timeout * 0.8 <= elapsed < timeout + SLACK_S, elapsed
        # The lock is gone: the same store answers again, within the bound.
        started = time.monotonic()
        record = await store.record_call(ADA["number"])
        assert record is not None and time.monotonic() - started < timeout + SLACK_S
    finally:
        await store.close()


SLOW_QUERY = {
    # A statement that would run for minutes: the store must interrupt it, not just stop waiting.
    "sqlite": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n",
    "postgresql": "SELECT pg_sleep(30)",
}


async def test_a_slow_statement_is_cut_off_at_the_deadline(seeded_url: str) -> None:
    timeout = 0.5
    store = SqlStore(seeded_url, timeout_s=timeout)
    sql = SLOW_QUERY[store.backend]
    try:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable):
            await store._run("test_slow", lambda conn: conn.exec_driver_sql(sql).scalar())  # test hook
        assert time.monotonic() - started < timeout + SLACK_S
        # The database stopped the statement too, so the worker is free again at once.
        await asyncio.sleep(timeout)
        started = time.monotonic()
        assert await store.get_customer(ADA["id"]) is not None
        assert time.monotonic() - started < timeout
    finally:
        await store.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_backends_are_unavailable(tmp_path: Path) -> None:
    for url in (
        f"postgresql://postgres@127.0.0.1:{_closed_port()}/attendant",
        f"sqlite:///{tmp_path / 'never-seeded.db'}",  # the store never creates a database file
    ):
        store = SqlStore(url, timeout_s=1.0)
        try:
            started = time.monotonic()
            with pytest.raises(BackendUnavailable):
                await store.find_customer_by_number(ADA["number"])
            assert time.monotonic() - started < 1.0 + SLACK_S
        finally:
            await store.close()
    assert not (tmp_path / "never-seeded.db").exists()


async def test_logs_carry_ids_not_personal_data(store: SqlStore, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await store.record_call(NEW_NUMBER)
    await store.verify_pin(ADA["id"], ADA["pin"])
    await store.verify_dob(ADA["id"], ADA["dob"])
    await store.create_order(ADA["id"], [OrderLine("P-100")])
    await store.create_incident(ADA["id"], "P-100", 3, "Ada Lovelace is unhappy", ADA["number"])
    slot = (await store.free_slots(_now(), _now() + timedelta(days=7), n=1))[0]
    await store.book(ADA["id"], slot.slot_id)
    with writer_lock_held(store._url):
        short = SqlStore(store._url, timeout_s=0.3)
        with pytest.raises(BackendUnavailable):
            await short.record_call(ADA["number"])
        await short.close()
    text = caplog.text
    assert "customer=C-0001" in text and "store" in text  # something was logged
    for private in ("5550100001", "5550100009", "4719", "1815", "Lovelace", "unhappy"):
        assert private not in text


# --- the seed command -----------------------------------------------------------------------------------


def _seed_cli(*args: str) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-m", "actions.backends.seed", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", done.stdout)}


def test_seed_command_is_idempotent(db_url: str) -> None:
    first = _seed_cli("--url", db_url)
    assert first["customers"] == 6 and first["phone_numbers"] == 7 and first["products"] == 5
    assert first["orders"] == 5 and first["incidents"] == 2 and first["branches"] == 2
    assert first["bookings"] == 1 and first["promotions"] == 1 and first["slots"] > 50
    assert _seed_cli("--url", db_url) == first

    async def use() -> None:  # what callers add survives a re-seed; --reset goes back to the demo data
        store = SqlStore(db_url)
        try:
            await store.create_order(ADA["id"], [OrderLine("P-100")])
        finally:
            await store.close()

    asyncio.run(use())
    assert _seed_cli("--url", db_url)["orders"] == 6
    assert _seed_cli("--url", db_url, "--reset") == first


def test_seed_creates_a_missing_postgresql_database() -> None:
    name = f"attendant_test_{secrets.token_hex(6)}"
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        assert _seed_cli("--url", url)["customers"] == 6
    finally:
        admin = _pg_admin()
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


# --- configuration, the demo store, import cost ---------------------------------------------------------


def test_store_config() -> None:
    default = StoreConfig.from_env({})
    assert default.url == f"sqlite:///{REPO / '.run' / 'attendant.db'}" and default.timeout_s == 2.0
    env = {"ATTENDANT_STORE_URL": "postgres://u@h/db", "ATTENDANT_STORE_TIMEOUT_S": "0.5"}
    assert StoreConfig.from_env(env).timeout_s == 0.5
    for bad in (
        {"ATTENDANT_STORE_URL": "mysql://h/db"},
        {"ATTENDANT_STORE_URL": "https://crm.example"},  # needs an adapter
        {"ATTENDANT_STORE_TIMEOUT_S": "0"},
        {"ATTENDANT_STORE_TIMEOUT_S": "soon"},
        {"ATTENDANT_STORE_URL": "https://crm.example", "ATTENDANT_STORE_ADAPTER": "nowhere:Nothing"},
        {"ATTENDANT_STORE_LOCK_ATTEMPTS": "0"},
        {"ATTENDANT_STORE_LOCK_ATTEMPTS": "many"},
        {"ATTENDANT_STORE_LOCK_S": "-1"},
    ):
        with pytest.raises(StoreConfigError):
            open_store(StoreConfig.from_env(bad))
    assert isinstance(open_store(StoreConfig.from_env(env)), SqlStore)
    assert default.lock == LockPolicy(attempts=5, lock_s=900.0)
    locked = {"ATTENDANT_STORE_LOCK_ATTEMPTS": "3", "ATTENDANT_STORE_LOCK_S": "60"}
    store = open_store(StoreConfig.from_env(locked))
    assert isinstance(store, SqlStore) and store.lock == LockPolicy(attempts=3, lock_s=60.0)


async def test_demo_store_has_the_seed_data() -> None:
    store = open_store("demo")
    try:
        ada = await store.find_customer_by_number("(555) 010-0001")
        assert ada is not None and await store.verify_pin(ada.customer_id, ADA["pin"])
        assert (await store.balance(ada.customer_id)).cents == 12050
        assert len(await store.branches()) == 2
    finally:
        await store.close()


def test_importing_the_store_loads_no_database_code() -> None:
    code = (  # every action module (not the backends), as the action server imports them
        "import pkgutil, sys, actions\n"
        "for m in pkgutil.iter_modules(actions.__path__):\n"
        "    m.ispkg or __import__('actions.' + m.name)\n"
        "assert 'actions.tasks' in sys.modules\n"
        "assert not {'sqlalchemy', 'psycopg2', 'aiohttp'} & set(sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


# --- the HTTP adapter point -----------------------------------------------------------------------------


class _FakeCrm:
    """A tiny HTTP/1.1 server on the loopback: answers per path, or never (``slow``)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, bytes]] = []
        self.slow = False
        self.status = 200
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def __aenter__(self) -> _FakeCrm:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1)) if b"ength:" in head else 0
            body = await reader.readexactly(length)
            request_line = head.split(b"\r\n", 1)[0].decode()
            self.requests.append((request_line, body))
            if self.slow:
                await asyncio.sleep(30)
            payload = json.dumps(
                {"id": "CRM-7", "name": "Ada Lovelace", "call_count": 3, "has_bought": True, "has_pin": True}
            ).encode()
            head_out = (
                f"HTTP/1.1 {self.status} X\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head_out.encode() + payload)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


def _example_crm_store(base_url: str, timeout_s: float) -> Any:
    """The adapter as a deployment would subclass it; the methods this test does not use are stubs."""
    from actions.backends.http import HttpStore

    async def not_mapped(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    cls = type("ExampleCrm", (HttpStore,), {name: not_mapped for name in HttpStore.__abstractmethods__})
    return cls(base_url, timeout_s=timeout_s)


async def test_http_adapter_maps_answers_and_keeps_numbers_out_of_urls() -> None:
    async with _FakeCrm() as crm:
        store = _example_crm_store(f"http://127.0.0.1:{crm.port}/api", 1.0)
        try:
            customer = await store.find_customer_by_number(ADA["number"])
            assert customer is not None and customer.customer_id == "CRM-7" and customer.has_bought
            request_line, body = crm.requests[-1]
            assert request_line == "POST /api/customers/search HTTP/1.1"
            assert json.loads(body) == {"phone": "5550100001"}
            crm.status = 503
            with pytest.raises(BackendUnavailable):
                await store.get_customer("CRM-7")
            crm.status = 404
            assert await store.get_customer("CRM-7") is None
        finally:
            await store.close()


async def test_http_adapter_times_out_politely_against_a_slow_server() -> None:
    timeout = 0.5
    async with _FakeCrm() as crm:
        crm.slow = True
        store = _example_crm_store(f"http://127.0.0.1:{crm.port}", timeout)
        try:
            started = time.monotonic()
            with pytest.raises(BackendUnavailable):
                await store.find_customer_by_number(ADA["number"])
            assert timeout * 0.8 <= time.monotonic() - started < timeout + SLACK_S
        finally:
            await store.close()
    store = _example_crm_store(f"http://127.0.0.1:{_closed_port()}", timeout)
    try:
        with pytest.raises(BackendUnavailable):  # nobody listening
            await store.verify_pin("CRM-7", ADA["pin"])
    finally:
        await store.close()
