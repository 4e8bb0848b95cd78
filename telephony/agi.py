"""FastAGI call control: the dialplan asks, after the bot, how the call ended, and routes the caller on it.

Asterisk connects to ``agi://host:4573/<route>``, sends ``agi_*: value`` header lines ending with a
blank line, then one command per line from us, each answered ``200 result=N [data]``. panoramisk 1.4
provides the route table (:class:`panoramisk.fast_agi.Application`) and the command/response exchange
(``Request.send_command``), but its connection handler reads the header with
``while b'\\n\\n' not in buffer: buffer += await read()``: a peer that sends half a header and then EOF
makes that loop spin forever on empty reads, on the event loop, freezing every call. So the listener here
is guarded: this module reads the header itself, within a time limit (``AgiConfig.header_timeout_s``) and a
size limit (``AgiConfig.max_header_bytes``), drops a peer that breaks either with a log line, and only then
hands a parsed request to the panoramisk route. (Its handler also logs every header, caller numbers
included, at debug level; this one logs none.)

Routes
------
``register`` — ``AGI(agi://127.0.0.1:4573/register,${ATTENDANT_UUID},<rate>)`` before ``AudioSocket()``.
Stores who is calling in ``attendant:call:<uuid>`` (``caller_number`` from ``agi_callerid``, digits and a
leading ``+`` only; ``channel``, the channel's real name when it is one by Asterisk's grammar, e.g.
``Local/s@attendant-0000000f;2``; ``language``; ``rate``, argument 2, the sample rate the dialplan asked the
AudioSocket leg for), which the bot reads when the call arrives: AudioSocket itself carries only the UUID,
and the rate must be known before the bot's first frame (a silent caller sends none to learn it from).
Sets ``ATTENDANT_REGISTERED`` to ``yes`` or ``no``; either way the dialplan goes on to the bot (an
unregistered caller is simply unknown, and is verified or handed to a person).

``outcome`` — ``AGI(agi://127.0.0.1:4573/outcome,${ATTENDANT_UUID})``. Reads the Redis hash
``attendant:call:<uuid>`` the bot wrote (fields ``outcome``, ``reason``, ``skill``, and for a handoff the
route: ``queue``, ``priority``, ``max_penalty``, ``rule``, ``verified``) and sets, in this order,
``ATTENDANT_REASON``, ``ATTENDANT_SKILL``; for a handoff ``ATTENDANT_QUEUE``, ``QUEUE_PRIO``,
``QUEUE_MAX_PENALTY``, ``ATTENDANT_RULE``, ``ATTENDANT_SUMMARY`` (e.g. ``billing requested verified p5``) and
``ATTENDANT_WHISPER`` (the UUID of the agent's whisper leg, ``telephony.callstate.whisper_uuid``); and last
``ATTENDANT_RESULT``, so a session cut short leaves ``ATTENDANT_RESULT`` unset, which the dialplan treats as a
failure (the caller is queued).

``outcome`` also sets, for ``ATTENDANT_RESULT=voicemail``, ``ATTENDANT_VM_MAX`` (the recording limit, 120 s);
``callback`` (the request is submitted: hang up) and ``oncall`` (dial the on-call number) need nothing more.
``register`` also keeps ``line``: the number dialled (argument 3, e.g. ``${EXTEN}`` of the DID context, else
``agi_dnid``), digits only; the bot looks up that line's opening hours.

``voicemail`` — ``AGI(agi://127.0.0.1:4573/voicemail,${ATTENDANT_UUID},<file>,${RECORD_STATUS})`` after
``Record()``: stores the recording's path (absolute, containing the call id) with the call's context in the
stream ``attendant:voicemails``.

Failure tree (every branch ends with the caller reaching a person)::

    hash missing / call id unusable   -> ATTENDANT_RESULT=none   (dialplan queues the caller)
    outcome not a known value         -> ATTENDANT_RESULT=none
    Redis down or slow                -> ATTENDANT_RESULT=none, ATTENDANT_REASON=technical
    AGI server down / session cut     -> ATTENDANT_RESULT unset (dialplan treats it as none)

Every value set on the channel is built from the call-state enums, numbers and UUIDs, and checked against
:data:`DIALPLAN_VALUE` (``[a-z0-9 _-]{1,64}``) as it is sent: text that may come from a caller never
reaches the dialplan. A reason or skill read from Redis that is not a known value is replaced by a fixed
default.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from telephony.audiosocket import audio_rate
from telephony.callstate import (
    RETENTION_S,
    SAFE_VALUE,
    VOICEMAILS_KEY,
    Outcome,
    Reason,
    Route,
    Skill,
    call_key,
    whisper_uuid,
)

log = logging.getLogger(__name__)

VOICEMAIL_MAX_S = 120
"""A voicemail's length limit, seconds (``Record()``'s maximum duration)."""
VOICEMAIL_FILE = re.compile(r"/[A-Za-z0-9_./-]{1,200}")
"""A recording's path as the dialplan passes it: absolute, no spaces, quotes or ``..``."""
SESSION_TIMEOUT_S = 30.0
"""A FastAGI session (after the header) that takes longer is cut; the dialplan then queues the caller."""
REDIS_TIMEOUT_S = 2.0
"""Longest wait for the call's hash; a slower Redis counts as down."""

