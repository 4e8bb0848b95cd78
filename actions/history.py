"""The customer's history for the agent's screen: their latest order, open incidents and next booking.

Read from the store once, when the caller is verified (never before: nothing about an account is known to
anyone on the call until then), and kept in the ``customer_history`` slot, so the call's context
(:mod:`actions.shared.context`) carries it to the agent console with the rest. Flat mappings of short
strings, as the console shows them; no secrets are in these records.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from actions.store import CustomerStore, StoreError

log = logging.getLogger(__name__)

MAX_INCIDENTS = 3


async def customer_history(
    store: CustomerStore, customer_id: str, now: datetime
) -> dict[str, list[dict[str, Any]]]:
    """``{"orders": [...], "incidents": [...], "bookings": [...]}``; a kind the store cannot read is empty."""
    history: dict[str, list[dict[str, Any]]] = {"orders": [], "incidents": [], "bookings": []}
    try:
        order = await store.last_order(customer_id)
        if order is not None:
            history["orders"].append(
                {
                    "number": order.number,
                    "status": order.status,
                    "total": f"${order.total_cents / 100:.2f}",
                    "placed": order.created.date().isoformat(),
                    "eta": order.eta.isoformat() if order.eta else None,
                }
            )
        for incident in (await store.open_incidents(customer_id))[:MAX_INCIDENTS]:
            history["incidents"].append(
                {
                    "id": incident.ticket,
                    "status": incident.status,
                    "priority": incident.priority,
                    "product": incident.product_id,
                }
            )
        booking = await store.next_booking(customer_id, after=now)
        if booking is not None:
            history["bookings"].append(
                {
                    "id": str(booking.booking_id),
                    "status": booking.status,
                    "when": booking.slot.starts.strftime("%Y-%m-%d %H:%M"),
                    "branch": booking.slot.branch_id,
                    "with": booking.slot.resource,
                }
            )
    except StoreError:
        log.warning("customer history unavailable customer_id=%s", customer_id)
    return history
