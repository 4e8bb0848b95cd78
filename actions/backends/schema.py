"""The customer store's SQL schema and engines: the tables (SQLAlchemy Core 1.4, one definition for SQLite
and PostgreSQL), creating and dropping them, and engines whose every wait is bounded by the store's timeout
(see :mod:`actions.backends.sql` for how the store uses them; :mod:`actions.backends.seed` fills them).
"""

from __future__ import annotations

import math
import os
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Time,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import QueuePool, StaticPool

# --- schema ---------------------------------------------------------------------------------------------

metadata = MetaData()

customers = Table(
    "customers",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200)),
    Column("pin_hash", String(128)),
    Column("pin_salt", String(64)),
    Column("dob_hash", String(128)),
    Column("dob_salt", String(64)),
    Column("loyalty_tier", String(16), nullable=False),
    Column("referral_source", String(32)),
    Column("first_contact", DateTime),
    Column("last_call", DateTime),
    Column("call_count", Integer, nullable=False),
    Column("has_bought", Boolean, nullable=False),
    Column("created", DateTime, nullable=False),
    CheckConstraint("loyalty_tier IN ('none', 'silver', 'gold')", name="ck_customers_tier"),
    CheckConstraint("call_count >= 0", name="ck_customers_calls"),
)

verification_failures = Table(
    "verification_failures",
    metadata,
    Column("customer_id", String(32), ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True),
    Column("failures", Integer, nullable=False, comment="failed PIN / date-of-birth checks in a row"),
    Column("last_failure", DateTime, nullable=False),
    Column("locked_until", DateTime, comment="set while the customer is locked out of verification"),
    CheckConstraint("failures >= 0", name="ck_verification_failures_count"),
)
"""The verification lockout (:class:`~actions.backends.base.LockPolicy`): one row per customer with failed
checks since their last success (deleted on success). A table of its own, so an existing database gains it
from :func:`create_schema` without touching ``customers``."""

