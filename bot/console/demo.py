"""A realistic call for trying the console without a phone system: a verified demo customer from the seed
data (``actions/backends/seed.py``) who asks for a person about a charge, with the context and redacted
transcript the bot leaves in Redis. Used by the tests, the README screenshot and ``python -m bot.console
--demo``."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from telephony.callstate import RETENTION_S, call_key, transcript_key

DEMO_CONTEXT: dict[str, Any] = {
    "caller_number": "+15550100005",
    "customer": {"id": "C-0005", "name": "Hedy Lamarr", "kind": "existing"},
    "verified": True,
    "verified_how": "pin",
    "task": "balance",
    "summary": "Disputes a $15.00 late fee on her account; says the headset order was paid on time.",
    "intents": [
        {"name": "ask_balance", "confidence": 0.94},
        {"name": "request_agent", "confidence": 0.88},
        {"name": "report_problem", "confidence": 0.31},
    ],
    "slots": {"order_ref": "100005", "product": "P-200 wireless headset"},
    "handoff": {"reason": "requested", "skill": "billing"},
    "priority": 2,
    "language": "en",
    "waited": 74,
    "history": {
        "orders": [{"number": "100005", "status": "delivered", "total": "$59.00", "placed": "14 days ago"}],
        "incidents": [{"id": "500001", "status": "open", "priority": 2, "product": "P-200"}],
        "bookings": [],
    },
}
"""What the bot learned about the demo caller."""

DEMO_TRANSCRIPT: tuple[tuple[str, str], ...] = (
    ("bot", "Thanks for calling. How can I help you today?"),
    ("caller", "hi I want to know why there's a fifteen dollar fee on my account"),
    ("bot", "I can help with your balance. First, please key in your four-digit PIN."),
    ("caller", "[redacted]"),
    ("bot", "Thank you, Hedy. Your balance is fifteen dollars owed, a late fee from last month."),
    ("caller", "that's wrong I paid for the headset on time I want to talk to a person"),
    ("bot", "I'll put you through to our billing team now. They will see what we discussed."),
    ("system", "Handed to a person: requested, billing"),
)
"""The redacted transcript (the PIN was never written)."""


async def seed_call(
    redis: Any,
    call_id: str,
    context: Mapping[str, Any] = DEMO_CONTEXT,
    transcript: Sequence[tuple[str, str]] = DEMO_TRANSCRIPT,
    *,
    now: float | None = None,
) -> None:
    """Write a call's hash and transcript as the gateway would (replacing any with that id)."""
    start = time.time() if now is None else now
    pipe = redis.pipeline()
    pipe.delete(call_key(call_id), transcript_key(call_id))
    pipe.hset(
        call_key(call_id),
        mapping={
            "outcome": "handoff",
            "reason": str(_get(context, "handoff", "reason") or "requested"),
            "skill": str(_get(context, "handoff", "skill") or "general"),
            "caller_number": str(context.get("caller_number") or ""),
            "language": str(context.get("language") or "en"),
            "started_at": f"{start:.3f}",
            "context": json.dumps(dict(context)),
        },
    )
    for i, (who, text) in enumerate(transcript):
        pipe.xadd(transcript_key(call_id), {"who": who, "text": text, "t": f"{start + 6 * i:.3f}"})
    pipe.expire(call_key(call_id), RETENTION_S)
    pipe.expire(transcript_key(call_id), RETENTION_S)
    await pipe.execute()


def _get(context: Mapping[str, Any], outer: str, inner: str) -> Any:
    value = context.get(outer)
    return value.get(inner) if isinstance(value, Mapping) else None
