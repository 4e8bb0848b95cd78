"""The customer store over SQL: SQLite (embedded default) or PostgreSQL, one code path (SQLAlchemy Core 1.4).

Why this file is long: it is one class, the twenty-odd methods of
:class:`~actions.backends.base.CustomerStore` sharing one timeout and transaction discipline (``_run``); the
tables and engines are already apart, in :mod:`actions.backends.schema`.

    store = SqlStore("sqlite:////srv/attendant/.run/attendant.db", timeout_s=2.0)
    store = SqlStore("postgresql://attendant@127.0.0.1:5432/attendant", timeout_s=2.0)

The database calls are blocking, so each one runs in a small thread pool owned by the store and the
coroutine waits for it at most ``timeout_s``; past that it raises
:class:`~actions.backends.base.BackendUnavailable` (so does any connection or database error). The work left
behind in the thread ends by itself shortly after, because the database bounds it too:

- SQLite: the busy timeout (waiting for a lock) is ``timeout_s``, and a progress handler interrupts any
  statement still running at the deadline. Write transactions start with ``BEGIN IMMEDIATE`` so two writers
  queue on the lock instead of deadlocking. The file is in WAL mode (set by the seed), so readers are never
  blocked by a writer. The store opens the file read-write but never creates it: a missing file means the
  seed has not run, which is a :class:`BackendUnavailable` like any other.
- PostgreSQL: ``connect_timeout`` (libpq's minimum is 2 s), ``statement_timeout`` and ``lock_timeout`` of
  ``timeout_s``, and a pool checkout timeout of ``timeout_s``.

Atomic bookings: a slot is claimed with ``UPDATE slots SET booked = true WHERE id = :id AND NOT booked AND
starts > :now`` and the row count decides (under PostgreSQL's row lock or SQLite's write lock the second
claimant sees the slot booked); a partial unique index (one active booking per slot) backs it up.

Logs name the operation and error type only: no numbers, names, PINs, dates of birth or SQL parameters
(the engine is built with ``hide_parameters=True``, and database error texts, which can quote key values,
are never logged or chained).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    Column,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from actions.backends.base import (
    DEFAULT_LINE,
    NEW,
    OPEN_INCIDENT_STATUSES,
    PRIORITIES,
    Account,
    BackendUnavailable,
    Booking,
    Branch,
    CallRecord,
    Customer,
    CustomerStore,
    Incident,
    LockPolicy,
    NotFound,
    OpeningHours,
    Order,
    OrderItem,
    OrderLine,
    PhoneLine,
    Product,
    Promotion,
    Slot,
    SlotTaken,
    StoreError,
    Verification,
    caller_kind,
    normalise_dob,
    normalise_number,
    verify_secret,
)
from actions.backends.schema import (
    WRITE_OPTION,
    accounts,
    bookings,
    branch_hours,
    branches,
    customers,
    holidays,
    incidents,
    is_sqlite,
    make_engine,
    normalise_url,
    order_items,
    orders,
    phone_lines,
    phone_numbers,
    products,
    promotions,
    slots,
    verification_failures,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

ETA_DAYS = 3
"""A new order's expected delivery: this many days after it is placed."""
MAX_QTY = 99
MAX_SLOTS = 50
MAX_DESCRIPTION = 2000
_NUMBER_ATTEMPTS = 5
_Attempt = tuple[bool, int, "datetime | None"]
"""A verification attempt as counted: (allowed, failures in a row, locked until)."""

# --- row -> record --------------------------------------------------------------------------------------


def _customer(row: Row) -> Customer:
    return Customer(
        customer_id=row.id,
        name=row.name,
        loyalty_tier=row.loyalty_tier,
        referral_source=row.referral_source,
        first_contact=row.first_contact,
        last_call=row.last_call,
        call_count=int(row.call_count),
        has_bought=bool(row.has_bought),
        has_pin=row.pin_hash is not None,
        has_dob=row.dob_hash is not None,
    )


def _slot(row: Row) -> Slot:
    return Slot(
        slot_id=int(row.id),
        branch_id=row.branch_id,
        resource=row.resource,
        starts=row.starts,
        ends=row.ends,
        free=not row.booked,
    )


def _incident(row: Row) -> Incident:
    return Incident(
        ticket=row.ticket,
        customer_id=row.customer_id,
        product_id=row.product_id,
        priority=int(row.priority),
        status=row.status,
        description=row.description,
        callback_number=row.callback_number,
        callback_from=row.callback_from,
        callback_until=row.callback_until,
        created=row.created,
    )


