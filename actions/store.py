"""The customer store the actions ask: who is calling, is the PIN right, what is the balance.

One small interface, :class:`CustomerStore`; the actions see nothing else. :class:`DemoStore` is the
in-code table used until a real backend exists (issue 3 puts SQLite / PostgreSQL / CRM adapters behind
the same interface). :func:`open_store` picks the backend from ``ATTENDANT_STORE`` (``demo`` today).

Demo customers (for trying the bot and for tests; these numbers are in the 555-01xx fiction range)::

    caller number      name             PIN    balance
    +1 555 010 0001    Ada Lovelace     4719   $120.50
    +1 555 010 0002    Grace Hopper     2580   $0.99
    +1 555 010 0003    Alan Turing      8086   $1,234.00

Any other number is unknown. PINs are kept as salted SHA-256 digests, never in clear, and compared in
constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass


class StoreError(Exception):
    """The backend failed or timed out; the caller goes to a person with reason ``technical``."""


@dataclass(frozen=True, slots=True)
class Customer:
    """A caller the store knows."""

    customer_id: str
    name: str


@dataclass(frozen=True, slots=True)
class Balance:
    """An account balance."""

    cents: int
    """Amount in the currency's smallest unit (cents); negative means the customer owes."""
    currency: str = "USD"


def normalise_number(number: str | None) -> str | None:
    """Compare phone numbers by their last ten digits ("+1 (555) 010-0001" == "5550100001")."""
    if not number:
        return None
    digits = re.sub(r"\D", "", number)
    if len(digits) < 7:
        return None
    return digits[-10:]


class CustomerStore(ABC):
    """What the actions may ask about customers. Every call may raise :class:`StoreError`."""

    @abstractmethod
    async def find_by_phone(self, number: str | None) -> Customer | None:
        """The customer calling from ``number``, or ``None``."""

    @abstractmethod
    async def check_pin(self, customer_id: str, pin: str) -> bool:
        """Whether ``pin`` is this customer's PIN. Implementations compare in constant time."""

    @abstractmethod
    async def balance(self, customer_id: str) -> Balance:
        """The customer's current balance."""


def _pin_digest(salt: str, pin: str) -> bytes:
    return hashlib.sha256(f"{salt}:{pin}".encode()).digest()


@dataclass(frozen=True, slots=True)
class _DemoRow:
    customer: Customer
    number: str
    pin_digest: bytes
    balance_cents: int


class DemoStore(CustomerStore):
    """Three demo customers held in memory (see the module docstring)."""

    _SEED = (
        ("C-0001", "Ada Lovelace", "+15550100001", "4719", 12050),
        ("C-0002", "Grace Hopper", "+15550100002", "2580", 99),
        ("C-0003", "Alan Turing", "+15550100003", "8086", 123400),
    )

    def __init__(self) -> None:
        self._rows: dict[str, _DemoRow] = {}
        for cid, name, number, pin, cents in self._SEED:
            key = normalise_number(number)
            assert key is not None
            self._rows[key] = _DemoRow(Customer(cid, name), key, _pin_digest(cid, pin), cents)
        self._by_id = {row.customer.customer_id: row for row in self._rows.values()}

    async def find_by_phone(self, number: str | None) -> Customer | None:
        key = normalise_number(number)
        row = self._rows.get(key) if key else None
        return row.customer if row else None

    async def check_pin(self, customer_id: str, pin: str) -> bool:
        row = self._by_id.get(customer_id)
        if row is None:
            return False
        return hmac.compare_digest(row.pin_digest, _pin_digest(customer_id, pin))

    async def balance(self, customer_id: str) -> Balance:
        row = self._by_id.get(customer_id)
        if row is None:
            raise StoreError("unknown customer")
        return Balance(row.balance_cents)


def open_store(kind: str | None = None) -> CustomerStore:
    """The store named by ``kind`` or ``ATTENDANT_STORE`` (default ``demo``)."""
    name = (kind or os.environ.get("ATTENDANT_STORE") or "demo").strip().lower()
    if name == "demo":
        return DemoStore()
    raise StoreError(f"ATTENDANT_STORE={name!r} is not a known store (known: demo)")
