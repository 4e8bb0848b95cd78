"""Adapter point for a real CRM / service desk reached over HTTP: subclass :class:`HttpStore`.

This is a skeleton to implement, not a client for any particular product. It provides what every HTTP
backend needs and is easy to get wrong:

- one :mod:`aiohttp` session per store, created inside the running event loop, closed by :meth:`close`;
- a hard bound of ``timeout_s`` on every request (connect, send, wait, read) - past it, and on any
  connection error, 5xx, unexpected status or malformed JSON, :class:`BackendUnavailable`, which the actions
  turn into a polite handoff;
- 404 means "no such record" (``None``), never an error;
- nothing personal in URLs: phone numbers, PINs and dates of birth go in POST bodies (URLs end up in
  proxy and server access logs); this module logs the operation and status only.

A subclass maps each :class:`~actions.backends.base.CustomerStore` method onto its system's API. Five are
implemented here against an illustrative REST contract, to show the pattern; adjust them to your API::

    POST /customers/search          {"phone": "5550100001"}          -> 200 customer | 404
    GET  /customers/{id}                                             -> 200 customer | 404
    POST /customers/{id}/verify     {"pin": "...."} or {"dob": "YYYY-MM-DD"}
                                    -> 200 {"match": bool, "locked_until": time | null, "failures": int}
    GET  /customers/{id}/account                                     -> 200 account | 404
    POST /incidents                 {"customer_id", "product_id", "priority", "description",
                                     "callback_number", "callback_from", "callback_until"}
                                                                     -> 201 incident
    GET  /incidents/{ticket}?customer_id={id}                        -> 200 incident | 404

    customer = {"id", "name", "loyalty_tier", "referral_source", "first_contact", "last_call",
                "call_count", "has_bought", "has_pin", "has_dob", "locked_until"}
                                                                     (times ISO 8601, local)
    account  = {"customer_id", "balance_cents", "currency", "last_payment_cents", "last_payment_date"}
    incident = {"ticket", "customer_id", "product_id", "priority", "status", "description",
                "callback_number", "callback_from", "callback_until", "created"}

The rest (orders, catalogue, bookings, branches, caller history) stay abstract: a subclass must implement
them, or inherit them from another store (e.g. a class that takes bookings from the SQL store and
customers from the CRM). Select the subclass with ``ATTENDANT_STORE_URL=https://crm.example/api`` and
``ATTENDANT_STORE_ADAPTER=package.module:ClassName`` (it is constructed as ``cls(url, timeout_s=...)``).
Verification stays on the CRM's side: the PIN goes to the CRM over TLS and only a yes/no comes back. So
does the lockout (failed checks counted across calls, a cooling-off): the CRM keeps it and says
``locked_until`` while a customer is locked; the bot then hands the caller to a person.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, TypeVar
from urllib.parse import quote

from actions.backends.base import (
    Account,
    BackendUnavailable,
    Customer,
    CustomerStore,
    Incident,
    NotFound,
    Verification,
    normalise_dob,
    normalise_number,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


def _dt(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _d(value: Any) -> date | None:
    return date.fromisoformat(value) if value else None


class HttpStore(CustomerStore, ABC):
    """Base for stores backed by an HTTP API (see the module docstring). Subclass it."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 2.0,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """``token``: sent as ``Authorization: Bearer``. Nothing connects here."""
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._headers = {"Accept": "application/json", **(headers or {})}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._session: Any = None  # aiohttp.ClientSession, made in the running loop on first use

    async def _client(self) -> Any:
        import aiohttp  # imported on first use: nothing heavy at import time

        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=self.timeout_s, connect=self.timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout, headers=self._headers)
        return self._session

    async def request(self, op: str, method: str, path: str, json: Any = None) -> Any:
        """One API call, bounded by ``timeout_s``: the decoded JSON body, or ``None`` for 404.

        Raises :class:`BackendUnavailable` on timeout, connection failure, any status other than 2xx/404,
        or a body that is not JSON.
        """
        import aiohttp

        session = await self._client()

        async def call() -> Any:
            async with session.request(method, self.base_url + path, json=json) as response:
                if response.status == 404:
                    return None
                if not 200 <= response.status < 300:
                    log.warning("crm status op=%s status=%d", op, response.status)
                    raise BackendUnavailable(f"{op}: HTTP {response.status}")
                return await response.json(content_type=None)

        try:
            return await asyncio.wait_for(call(), self.timeout_s)
        except asyncio.TimeoutError:
            log.warning("crm timeout op=%s after_s=%.2f", op, self.timeout_s)
            raise BackendUnavailable(f"{op}: timed out") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            log.warning("crm failure op=%s error=%s", op, type(exc).__name__)
            raise BackendUnavailable(f"{op}: {type(exc).__name__}") from None

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- mapping helpers (override when your API's shapes differ)

    @staticmethod
    def customer_from(data: dict[str, Any]) -> Customer:
        """A :class:`Customer` from the API's customer object."""
        return Customer(
            customer_id=str(data["id"]),
            name=data.get("name"),
            loyalty_tier=data.get("loyalty_tier") or "none",
            referral_source=data.get("referral_source"),
            first_contact=_dt(data.get("first_contact")),
            last_call=_dt(data.get("last_call")),
            call_count=int(data.get("call_count") or 0),
            has_bought=bool(data.get("has_bought")),
            has_pin=bool(data.get("has_pin")),
            has_dob=bool(data.get("has_dob")),
        )

    @staticmethod
    def incident_from(data: dict[str, Any]) -> Incident:
        """An :class:`Incident` from the API's incident object."""
        return Incident(
            ticket=str(data["ticket"]),
            customer_id=str(data["customer_id"]),
            product_id=data.get("product_id"),
            priority=int(data["priority"]),
            status=str(data["status"]),
            description=str(data.get("description") or ""),
            callback_number=data.get("callback_number"),
            callback_from=_dt(data.get("callback_from")),
            callback_until=_dt(data.get("callback_until")),
            created=_dt(data.get("created")) or datetime.now(),
        )

    @staticmethod
    def mapped(op: str, fn: Callable[[dict[str, Any]], T], data: dict[str, Any]) -> T:
        """``fn(data)``; a body missing fields or with wrong types is :class:`BackendUnavailable`."""
        try:
            return fn(data)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("crm body op=%s error=%s", op, type(exc).__name__)
            raise BackendUnavailable(f"{op}: malformed body") from None

    async def _object(self, op: str, method: str, path: str, json: Any = None) -> dict[str, Any] | None:
        data = await self.request(op, method, path, json)
        if data is not None and not isinstance(data, dict):
            raise BackendUnavailable(f"{op}: unexpected body")
        return data

    # -- the example mappings

    async def find_customer_by_number(self, number: str | None) -> Customer | None:
        key = normalise_number(number)
        if key is None:
            return None
        op = "find_customer_by_number"
        data = await self._object(op, "POST", "/customers/search", {"phone": key})
        return self.mapped(op, self.customer_from, data) if data else None

    async def get_customer(self, customer_id: str) -> Customer | None:
        data = await self._object("get_customer", "GET", f"/customers/{quote(customer_id, safe='')}")
        return self.mapped("get_customer", self.customer_from, data) if data else None

    async def _verify(self, op: str, customer_id: str, body: dict[str, str]) -> Verification:
        path = f"/customers/{quote(customer_id, safe='')}/verify"
        data = await self._object(op, "POST", path, body)
        if not data:
            return Verification(False)

        def verdict(d: dict[str, Any]) -> Verification:
            locked_until = _dt(d.get("locked_until"))
            ok = d.get("match") is True and locked_until is None
            return Verification(ok, None if ok else locked_until, int(d.get("failures") or 0))

        return self.mapped(op, verdict, data)

    async def verify_pin(self, customer_id: str, pin: str) -> bool:
        return (await self._verify("verify_pin", customer_id, {"pin": pin})).ok

    async def verify_dob(self, customer_id: str, dob: date | str) -> bool:
        value = normalise_dob(dob)
        return value is not None and (await self._verify("verify_dob", customer_id, {"dob": value})).ok

    async def verify_identity(self, customer_id: str, kind: str, value: str) -> Verification:
        if kind == "pin":
            return await self._verify("verify_pin", customer_id, {"pin": value})
        if kind != "dob":
            raise ValueError("kind must be 'pin' or 'dob'")
        dob = normalise_dob(value)
        if dob is None:
            return Verification(False)
        return await self._verify("verify_dob", customer_id, {"dob": dob})

    async def verification_lock(self, customer_id: str) -> datetime | None:
        data = await self._object("get_customer", "GET", f"/customers/{quote(customer_id, safe='')}")
        if not data:
            return None
        until = self.mapped("verification_lock", lambda d: _dt(d.get("locked_until")), data)
        return until if until is not None and until > datetime.now() else None

    async def get_account(self, customer_id: str) -> Account | None:
        data = await self._object("get_account", "GET", f"/customers/{quote(customer_id, safe='')}/account")
        if not data:
            return None

        def account(d: dict[str, Any]) -> Account:
            paid = d.get("last_payment_cents")
            return Account(
                customer_id=str(d.get("customer_id", customer_id)),
                balance_cents=int(d["balance_cents"]),
                currency=str(d.get("currency") or "USD"),
                last_payment_cents=None if paid is None else int(paid),
                last_payment_date=_d(d.get("last_payment_date")),
            )

        return self.mapped("get_account", account, data)

    async def create_incident(
        self,
        customer_id: str,
        product_id: str | None,
        priority: int,
        description: str,
        callback_number: str | None = None,
        callback_window: tuple[datetime, datetime] | None = None,
    ) -> Incident:
        if isinstance(priority, bool) or priority not in (1, 2, 3, 4):
            raise ValueError("priority must be 1, 2, 3 or 4")
        body = {
            "customer_id": customer_id,
            "product_id": product_id,
            "priority": priority,
            "description": description.strip(),
            "callback_number": callback_number,
            "callback_from": callback_window[0].isoformat() if callback_window else None,
            "callback_until": callback_window[1].isoformat() if callback_window else None,
        }
        data = await self._object("create_incident", "POST", "/incidents", body)
        if not data:
            raise NotFound("customer or product unknown to the service desk")
        return self.mapped("create_incident", self.incident_from, data)

    async def get_incident(self, ticket: str, customer_id: str) -> Incident | None:
        path = f"/incidents/{quote(ticket, safe='')}?customer_id={quote(customer_id, safe='')}"
        data = await self._object("get_incident", "GET", path)
        if not data or str(data.get("customer_id")) != customer_id:
            return None
        return self.mapped("get_incident", self.incident_from, data)