def _customer_by_id(conn: Connection, customer_id: str) -> Row | None:
    return conn.execute(select(customers).where(customers.c.id == customer_id)).first()


def _customer_by_number(conn: Connection, key: str) -> Row | None:
    query = (
        select(customers)
        .select_from(customers.join(phone_numbers, phone_numbers.c.customer_id == customers.c.id))
        .where(phone_numbers.c.number == key)
    )
    return conn.execute(query).first()


def _orders(conn: Connection, where: Iterable[Any], limit: int | None = None) -> list[Order]:
    query = select(orders).where(*where).order_by(orders.c.created.desc(), orders.c.number.desc())
    if limit is not None:
        query = query.limit(limit)
    heads = conn.execute(query).all()
    if not heads:
        return []
    numbers = [h.number for h in heads]
    item_rows = conn.execute(
        select(order_items, products.c.name)
        .select_from(order_items.join(products, products.c.id == order_items.c.product_id))
        .where(order_items.c.order_number.in_(numbers))
        .order_by(order_items.c.order_number, order_items.c.line)
    ).all()
    items: dict[str, list[OrderItem]] = {n: [] for n in numbers}
    for r in item_rows:
        items[r.order_number].append(OrderItem(r.product_id, r.name, int(r.qty), int(r.unit_price_cents)))
    return [Order(h.number, h.customer_id, h.status, h.eta, h.created, tuple(items[h.number])) for h in heads]


def _booking(conn: Connection, booking_id: int) -> Booking:
    row = conn.execute(
        select(bookings.c.id.label("booking_id"), bookings.c.customer_id, bookings.c.status, slots)
        .select_from(bookings.join(slots, slots.c.id == bookings.c.slot_id))
        .where(bookings.c.id == booking_id)
    ).one()
    return Booking(int(row.booking_id), row.customer_id, row.status, _slot(row))


def _claim_slot(conn: Connection, slot_id: int, now: datetime) -> None:
    """Mark ``slot_id`` booked if it is free and in the future; the row count decides who won."""
    claimed = conn.execute(
        update(slots)
        .where(slots.c.id == slot_id, slots.c.booked.is_(False), slots.c.starts > now)
        .values(booked=True)
    )
    if claimed.rowcount != 1:
        exists = conn.execute(select(slots.c.id).where(slots.c.id == slot_id)).first()
        raise SlotTaken("slot not free") if exists else NotFound("no such slot")


def _new_number() -> str:
    """A six-digit order or ticket number (never starting with 0, so it reads back cleanly)."""
    return str(100_000 + secrets.randbelow(900_000))


def _insert_numbered(conn: Connection, write: Callable[[str], None]) -> str:
    """Run ``write(number)`` with fresh random numbers until one is not taken (savepoint per attempt)."""
    for _ in range(_NUMBER_ATTEMPTS):
        number = _new_number()
        try:
            with conn.begin_nested():
                write(number)
        except IntegrityError:
            continue
        return number
    raise BackendUnavailable("no free number")


def _digits(text: str) -> str:
    return "".join(ch for ch in str(text) if ch.isdigit())


# --- the store ------------------------------------------------------------------------------------------


