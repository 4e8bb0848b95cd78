"""What the agent's screen shows of a call, built from what the gateway left in Redis.

The call hash's ``context`` JSON is written by the bot as the call goes; its shape grows over releases, so
everything here is read defensively: what is present is shown, what is absent is left out, unknown keys are
dropped (nothing reaches the screen that this module does not name). Accepted spellings::

    caller_number                          also the hash's caller_number (from FastAGI register)
    customer {id, name, kind}              or customer_id / customer_name / caller_kind
    verified (bool) + verified_how         or verification {verified, how|method}
    task, intents [{name, confidence}]     or {name: confidence}, or last_intent
    slots {name: value}                    never PIN, date of birth, card, CVV, password or secret slots
    handoff {reason, skill}                or reason / skill (context, else the hash's)
    priority, language, waited (seconds)
    history {orders, incidents, bookings}  lists of flat mappings

Values become short strings; card-like digit runs (12 or more digits) are masked, as a last line of defence
behind the gateway's own redaction of the transcript.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

MAX_TEXT = 400
MAX_ITEMS = 20
TRANSCRIPT_LINES = 200
SECRET_NAME = re.compile(r"pin|dob|birth|card|cvv|cvc|password|passcode|secret|ssn|iban|otp", re.IGNORECASE)
CARD_LIKE = re.compile(r"(?:\d[ -]?){12,19}\d")
HISTORY_KINDS = ("orders", "incidents", "bookings")


def text(value: Any, limit: int = MAX_TEXT) -> str:
    """A value as a short display string (masked)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        value = f"{value:g}"
    shown = CARD_LIKE.sub("[number withheld]", str(value))
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _first(*values: Any) -> Any:
    return next((v for v in values if v not in (None, "", [], {})), None)


def parse_context(raw: Any) -> dict[str, Any]:
    """The hash's ``context`` field as a dict ({} when absent or broken)."""
    if raw is None:
        return {}
    try:
        value = json.loads(_s(raw))
    except (ValueError, TypeError):
        return {}
    return dict(value) if isinstance(value, Mapping) else {}


Entries = Iterable[tuple[Any, Mapping[Any, Any]]]
"""Transcript stream entries as ``XRANGE`` returns them: (id, fields)."""


def call_view(fields: Mapping[Any, Any], transcript: Entries) -> dict[str, Any]:
    """The card body: ``fields`` is the call hash (``HGETALL``), ``transcript`` the stream (``XRANGE``)."""
    h = {_s(k): _s(v) for k, v in fields.items()}
    ctx = parse_context(h.get("context"))
    customer = _mapping(ctx.get("customer"))
    handoff = _mapping(ctx.get("handoff"))
    verification = _mapping(ctx.get("verification"))
    verified_raw = ctx.get("verified", verification.get("verified"))
    if isinstance(verified_raw, Mapping):
        verification = verified_raw
        verified_raw = verified_raw.get("verified", verified_raw.get("ok"))
    customer_view = {
        "id": _first(customer.get("id"), ctx.get("customer_id")),
        "name": _first(customer.get("name"), ctx.get("customer_name")),
        "kind": _first(customer.get("kind"), ctx.get("caller_kind")),
    }
    view: dict[str, Any] = {
        "caller_number": _first(ctx.get("caller_number"), h.get("caller_number")),
        "verified": verified_raw if isinstance(verified_raw, bool) else None,
        "verified_how": _first(ctx.get("verified_how"), verification.get("how"), verification.get("method")),
        "task": ctx.get("task"),
        "reason": _first(
            handoff.get("reason"), ctx.get("handoff_reason"), ctx.get("reason"), h.get("reason")
        ),
        "skill": _first(handoff.get("skill"), ctx.get("handoff_skill"), ctx.get("skill"), h.get("skill")),
        "priority": ctx.get("priority"),
        "language": _first(ctx.get("language"), h.get("language")),
        "waited_s": _number(ctx.get("waited")),
        "summary": ctx.get("summary"),
    }
    view = {k: _clean(v) for k, v in view.items()}
    view["customer"] = {k: _clean(v) for k, v in customer_view.items() if v is not None} or None
    view["intents"] = _intents(ctx)
    view["slots"] = _slots(ctx.get("slots"))
    view["history"] = _history(ctx.get("history"), ctx)
    view["transcript"] = _transcript(transcript)
    return view


def _clean(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, dict)):
        return value
    return text(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value)) if value is not None else None
    except ValueError:
        return None


def _intents(ctx: Mapping[str, Any]) -> list[dict[str, Any]]:
    raw = ctx.get("intents")
    pairs: list[tuple[Any, Any]] = []
    if isinstance(raw, Mapping):
        pairs = list(raw.items())
    elif isinstance(raw, list):
        for item in raw:
            if isinstance(item, Mapping):
                pairs.append((item.get("name") or item.get("intent"), item.get("confidence")))
            elif isinstance(item, str):
                pairs.append((item, None))
    elif ctx.get("last_intent"):
        pairs = [(ctx["last_intent"], None)]
    out = []
    for name, confidence in pairs[:MAX_ITEMS]:
        if not name:
            continue
        conf = _number(confidence)
        out.append({"name": text(name, 64), "confidence": None if conf is None else max(0.0, min(conf, 1.0))})
    return out


def _slots(raw: Any) -> list[dict[str, str]]:
    out = []
    for name, value in _mapping(raw).items():
        if SECRET_NAME.search(str(name)) or value in (None, "", False):
            continue
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value)
        elif isinstance(value, Mapping):
            continue
        out.append({"name": text(name, 64), "value": text(value, 200)})
    return out[:MAX_ITEMS]


def _history(raw: Any, ctx: Mapping[str, Any]) -> dict[str, list[list[list[str]]]]:
    """Each kind: a list of items, each a list of [key, value] pairs (the id-like key first)."""
    history = _mapping(raw)
    out: dict[str, list[list[list[str]]]] = {}
    for kind in HISTORY_KINDS:
        items = history.get(kind, ctx.get(kind))
        if not isinstance(items, list):
            continue
        rows = []
        for item in items[:MAX_ITEMS]:
            if not isinstance(item, Mapping):
                continue
            pairs = [
                [text(k, 32), text(v, 120)]
                for k, v in item.items()
                if not SECRET_NAME.search(str(k))
                and v not in (None, "")
                and not isinstance(v, (Mapping, list))
            ]
            pairs.sort(key=lambda kv: 0 if kv[0] in ("id", "number", "ref") else 1)
            if pairs:
                rows.append(pairs)
        out[kind] = rows
    return out


def _shown(value: Any) -> bool:
    return value not in (None, "") and not isinstance(value, (Mapping, list))


def _transcript(entries: Entries) -> list[dict[str, Any]]:
    out = []
    for _entry_id, raw in entries:
        entry = {_s(k): _s(v) for k, v in raw.items()}
        who = entry.get("who", "system")
        out.append(
            {
                "who": who if who in ("caller", "bot", "system") else "system",
                "text": text(entry.get("text", ""), 1000),
                "t": _number(entry.get("t")),
            }
        )
    return out[-TRANSCRIPT_LINES:]