Endpoint = Callable[[Any], Awaitable[None]]
"""A FastAGI route: ``async def route(request: panoramisk.fast_agi.Request) -> None``."""


@dataclass(frozen=True, slots=True)
class AgiConfig:
    """The FastAGI call-control server."""

    host: str = "127.0.0.1"
    port: int = 4573
    header_timeout_s: float = 5.0
    """A peer that has not finished its ``agi_*`` header by then is dropped."""
    max_header_bytes: int = 16384
    """A header larger than this is dropped."""


class HeaderError(Exception):
    """The peer did not send a complete, well-formed ``agi_*`` header within the limits."""


class AgiCommandError(Exception):
    """A command was not answered ``200``: the channel hung up or Asterisk refused it."""


def caller_number(raw: str) -> str:
    """A caller id reduced to ``+`` and digits (at most 20), or ``""`` for unknown / withheld."""
    kept = "".join(ch for ch in raw.strip() if ch.isdigit() or ch == "+")
    if kept.count("+") > 1 or (kept and "+" in kept[1:]):
        kept = kept.replace("+", "")
    digits = kept.lstrip("+")
    return kept if 3 <= len(digits) <= 20 else ""


CHANNEL_NAME = re.compile(
    r"(?P<tech>[A-Za-z][A-Za-z0-9_]{0,19})/(?P<resource>[A-Za-z0-9@._:+#*~\[\]/-]+?)(?P<leg>;[12])?"
)
"""An Asterisk channel name: ``Tech/resource`` (``PJSIP/1001-0000002a``, ``SIP/10.0.0.1:5060-00000001``,
``AudioSocket/127.0.0.1:9092-0000000b``, ``DAHDI/i1/5551234-1``) with, for a Local channel, the leg
``;1`` or ``;2`` (``Local/s@attendant-0000000f;2``). No spaces, quotes, ``$``, braces or commas: nothing a
dialplan or AMI action could misread."""
CHANNEL_NAME_MAX = 80
"""``AST_CHANNEL_NAME``: Asterisk's own limit on a channel name."""


def dialled_line(raw: str) -> str:
    """The number the caller dialled (AGI argument 3, else ``agi_dnid``), digits only (at most 20), else
    ``""``: the store's phone line (opening hours) is looked up by it."""
    digits = "".join(ch for ch in raw.strip() if ch.isdigit())
    return digits if 1 <= len(digits) <= 20 else ""


def channel_name(raw: str) -> str:
    """``raw`` if it is a channel name by :data:`CHANNEL_NAME` (at most 80 characters), else ``""``.

    Nothing is stripped or rewritten: a name with one character removed names another channel, or none.
    """
    value = raw.strip()
    if len(value) <= CHANNEL_NAME_MAX and CHANNEL_NAME.fullmatch(value):
        return value
    return ""


