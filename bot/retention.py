"""Retention: what is kept of a call, and for how long.

A call leaves, in Redis: its record (``attendant:call:<uuid>``: outcome, route, context), its redacted
transcript (``…:transcript``), the agent's disposition (``…:disposition``) and Rasa's tracker
(``attendant:tracker:<uuid>``). Every one of them carries a Redis expiry as a backstop; on top of that the
gateway runs :class:`Purge` every ``period_s``: calls that ended (or, if they never ended, started) more than
``window_s`` ago are deleted, all keys of a call together, and the purge is logged (a count, never content).
Several gateways may purge at once: deleting twice is harmless.

Voicemails have their own window, ``voicemail_window_s`` (``ATTENDANT_VOICEMAIL_RETENTION_S``, 30 days by
default, never "for ever"), applied by the same pass: entries of the stream ``attendant:voicemails`` whose id
(the time Redis added them, ms) is older than the window are deleted with their mark hash
(``attendant:voicemail:<id>``, which also expires on its own a day after the window) and the WAV file they
name — only when that file resolves inside the voicemail directory
(:func:`bot.console.voicemail.remove_confined`); a path outside it is never deleted (the entry still goes,
and a warning names the entry id), a file already gone is fine. A file that cannot be deleted (permissions)
keeps its entry, to be tried again next pass.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

from bot.config import VOICEMAIL_RETENTION_S
from bot.console.voicemail import remove_confined
from telephony.callstate import VOICEMAILS_KEY, call_key, transcript_key, voicemail_key

log = logging.getLogger(__name__)

CALL_KEYS = "attendant:call:*"
TRACKER_PREFIX = "attendant:tracker:"
"""Rasa's tracker store key of a call (``bot/rasa/endpoints.yml``: key_prefix ``attendant``)."""


def call_keys(call_id: str) -> tuple[str, ...]:
    """Every key a call leaves."""
    return (
        call_key(call_id),
        transcript_key(call_id),
        f"{call_key(call_id)}:disposition",
        f"{TRACKER_PREFIX}{call_id}",
    )


@dataclass(frozen=True, slots=True)
class VoicemailsPurged:
    """What one pass did to voicemails (counts only)."""

    entries: int = 0
    """Stream entries deleted (each with its mark hash)."""
    files: int = 0
    """WAV files deleted."""
    gone: int = 0
    """Files that were already gone."""
    refused: int = 0
    """Named paths not deleted: outside the voicemail directory, not a ``.wav`` file, or a link."""
    failed: int = 0
    """Files that could not be deleted (their entries are kept for the next pass)."""


class Purge:
    """Deletes what is older than the retention windows."""

    def __init__(
        self,
        redis: Any,
        *,
        window_s: float,
        voicemail_window_s: float = VOICEMAIL_RETENTION_S,
        voicemail_dir: Path | None = None,
        period_s: float = 600.0,
        clock: Callable[[], float] = time.time,
        batch: int = 500,
        voicemails_key: str = VOICEMAILS_KEY,
    ) -> None:
        if not voicemail_window_s > 0:
            raise ValueError("the voicemail retention window must be positive")
        self._r = redis
        self.window_s = window_s
        self.voicemail_window_s = voicemail_window_s
        self.voicemail_dir = voicemail_dir
        """``ATTENDANT_VM_DIR``; None: no file is deleted (entries and marks still are)."""
        self.period_s = period_s
        self._clock = clock
        self._batch = batch
        self._vm_key = voicemails_key

    async def once(self) -> int:
        """One pass (calls, then voicemails); returns how many calls were purged."""
        calls = await self.calls()
        await self.voicemails()
        return calls

    async def calls(self) -> int:
        """Calls older than ``window_s``; returns how many were purged."""
        cutoff = self._clock() - self.window_s
        purged = 0
        async for raw in self._r.scan_iter(match=CALL_KEYS, count=self._batch):
            key = raw.decode() if isinstance(raw, bytes) else str(raw)
            call_id = key.removeprefix("attendant:call:")
            if ":" in call_id:
                continue  # a transcript or disposition: handled with its call's hash
            ended, started = await self._r.hmget(key, "ended_at", "started_at")
            when = _seconds(ended) or _seconds(started)
            if when is None or when >= cutoff:
                continue
            await self._r.delete(*call_keys(call_id))
            purged += 1
        if purged:
            log.info("retention: purged %d call(s) older than %.0f h", purged, self.window_s / 3600)
        return purged

    async def voicemails(self) -> VoicemailsPurged:
        """Voicemails older than ``voicemail_window_s``: their files (confined), marks and stream entries."""
        cutoff_ms = int((self._clock() - self.voicemail_window_s) * 1000)
        if cutoff_ms <= 0:
            return VoicemailsPurged()
        counts = dict.fromkeys(("entries", "files", "gone", "refused", "failed"), 0)
        start = "-"
        while True:
            entries = await self._r.xrange(self._vm_key, min=start, max=str(cutoff_ms - 1), count=self._batch)
            if not entries:
                break
            done: list[str] = []
            for raw_id, fields in entries:
                entry_id = _text(raw_id)
                stored = _text(fields.get("file", fields.get(b"file", "")))
                what = await asyncio.to_thread(self._remove, stored)
                if what == "refused":
                    log.warning(
                        "retention: voicemail %s: its file is not deleted (outside the voicemail "
                        "directory, not a .wav file, or a link)",
                        entry_id,
                    )
                counts[what] += 1
                if what != "failed":
                    done.append(entry_id)
            if done:
                pipe = self._r.pipeline()
                pipe.xdel(self._vm_key, *done)
                pipe.delete(*(voicemail_key(i) for i in done))
                await pipe.execute()
                counts["entries"] += len(done)
            if len(entries) < self._batch:
                break
            start = f"({_text(entries[-1][0])}"
        purged = VoicemailsPurged(**counts)
        if purged.entries or purged.failed:
            log.info(
                "retention: purged %d voicemail(s) older than %.0f d (%d file(s) deleted, %d already gone, "
                "%d refused, %d not deletable)",
                purged.entries,
                self.voicemail_window_s / 86400,
                purged.files,
                purged.gone,
                purged.refused,
                purged.failed,
            )
        return purged

    def _remove(self, stored: str) -> str:
        if not stored:
            return "gone"
        if self.voicemail_dir is None:
            return "refused"
        try:
            what = remove_confined(stored, self.voicemail_dir)
        except OSError as exc:
            log.warning("retention: a voicemail file could not be deleted: %s", type(exc).__name__)
            return "failed"
        return "files" if what == "deleted" else what

    async def run(self) -> None:
        """Purge every ``period_s`` until cancelled; Redis trouble is logged and retried next period."""
        while True:
            try:
                await self.once()
            except (RedisError, OSError) as exc:
                log.warning("retention purge failed: %s", type(exc).__name__)
            await asyncio.sleep(self.period_s)


def _text(raw: object) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _seconds(raw: object) -> float | None:
    if raw is None:
        return None
    try:
        return float(raw.decode() if isinstance(raw, bytes) else str(raw))
    except ValueError:
        return None
