"""The information line, no verification needed: opening hours and branch addresses.

:func:`hours_reply` answers an opening-hours question ("are you open now", "downtown on saturday", "what are
your hours") for the branch named (else every branch), for the day asked about (else the week), one sentence
per branch; :func:`branch_reply` answers "where are you" (the branch named, or nearest to a postcode said,
else all). Both return :class:`~actions.lines.Line` s: the sentences are the editors' responses
(``utter_hours_*``, ``utter_branch_address``), with the branch names, days, times and addresses rendered here
as they are said ("five thirty p m", "one hundred Main Street").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.deps import Deps, UsesDeps
from actions.handoff import hand_off
from actions.lines import Line, count_sentences, say_then_offer_more
from actions.shared.hours import week_hours
from actions.shared.numerals import WEEKDAY_NUMBERS, WEEKDAYS, digits_from_speech, number_words
from actions.shared.speech import say_time
from actions.store import Branch, OpeningHours, StoreError
from telephony.callstate import Reason

_WORDS = re.compile(r"[a-z]+|[0-9]+")
_DAY_WORDS = WEEKDAY_NUMBERS | {name + "s": i for name, i in WEEKDAY_NUMBERS.items()}
_NOW_WORDS = frozenset({"now", "currently", "moment", "still"})
_STREET_TYPES = frozenset(
    {"street", "st", "road", "rd", "avenue", "ave", "lane", "drive", "boulevard", "way"}
)
_NEAREST_WORDS = frozenset({"nearest", "closest", "near", "nearby", "close"})


# --- which branch, which day ----------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    """Lower-case words and digit runs, spoken digits ("six two seven") joined into digit runs."""
    out: list[str] = []
    for tok in _WORDS.findall(text.lower().replace("'", "")):
        spoken_zero = tok in ("o", "oh") and bool(out) and out[-1].isdigit()
        digit = "0" if spoken_zero else digits_from_speech(tok) if tok not in ("o", "oh") else None
        if digit is not None and out and out[-1].isdigit() and len(digit) == 1 and len(out[-1]) < 5:
            out[-1] += digit
        elif digit is not None and (tok.isdigit() or len(digit) == 1):
            out.append(digit)
        else:
            out.append(tok)
    return out


def _street(address: str) -> str:
    """ "100 Main Street" -> "main street" (the part callers say)."""
    words = [w for w in _WORDS.findall(address.lower()) if not w.isdigit()]
    return " ".join(words)


def _street_name(address: str) -> str:
    """ "100 Main Street" -> "main" (without the number and the kind of street)."""
    return " ".join(w for w in _street(address).split() if w not in _STREET_TYPES)


def _named(branches: Sequence[Branch], text: str) -> list[Branch]:
    """The branches ``text`` names: by name, city, street or postcode (spoken digits count)."""
    words = _words(text)
    joined = f" {' '.join(words)} "
    found: list[Branch] = []
    for b in branches:
        names = {b.name.lower(), b.city.lower(), _street(b.address), b.branch_id.lower().replace("-", " ")}
        street = _street_name(b.address)
        if street and len(street) > 3:
            names |= {f"{street} {kind}" for kind in _STREET_TYPES}
        if any(f" {n} " in joined for n in names if n) or b.postcode in words:
            found.append(b)
    return found


def _nearest_by_postcode(branches: Sequence[Branch], text: str) -> Branch | None:
    """The branch whose postcode shares the longest prefix (three digits or more) with one said."""
    codes = [w for w in _words(text) if w.isdigit() and len(w) == 5]
    best: tuple[int, Branch] | None = None
    for code in codes:
        for b in branches:
            common = len(_common_prefix(code, b.postcode))
            if common >= 3 and (best is None or common > best[0]):
                best = (common, b)
    return best[1] if best else None


def _common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def _day_asked(text: str, now: datetime) -> tuple[str, int] | None:
    """("now" | "today" | "tomorrow" | "weekday", weekday) when the caller asks about one day."""
    words = _words(text)
    for w in words:
        if w in _DAY_WORDS:
            return "weekday", _DAY_WORDS[w]
    if "tomorrow" in words:
        return "tomorrow", (now.weekday() + 1) % 7
    if "today" in words or "tonight" in words:
        return "today", now.weekday()
    if _NOW_WORDS & set(words) or " right now" in f" {' '.join(words)}":
        return "now", now.weekday()
    return None


def _next_opening(b: Branch, after: datetime) -> tuple[int, OpeningHours] | None:
    """(days ahead, hours) of the next opening strictly after ``after``; ``None`` if never open."""
    for ahead in range(8):
        day = after + timedelta(days=ahead)
        h = b.hours_of(day.date())
        if h is not None and (ahead > 0 or after.time() < h.opens):
            return ahead, h
    return None


# --- what is said ----------------------------------------------------------------------------------------


def _span(h: OpeningHours) -> str:
    return f"{say_time(h.opens)} to {say_time(h.closes)}"


def _opens_on(ahead: int, weekday: int) -> str:
    """The day of an opening, as said after "opens": "today", "tomorrow", "on Monday"."""
    return "today" if ahead == 0 else "tomorrow" if ahead == 1 else f"on {WEEKDAYS[weekday]}"


def _on_days(kind: str, weekday: int) -> str:
    """The day asked about, as said after "open" / "closed": "today", "tomorrow", "on Saturdays"."""
    return {"today": "today", "tomorrow": "tomorrow"}.get(kind, f"on {WEEKDAYS[weekday]}s")


def _now_line(b: Branch, now: datetime) -> Line:
    h = b.hours_of(now.date())
    if b.is_open(now) and h is not None:
        return Line("utter_hours_open_now", {"branch": b.name, "closes": say_time(h.closes)})
    nxt = _next_opening(b, now)
    if nxt is None:
        return Line("utter_hours_closed_now", {"branch": b.name})
    ahead, hours = nxt
    day = _opens_on(ahead, (now.weekday() + ahead) % 7)
    values = {"branch": b.name, "day": day, "opens": say_time(hours.opens)}
    return Line("utter_hours_closed_now_opens", values)


def _day_line(b: Branch, kind: str, weekday: int) -> Line:
    h = b.hours_on(weekday)
    day = _on_days(kind, weekday)
    if h is None:
        return Line("utter_hours_closed_on", {"branch": b.name, "day": day})
    values = {"branch": b.name, "day": day, "opens": say_time(h.opens), "closes": say_time(h.closes)}
    return Line("utter_hours_open_on", values)


def _week_line(b: Branch) -> Line:
    hours = week_hours(b)
    if not hours:
        return Line("utter_hours_closed_all_week", {"branch": b.name})
    return Line("utter_hours_week", {"branch": b.name, "hours": hours})


def hours_reply(branches: Sequence[Branch], text: str, now: datetime) -> list[Line]:
    """Opening hours for the branch the caller names (else every branch), for the day asked about (else the
    week): one short sentence per branch."""
    if not branches:
        return [Line("utter_hours_unavailable")]
    chosen = _named(branches, text) or list(branches)
    asked = _day_asked(text, now)
    if asked is None:
        return [_week_line(b) for b in chosen]
    kind, weekday = asked
    if kind == "now":
        return [_now_line(b, now) for b in chosen]
    if len(chosen) > 1 and all(b.hours_on(weekday) is None for b in chosen):
        day = _on_days(kind, weekday)
        response = "utter_hours_both_closed" if len(chosen) == 2 else "utter_hours_all_closed"
        return [Line(response, {"day": day})]
    return [_day_line(b, kind, weekday) for b in chosen]


def _address_line(b: Branch) -> Line:
    words = [number_words(int(w)) if w.isdigit() and len(w) < 6 else w for w in b.address.split()]
    return Line("utter_branch_address", {"branch": b.name, "address": " ".join(words), "city": b.city})


def branch_reply(branches: Sequence[Branch], text: str) -> list[Line]:
    """Where the branches are: the one the caller names (or is nearest to the place named), else all."""
    if not branches:
        return [Line("utter_branches_unavailable")]
    chosen = _named(branches, text)
    if not chosen and _NEAREST_WORDS & set(_words(text)):
        nearest = _nearest_by_postcode(branches, text)
        chosen = [nearest] if nearest else []
    return [_address_line(b) for b in (chosen or branches)]


_ASIDE_WORDS = {
    "ask_hours": re.compile(r"\b(open|opening|close|closing|closed|shut|hours|late|early)\b"),
    "ask_branch": re.compile(r"\b(where|address|branch|branches|located|location|directions|nearest)\b"),
}
"""Words an opening-hours or address question asked in the middle of a task must hold: "saturday morning"
is an answer to "what day would suit you", "what time do you close on saturday" a question."""


async def info_answer(deps: Deps, intent: str | None, text: str, *, aside: bool = False) -> list[Line] | None:
    """The information line's answer to ``text`` asked as ``intent`` (hours, branches, a frequent question);
    ``None`` when it is no such question. ``aside``: asked in the middle of a task, where the words must
    say it is a question (:data:`_ASIDE_WORDS`) and a frequent question must have an answer.

    Raises :class:`~actions.store.StoreError` when the store cannot say.
    """
    words = _ASIDE_WORDS.get(intent or "")
    if aside and words is not None and not words.search(text.lower()):
        return None
    if intent == "ask_hours":
        return hours_reply(await deps.store.branches(), text, deps.now())
    if intent == "ask_branch":
        return branch_reply(await deps.store.branches(), text)
    if intent == "ask_faq":
        entry = deps.faq.answer(text)
        if entry is None:
            return None
        return [Line("utter_info", {"info_text": entry.answer}, sentences=count_sentences(entry.answer))]
    return None


# --- the actions -----------------------------------------------------------------------------------------


class ActionHours(UsesDeps, Action):
    """Opening hours (the information line, no verification)."""

    def name(self) -> str:
        return "action_hours"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        try:
            branches = await self.deps.store.branches()
        except StoreError:
            return hand_off(dispatcher, tracker, Reason.TECHNICAL)
        text = tracker.latest_message.get("text") or ""
        say_then_offer_more(dispatcher, hours_reply(branches, text, self.deps.now()))
        return []


class ActionBranches(UsesDeps, Action):
    """Addresses and the nearest branch (the information line, no verification)."""

    def name(self) -> str:
        return "action_branches"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        try:
            branches = await self.deps.store.branches()
        except StoreError:
            return hand_off(dispatcher, tracker, Reason.TECHNICAL)
        say_then_offer_more(dispatcher, branch_reply(branches, tracker.latest_message.get("text") or ""))
        return []