def safe_value(raw: object, default: str) -> str:
    """``raw`` lower-cased if it matches ``[a-z0-9_-]{1,32}``, else ``default``."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    if not isinstance(raw, str):
        return default
    value = raw.strip().lower()
    return value if SAFE_VALUE.fullmatch(value) else default


DIALPLAN_VALUE = re.compile(r"[a-z0-9 _-]{1,64}")
"""Every value this server sets on a channel matches this: no quotes, ``$``, braces, commas, semicolons or
line breaks, whatever the source. The values are built from the call-state enums, numbers and UUIDs only."""


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """What the dialplan is told about a call."""

    result: Outcome
    reason: Reason = Reason.NONE
    skill: Skill = Skill.GENERAL
    route: Route | None = None
    """For a handoff: the queue, ``QUEUE_PRIO``, ``QUEUE_MAX_PENALTY`` and the rule."""
    whisper: uuid.UUID | None = None
    """For a handoff: the UUID the agent's whisper leg connects to the gateway with."""
    verified: bool = False

    def summary(self) -> str:
        """A short line for the queue log and the agent's phone display, from enums and numbers only."""
        parts = [self.skill.value, self.reason.value, "verified" if self.verified else "unverified"]
        if self.route is not None:
            parts.append(f"p{self.route.priority}")
        return " ".join(parts)

    def variables(self) -> list[tuple[str, str]]:
        """Channel variables in the order they are set (``ATTENDANT_RESULT`` last, so a session cut short
        leaves it unset and the dialplan treats the call as a failure)."""
        out = [("ATTENDANT_REASON", self.reason.value), ("ATTENDANT_SKILL", self.skill.value)]
        if self.route is not None:
            out += [
                ("ATTENDANT_QUEUE", self.route.queue),
                ("QUEUE_PRIO", str(self.route.priority)),
                ("QUEUE_MAX_PENALTY", str(self.route.max_penalty)),
                ("ATTENDANT_RULE", self.route.rule),
                ("ATTENDANT_SUMMARY", self.summary()),
            ]
        if self.whisper is not None:
            out.append(("ATTENDANT_WHISPER", str(self.whisper)))
        if self.result is Outcome.VOICEMAIL:
            out.append(("ATTENDANT_VM_MAX", str(VOICEMAIL_MAX_S)))
        out.append(("ATTENDANT_RESULT", self.result.value))
        return out


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _kept_context(raw: str | None) -> dict[str, Any] | None:
    """A call's kept context (JSON object) when it names the skill the call needs, else ``None``."""
    try:
        context = json.loads(raw or "")
    except ValueError:
        return None
    if not isinstance(context, dict) or context.get("skill") not in {skill.value for skill in Skill}:
        return None
    return context


def outcome_from_hash(fields: Mapping[Any, Any], call_id: uuid.UUID | None = None) -> CallOutcome:
    """Turn the call's Redis hash (bytes or str keys and values) into a filtered :class:`CallOutcome`."""
    if not fields:
        return CallOutcome(Outcome.NONE, Reason.NO_RESULT)
    decoded = {_text(k): _text(v) for k, v in fields.items()}
    try:
        result = Outcome(safe_value(decoded.get("outcome"), Outcome.NONE.value))
    except ValueError:
        result = Outcome.NONE
    default_reason = Reason.NONE if result is not Outcome.NONE else Reason.NO_RESULT
    skill = Skill.parse(safe_value(decoded.get("skill"), ""))
    if result is Outcome.NONE and (learned := _kept_context(decoded.get("context"))) is not None:
        # No outcome, but the bot had been keeping the call's context: its gateway died mid-call. The caller
        # goes to the people of the skill the call needed, and their screen and whisper get what was learned.
        result, skill = Outcome.HANDOFF, Skill.parse(learned.get("skill"))
        decoded["reason"] = Reason.TECHNICAL.value
        decoded["verified"] = "yes" if learned.get("verified") is True else "no"
    handoff = result is Outcome.HANDOFF
    return CallOutcome(
        result=result,
        reason=Reason.parse(safe_value(decoded.get("reason"), ""), default_reason),
        skill=skill,
        route=Route.from_fields(decoded, skill) if handoff else None,
        whisper=whisper_uuid(call_id) if handoff and call_id is not None else None,
        verified=decoded.get("verified") == "yes",
    )


