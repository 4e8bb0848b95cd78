"""The customer store's interface: what the actions may ask, what they get back, and how it fails.

Why this file is long: it is the whole contract every backend (SQL, HTTP, demo) implements — the records,
the error tree and the abstract methods — kept in one place so a backend's author reads one file.

Every method is a coroutine (the action server is async) and every backend bounds every call by a short
timeout (``StoreConfig.timeout_s``, default 2 s). Records are frozen dataclasses; none of them carries a
PIN or a date of birth: those are kept only as salted PBKDF2 hashes and checked with :meth:`verify_pin` /
:meth:`verify_dob`, which compare in constant time.

Times are naive :class:`~datetime.datetime` values in the call centre's local time (the server's clock);
dates (ETA, last payment, date of birth) are :class:`~datetime.date`. Money is an ``int`` in cents.

Errors::

    StoreError               anything the store could not do. Unhandled, the caller goes to a person
     |                       (handoff reason "technical").
     +-- BackendUnavailable  timeout, connection failure, database error. Hand off at once, never retried
     |                       within the call (a retry doubles the silence the caller hears).
     +-- NotFound            the booking / product / customer named does not exist or is not this
     |                       customer's. Say so and offer what the bot can do.
     +-- SlotTaken           the slot is no longer free (someone else booked it first, or it has passed).
                             Offer other free slots.

Verification lockout: :meth:`CustomerStore.verify_identity` counts failed PIN and date-of-birth checks per
customer, across calls and channels, in the store. After ``lock_attempts`` failures in a row (default 5) the
customer is locked for ``lock_s`` seconds (default 900): no check is even made, a correct PIN included, and
the caller goes to a person (handoff reason ``verification-locked``). After the cooling-off one attempt is
allowed; if it fails too, the lock starts again. A success resets the count.

Invalid arguments (priority outside 1-4, a quantity below 1, an empty order) raise :class:`ValueError`:
those are bugs in the caller of the store, not conditions of the call.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# --- errors ---------------------------------------------------------------------------------------------


class StoreError(Exception):
    """The store could not answer; unhandled, the caller goes to a person with reason ``technical``."""


class BackendUnavailable(StoreError):
    """The backend timed out, could not be reached or failed. Hand off; do not retry within the call."""


class NotFound(StoreError):
    """The record named does not exist, or does not belong to the customer asking."""


class SlotTaken(StoreError):
    """The appointment slot is no longer free (booked by someone else first, or already passed)."""


# --- vocabularies ---------------------------------------------------------------------------------------

LOYALTY_TIERS = ("none", "silver", "gold")
"""Loyalty tiers, lowest first."""
ORDER_STATUSES = ("received", "processing", "shipped", "delivered", "cancelled")
BOOKING_STATUSES = ("booked", "cancelled")
INCIDENT_STATUSES = ("open", "in_progress", "resolved", "closed")
OPEN_INCIDENT_STATUSES = ("open", "in_progress")
PRIORITIES = (1, 2, 3, 4)
"""Incident priority: 1 total outage, 2 partial outage, 3 consultation (unhappy customer), 4 consultation."""

NEW = "new"
"""Caller kind: first contact, no record of this number (sales focus)."""
RETURNING = "returning"
"""Caller kind: called before, never bought."""
EXISTING = "existing"
"""Caller kind: a customer who has bought (service and loyalty focus)."""


# --- records --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Customer:
    """A person the store knows by phone number: a customer, or a caller who has not bought yet."""

    customer_id: str
    name: str | None = None
    """Full name; ``None`` for a caller who never gave one."""
    loyalty_tier: str = "none"
    """One of :data:`LOYALTY_TIERS`."""
    referral_source: str | None = None
    """How they came to us ("friend", "web", ...), when known."""
    first_contact: datetime | None = None
    last_call: datetime | None = None
    call_count: int = 0
    has_bought: bool = False
    has_pin: bool = False
    """Whether a PIN is on file (so PIN verification is possible). Never the PIN itself."""
    has_dob: bool = False
    """Whether a date of birth is on file. Never the date itself."""


@dataclass(frozen=True, slots=True)
class Verification:
    """What one verification attempt came to (:meth:`CustomerStore.verify_identity`)."""

    ok: bool
    """The PIN or date of birth matched, and the customer was not locked."""
    locked_until: datetime | None = None
    """Set when the customer is locked out: this attempt was refused, or its failure locked them."""
    failures: int = 0
    """Failed attempts in a row so far, across calls (0 after a success)."""

    @property
    def locked(self) -> bool:
        """Whether the customer is locked out (then :attr:`ok` is false)."""
        return not self.ok and self.locked_until is not None


@dataclass(frozen=True, slots=True)
class LockPolicy:
    """When failed verifications lock a customer out, and for how long."""

    attempts: int = 5
    """Failed checks in a row (across calls) that lock the customer."""
    lock_s: float = 900.0
    """Seconds of cooling-off once locked."""

    def __post_init__(self) -> None:
        if not 1 <= self.attempts <= 1000:
            raise ValueError(f"lock attempts must be 1..1000, not {self.attempts}")
        if not 0 < self.lock_s <= 30 * 86400:
            raise ValueError(f"lock period must be in (0, 30 days] seconds, not {self.lock_s}")


VERIFY_KINDS = ("pin", "dob")
"""What :meth:`CustomerStore.verify_identity` checks: the PIN or the date of birth."""


@dataclass(frozen=True, slots=True)
class CallRecord:
    """What :meth:`CustomerStore.record_call` did: who called, and which kind of caller they were."""

    customer: Customer
    """The record after this call was counted."""
    kind: str
    """:data:`NEW`, :data:`RETURNING` or :data:`EXISTING`, judged on the record *before* this call."""


@dataclass(frozen=True, slots=True)
class Balance:
    """An account balance."""

    cents: int
    """Amount in the currency's smallest unit (cents); negative means the customer owes."""
    currency: str = "USD"


