"""Create the store's schema and the demo data: ``python -m actions.backends.seed [--url URL] [--reset]``.

Idempotent: every demo row is inserted only when it is missing (so running it twice changes nothing, and
what callers changed, such as new orders or bookings, is kept). ``--reset`` drops every table first.
Dates are relative to the day it runs: orders of recent weeks, one week of appointment slots from today.
For PostgreSQL the database itself is created when missing. The URL defaults to ``ATTENDANT_STORE_URL``
(else the SQLite file ``.run/attendant.db`` in the repo).

Demo callers (numbers in the 555-01xx fiction range; PINs and dates of birth are stored hashed only)::

    number(s)                id      name               PIN   born        kind: notes
    +1 555 010 0001 (+0011)  C-0001  Ada Lovelace       4719  1815-12-10  existing, silver: $120.50,
                                                                          order 100004 processing
    +1 555 010 0002          C-0002  Grace Hopper       2580  1906-12-09  existing: $0.99
    +1 555 010 0003          C-0003  Alan Turing        8086  1912-06-23  existing, silver: $1,234.00
    +1 555 010 0004          C-0004  Katherine Johnson  1968  1918-08-26  loyal, gold, referred by a friend:
                                                                          orders 100001-100003, a booking,
                                                                          resolved ticket 500002
    +1 555 010 0005          C-0005  Hedy Lamarr        3141  1914-11-09  unhappy: owes $15.00, order 100005,
                                                                          open ticket 500001 (priority 2)
    +1 555 010 0006          C-0006  (no name)          -     -           returning: called twice, never
                                                                          bought, no account
    +1 555 010 0009          -       -                  -     -           new: no record
Catalogue: P-100 phone charger $19.99, P-200 wireless headset $59.00 (promotion), P-300 screen protector
$9.50, P-400 extended warranty $29.00, P-900 desk phone (discontinued). Branches: B-DT Downtown
(Mon-Fri 9:00-17:30, Sat 10:00-14:00), B-RS Riverside (Mon-Fri 8:00-20:00, Sat 9:00-17:00); hourly slots
with one advisor each, for fourteen days from today; both closed on Christmas Day and New Year's Day.
Phone lines (the dialled number -> the branch whose hours and holidays it keeps, and its time zone): every
number -> Downtown, 1 555 010 0200 -> Riverside, both America/Chicago.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Table, and_, func, select
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from actions.backends.base import hash_secret, new_salt, normalise_number
from actions.backends.config import StoreConfig, StoreConfigError
from actions.backends.schema import (
    WRITE_OPTION,
    accounts,
    bookings,
    branch_hours,
    branches,
    create_schema,
    customers,
    drop_schema,
    holidays,
    incidents,
    make_engine,
    metadata,
    normalise_url,
    order_items,
    orders,
    phone_lines,
    phone_numbers,
    products,
    promotions,
    slots,
)

SEED_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class DemoCustomer:
    """One demo customer as the seed writes it (clear PIN and date of birth exist only here)."""

    customer_id: str
    name: str | None
    numbers: tuple[str, ...]
    pin: str | None
    dob: date | None
    tier: str
    referral: str | None
    calls: int
    first_contact_days_ago: int
    last_call_days_ago: int
    has_bought: bool
    balance_cents: int | None
    """``None``: no account."""
    last_payment: tuple[int, int] | None = None
    """(cents, days ago)."""


CUSTOMERS: tuple[DemoCustomer, ...] = (
    DemoCustomer(
        "C-0001", "Ada Lovelace", ("+15550100001", "+15550100011"), "4719", date(1815, 12, 10),
        "silver", None, 4, 400, 9, True, 12050, (5000, 12),
    ),
    DemoCustomer(
        "C-0002", "Grace Hopper", ("+15550100002",), "2580", date(1906, 12, 9),
        "none", "web", 1, 40, 40, True, 99, (2500, 40),
    ),
    DemoCustomer(
        "C-0003", "Alan Turing", ("+15550100003",), "8086", date(1912, 6, 23),
        "silver", None, 2, 200, 30, True, 123400, (10000, 30),
    ),
    DemoCustomer(
        "C-0004", "Katherine Johnson", ("+15550100004",), "1968", date(1918, 8, 26),
        "gold", "friend", 12, 900, 3, True, 4200, (8900, 21),
    ),
    DemoCustomer(
        "C-0005", "Hedy Lamarr", ("+15550100005",), "3141", date(1914, 11, 9),
        "none", None, 3, 60, 2, True, -1500, (5900, 14),
    ),
    DemoCustomer(
        "C-0006", None, ("+15550100006",), None, None,
        "none", None, 2, 20, 6, False, None,
    ),
)  # fmt: skip
NEW_NUMBER = "+15550100009"
"""A number with no record (a first-time caller)."""

PRODUCTS: tuple[tuple[str, str, int, bool], ...] = (
    ("P-100", "phone charger", 1999, True),
    ("P-200", "wireless headset", 5900, True),
    ("P-300", "screen protector", 950, True),
    ("P-400", "extended warranty", 2900, True),
    ("P-900", "desk phone", 4500, False),
)
PROMOTION = ("P-200", "The wireless headset is twenty percent off this month.", -1, 30)
"""(product, text, valid from / until in days relative to the seed day)."""

# (number, customer, status, created days ago, ETA in days from today or None, [(product, qty)])
ORDERS: tuple[tuple[str, str, str, int, int | None, tuple[tuple[str, int], ...]], ...] = (
    ("100001", "C-0004", "delivered", 60, None, (("P-200", 1), ("P-400", 1))),
    ("100002", "C-0004", "delivered", 21, None, (("P-100", 2),)),
    ("100003", "C-0004", "shipped", 2, 2, (("P-300", 1),)),
    ("100004", "C-0001", "processing", 1, 4, (("P-100", 1), ("P-300", 2))),
    ("100005", "C-0005", "delivered", 14, None, (("P-200", 1),)),
)

BRANCHES: tuple[tuple[str, str, str, str, str, str, dict[int, tuple[time, time]]], ...] = (
    (
        "B-DT", "Downtown", "100 Main Street", "Springfield", "62701", "+15550100100",
        {d: (time(9), time(17, 30)) for d in range(5)} | {5: (time(10), time(14))},
    ),
    (
        "B-RS", "Riverside", "42 River Road", "Shelbyville", "62565", "+15550100200",
        {d: (time(8), time(20)) for d in range(5)} | {5: (time(9), time(17))},
    ),
)  # fmt: skip
LINES: tuple[tuple[str, str, str, str], ...] = (
    # number dialled (digits; "default": every other), name, branch whose hours it keeps, time zone
    ("default", "Attendant", "B-DT", "America/Chicago"),
    ("15550100200", "Riverside", "B-RS", "America/Chicago"),
)
HOLIDAYS = ((12, 25, "Christmas Day"), (1, 1, "New Year's Day"))
"""Every branch (and so every line) is closed on these days, this year and next."""
RESOURCE = "advisor"
SLOT_MINUTES = 60
SLOT_DAYS = 14

# (ticket, customer, product, priority, status, description, created days ago, callback tomorrow from/until)
INCIDENTS: tuple[tuple[str, str, str, int, str, str, int, tuple[int, int] | None], ...] = (
    (
        "500001", "C-0005", "P-200", 2, "open",
        "Headset drops the connection several times during every call.", 3, (14, 16),
    ),
    ("500002", "C-0004", "P-100", 4, "resolved", "Asked which charger fits the new phone.", 30, None),
)  # fmt: skip


def _ensure(conn: Connection, table: Table, key: dict[str, Any], values: dict[str, Any]) -> bool:
    """Insert ``key | values`` into ``table`` unless a row matching ``key`` exists; whether it inserted."""
    where = and_(*(table.c[k] == v for k, v in key.items()))
    if conn.execute(select(func.count()).select_from(table).where(where)).scalar_one():
        return False
    conn.execute(table.insert().values(**key, **values))
    return True


def _seed_customers(conn: Connection, now: datetime) -> None:
    today = now.date()
    for c in CUSTOMERS:
        exists = conn.execute(select(customers.c.id).where(customers.c.id == c.customer_id)).first()
        if exists is None:
            pin_salt, dob_salt = new_salt(), new_salt()
            conn.execute(
                customers.insert().values(
                    id=c.customer_id,
                    name=c.name,
                    pin_hash=hash_secret(c.pin, pin_salt) if c.pin else None,
                    pin_salt=pin_salt if c.pin else None,
                    dob_hash=hash_secret(c.dob.isoformat(), dob_salt) if c.dob else None,
                    dob_salt=dob_salt if c.dob else None,
                    loyalty_tier=c.tier,
                    referral_source=c.referral,
                    first_contact=now - timedelta(days=c.first_contact_days_ago),
                    last_call=now - timedelta(days=c.last_call_days_ago),
                    call_count=c.calls,
                    has_bought=c.has_bought,
                    created=now - timedelta(days=c.first_contact_days_ago),
                )
            )
        for number in c.numbers:
            _ensure(conn, phone_numbers, {"number": normalise_number(number)}, {"customer_id": c.customer_id})
        if c.balance_cents is not None:
            paid_cents, paid_days_ago = c.last_payment or (None, None)
            _ensure(
                conn,
                accounts,
                {"customer_id": c.customer_id},
                {
                    "balance_cents": c.balance_cents,
                    "currency": "USD",
                    "last_payment_cents": paid_cents,
                    "last_payment_date": (
                        None if paid_days_ago is None else today - timedelta(days=paid_days_ago)
                    ),
                },
            )


def _seed_catalogue(conn: Connection, now: datetime) -> None:
    today = now.date()
    for product_id, name, cents, active in PRODUCTS:
        _ensure(conn, products, {"id": product_id}, {"name": name, "price_cents": cents, "active": active})
    product_id, text, start, end = PROMOTION
    _ensure(
        conn,
        promotions,
        {"product_id": product_id, "text": text},
        {"valid_from": today + timedelta(days=start), "valid_until": today + timedelta(days=end)},
    )
    prices = {p[0]: p[2] for p in PRODUCTS}
    for number, customer_id, status, days_ago, eta_days, items in ORDERS:
        created = now - timedelta(days=days_ago)
        eta = None if eta_days is None else today + timedelta(days=eta_days)
        values = {"customer_id": customer_id, "status": status, "eta": eta, "created": created}
        if _ensure(conn, orders, {"number": number}, values):
            for line, (product_id, qty) in enumerate(items, start=1):
                conn.execute(
                    order_items.insert().values(
                        order_number=number,
                        line=line,
                        product_id=product_id,
                        qty=qty,
                        unit_price_cents=prices[product_id],
                    )
                )


def _seed_branches_and_slots(conn: Connection, now: datetime) -> None:
    today = now.date()
    for branch_id, name, address, city, postcode, phone, hours in BRANCHES:
        _ensure(
            conn,
            branches,
            {"id": branch_id},
            {"name": name, "address": address, "city": city, "postcode": postcode, "phone": phone},
        )
        for weekday, (opens, closes) in hours.items():
            key = {"branch_id": branch_id, "weekday": weekday}
            _ensure(conn, branch_hours, key, {"opens": opens, "closes": closes})
        for year in (today.year, today.year + 1):
            for month, day_of_month, holiday in HOLIDAYS:
                key = {"branch_id": branch_id, "day": date(year, month, day_of_month)}
                _ensure(conn, holidays, key, {"name": holiday})
        for offset in range(SLOT_DAYS):
            day = today + timedelta(days=offset)
            if day.weekday() not in hours:
                continue
            opens, closes = hours[day.weekday()]
            start = datetime.combine(day, opens)
            while start + timedelta(minutes=SLOT_MINUTES) <= datetime.combine(day, closes):
                end = start + timedelta(minutes=SLOT_MINUTES)
                key = {"branch_id": branch_id, "resource": RESOURCE, "starts": start}
                _ensure(conn, slots, key, {"ends": end, "booked": False})
                start = end


def _seed_lines(conn: Connection) -> None:
    for number, name, branch_id, zone in LINES:
        _ensure(
            conn, phone_lines, {"number": number}, {"name": name, "branch_id": branch_id, "timezone": zone}
        )


def _seed_booking(conn: Connection, now: datetime) -> None:
    """The loyal customer's appointment: Downtown, 10:00 on the first weekday at least two days ahead."""
    customer_id = "C-0004"
    if conn.execute(select(bookings.c.id).where(bookings.c.customer_id == customer_id)).first() is not None:
        return
    day = now.date() + timedelta(days=2)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    slot = conn.execute(
        select(slots.c.id).where(
            slots.c.branch_id == "B-DT",
            slots.c.starts == datetime.combine(day, time(10)),
            slots.c.booked.is_(False),
        )
    ).first()
    if slot is None:  # outside the generated week (cannot happen with seven days) or taken: no demo booking
        return
    conn.execute(slots.update().where(slots.c.id == slot.id).values(booked=True))
    conn.execute(
        bookings.insert().values(
            customer_id=customer_id, slot_id=slot.id, status="booked", created=now, updated=now
        )
    )