def parse_header(raw: bytes) -> dict[str, str]:
    """``agi_key: value`` lines to a dict; lines without ``: `` are skipped."""
    text = raw.decode("utf-8", errors="replace")
    headers: dict[str, str] = {}
    for line in text.split("\n"):
        line = line.rstrip("\r")
        if ": " not in line:
            continue
        key, value = line.split(": ", 1)
        headers[key.strip()] = value
    return headers


async def read_header(reader: asyncio.StreamReader, *, timeout_s: float, max_bytes: int) -> dict[str, str]:
    """Read the ``agi_*`` header up to its blank line within ``timeout_s`` and about ``max_bytes``.

    The reader must have been created with ``limit=max_bytes`` (``asyncio.start_server(..., limit=...)``) so
    the size check happens while reading, not after an unbounded buffer filled up.
    Raises :class:`HeaderError`.
    """
    try:
        raw = await asyncio.wait_for(reader.readuntil(b"\n\n"), timeout=timeout_s)
    except asyncio.TimeoutError as exc:
        raise HeaderError(f"header not complete within {timeout_s:g} s") from exc
    except asyncio.IncompleteReadError as exc:
        raise HeaderError(f"connection closed after {len(exc.partial)} bytes of header") from exc
    except asyncio.LimitOverrunError as exc:
        raise HeaderError(f"header larger than {max_bytes} bytes") from exc
    if len(raw) > max_bytes:
        raise HeaderError(f"header larger than {max_bytes} bytes")
    headers = parse_header(raw[:-2])
    if "agi_network_script" not in headers and "agi_request" not in headers:
        raise HeaderError("not an AGI header (no agi_network_script or agi_request)")
    return headers


def route_name(headers: Mapping[str, str]) -> str:
    """The route asked for: ``agi_network_script`` without any ``?query``, without slashes around it."""
    script = headers.get("agi_network_script", "")
    return script.split("?", 1)[0].strip("/")


def call_id_from(headers: Mapping[str, str]) -> uuid.UUID | None:
    """The call UUID: AGI argument 1 (``agi_arg_1``), else ``uuid=`` in the script's query string."""
    candidates = [headers.get("agi_arg_1", "")]
    script = headers.get("agi_network_script", "")
    if "?" in script:
        for part in script.split("?", 1)[1].split("&"):
            key, _, value = part.partition("=")
            if key == "uuid":
                candidates.append(value)
    for raw in candidates:
        try:
            return uuid.UUID(raw.strip())
        except ValueError:
            continue
    return None


async def set_variable(request: Any, name: str, value: str) -> None:
    """``SET VARIABLE name "value"`` via panoramisk; raises :class:`AgiCommandError` unless answered 200."""
    if not DIALPLAN_VALUE.fullmatch(value) or not re.fullmatch(r"[A-Z_]{1,64}", name):
        raise ValueError("refusing to send an unfiltered value to the dialplan")
    try:
        reply = await request.send_command(f'SET VARIABLE {name} "{value}"')
    except (ValueError, ConnectionError, asyncio.IncompleteReadError) as exc:
        # panoramisk parses an empty read (connection closed) as int('') -> ValueError.
        raise AgiCommandError("connection closed") from exc
    if not isinstance(reply, dict) or reply.get("status_code") != 200 or "error" in reply:
        error = reply.get("error", reply.get("status_code")) if isinstance(reply, dict) else reply
        raise AgiCommandError(f"SET VARIABLE refused: {error}")


