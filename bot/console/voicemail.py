"""Voicemails on the agent console: the after-hours messages the dialplan recorded, listed for the agents who
can act on them, played in the browser, marked heard and handled.

Where they come from: ``Record()`` writes ``ATTENDANT_VM_DIR/<call uuid>.wav`` and the FastAGI ``voicemail``
route adds an entry to the stream :data:`VOICEMAILS_KEY` (call, file, status, caller_number, line, skill,
reason, context JSON, at). A voicemail's id is its stream entry id. What agents did with it is kept in
:func:`voicemail_key` (``heard_by``/``heard_at``, ``handled_by``/``handled_at``: the first agent wins each
field; it expires :data:`MARK_MARGIN_S` after the voicemail retention window from its last write, a backstop
for the gateway's purge, :mod:`bot.retention`) and, while the call record lives, in the call's hash
(``voicemail_heard_by``, ``voicemail_handled_by`` and their ``_at``).

Who sees one: an agent whose skills include the voicemail's skill (the stream's ``skill``, else the
context's, else ``general``); nobody else, not even by guessing its id (404, as for one that does not exist).

The audio: only the stored record's path is ever opened, and only when it resolves (symlinks followed) to a
``.wav`` file inside the configured voicemail directory (:func:`confined`); anything else is a 404. Nothing
from the request becomes a path. The retention purge deletes files by the same rule (:func:`remove_confined`).

:class:`Voicemails` also watches the stream (``XREAD``) so a voicemail recorded through any gateway reaches
the agents' open pages as a ``voicemail`` server-sent event, as do status changes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import wave
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

from bot.console.agents import Agent, Roster
from bot.console.view import call_view, text
from telephony.callstate import VOICEMAILS_KEY, Skill, call_key, transcript_key, voicemail_key

log = logging.getLogger(__name__)

ENTRY_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
"""A Redis stream entry id: what the console calls a voicemail's id."""
LIST_MAX = 200
"""Voicemails read for a listing (newest first)."""
MARK_MARGIN_S = 86400
"""A mark hash outlives the voicemail retention window by this much (the purge deletes it first)."""
STATUS_RANK = {"new": 0, "heard": 1, "handled": 2}
Push = Callable[[str, dict[str, Any]], None]
"""``push(agent_id, message)``: one message onto an agent's open event streams."""

_HANDLE = """
if redis.call('HSETNX', KEYS[1], ARGV[1] .. '_by', ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1] .. '_at', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
if redis.call('EXISTS', KEYS[2]) == 1 then
  local field = 'voicemail_' .. ARGV[1]
  redis.call('HSET', KEYS[2], field .. '_by', ARGV[2], field .. '_at', ARGV[3])
end
return 1
"""
"""First agent wins ``<what>_by``; the mark hash expires ``ARGV[4]`` s later; the call record, if it still
exists, gets the same (never re-created)."""


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _float(value: Any) -> float | None:
    try:
        return float(_s(value)) if value not in (None, "", b"") else None
    except ValueError:
        return None


def confined(stored: str, root: Path) -> Path | None:
    """The real file behind ``stored`` (a record's path), only if it is a ``.wav`` file inside ``root``."""
    if not stored or "\x00" in stored:
        return None
    path = Path(stored)
    if not path.is_absolute():
        return None
    try:
        real = path.resolve(strict=True)
        base = root.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if real.suffix.lower() != ".wav" or not real.is_relative_to(base) or not real.is_file():
        return None
    return real


def remove_confined(stored: str, root: Path) -> str:
    """Delete the voicemail file ``stored`` names, by the rule of :func:`confined`, and say what happened:

    ``deleted``; ``gone`` (nothing at that path: fine); ``refused`` (it exists but is not a ``.wav`` file
    inside ``root``, or the named path is itself a symbolic link: never deleted); raises ``OSError`` when the
    file is inside but cannot be deleted. The deletion walks down from ``root`` without following links, so a
    directory swapped for a link after the check is refused too."""
    if not stored or "\x00" in stored or not Path(stored).is_absolute():
        return "refused"
    if not os.path.lexists(stored):
        return "gone"
    real = confined(stored, root)
    if real is None or Path(stored).is_symlink():
        return "refused"
    parts = real.relative_to(root.resolve(strict=True)).parts
    flags = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(root.resolve(strict=True), flags)
    try:
        for part in parts[:-1]:
            try:
                nxt = os.open(part, flags, dir_fd=fd)
            except OSError:
                return "refused"  # no longer a plain directory
            os.close(fd)
            fd = nxt
        try:
            os.unlink(parts[-1], dir_fd=fd)  # removes a link itself, never its target
        except FileNotFoundError:
            return "gone"
    finally:
        os.close(fd)
    return "deleted"