class SqlStore(CustomerStore):
    """:class:`~actions.backends.base.CustomerStore` over SQLite or PostgreSQL (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 2.0,
        pool_size: int = 4,
        clock: Callable[[], datetime] = datetime.now,
        lock: LockPolicy | None = None,
    ) -> None:
        """``clock`` gives "now" in local time (tests pass a fixed one); ``lock``: the verification
        lockout (default :class:`~actions.backends.base.LockPolicy`). Nothing connects here."""
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.lock = lock or LockPolicy()
        self._url = normalise_url(url)
        self.timeout_s = timeout_s
        self._pool_size = pool_size
        self._clock = clock
        self._engine: Engine | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        """Guards the engine (taken in worker threads)."""
        self._executor_lock = threading.Lock()
        """Guards the executor (taken on the event loop, so never held for long)."""
        self._sqlite = is_sqlite(self._url)

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return "sqlite" if self._sqlite else "postgresql"

    # -- plumbing

    def _get_engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                self._engine = make_engine(self._url, self.timeout_s, self._pool_size)
            return self._engine

    def _get_executor(self) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self._pool_size, thread_name_prefix="attendant-store")
            return self._executor

    def _work(self, fn: Callable[[Connection], T], write: bool, deadline: float) -> T:
        """In a worker thread: one transaction around ``fn``, interrupted (SQLite) at ``deadline``."""
        if time.monotonic() >= deadline:
            raise BackendUnavailable("deadline passed before start")
        engine = self._get_engine()
        with engine.connect() as conn:
            if write:
                conn.execution_options(**{WRITE_OPTION: True})
            raw: Any = conn.connection.dbapi_connection if self._sqlite else None
            if raw is not None:
                raw.set_progress_handler(lambda: time.monotonic() > deadline, 1000)
            try:
                with conn.begin():
                    return fn(conn)
            finally:
                if raw is not None:
                    raw.set_progress_handler(None, 0)

    async def _run(
        self,
        op: str,
        fn: Callable[[Connection], T],
        *,
        write: bool = False,
        conflict: type[StoreError] | None = None,
    ) -> T:
        """Run ``fn`` in a transaction off the event loop, within ``timeout_s``; map failures.

        ``conflict``: what an integrity error (a unique index saying no) means for this operation;
        without one it is a :class:`BackendUnavailable`.
        """
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + self.timeout_s
        started = time.monotonic()
        try:
            future = loop.run_in_executor(self._get_executor(), self._work, fn, write, deadline)
            return await asyncio.wait_for(future, self.timeout_s)
        except asyncio.TimeoutError:
            log.warning("store timeout op=%s backend=%s after_s=%.2f", op, self.backend, self.timeout_s)
            raise BackendUnavailable(f"{op}: timed out") from None
        except (StoreError, ValueError):
            raise
        except IntegrityError:
            if conflict is not None:
                raise conflict(f"{op}: conflict") from None
            log.error("store integrity error op=%s backend=%s", op, self.backend)
            raise BackendUnavailable(f"{op}: integrity error") from None
        except (SQLAlchemyError, sqlite3.Error, OSError, RuntimeError) as exc:
            code = getattr(getattr(exc, "orig", None), "pgcode", None) or ""
            log.warning(
                "store failure op=%s backend=%s error=%s%s after_s=%.2f",
                op,
                self.backend,
                type(exc).__name__,
                f" sqlstate={code}" if code else "",
                time.monotonic() - started,
            )
            raise BackendUnavailable(f"{op}: {type(exc).__name__}") from None

    async def close(self) -> None:
        """Dispose of the connection pool and the worker threads."""
        with self._lock, self._executor_lock:
            engine, executor = self._engine, self._executor
            self._engine = self._executor = None
        if engine is not None:
            await asyncio.get_running_loop().run_in_executor(None, engine.dispose)
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    # -- callers

    async def find_customer_by_number(self, number: str | None) -> Customer | None:
        key = normalise_number(number)
        if key is None:
            return None

        def q(conn: Connection) -> Customer | None:
            row = _customer_by_number(conn, key)
            return _customer(row) if row is not None else None

        return await self._run("find_customer_by_number", q)

    async def get_customer(self, customer_id: str) -> Customer | None:
        def q(conn: Connection) -> Customer | None:
            row = _customer_by_id(conn, customer_id)
            return _customer(row) if row is not None else None

        return await self._run("get_customer", q)

    async def record_call(self, number: str | None, at: datetime | None = None) -> CallRecord | None:
        key = normalise_number(number)
        if key is None:
            return None
        when = at or self._clock()

        def q(conn: Connection) -> CallRecord:
            for _ in range(3):
                row = _customer_by_number(conn, key)
                if row is None:
                    customer_id = "C-" + secrets.token_hex(4).upper()
                    try:
                        with conn.begin_nested():
                            conn.execute(
                                insert(customers).values(
                                    id=customer_id,
                                    loyalty_tier="none",
                                    first_contact=when,
                                    last_call=when,
                                    call_count=1,
                                    has_bought=False,
                                    created=when,
                                )
                            )
                            conn.execute(insert(phone_numbers).values(number=key, customer_id=customer_id))
                    except IntegrityError:
                        continue  # the same number was registered by a concurrent call: count on it
                    log.info("new caller record customer=%s", customer_id)
                    return CallRecord(_customer(_customer_by_id(conn, customer_id)), NEW)
                kind = caller_kind(_customer(row))
                conn.execute(
                    update(customers)
                    .where(customers.c.id == row.id)
                    .values(
                        last_call=when,
                        call_count=customers.c.call_count + 1,
                        first_contact=row.first_contact or when,
                    )
                )
                return CallRecord(_customer(_customer_by_id(conn, row.id)), kind)
            raise BackendUnavailable("record_call: could not settle the caller record")

        return await self._run("record_call", q, write=True)

    async def set_referral_source(self, customer_id: str, source: str) -> None:
        value = source.strip()[:32]

        def q(conn: Connection) -> None:
            done = conn.execute(
                update(customers).where(customers.c.id == customer_id).values(referral_source=value)
            )
            if done.rowcount != 1:
                raise NotFound("no such customer")

        await self._run("set_referral_source", q, write=True)

    # -- verification

    async def _secret(self, op: str, customer_id: str, hash_col: Column, salt_col: Column) -> tuple[Any, Any]:
        def q(conn: Connection) -> tuple[Any, Any]:
            row = conn.execute(select(hash_col, salt_col).where(customers.c.id == customer_id)).first()
            return (row[0], row[1]) if row is not None else (None, None)

        return await self._run(op, q)

    async def verify_pin(self, customer_id: str, pin: str) -> bool:
        c = customers.c
        stored, salt = await self._secret("verify_pin", customer_id, c.pin_hash, c.pin_salt)
        # Hashing is deliberately slow (PBKDF2): off the loop, and without holding a connection.
        return await asyncio.to_thread(verify_secret, pin, salt, stored)

    async def verify_dob(self, customer_id: str, dob: date | str) -> bool:
        c = customers.c
        stored, salt = await self._secret("verify_dob", customer_id, c.dob_hash, c.dob_salt)
        return await asyncio.to_thread(verify_secret, normalise_dob(dob), salt, stored)

    async def verify_identity(self, customer_id: str, kind: str, value: str) -> Verification:
        if kind not in ("pin", "dob"):
            raise ValueError("kind must be 'pin' or 'dob'")
        attempt = await self._run("verification_attempt", self._count_attempt(customer_id), write=True)
        if attempt is None:  # no such customer: nothing to count
            return Verification(False)
        allowed, failures, locked_until = attempt
        if not allowed:
            log.info("verification refused: locked customer=%s failures=%d", customer_id, failures)
            return Verification(False, locked_until, failures)
        if kind == "pin":
            ok = await self.verify_pin(customer_id, value)
        else:
            ok = await self.verify_dob(customer_id, value)
        if ok:
            await self._run("verification_passed", self._clear_failures(customer_id), write=True)
            return Verification(True)
        if locked_until is not None:
            log.warning(
                "verification locked customer=%s failures=%d lock_s=%d",
                customer_id,
                failures,
                self.lock.lock_s,
            )
        return Verification(False, locked_until, failures)

    def _count_attempt(self, customer_id: str) -> Callable[[Connection], _Attempt | None]:
        """One attempt, counted as a failure *before* the check (so parallel calls cannot run more checks
        than the policy allows; a success then clears it): ``(allowed, failures, locked_until)``, or
        ``None`` for an unknown customer."""
        now = self._clock()
        vf = verification_failures

        def q(conn: Connection) -> _Attempt | None:
            if _customer_by_id(conn, customer_id) is None:
                return None
            query = select(vf).where(vf.c.customer_id == customer_id).with_for_update()
            row = conn.execute(query).first()
            if row is None:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(vf).values(customer_id=customer_id, failures=0, last_failure=now))
                except IntegrityError:  # another call inserted it first: use theirs
                    pass
                row = conn.execute(query).one()
            if row.locked_until is not None and row.locked_until > now:
                return False, int(row.failures), row.locked_until
            failures = int(row.failures) + 1
            locked = failures >= self.lock.attempts
            locked_until = now + timedelta(seconds=self.lock.lock_s) if locked else None
            conn.execute(
                update(vf)
                .where(vf.c.customer_id == customer_id)
                .values(failures=failures, last_failure=now, locked_until=locked_until)
            )
            return True, failures, locked_until

        return q

    def _clear_failures(self, customer_id: str) -> Callable[[Connection], None]:
        def q(conn: Connection) -> None:
            vf = verification_failures
            conn.execute(delete(vf).where(vf.c.customer_id == customer_id))

        return q

    async def verification_lock(self, customer_id: str) -> datetime | None:
        now = self._clock()

        def q(conn: Connection) -> datetime | None:
            vf = verification_failures
            row = conn.execute(select(vf.c.locked_until).where(vf.c.customer_id == customer_id)).first()
            until = row.locked_until if row is not None else None
            return until if until is not None and until > now else None

        return await self._run("verification_lock", q)

    async def clear_verification_failures(self, customer_id: str) -> None:
        """Unlock the customer and forget their failed checks (what an agent does once they are sure)."""
        await self._run("clear_verification_failures", self._clear_failures(customer_id), write=True)
        log.info("verification lock cleared customer=%s", customer_id)

    # -- accounts

    async def get_account(self, customer_id: str) -> Account | None:
        def q(conn: Connection) -> Account | None:
            row = conn.execute(select(accounts).where(accounts.c.customer_id == customer_id)).first()
            if row is None:
                return None
            return Account(
                customer_id=row.customer_id,
                balance_cents=int(row.balance_cents),
                currency=row.currency,
                last_payment_cents=None if row.last_payment_cents is None else int(row.last_payment_cents),
                last_payment_date=row.last_payment_date,
            )

        return await self._run("get_account", q)

    # -- orders and catalogue

    async def last_order(self, customer_id: str) -> Order | None:
        def q(conn: Connection) -> Order | None:
            found = _orders(conn, [orders.c.customer_id == customer_id], limit=1)
            return found[0] if found else None

        return await self._run("last_order", q)

    async def get_order(self, number: str, customer_id: str) -> Order | None:
        key = _digits(number)
        if not key:
            return None

        def q(conn: Connection) -> Order | None:
            found = _orders(conn, [orders.c.number == key, orders.c.customer_id == customer_id])
            return found[0] if found else None

        return await self._run("get_order", q)

    async def list_products(self) -> list[Product]:
        def q(conn: Connection) -> list[Product]:
            rows = conn.execute(select(products).where(products.c.active.is_(True)).order_by(products.c.name))
            return [Product(r.id, r.name, int(r.price_cents), bool(r.active)) for r in rows]

        return await self._run("list_products", q)

    async def find_product(self, name_or_id: str) -> Product | None:
        text = name_or_id.strip()
        if not text:
            return None

        def q(conn: Connection) -> Product | None:
            row = conn.execute(
                select(products).where(
                    products.c.active.is_(True),
                    (products.c.id == text) | (func.lower(products.c.name) == text.lower()),
                )
            ).first()
            return Product(row.id, row.name, int(row.price_cents), bool(row.active)) if row else None

        return await self._run("find_product", q)

    async def promotion_for(self, product_id: str, on: date | None = None) -> Promotion | None:
        day = on or self._clock().date()

        def q(conn: Connection) -> Promotion | None:
            row = conn.execute(
                select(promotions)
                .where(
                    promotions.c.product_id == product_id,
                    promotions.c.valid_from <= day,
                    promotions.c.valid_until >= day,
                )
                .order_by(promotions.c.valid_until, promotions.c.id)
                .limit(1)
            ).first()
            return Promotion(row.product_id, row.text, row.valid_from, row.valid_until) if row else None

        return await self._run("promotion_for", q)

    async def create_order(self, customer_id: str, lines: Sequence[OrderLine]) -> Order:
        if not lines:
            raise ValueError("an order needs at least one line")
        for line in lines:
            if isinstance(line.qty, bool) or not 1 <= line.qty <= MAX_QTY:
                raise ValueError(f"quantity must be 1..{MAX_QTY}")
        now = self._clock()

        def q(conn: Connection) -> Order:
            if _customer_by_id(conn, customer_id) is None:
                raise NotFound("no such customer")
            wanted = {line.product_id for line in lines}
            prices = {
                r.id: int(r.price_cents)
                for r in conn.execute(
                    select(products.c.id, products.c.price_cents).where(
                        products.c.id.in_(wanted), products.c.active.is_(True)
                    )
                )
            }
            if set(prices) != wanted:
                raise NotFound("unknown or inactive product")
            eta = (now + timedelta(days=ETA_DAYS)).date()

            def write(number: str) -> None:
                conn.execute(
                    insert(orders).values(
                        number=number, customer_id=customer_id, status="received", eta=eta, created=now
                    )
                )
                conn.execute(
                    insert(order_items),
                    [
                        {
                            "order_number": number,
                            "line": i,
                            "product_id": line.product_id,
                            "qty": line.qty,
                            "unit_price_cents": prices[line.product_id],
                        }
                        for i, line in enumerate(lines, start=1)
                    ],
                )

            number = _insert_numbered(conn, write)
            conn.execute(update(customers).where(customers.c.id == customer_id).values(has_bought=True))
            log.info("order created customer=%s lines=%d", customer_id, len(lines))
            return _orders(conn, [orders.c.number == number])[0]

        return await self._run("create_order", q, write=True)

    # -- appointments

    async def free_slots(
        self, start: datetime, end: datetime, n: int = 3, branch_id: str | None = None
    ) -> list[Slot]:
        limit = max(1, min(n, MAX_SLOTS))
        since = max(start, self._clock())

        def q(conn: Connection) -> list[Slot]:
            query = select(slots).where(
                slots.c.booked.is_(False), slots.c.starts >= since, slots.c.starts < end
            )
            if branch_id is not None:
                query = query.where(slots.c.branch_id == branch_id)
            rows = conn.execute(query.order_by(slots.c.starts, slots.c.id).limit(limit))
            return [_slot(r) for r in rows]

        return await self._run("free_slots", q)

    async def book(self, customer_id: str, slot_id: int) -> Booking:
        now = self._clock()

        def q(conn: Connection) -> Booking:
            if _customer_by_id(conn, customer_id) is None:
                raise NotFound("no such customer")
            _claim_slot(conn, slot_id, now)
            result = conn.execute(
                insert(bookings).values(
                    customer_id=customer_id, slot_id=slot_id, status="booked", created=now, updated=now
                )
            )
            booking_id = int(result.inserted_primary_key[0])
            log.info("booked customer=%s booking=%d slot=%d", customer_id, booking_id, slot_id)
            return _booking(conn, booking_id)

        return await self._run("book", q, write=True, conflict=SlotTaken)

    def _active_booking(self, conn: Connection, customer_id: str, booking_id: int) -> Row:
        row = conn.execute(
            select(bookings)
            .where(
                bookings.c.id == booking_id,
                bookings.c.customer_id == customer_id,
                bookings.c.status == "booked",
            )
            .with_for_update()
        ).first()
        if row is None:
            raise NotFound("no such active booking")
        return row

    async def reschedule(self, customer_id: str, booking_id: int, new_slot_id: int) -> Booking:
        now = self._clock()

        def q(conn: Connection) -> Booking:
            current = self._active_booking(conn, customer_id, booking_id)
            if current.slot_id == new_slot_id:
                return _booking(conn, booking_id)
            _claim_slot(conn, new_slot_id, now)
            conn.execute(update(slots).where(slots.c.id == current.slot_id).values(booked=False))
            conn.execute(
                update(bookings).where(bookings.c.id == booking_id).values(slot_id=new_slot_id, updated=now)
            )
            log.info("rescheduled customer=%s booking=%d slot=%d", customer_id, booking_id, new_slot_id)
            return _booking(conn, booking_id)

        return await self._run("reschedule", q, write=True, conflict=SlotTaken)

    async def cancel(self, customer_id: str, booking_id: int) -> Booking:
        now = self._clock()

        def q(conn: Connection) -> Booking:
            current = self._active_booking(conn, customer_id, booking_id)
            conn.execute(
                update(bookings).where(bookings.c.id == booking_id).values(status="cancelled", updated=now)
            )
            conn.execute(update(slots).where(slots.c.id == current.slot_id).values(booked=False))
            log.info("cancelled customer=%s booking=%d", customer_id, booking_id)
            return _booking(conn, booking_id)

        return await self._run("cancel", q, write=True)

    async def next_booking(self, customer_id: str, after: datetime | None = None) -> Booking | None:
        since = after or self._clock()

        def q(conn: Connection) -> Booking | None:
            row = conn.execute(
                select(bookings.c.id)
                .select_from(bookings.join(slots, slots.c.id == bookings.c.slot_id))
                .where(
                    bookings.c.customer_id == customer_id,
                    bookings.c.status == "booked",
                    slots.c.starts >= since,
                )
                .order_by(slots.c.starts)
                .limit(1)
            ).first()
            return _booking(conn, int(row.id)) if row is not None else None

        return await self._run("next_booking", q)

    # -- support

    async def create_incident(
        self,
        customer_id: str,
        product_id: str | None,
        priority: int,
        description: str,
        callback_number: str | None = None,
        callback_window: tuple[datetime, datetime] | None = None,
    ) -> Incident:
        if isinstance(priority, bool) or priority not in PRIORITIES:
            raise ValueError("priority must be 1, 2, 3 or 4")
        if callback_window is not None and not callback_window[0] < callback_window[1]:
            raise ValueError("callback window must start before it ends")
        window_from, window_until = callback_window or (None, None)
        text = description.strip()[:MAX_DESCRIPTION]
        number = callback_number.strip()[:32] if callback_number else None
        now = self._clock()

        def q(conn: Connection) -> Incident:
            if _customer_by_id(conn, customer_id) is None:
                raise NotFound("no such customer")
            if product_id is not None:
                if conn.execute(select(products.c.id).where(products.c.id == product_id)).first() is None:
                    raise NotFound("no such product")

            def write(ticket: str) -> None:
                conn.execute(
                    insert(incidents).values(
                        ticket=ticket,
                        customer_id=customer_id,
                        product_id=product_id,
                        priority=priority,
                        status="open",
                        description=text,
                        callback_number=number,
                        callback_from=window_from,
                        callback_until=window_until,
                        created=now,
                        updated=now,
                    )
                )

            ticket = _insert_numbered(conn, write)
            log.info("incident created customer=%s priority=%d", customer_id, priority)
            row = conn.execute(select(incidents).where(incidents.c.ticket == ticket)).one()
            return _incident(row)

        return await self._run("create_incident", q, write=True)

    async def get_incident(self, ticket: str, customer_id: str) -> Incident | None:
        key = _digits(ticket)
        if not key:
            return None

        def q(conn: Connection) -> Incident | None:
            row = conn.execute(
                select(incidents).where(incidents.c.ticket == key, incidents.c.customer_id == customer_id)
            ).first()
            return _incident(row) if row is not None else None

        return await self._run("get_incident", q)

    async def open_incidents(self, customer_id: str) -> list[Incident]:
        def q(conn: Connection) -> list[Incident]:
            rows = conn.execute(
                select(incidents)
                .where(
                    incidents.c.customer_id == customer_id,
                    incidents.c.status.in_(OPEN_INCIDENT_STATUSES),
                )
                .order_by(incidents.c.created.desc(), incidents.c.ticket)
            )
            return [_incident(r) for r in rows]

        return await self._run("open_incidents", q)

    # -- information line

    async def branches(self) -> list[Branch]:
        def q(conn: Connection) -> list[Branch]:
            return _branches(conn)

        return await self._run("branches", q)

    async def phone_line(self, number: str | None) -> PhoneLine | None:
        wanted = [n for n in ("".join(ch for ch in number or "" if ch.isdigit()), DEFAULT_LINE) if n]

        def q(conn: Connection) -> PhoneLine | None:
            rows = {
                r.number: r for r in conn.execute(select(phone_lines).where(phone_lines.c.number.in_(wanted)))
            }
            row = next((rows[n] for n in wanted if n in rows), None)
            if row is None:
                return None
            branch = next((b for b in _branches(conn, row.branch_id)), None)
            if branch is None:
                return None
            return PhoneLine(row.number, row.name, row.timezone, branch)

        return await self._run("phone_line", q)


def _branches(conn: Connection, branch_id: str | None = None) -> list[Branch]:
    """Branches (or the one ``branch_id``) with their weekly hours and holidays, by name."""
    hours: dict[str, list[OpeningHours]] = {}
    by_day = select(branch_hours).order_by(branch_hours.c.branch_id, branch_hours.c.weekday)
    closed: dict[str, set[date]] = {}
    days_off = select(holidays)
    if branch_id is not None:
        by_day = by_day.where(branch_hours.c.branch_id == branch_id)
        days_off = days_off.where(holidays.c.branch_id == branch_id)
    for h in conn.execute(by_day):
        hours.setdefault(h.branch_id, []).append(OpeningHours(int(h.weekday), h.opens, h.closes))
    for d in conn.execute(days_off):
        closed.setdefault(d.branch_id, set()).add(d.day)
    which = select(branches).order_by(branches.c.name)
    if branch_id is not None:
        which = which.where(branches.c.id == branch_id)
    return [
        Branch(
            b.id,
            b.name,
            b.address,
            b.city,
            b.postcode,
            b.phone,
            tuple(hours.get(b.id, ())),
            frozenset(closed.get(b.id, ())),
        )
        for b in conn.execute(which)
    ]


__all__ = ["SqlStore"]