@dataclass(frozen=True, slots=True)
class Account:
    """A customer's account: balance and last payment."""

    customer_id: str
    balance_cents: int
    """Cents; negative means the customer owes."""
    currency: str
    """ISO 4217 code, e.g. ``USD``."""
    last_payment_cents: int | None
    last_payment_date: date | None


@dataclass(frozen=True, slots=True)
class OrderLine:
    """One line of a new order, as the caller asked for it (the store sets the price)."""

    product_id: str
    qty: int = 1


@dataclass(frozen=True, slots=True)
class OrderItem:
    """One line of a stored order."""

    product_id: str
    name: str
    qty: int
    unit_price_cents: int


@dataclass(frozen=True, slots=True)
class Order:
    """An order."""

    number: str
    """Six digits, read back to the caller digit by digit."""
    customer_id: str
    status: str
    """One of :data:`ORDER_STATUSES`."""
    eta: date | None
    """Expected delivery date; ``None`` once delivered or cancelled, or when unknown."""
    created: datetime
    items: tuple[OrderItem, ...] = ()

    @property
    def total_cents(self) -> int:
        """Sum of quantity times unit price."""
        return sum(item.qty * item.unit_price_cents for item in self.items)


@dataclass(frozen=True, slots=True)
class Product:
    """A catalogue product."""

    product_id: str
    name: str
    price_cents: int
    active: bool = True
    """Inactive products cannot be ordered."""


@dataclass(frozen=True, slots=True)
class Promotion:
    """An offer on one product, valid from ``valid_from`` to ``valid_until`` inclusive."""

    product_id: str
    text: str
    """What the bot may say, one short sentence."""
    valid_from: date
    valid_until: date


@dataclass(frozen=True, slots=True)
class Slot:
    """An appointment slot at a branch, for one resource (an advisor, a desk)."""

    slot_id: int
    branch_id: str
    resource: str
    starts: datetime
    ends: datetime
    free: bool


@dataclass(frozen=True, slots=True)
class Booking:
    """A customer's booking of a slot."""

    booking_id: int
    customer_id: str
    status: str
    """One of :data:`BOOKING_STATUSES`."""
    slot: Slot


@dataclass(frozen=True, slots=True)
class Incident:
    """A support ticket."""

    ticket: str
    """Six digits, read back to the caller digit by digit."""
    customer_id: str
    product_id: str | None
    priority: int
    """One of :data:`PRIORITIES` (1 is the most urgent)."""
    status: str
    """One of :data:`INCIDENT_STATUSES`."""
    description: str
    callback_number: str | None
    callback_from: datetime | None
    callback_until: datetime | None
    created: datetime