class AgiServer:
    """The guarded FastAGI listener and its routes. Create and :meth:`start` it inside the running loop."""

    def __init__(
        self, config: AgiConfig, redis: Any, *, session_timeout_s: float = SESSION_TIMEOUT_S
    ) -> None:
        self._config = config
        self._redis = redis
        self._session_timeout_s = session_timeout_s
        self._app: Any = None
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        assert self._server is not None and self._server.sockets
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Build the panoramisk Application (in this loop), register the routes, listen."""
        from panoramisk.fast_agi import Application

        self._app = Application(loop=asyncio.get_running_loop())
        self.add_route("outcome", self.outcome)
        self.add_route("register", self.register)
        self.add_route("voicemail", self.voicemail)
        server = await asyncio.start_server(
            self.handle, self._config.host, self._config.port, limit=self._config.max_header_bytes
        )
        self._server = server
        where = ", ".join(str(s.getsockname()[:2]) for s in server.sockets)
        log.info("FastAGI listening on %s", where)

    async def close(self, drain_s: float = 5.0) -> None:
        """Stop listening, then let sessions in progress finish (the dialplan is waiting on them) for up to
        ``drain_s`` seconds; cancel what is left."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await self.drain(drain_s)

    def add_route(self, path: str, endpoint: Endpoint) -> None:
        """Register a route; only ``async def`` is accepted (panoramisk would wrap others with the
        ``asyncio.coroutine`` Python 3.11 removed)."""
        if not asyncio.iscoroutinefunction(endpoint):
            raise TypeError(f"FastAGI route {path!r} must be an async def")
        self._app.add_route(path, endpoint)

    def _route(self, name: str) -> Endpoint | None:
        # panoramisk 1.4 (its only release) keeps routes in Application._route; there is no public lookup.
        routes: Mapping[str, Endpoint] = self._app._route
        return routes.get(name)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Connection handler replacing ``Application.handler``: header under limits, then the route."""
        task = asyncio.current_task()
        if task is not None:
            self._sessions.add(task)
        peer = writer.get_extra_info("peername")
        try:
            try:
                headers = await read_header(
                    reader, timeout_s=self._config.header_timeout_s, max_bytes=self._config.max_header_bytes
                )
            except HeaderError as exc:
                log.warning("FastAGI peer %s dropped: %s", peer, exc)
                return
            name = route_name(headers)
            route = self._route(name)
            if route is None:
                log.warning("FastAGI peer %s asked for unknown route %r", peer, name[:40])
                return
            from panoramisk.fast_agi import Request

            request = Request(app=self._app, headers=headers, reader=reader, writer=writer)
            try:
                await asyncio.wait_for(route(request), timeout=self._session_timeout_s)
            except asyncio.TimeoutError:
                log.warning("FastAGI route %s from %s cut after %g s", name, peer, self._session_timeout_s)
            except Exception:
                log.exception("FastAGI route %s failed", name)
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass
            if task is not None:
                self._sessions.discard(task)

    async def lookup(self, call_id: uuid.UUID | None) -> CallOutcome:
        """The call's outcome from Redis, filtered; ``none`` on any problem."""
        if call_id is None:
            return CallOutcome(Outcome.NONE, Reason.NO_CALL_ID)
        try:
            fields = await asyncio.wait_for(self._redis.hgetall(call_key(call_id)), timeout=REDIS_TIMEOUT_S)
        except Exception as exc:  # RedisError, OSError, timeout: all mean "ask a person"
            log.warning(
                "call %s: outcome lookup failed (%s); caller goes to a queue", call_id, type(exc).__name__
            )
            return CallOutcome(Outcome.NONE, Reason.TECHNICAL)
        return outcome_from_hash(fields or {}, call_id)

    async def register(self, request: Any) -> None:
        """Route ``register``: keep the caller's number, channel, language and call rate for the bot."""
        headers: Mapping[str, str] = request.headers
        call_id = call_id_from(headers)
        registered = "no"
        if call_id is not None:
            channel = channel_name(headers.get("agi_channel", ""))
            if not channel and headers.get("agi_channel"):
                log.warning("call %s: agi_channel is not a channel name; not stored", call_id)
            fields = {
                "caller_number": caller_number(headers.get("agi_callerid", "")),
                "channel": channel,
                "language": safe_value(headers.get("agi_language", ""), "en"),
            }
            rate = audio_rate(headers.get("agi_arg_2", ""))
            if rate is not None:
                fields["rate"] = str(rate)
            line = dialled_line(headers.get("agi_arg_3", "") or headers.get("agi_dnid", ""))
            if line:
                fields["line"] = line
            try:
                pipe = self._redis.pipeline()
                pipe.hset(call_key(call_id), mapping=fields)
                pipe.expire(call_key(call_id), RETENTION_S)
                await asyncio.wait_for(pipe.execute(), timeout=REDIS_TIMEOUT_S)
                registered = "yes"
            except Exception as exc:  # the bot then treats the caller as unknown
                log.warning("call %s: register failed (%s)", call_id, type(exc).__name__)
        try:
            await set_variable(request, "ATTENDANT_REGISTERED", registered)
        except AgiCommandError as exc:
            log.warning("call %s: register reply not delivered (%s)", call_id, exc)

    async def outcome(self, request: Any) -> None:
        """Route ``outcome``: set ``ATTENDANT_REASON``, ``ATTENDANT_SKILL``, ``ATTENDANT_RESULT``."""
        headers: Mapping[str, str] = request.headers
        call_id = call_id_from(headers)
        result = await self.lookup(call_id)
        try:
            for name, value in result.variables():
                await set_variable(request, name, value)
        except AgiCommandError as exc:
            log.warning("call %s: outcome not delivered (%s)", call_id, exc)
            return
        log.info(
            "call %s: outcome %s (reason %s, skill %s)", call_id, result.result, result.reason, result.skill
        )

    async def voicemail(self, request: Any) -> None:
        """Route ``voicemail``: ``AGI(agi://.../voicemail,${ATTENDANT_UUID},<file>,${RECORD_STATUS})`` after
        ``Record()`` (or from the hangup handler): the recording's path, with the call's context, goes to the
        stream ``attendant:voicemails`` and the call's hash (``voicemail``). Sets ``ATTENDANT_VM_STORED``."""
        headers: Mapping[str, str] = request.headers
        call_id = call_id_from(headers)
        path = headers.get("agi_arg_2", "").strip()
        status = safe_value(headers.get("agi_arg_3", ""), "unknown")
        stored = "no"
        if call_id is None or not VOICEMAIL_FILE.fullmatch(path) or ".." in path or str(call_id) not in path:
            log.warning("call %s: voicemail path refused", call_id)
        else:
            try:
                fields = await asyncio.wait_for(self._redis.hgetall(call_key(call_id)), REDIS_TIMEOUT_S)
                known = {_text(k): _text(v) for k, v in (fields or {}).items()}
                entry = {
                    "call": str(call_id),
                    "file": path,
                    "status": status,
                    "caller_number": known.get("caller_number", ""),
                    "line": known.get("line", ""),
                    "skill": Skill.parse(known.get("skill"), Skill.GENERAL).value,  # as the dialplan was told
                    "reason": known.get("reason", ""),
                    "context": known.get("context", "{}"),
                    "at": f"{time.time():.3f}",
                }
                pipe = self._redis.pipeline()
                pipe.xadd(VOICEMAILS_KEY, entry)
                pipe.hset(call_key(call_id), mapping={"voicemail": path, "voicemail_status": status})
                pipe.expire(call_key(call_id), RETENTION_S)
                await asyncio.wait_for(pipe.execute(), timeout=REDIS_TIMEOUT_S)
                stored = "yes"
                log.info("call %s: voicemail stored (%s)", call_id, status)
            except Exception as exc:
                log.warning("call %s: voicemail not stored (%s)", call_id, type(exc).__name__)
        try:
            await set_variable(request, "ATTENDANT_VM_STORED", stored)
        except AgiCommandError:
            pass  # from a hangup handler the channel is gone; the recording is stored all the same

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait for sessions in progress; cancel any still running at the end."""
        pending = set(self._sessions)
        if not pending:
            return
        _done, still = await asyncio.wait(pending, timeout=timeout_s)
        for task in still:
            task.cancel()
        if still:
            await asyncio.gather(*still, return_exceptions=True)
            log.warning("FastAGI: %d session(s) cut at shutdown", len(still))
