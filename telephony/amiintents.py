"""At most once per intent: the ledger behind every state-changing AMI action.

A caller names what it means with an intent key (``queuelog:<call>:<disposition>``,
``pause:<agent>:<shift>:<n>``). The AMI client asks this ledger before sending: an intent already answered is
answered again from here (nothing sent), one in flight is joined, one refused by Asterisk raises the same
refusal again. An intent whose action was sent but never answered (the connection dropped, or the answer did
not come in time) is *unconfirmed*; what happens to it next is the action's :class:`Recovery` (see
:mod:`telephony.ami`).

The ledger is pure bookkeeping on an injectable monotonic clock. Entries expire ``ttl_s`` after their last
change and the oldest go first beyond ``max_entries``, so it cannot grow without bound. It lives in one
process's memory: a restarted gateway starts with an empty ledger.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from telephony.amiactions import AmiActionError, AmiIntentConflict


class Recovery(Enum):
    """What a state-changing action does when it was sent and its answer never came."""

    VERIFY = "verify"
    """Read Asterisk's state back (``QueueStatus``) once connected again; send again only if the intent is
    not in effect (``QueuePause``, ``QueueAdd``, ``QueueRemove``, ``QueuePenalty``)."""
    RESEND = "resend"
    """Harmless to repeat; a refusal that means "already done" counts as done (``Hangup``: ``No such
    channel``)."""
    NEVER = "never"
    """Cannot be read back and must not happen twice: the intent stays unconfirmed and is never sent again
    (``QueueLog``: a lost ``queue_log`` row is better than a duplicate that reports count twice;
    ``Originate``: a customer must not be called twice)."""


class IntentState(Enum):
    PENDING = "pending"
    """Being sent (or recovered) right now."""
    ANSWERED = "answered"
    REFUSED = "refused"
    UNCONFIRMED = "unconfirmed"
    """Sent, never answered."""


@dataclass(slots=True)
class IntentEntry:
    """One intent's record (mutable: the ledger moves it through its states)."""

    fingerprint: Hashable
    """The action and its values; the same key with other values is a conflict."""
    state: IntentState
    changed_at: float
    """Monotonic seconds."""
    result: Any = None
    """The answer, once :attr:`IntentState.ANSWERED`."""
    error: AmiActionError | None = None
    """Asterisk's refusal, once :attr:`IntentState.REFUSED`."""
    joiners: asyncio.Future[Any] | None = None
    """Callers of the same intent while it is pending wait on this."""
    was_unconfirmed: bool = False
    """Already unconfirmed before the current attempt."""


class IntentLedger:
    """Intent key -> :class:`IntentEntry`, bounded in time and size."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        ttl_s: float = 6 * 3600,
        max_entries: int = 10000,
    ) -> None:
        self._clock = clock
        self._ttl_s = ttl_s
        self._max = max_entries
        self._entries: OrderedDict[str, IntentEntry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, fingerprint: Hashable) -> IntentEntry | None:
        """The live entry for ``key``; :class:`AmiIntentConflict` if it was used for something else."""
        self._expire()
        entry = self._entries.get(key)
        if entry is not None and entry.fingerprint != fingerprint:
            raise AmiIntentConflict(f"intent {key!r} was used for a different action or different values")
        return entry

    def begin(self, key: str, fingerprint: Hashable) -> IntentEntry:
        """Mark ``key`` pending (new, or a recovery of an unconfirmed one)."""
        entry = self._entries.get(key)
        was_unconfirmed = entry is not None and entry.state is IntentState.UNCONFIRMED
        entry = IntentEntry(fingerprint, IntentState.PENDING, self._clock(), was_unconfirmed=was_unconfirmed)
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            oldest, old = next(iter(self._entries.items()))
            if old.state is IntentState.PENDING:  # never evict a live one; it is moved to the end
                self._entries.move_to_end(oldest)
                break
            del self._entries[oldest]
        return entry

    def answered(self, key: str, result: Any) -> None:
        entry = self._settle(key, IntentState.ANSWERED)
        entry.result = result
        if entry.joiners is not None and not entry.joiners.done():
            entry.joiners.set_result(result)

    def refused(self, key: str, error: AmiActionError) -> None:
        entry = self._settle(key, IntentState.REFUSED)
        entry.error = error
        self._fail_joiners(entry, error)

    def unconfirmed(self, key: str, error: BaseException) -> None:
        """Sent, no answer (``error`` says why; joiners get it)."""
        entry = self._settle(key, IntentState.UNCONFIRMED)
        self._fail_joiners(entry, error)

    def not_sent(self, key: str, error: BaseException) -> None:
        """Nothing was sent after all: back to unconfirmed if it was, else forgotten (a retry is safe)."""
        entry = self._entries[key]
        if entry.was_unconfirmed:
            self.unconfirmed(key, error)
            return
        del self._entries[key]
        self._fail_joiners(entry, error)

    def join(self, entry: IntentEntry) -> asyncio.Future[Any]:
        """A future that settles with the pending entry."""
        if entry.joiners is None:
            entry.joiners = asyncio.get_running_loop().create_future()
        return entry.joiners

    def _settle(self, key: str, state: IntentState) -> IntentEntry:
        entry = self._entries[key]
        entry.state = state
        entry.changed_at = self._clock()
        self._entries.move_to_end(key)
        return entry

    @staticmethod
    def _fail_joiners(entry: IntentEntry, error: BaseException) -> None:
        if entry.joiners is not None and not entry.joiners.done():
            entry.joiners.set_exception(error)
            entry.joiners.exception()  # retrieved here: a joiner-less future must not warn at collection

    def _expire(self) -> None:
        horizon = self._clock() - self._ttl_s
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if entry.changed_at > horizon or entry.state is IntentState.PENDING:
                break
            del self._entries[key]