@dataclass(frozen=True, slots=True)
class OpeningHours:
    """Opening hours on one weekday."""

    weekday: int
    """0 = Monday ... 6 = Sunday."""
    opens: time
    closes: time


@dataclass(frozen=True, slots=True)
class Branch:
    """A branch: where it is and when it is open (days not listed in ``hours`` are closed)."""

    branch_id: str
    name: str
    address: str
    city: str
    postcode: str
    phone: str
    hours: tuple[OpeningHours, ...] = field(default=())

    def hours_on(self, weekday: int) -> OpeningHours | None:
        """The opening hours on ``weekday`` (0 = Monday), ``None`` when closed all day."""
        return next((h for h in self.hours if h.weekday == weekday), None)

    holidays: frozenset[date] = field(default=frozenset())
    """Days it is closed whatever the weekly hours say."""

    def hours_of(self, day: date) -> OpeningHours | None:
        """The opening hours on the date ``day``: ``None`` on a holiday or a day it is closed."""
        return None if day in self.holidays else self.hours_on(day.weekday())

    def is_open(self, at: datetime) -> bool:
        """Whether the branch is open at ``at`` (local time)."""
        hours = self.hours_of(at.date())
        return hours is not None and hours.opens <= at.time() < hours.closes

    def next_opening(self, after: datetime) -> datetime | None:
        """When it next opens strictly after ``after`` (same tzinfo as ``after``), holidays skipped; ``None``
        when it never opens in the coming 370 days."""
        for ahead in range(370):
            day = after.date() + timedelta(days=ahead)
            hours = self.hours_of(day)
            if hours is None:
                continue
            opens = datetime.combine(day, hours.opens, tzinfo=after.tzinfo)
            if opens > after:
                return opens
        return None


DEFAULT_LINE = "default"
"""The line of every dialled number not listed in the store."""


@dataclass(frozen=True, slots=True)
class PhoneLine:
    """A number callers dial: its name, its time zone and the branch whose hours and holidays it keeps."""

    number: str
    """The dialled number's digits, or ``default`` for every number not listed."""
    name: str
    timezone: str
    """An IANA zone name (``America/Chicago``)."""
    branch: Branch

    def zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise StoreError(f"line {self.number}: unknown time zone {self.timezone!r}") from exc

    def local(self, unix_s: float) -> datetime:
        """The line's local time at ``unix_s``."""
        return datetime.fromtimestamp(unix_s, self.zone())

    def is_open(self, unix_s: float) -> bool:
        """Whether the line is answered at ``unix_s``."""
        local = self.local(unix_s)
        return self.branch.is_open(local.replace(tzinfo=None))

    def next_opening(self, unix_s: float) -> datetime | None:
        """The next opening after ``unix_s``, in the line's time zone."""
        return self.branch.next_opening(self.local(unix_s))


# --- pure helpers ---------------------------------------------------------------------------------------


def normalise_number(number: str | None) -> str | None:
    """Compare phone numbers by their last ten digits ("+1 (555) 010-0001" == "5550100001")."""
    if not number:
        return None
    digits = re.sub(r"\D", "", number)
    if len(digits) < 7:
        return None
    return digits[-10:]


def normalise_dob(value: date | str | None) -> str | None:
    """A date of birth as ``YYYY-MM-DD`` (what is hashed), or ``None`` when it is not a valid date."""
    if value is None:
        return None
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        return value.isoformat()
    try:
        return date.fromisoformat(value.strip()).isoformat()
    except ValueError:
        return None


def caller_kind(customer: Customer | None) -> str:
    """:data:`NEW`, :data:`RETURNING` or :data:`EXISTING` for a record as it stands (before this call)."""
    if customer is None or (customer.call_count == 0 and not customer.has_bought):
        return NEW
    return EXISTING if customer.has_bought else RETURNING


HASH_SCHEME = "pbkdf2_sha256"
HASH_ITERATIONS = 100_000
"""About 30 ms per check on one core. A 4-digit PIN cannot be made safe by hashing alone: what protects it
is the lockout (:class:`LockPolicy`: a few attempts per customer across calls, then a cooling-off) and keeping
the database private; the hash keeps it out of dumps and logs."""
_MAX_ITERATIONS = 10_000_000
_DUMMY_SALT = "0" * 32
_DUMMY_HASH = f"{HASH_SCHEME}${HASH_ITERATIONS}${'0' * 64}"