def _seed_incidents(conn: Connection, now: datetime) -> None:
    tomorrow = now.date() + timedelta(days=1)
    for ticket, customer_id, product_id, priority, status, text, days_ago, window in INCIDENTS:
        created = now - timedelta(days=days_ago)
        callback_number = next(c.numbers[0] for c in CUSTOMERS if c.customer_id == customer_id)
        _ensure(
            conn,
            incidents,
            {"ticket": ticket},
            {
                "customer_id": customer_id,
                "product_id": product_id,
                "priority": priority,
                "status": status,
                "description": text,
                "callback_number": callback_number if window else None,
                "callback_from": datetime.combine(tomorrow, time(window[0])) if window else None,
                "callback_until": datetime.combine(tomorrow, time(window[1])) if window else None,
                "created": created,
                "updated": created,
            },
        )


def seed(engine: Engine, now: datetime | None = None) -> dict[str, int]:
    """Create the schema and insert the missing demo rows in one transaction; row counts per table."""
    now = (now or datetime.now()).replace(microsecond=0)
    create_schema(engine)
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            _seed_customers(conn, now)
            _seed_catalogue(conn, now)
            _seed_branches_and_slots(conn, now)
            _seed_lines(conn)
            _seed_booking(conn, now)
            _seed_incidents(conn, now)
        return counts(conn)