phone_numbers = Table(
    "phone_numbers",
    metadata,
    Column("number", String(16), primary_key=True, comment="last ten digits (normalise_number)"),
    Column("customer_id", String(32), ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Index("ix_phone_numbers_customer", "customer_id"),
)

accounts = Table(
    "accounts",
    metadata,
    Column("customer_id", String(32), ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True),
    Column("balance_cents", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("last_payment_cents", Integer),
    Column("last_payment_date", Date),
)

products = Table(
    "products",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("price_cents", Integer, nullable=False),
    Column("active", Boolean, nullable=False),
    CheckConstraint("price_cents >= 0", name="ck_products_price"),
)

promotions = Table(
    "promotions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("product_id", String(16), ForeignKey("products.id", ondelete="CASCADE"), nullable=False),
    Column("text", String(300), nullable=False),
    Column("valid_from", Date, nullable=False),
    Column("valid_until", Date, nullable=False),
    Index("ix_promotions_product", "product_id"),
)

orders = Table(
    "orders",
    metadata,
    Column("number", String(12), primary_key=True),
    Column("customer_id", String(32), ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("eta", Date),
    Column("created", DateTime, nullable=False),
    CheckConstraint(
        "status IN ('received', 'processing', 'shipped', 'delivered', 'cancelled')", name="ck_orders_status"
    ),
    Index("ix_orders_customer_created", "customer_id", "created"),
)

order_items = Table(
    "order_items",
    metadata,
    Column("order_number", String(12), ForeignKey("orders.number", ondelete="CASCADE"), primary_key=True),
    Column("line", Integer, primary_key=True),
    Column("product_id", String(16), ForeignKey("products.id"), nullable=False),
    Column("qty", Integer, nullable=False),
    Column("unit_price_cents", Integer, nullable=False),
    CheckConstraint("qty > 0", name="ck_order_items_qty"),
)

branches = Table(
    "branches",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("address", String(200), nullable=False),
    Column("city", String(100), nullable=False),
    Column("postcode", String(16), nullable=False),
    Column("phone", String(32), nullable=False),
)

branch_hours = Table(
    "branch_hours",
    metadata,
    Column("branch_id", String(16), ForeignKey("branches.id", ondelete="CASCADE"), primary_key=True),
    Column("weekday", Integer, primary_key=True, comment="0 = Monday"),
    Column("opens", Time, nullable=False),
    Column("closes", Time, nullable=False),
    CheckConstraint("weekday BETWEEN 0 AND 6", name="ck_branch_hours_weekday"),
)

holidays = Table(
    "holidays",
    metadata,
    Column("branch_id", String(16), ForeignKey("branches.id", ondelete="CASCADE"), primary_key=True),
    Column("day", Date, primary_key=True, comment="closed all day"),
    Column("name", String(100), nullable=False),
)

phone_lines = Table(
    "phone_lines",
    metadata,
    Column(
        "number", String(32), primary_key=True, comment="the dialled number, digits; 'default': any other"
    ),
    Column("name", String(100), nullable=False),
    Column(
        "branch_id",
        String(16),
        ForeignKey("branches.id", ondelete="CASCADE"),
        nullable=False,
        comment="the line keeps this branch's hours and holidays (one source for the info answer too)",
    ),
    Column("timezone", String(64), nullable=False, comment="IANA zone, e.g. America/Chicago"),
)

slots = Table(
    "slots",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("branch_id", String(16), ForeignKey("branches.id", ondelete="CASCADE"), nullable=False),
    Column("resource", String(32), nullable=False),
    Column("starts", DateTime, nullable=False),
    Column("ends", DateTime, nullable=False),
    Column("booked", Boolean, nullable=False),
    UniqueConstraint("branch_id", "resource", "starts", name="uq_slots_resource_start"),
    Index("ix_slots_starts", "starts"),
)

bookings = Table(
    "bookings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("customer_id", String(32), ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Column("slot_id", Integer, ForeignKey("slots.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created", DateTime, nullable=False),
    Column("updated", DateTime, nullable=False),
    CheckConstraint("status IN ('booked', 'cancelled')", name="ck_bookings_status"),
    Index("ix_bookings_customer", "customer_id"),
)
# One active booking per slot, enforced by the database whatever the code above it does.
Index(
    "uq_bookings_active_slot",
    bookings.c.slot_id,
    unique=True,
    sqlite_where=bookings.c.status == "booked",
    postgresql_where=bookings.c.status == "booked",
)

incidents = Table(
    "incidents",
    metadata,
    Column("ticket", String(12), primary_key=True),
    Column("customer_id", String(32), ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Column("product_id", String(16), ForeignKey("products.id")),
    Column("priority", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("description", Text, nullable=False),
    Column("callback_number", String(32)),
    Column("callback_from", DateTime),
    Column("callback_until", DateTime),
    Column("created", DateTime, nullable=False),
    Column("updated", DateTime, nullable=False),
    CheckConstraint("priority BETWEEN 1 AND 4", name="ck_incidents_priority"),
    CheckConstraint("status IN ('open', 'in_progress', 'resolved', 'closed')", name="ck_incidents_status"),
    Index("ix_incidents_customer", "customer_id"),
)


# --- engines --------------------------------------------------------------------------------------------


def normalise_url(url: str) -> str:
    """``postgres://`` (common in hosting settings) is spelled ``postgresql://`` for SQLAlchemy."""
    url = url.strip()
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    return url


def is_sqlite(url: str) -> bool:
    """Whether ``url`` names an SQLite database."""
    return bool(make_url(normalise_url(url)).get_backend_name() == "sqlite")


def sqlite_path(url: str) -> Path | None:
    """The database file an ``sqlite:///`` URL names (absolute), ``None`` for an in-memory database."""
    database = make_url(normalise_url(url)).database
    if not database or database == ":memory:":
        return None
    return Path(database).expanduser().resolve()


def owner_only(path: Path, *, create: bool = False) -> None:
    """Make the SQLite file readable and writable by its owner only (mode 0600; SQLite gives its journal and
    WAL files the database file's mode). With ``create``, a missing file is created empty with that mode, so
    it never exists with wider rights. A file someone else owns is left as it is."""
    try:
        if create and not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        elif path.exists() and path.stat().st_uid == os.getuid():
            path.chmod(0o600)
    except FileExistsError:  # created meanwhile by another process, with the same mode
        pass


def make_engine(url: str, timeout_s: float, pool_size: int = 4, *, create: bool = False) -> Engine:
    """An engine for ``url`` with every wait bounded by ``timeout_s``. Connects lazily (not here).

    ``create``: for SQLite, create the file (and its folder) when missing; the store itself never does.
    An in-memory SQLite URL (``sqlite://``) gives one connection shared by the whole engine.
    """
    url = normalise_url(url)
    parsed = make_url(url)
    common: dict[str, Any] = {"future": True, "hide_parameters": True}
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is None:
            engine = create_engine(
                "sqlite://",
                creator=lambda: sqlite3.connect(":memory:", check_same_thread=False),
                poolclass=StaticPool,
                **common,
            )
        else:
            if create:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            owner_only(path, create=create)
            target = path.as_uri() + ("?mode=rwc" if create else "?mode=rw")

            def connect() -> sqlite3.Connection:
                return sqlite3.connect(target, uri=True, timeout=timeout_s, check_same_thread=False)

            engine = create_engine(
                "sqlite://",
                creator=connect,
                poolclass=QueuePool,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_timeout=timeout_s,
                **common,
            )
        _sqlite_transactions(engine)
        return engine
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"not an SQL database URL this store knows: scheme {parsed.drivername!r}")
    ms = max(1, int(timeout_s * 1000))
    connect_args = {
        "connect_timeout": max(2, math.ceil(timeout_s)),
        "application_name": "attendant-store",
        "options": f"-c statement_timeout={ms} -c lock_timeout={ms} "
        f"-c idle_in_transaction_session_timeout={max(10_000, 5 * ms)}",
    }
    return create_engine(
        url,
        connect_args=connect_args,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=timeout_s,
        pool_pre_ping=True,
        **common,
    )


WRITE_OPTION = "attendant_write"


def _sqlite_transactions(engine: Engine) -> None:
    """Let SQLAlchemy, not pysqlite, emit BEGIN: ``BEGIN IMMEDIATE`` for writes, savepoints that work."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA foreign_keys = ON")
        dbapi_connection.execute("PRAGMA synchronous = NORMAL")

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE_OPTION) else "BEGIN")


def create_schema(engine: Engine) -> None:
    """Create the tables that are missing (idempotent); an SQLite file is switched to WAL mode."""
    if engine.dialect.name == "sqlite":
        raw = engine.raw_connection()
        try:
            raw.dbapi_connection.execute("PRAGMA journal_mode = WAL")  # persistent; outside a transaction
        finally:
            raw.close()
    with engine.begin() as conn:
        metadata.create_all(conn)


def drop_schema(engine: Engine) -> None:
    """Drop every table of the store (``seed --reset``)."""
    with engine.begin() as conn:
        metadata.drop_all(conn)