def new_salt() -> str:
    """A fresh random salt (32 hex characters)."""
    return secrets.token_hex(16)


def hash_secret(value: str, salt: str, iterations: int = HASH_ITERATIONS) -> str:
    """``pbkdf2_sha256$<iterations>$<hex digest>`` of ``value`` with ``salt``."""
    digest = hashlib.pbkdf2_hmac("sha256", value.encode(), salt.encode(), iterations)
    return f"{HASH_SCHEME}${iterations}${digest.hex()}"


def verify_secret(value: str | None, salt: str | None, stored: str | None) -> bool:
    """Whether ``value`` hashes to ``stored``; constant time, and the same work when nothing is on file."""
    ok_inputs = value is not None and salt is not None and stored is not None
    scheme, _, rest = (stored if ok_inputs and stored else _DUMMY_HASH).partition("$")
    iterations_text, _, _ = rest.partition("$")
    try:
        iterations = int(iterations_text)
    except ValueError:
        iterations = HASH_ITERATIONS
        ok_inputs = False
    if scheme != HASH_SCHEME or not 1 <= iterations <= _MAX_ITERATIONS:
        iterations = HASH_ITERATIONS
        ok_inputs = False
    candidate = hash_secret(value or "", salt or _DUMMY_SALT, iterations)
    same = hmac.compare_digest(candidate.encode(), (stored or _DUMMY_HASH).encode())
    return ok_inputs and same


# --- the interface --------------------------------------------------------------------------------------