def counts(conn: Connection) -> dict[str, int]:
    """Rows per table of the store."""
    return {
        table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
        for table in metadata.sorted_tables
    }


def ensure_database(url: str) -> bool:
    """For PostgreSQL: create the database ``url`` names when it does not exist; whether it did."""
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() != "postgresql" or not parsed.database:
        return False
    admin_url = parsed.set(database="postgres").render_as_string(hide_password=False)
    admin = make_engine(admin_url, SEED_TIMEOUT_S, 1)
    try:
        with admin.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            found = conn.exec_driver_sql(
                "SELECT 1 FROM pg_database WHERE datname = %(name)s", {"name": parsed.database}
            ).first()
            if found is not None:
                return False
            quoted = admin.dialect.identifier_preparer.quote(parsed.database)
            conn.exec_driver_sql(f"CREATE DATABASE {quoted}")
            return True
    finally:
        admin.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m actions.backends.seed",
        description="Create the customer store's schema and demo data (idempotent).",
    )
    parser.add_argument("--url", help="database URL (default: ATTENDANT_STORE_URL, else .run/attendant.db)")
    parser.add_argument("--reset", action="store_true", help="drop every table of the store first")
    args = parser.parse_args(argv)
    try:
        url = normalise_url(args.url or StoreConfig.from_env().url)
    except StoreConfigError as exc:
        print(f"seed: {exc}", file=sys.stderr)
        return 2
    shown = url if url.startswith("demo") else make_url(url).render_as_string(hide_password=True)
    if not url.startswith(("sqlite", "postgresql")):
        print(f"seed: only SQLite and PostgreSQL URLs can be seeded, not {shown}", file=sys.stderr)
        return 2
    try:
        if ensure_database(url):
            print(f"seed: created database {make_url(url).database}")
        engine = make_engine(url, SEED_TIMEOUT_S, 1, create=True)
        try:
            if args.reset:
                drop_schema(engine)
            table_counts = seed(engine)
        finally:
            engine.dispose()
    except (SQLAlchemyError, OSError) as exc:
        print(f"seed: {shown}: {type(exc).__name__}: {getattr(exc, 'orig', None) or exc}", file=sys.stderr)
        return 1
    summary = " ".join(f"{name}={n}" for name, n in table_counts.items())
    print(f"seed: {shown}{' (reset)' if args.reset else ''}: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
