"""The customer store the actions ask: who is calling, are they who they say, and their business with us.

The actions see one interface, :class:`CustomerStore` (in :mod:`actions.backends.base`, re-exported here
with its records and errors), and get a store from :func:`open_store` with a :class:`StoreConfig`::

    store = open_store(StoreConfig.from_env())

Configuration (environment, read once by :meth:`StoreConfig.from_env`)::

    ATTENDANT_STORE_URL        sqlite:///<repo>/.run/attendant.db          default; made by the seed command
                               postgresql://user@127.0.0.1:5432/attendant  the same store over PostgreSQL
                               demo                                        in-memory SQLite, demo data
                               http(s)://crm.example/api                   a CRM adapter, named by:
    ATTENDANT_STORE_ADAPTER    package.module:ClassName                    an HttpStore subclass
    ATTENDANT_STORE_TIMEOUT_S  2.0                                         bound on every backend call
    ATTENDANT_STORE_POOL_SIZE  4                                           connections / worker threads
    ATTENDANT_STORE_LOCK_ATTEMPTS  5       failed PIN / date-of-birth checks in a row, across calls, that
                                           lock the customer out of verification (SQL stores)
    ATTENDANT_STORE_LOCK_S     900                                         seconds of cooling-off once locked

Create and seed the SQL stores with ``python -m actions.backends.seed [--url URL] [--reset]``; the demo
customers (numbers, PINs, dates of birth) are listed in :mod:`actions.backends.seed`. The first three::

    caller number      name             PIN    balance
    +1 555 010 0001    Ada Lovelace     4719   $120.50
    +1 555 010 0002    Grace Hopper     2580   $0.99
    +1 555 010 0003    Alan Turing      8086   $1,234.00

Errors (all are :class:`StoreError`; see :mod:`actions.backends.base` for the tree):
:class:`BackendUnavailable` for timeouts and failures, :class:`NotFound`, :class:`SlotTaken`, and
:class:`StoreConfigError` for a configuration that names no usable store.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from actions.backends.base import (
    EXISTING,
    NEW,
    RETURNING,
    Account,
    BackendUnavailable,
    Balance,
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
)
from actions.backends.config import (
    DEFAULT_POOL_SIZE,
    DEFAULT_TIMEOUT_S,
    DEMO_URL,
    HTTP_SCHEMES,
    StoreConfig,
    StoreConfigError,
    default_url,
    url_scheme,
)

if TYPE_CHECKING:
    from actions.backends.demo import DemoStore
    from actions.backends.sql import SqlStore


def _load_adapter(spec: str) -> type[CustomerStore]:
    module_name, _, class_name = spec.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise StoreConfigError(f"ATTENDANT_STORE_ADAPTER={spec!r} cannot be loaded: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, CustomerStore)):
        raise StoreConfigError(f"ATTENDANT_STORE_ADAPTER={spec!r} is not a CustomerStore")
    return cls


def open_store(config: StoreConfig | str | None = None) -> CustomerStore:
    """The store ``config`` names (a :class:`StoreConfig`, or just a URL); default: from the environment.

    Nothing connects here: the first call to the store does, inside the action server's event loop.
    """
    if config is None:
        config = StoreConfig.from_env()
    elif isinstance(config, str):
        config = StoreConfig(url=config)
    url = config.url.strip()
    if url == DEMO_URL:
        from actions.backends.demo import DemoStore

        return DemoStore(timeout_s=config.timeout_s, lock=config.lock)
    scheme = url_scheme(url)
    if scheme in HTTP_SCHEMES:
        assert config.adapter is not None  # checked by StoreConfig
        adapter = _load_adapter(config.adapter)
        return adapter(url, timeout_s=config.timeout_s)  # type: ignore[call-arg]
    from actions.backends.sql import SqlStore

    return SqlStore(url, timeout_s=config.timeout_s, pool_size=config.pool_size, lock=config.lock)


def __getattr__(name: str) -> Any:
    """``DemoStore`` and ``SqlStore`` are imported on first use (SQLAlchemy takes 0.25 s to load)."""
    if name == "DemoStore":
        from actions.backends.demo import DemoStore

        return DemoStore
    if name == "SqlStore":
        from actions.backends.sql import SqlStore

        return SqlStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_POOL_SIZE",
    "DEFAULT_TIMEOUT_S",
    "DEMO_URL",
    "EXISTING",
    "NEW",
    "RETURNING",
    "Account",
    "BackendUnavailable",
    "Balance",
    "Booking",
    "Branch",
    "CallRecord",
    "Customer",
    "CustomerStore",
    "DemoStore",
    "Incident",
    "LockPolicy",
    "NotFound",
    "OpeningHours",
    "Order",
    "OrderItem",
    "OrderLine",
    "PhoneLine",
    "Product",
    "Promotion",
    "Slot",
    "SlotTaken",
    "SqlStore",
    "StoreConfig",
    "StoreConfigError",
    "StoreError",
    "Verification",
    "caller_kind",
    "default_url",
    "normalise_dob",
    "normalise_number",
    "open_store",
]