class CustomerStore(ABC):
    """What the actions may ask about customers and their business (see the module docstring).

    Every method may raise :class:`BackendUnavailable` (within the configured timeout); the ones that
    change bookings may raise :class:`NotFound` or :class:`SlotTaken`. Methods that take a ``customer_id``
    only ever return that customer's records.
    """

    # callers

    @abstractmethod
    async def find_customer_by_number(self, number: str | None) -> Customer | None:
        """The record for the number calling (any format: "+1 555 010 0001", "5550100001"), or ``None``."""

    async def kind_of_caller(self, number: str | None) -> str | None:
        """Who is calling, read only (nothing is counted): :data:`NEW`, :data:`RETURNING` or :data:`EXISTING`,
        as :meth:`record_call` will count it; ``None`` when the number is withheld or not a phone number.
        The gateway greets by it before the caller has said anything."""
        if normalise_number(number) is None:
            return None
        return caller_kind(await self.find_customer_by_number(number))

    @abstractmethod
    async def get_customer(self, customer_id: str) -> Customer | None:
        """The record with this id, or ``None``."""

    @abstractmethod
    async def record_call(self, number: str | None, at: datetime | None = None) -> CallRecord | None:
        """Count a call from ``number``: last call, call count, first contact.

        An unknown number gets a new record (no name, nothing bought), so its next call is *returning*.
        ``None`` when the number is withheld or not a phone number.
        """

    @abstractmethod
    async def set_referral_source(self, customer_id: str, source: str) -> None:
        """Remember how the customer came to us ("friend" when they say a friend recommended us)."""

    # verification

    @abstractmethod
    async def verify_pin(self, customer_id: str, pin: str) -> bool:
        """Whether ``pin`` is this customer's PIN (salted hash, constant-time compare)."""

    @abstractmethod
    async def verify_dob(self, customer_id: str, dob: date | str) -> bool:
        """Whether ``dob`` (a date or ``YYYY-MM-DD``) is this customer's date of birth."""

    @abstractmethod
    async def verify_identity(self, customer_id: str, kind: str, value: str) -> Verification:
        """Check the caller's PIN (``kind`` ``"pin"``) or date of birth (``"dob"``) under the lockout.

        This is what the actions use (:meth:`verify_pin` / :meth:`verify_dob` only compare): a locked
        customer is refused without a check, a failure is counted across calls, a success resets the count
        (see the module docstring). An unknown ``customer_id`` is a plain mismatch, not counted.
        """

    @abstractmethod
    async def verification_lock(self, customer_id: str) -> datetime | None:
        """Until when the customer is locked out of verification, or ``None`` when they are not."""

    # accounts

    @abstractmethod
    async def get_account(self, customer_id: str) -> Account | None:
        """Balance and last payment, or ``None`` when the customer has no account."""

    # orders and catalogue

    @abstractmethod
    async def last_order(self, customer_id: str) -> Order | None:
        """The customer's most recent order, or ``None``."""

    @abstractmethod
    async def get_order(self, number: str, customer_id: str) -> Order | None:
        """Order ``number`` if it is this customer's, else ``None`` (never another customer's order)."""

    @abstractmethod
    async def list_products(self) -> list[Product]:
        """The active catalogue, by name."""

    @abstractmethod
    async def find_product(self, name_or_id: str) -> Product | None:
        """An active product by id or by name (case-insensitive, exact), or ``None``."""

    @abstractmethod
    async def promotion_for(self, product_id: str, on: date | None = None) -> Promotion | None:
        """The promotion valid for ``product_id`` on ``on`` (default today), or ``None``."""

    @abstractmethod
    async def create_order(self, customer_id: str, lines: Sequence[OrderLine]) -> Order:
        """Register an order at catalogue prices; returns it with its new number.

        Raises :class:`NotFound` for an unknown customer or an unknown or inactive product.
        """

    # appointments

    @abstractmethod
    async def free_slots(
        self, start: datetime, end: datetime, n: int = 3, branch_id: str | None = None
    ) -> list[Slot]:
        """Up to ``n`` free slots starting in ``[start, end)`` and not in the past, earliest first."""

    @abstractmethod
    async def book(self, customer_id: str, slot_id: int) -> Booking:
        """Book a free slot. Atomic: of two callers racing for one slot exactly one wins.

        Raises :class:`SlotTaken` when the slot is not free (or has passed), :class:`NotFound` when it
        does not exist.
        """

    @abstractmethod
    async def reschedule(self, customer_id: str, booking_id: int, new_slot_id: int) -> Booking:
        """Move a booking to another free slot, atomically (the old slot becomes free).

        Raises :class:`NotFound` when the booking is not this customer's active booking,
        :class:`SlotTaken` when the new slot is not free.
        """

    @abstractmethod
    async def cancel(self, customer_id: str, booking_id: int) -> Booking:
        """Cancel a booking; its slot becomes free. Raises :class:`NotFound` as :meth:`reschedule`."""

    @abstractmethod
    async def next_booking(self, customer_id: str, after: datetime | None = None) -> Booking | None:
        """The customer's earliest active booking starting after ``after`` (default now), or ``None``."""

    # support

    @abstractmethod
    async def create_incident(
        self,
        customer_id: str,
        product_id: str | None,
        priority: int,
        description: str,
        callback_number: str | None = None,
        callback_window: tuple[datetime, datetime] | None = None,
    ) -> Incident:
        """Register a ticket (status ``open``); returns it with its new number.

        ``priority`` is one of :data:`PRIORITIES` (:class:`ValueError` otherwise). Raises :class:`NotFound`
        for an unknown customer or product.
        """

    @abstractmethod
    async def get_incident(self, ticket: str, customer_id: str) -> Incident | None:
        """Ticket ``ticket`` if it is this customer's, else ``None``."""

    @abstractmethod
    async def open_incidents(self, customer_id: str) -> list[Incident]:
        """The customer's open or in-progress tickets, newest first."""

    # information line

    @abstractmethod
    async def branches(self) -> list[Branch]:
        """All branches with their opening hours, by name."""

    async def phone_line(self, number: str | None) -> PhoneLine | None:
        """The line ``number`` (digits of the dialled number) reaches, else the ``default`` line; ``None``
        when the store knows no lines (then the line is always answered). Stores without lines keep this."""
        return None

    # lifecycle

    async def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release connections and threads. The store must not be used afterwards."""

    # names the first actions used (kept so they keep working)

    async def find_by_phone(self, number: str | None) -> Customer | None:
        """Same as :meth:`find_customer_by_number`."""
        return await self.find_customer_by_number(number)

    async def check_pin(self, customer_id: str, pin: str) -> bool:
        """Same as :meth:`verify_pin`."""
        return await self.verify_pin(customer_id, pin)

    async def balance(self, customer_id: str) -> Balance:
        """The customer's balance; :class:`NotFound` when they have no account."""
        account = await self.get_account(customer_id)
        if account is None:
            raise NotFound("no account")
        return Balance(account.balance_cents, account.currency)