def wav_seconds(path: Path) -> float | None:
    """A WAV file's length in seconds, from its header (None when unreadable)."""
    try:
        with wave.open(str(path), "rb") as w:
            rate = w.getframerate()
            return round(w.getnframes() / rate, 1) if rate > 0 else None
    except (OSError, EOFError, wave.Error):
        return None


def entry_skill(fields: Mapping[str, str], view: Mapping[str, Any]) -> Skill:
    """The skill a voicemail belongs to."""
    return Skill.parse(fields.get("skill") or view.get("skill") or "", Skill.GENERAL)


def sees(agent: Agent, skill: Skill) -> bool:
    """Whether ``agent`` may see a voicemail for ``skill``."""
    return agent.proficiency(skill) is not None


class Voicemails:
    """The voicemail side of the console (see the module docstring)."""

    def __init__(
        self,
        roster: Roster,
        redis: Any,
        root: Path | None,
        clock: Callable[[], float],
        push: Push,
        *,
        retention_s: float,
    ) -> None:
        self.roster = roster
        self._r = redis
        self.root = root
        """``ATTENDANT_VM_DIR``; None: no audio is served."""
        self._clock = clock
        self._push = push
        self._lengths: dict[tuple[str, float, int], float | None] = {}
        self.mark_ttl_s = int(retention_s) + MARK_MARGIN_S
        """A mark hash's expiry, seconds (``ATTENDANT_VOICEMAIL_RETENTION_S`` + a day)."""

    # --- reading ------------------------------------------------------------------------------------------

    async def _state(self, ids: list[str]) -> list[dict[str, str]]:
        if not ids:
            return []
        pipe = self._r.pipeline()
        for entry_id in ids:
            pipe.hgetall(voicemail_key(entry_id))
        return [{_s(k): _s(v) for k, v in (h or {}).items()} for h in await pipe.execute()]

    def _length(self, stored: str) -> float | None:
        real = confined(stored, self.root) if self.root is not None else None
        if real is None:
            return None
        stat = real.stat()
        key = (str(real), stat.st_mtime, stat.st_size)
        if key not in self._lengths:
            if len(self._lengths) > 1000:
                self._lengths.clear()
            self._lengths[key] = wav_seconds(real)
        return self._lengths[key]

    async def _items(self, entries: Iterable[tuple[Any, Mapping[Any, Any]]]) -> list[dict[str, Any]]:
        rows = [(_s(i), {_s(k): _s(v) for k, v in f.items()}) for i, f in entries]
        states = await self._state([i for i, _ in rows])
        lengths = await asyncio.to_thread(lambda: [self._length(f.get("file", "")) for _, f in rows])
        return [
            self._item(entry_id, fields, state, length)
            for (entry_id, fields), state, length in zip(rows, states, lengths, strict=True)
        ]

    def _item(
        self, entry_id: str, fields: dict[str, str], state: dict[str, str], length: float | None
    ) -> dict[str, Any]:
        view = call_view(
            {k: v for k, v in fields.items() if k in ("context", "caller_number", "reason", "skill")}, []
        )
        skill = entry_skill(fields, view)
        view["skill"] = skill.value
        view["reason"] = text(fields["reason"]) if fields.get("reason") else view.get("reason")
        status = "handled" if state.get("handled_by") else "heard" if state.get("heard_by") else "new"
        return {
            "id": entry_id,
            "call_id": fields.get("call", ""),
            "at": _float(fields.get("at")),
            "skill": skill.value,
            "reason": view["reason"],
            "caller_number": view.get("caller_number"),
            "name": (view.get("customer") or {}).get("name") if view.get("verified") else None,
            "length_s": length,
            "record_status": fields.get("status") or None,
            "status": status,
            "heard_by": state.get("heard_by"),
            "heard_at": _float(state.get("heard_at")),
            "handled_by": state.get("handled_by"),
            "handled_at": _float(state.get("handled_at")),
            "view": view,
        }

    async def list_for(self, agent: Agent) -> list[dict[str, Any]]:
        """The voicemails ``agent`` may see, newest first."""
        entries = await self._r.xrevrange(VOICEMAILS_KEY, count=LIST_MAX)
        return [item for item in await self._items(entries or []) if sees(agent, Skill(item["skill"]))]

    async def get_for(self, agent: Agent, entry_id: str) -> tuple[dict[str, Any], dict[str, str]] | None:
        """One voicemail (and its raw stream fields) if ``agent`` may see it, else None."""
        if not ENTRY_ID.fullmatch(entry_id):
            return None
        entries = await self._r.xrange(VOICEMAILS_KEY, min=entry_id, max=entry_id)
        if not entries:
            return None
        [item] = await self._items(entries)
        if not sees(agent, Skill(item["skill"])):
            return None
        return item, {_s(k): _s(v) for k, v in entries[0][1].items()}

    async def detail_for(self, agent: Agent, entry_id: str) -> dict[str, Any] | None:
        """One voicemail with the call's transcript (while Redis still has it)."""
        found = await self.get_for(agent, entry_id)
        if found is None:
            return None
        item, fields = found
        call_id = fields.get("call", "")
        if call_id:
            entries = await self._r.xrange(transcript_key(call_id), count=200)
            item["view"]["transcript"] = call_view({}, entries or [])["transcript"]
        return item

    async def audio_for(self, agent: Agent, entry_id: str) -> Path | None:
        """The recording's file, confined to the voicemail directory; None: not served (404)."""
        if self.root is None:
            return None
        found = await self.get_for(agent, entry_id)
        if found is None:
            return None
        real = await asyncio.to_thread(confined, found[1].get("file", ""), self.root)
        if real is None:
            log.warning("console: voicemail %s: file outside the voicemail directory or missing", entry_id)
        return real

    # --- changing -----------------------------------------------------------------------------------------

    async def mark(self, agent: Agent, entry_id: str, what: str) -> tuple[dict[str, Any], bool] | None:
        """Mark ``heard`` or ``handled`` by ``agent`` (the first agent wins); the voicemail as it now is and
        whether this agent's mark was the one stored. None: not found for this agent."""
        if what not in ("heard", "handled"):
            raise ValueError(what)
        found = await self.get_for(agent, entry_id)
        if found is None:
            return None
        keys = (voicemail_key(entry_id), call_key(found[1].get("call") or "none"))
        won = bool(
            await self._r.eval(_HANDLE, 2, *keys, what, agent.id, f"{self._clock():.3f}", self.mark_ttl_s)
        )
        if won:
            log.info("console: voicemail %s %s by %s", entry_id, what, agent.id)
        found = await self.get_for(agent, entry_id)
        assert found is not None
        if won:
            self._announce(found[0])
        return found[0], won

    # --- pushing ------------------------------------------------------------------------------------------

    def _announce(self, item: dict[str, Any]) -> None:
        skill = Skill(item["skill"])
        for agent in self.roster:
            if sees(agent, skill):
                self._push(agent.id, {"event": "voicemail", "voicemail": item})

    async def watch(self, block_ms: int = 1000) -> None:
        """Push every new stream entry to the agents who see it, until cancelled (Redis trouble: retried)."""
        last: str | None = None
        while True:
            try:
                if last is None:
                    newest = await self._r.xrevrange(VOICEMAILS_KEY, count=1)
                    last = _s(newest[0][0]) if newest else "0-0"
                got = await self._r.xread({VOICEMAILS_KEY: last}, count=50, block=block_ms)
                for _stream, entries in got or []:
                    for item in await self._items(entries):
                        last = item["id"]
                        self._announce(item)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("console: voicemail stream not read: %s", type(exc).__name__)
                await asyncio.sleep(1.0)
