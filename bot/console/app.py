"""The agent console: an aiohttp app mounted in the gateway process (plain HTML/CSS/JS from ``static/``).

Routes::

    GET  /login, POST /login        the token form; a good token sets the session cookie and goes to /
    POST /logout                    ends the session
    GET  /                          the console page (logged in), else to /login
    GET  /api/me                    the agent, the dispositions
    GET  /api/events                server-sent events: ``snapshot`` (all cards) on connect, then ``card``
                                    (one card changed); a comment line every ``ping_s`` keeps it open
    GET  /api/calls/<call_id>       one card; 403 unless the call was offered to this agent
    POST /api/calls/<call_id>/disposition   {"code", "note"}: once per (agent, call)
    POST /api/ready                 end wrap-up now (unpause)
    GET  /api/voicemails            the voicemails of the agent's skills, newest first (:mod:`.voicemail`);
                                    new ones and status changes come as ``voicemail`` events on the stream
    GET  /api/voicemails/<id>       one, with the call's transcript; 404 unless one of the agent's skills
    GET  /api/voicemails/<id>/audio the recording (Range requests served); 404 unless its stored path is a
                                    file inside ``voicemail_dir``
    POST /api/voicemails/<id>/heard, POST /api/voicemails/<id>/handled   {}: the first agent's mark is kept
    GET  /healthz

Every ``/api`` request needs the session cookie (401 otherwise); state-changing requests must be JSON from
the console's own origin (``SameSite=Strict`` and a JSON body keep other sites' forms out). Responses carry a
strict Content-Security-Policy (scripts and styles from ``/static`` only). Nothing an agent or caller wrote
is ever logged: log lines name agents and call ids only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp_sse import sse_response
from redis.exceptions import RedisError

from bot.config import VOICEMAIL_RETENTION_S
from bot.console.agents import Agent, Roster
from bot.console.auth import COOKIE, LoginLimiter, Sessions, find_agent
from bot.console.control import CallControl, CallControlError
from bot.console.desk import Desk, DeskError
from bot.console.voicemail import Voicemails

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
CALL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; media-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    """How the console behaves (defaults suit ``make run``)."""

    session_ttl_s: int = 12 * 3600
    """A login lasts a shift."""
    cookie_secure: bool = False
    """Mark the cookie ``Secure`` (set when the console is served over HTTPS, e.g. behind a proxy)."""
    ping_s: float = 15.0
    """Keep-alive comment on the event stream, seconds."""
    pause_in_wrapup: bool = True
    """Pause the member (QueuePause) for the wrap-up time; "ready" or the countdown's end unpauses."""
    login_per_client: int = 5
    login_total: int = 50
    login_window_s: float = 300.0
    keep_cards: int = 20
    """Calls kept on an agent's desk (finished ones drop out first)."""
    timer_s: float = 0.25
    """How often wrap-up countdowns are checked, seconds."""
    voicemail_dir: Path | None = None
    """``ATTENDANT_VM_DIR``, where ``Record()`` leaves after-hours messages; None: no recording is served."""
    voicemail_retention_s: float = VOICEMAIL_RETENTION_S
    """``ATTENDANT_VOICEMAIL_RETENTION_S``: agents' marks on a voicemail expire a day after this."""


class Console:
    """The console's web server. ``desk`` is what the AMI side feeds (``await console.desk.feed(event)``)."""

    def __init__(
        self, app: web.Application, desk: Desk, settings: ConsoleSettings, voicemails: Voicemails
    ) -> None:
        self.app = app
        self.desk = desk
        self.settings = settings
        self.voicemails = voicemails
        self._runner: web.AppRunner | None = None
        self._timer: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._host = "127.0.0.1"
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}/"

    async def start(self, host: str = "127.0.0.1", port: int = 8088) -> None:
        """Listen (``port`` 0: any free port, then see :attr:`port`) and start the wrap-up timer."""
        self._host = host
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else port
        self._timer = asyncio.create_task(self.desk.run_timer(self.settings.timer_s), name="console-timer")
        self._watch = asyncio.create_task(self.voicemails.watch(), name="console-voicemails")
        log.info("agent console on %s", self.url)

    async def close(self) -> None:
        """End every event stream, stop listening."""
        for task in (self._timer, self._watch):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self.desk.close_streams()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def build_console(
    roster: Roster,
    redis: Any,
    control: CallControl,
    clock: Callable[[], float] = time.time,
    settings: ConsoleSettings | None = None,
) -> Console:
    """The console for ``roster`` (agents with tokens: see :func:`bot.console.agents.roster_with_tokens`),
    reading calls from ``redis`` (``redis.asyncio``), acting on Asterisk through ``control``."""
    settings = settings or ConsoleSettings()
    desk = Desk(
        roster, redis, control, clock, pause_in_wrapup=settings.pause_in_wrapup, keep=settings.keep_cards
    )
    voicemails = Voicemails(
        roster,
        redis,
        settings.voicemail_dir,
        clock,
        desk.push,
        retention_s=settings.voicemail_retention_s,
    )
    routes = _Routes(
        roster,
        desk,
        voicemails,
        Sessions(redis, settings.session_ttl_s),
        LoginLimiter(clock, settings.login_per_client, settings.login_total, settings.login_window_s),
        settings,
    )
    app = web.Application(middlewares=[_headers, _same_origin], client_max_size=64 * 1024)
    app.router.add_get("/", routes.index)
    app.router.add_get("/login", routes.login_page)
    app.router.add_post("/login", routes.login)
    app.router.add_post("/logout", routes.logout)
    app.router.add_get("/healthz", routes.health)
    app.router.add_get("/api/me", routes.me)
    app.router.add_get("/api/events", routes.events)
    app.router.add_get("/api/calls/{call_id}", routes.call)
    app.router.add_post("/api/calls/{call_id}/disposition", routes.disposition)
    app.router.add_post("/api/ready", routes.ready)
    app.router.add_get("/api/voicemails", routes.voicemails)
    app.router.add_get("/api/voicemails/{vm_id}", routes.voicemail)
    app.router.add_get("/api/voicemails/{vm_id}/audio", routes.voicemail_audio)
    app.router.add_post("/api/voicemails/{vm_id}/{mark:heard|handled}", routes.voicemail_mark)
    app.router.add_static("/static/", STATIC, show_index=False, follow_symlinks=False)
    return Console(app, desk, settings, voicemails)


@web.middleware
async def _headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")  # no-referrer makes Origin "null"
    response.headers.setdefault("X-Frame-Options", "DENY")
    if request.path.startswith("/api/") or request.path in ("/", "/login"):
        response.headers.setdefault("Cache-Control", "no-store")
    if isinstance(response, web.HTTPException):
        raise response
    return response


@web.middleware
async def _same_origin(request: web.Request, handler: Handler) -> web.StreamResponse:
    """State changes only from the console's own pages."""
    if request.method == "POST":
        origin = request.headers.get("Origin")
        # by host only: behind a TLS proxy the browser says https while this server sees http
        if origin is not None and urlsplit(origin).netloc != request.host:
            raise web.HTTPForbidden(text="cross-origin request refused")
        if request.path.startswith("/api/") and request.content_type != "application/json":
            raise web.HTTPUnsupportedMediaType(text="JSON only")
    return await handler(request)


def _page(name: str, **marks: str) -> str:
    html = (STATIC / name).read_text(encoding="utf-8")
    for mark, value in marks.items():
        html = html.replace("{{" + mark + "}}", value)
    return re.sub(r"\{\{[a-z_]+\}\}", "", html)


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class _Routes:
    def __init__(
        self,
        roster: Roster,
        desk: Desk,
        voicemails: Voicemails,
        sessions: Sessions,
        limiter: LoginLimiter,
        settings: ConsoleSettings,
    ) -> None:
        self.roster = roster
        self.desk = desk
        self.vm = voicemails
        self.sessions = sessions
        self.limiter = limiter
        self.settings = settings

    async def _agent(self, request: web.Request) -> Agent | None:
        agent_id = await self.sessions.agent_id(request.cookies.get(COOKIE))
        return self.roster.get(agent_id) if agent_id else None

    async def _api_agent(self, request: web.Request) -> Agent:
        agent = await self._agent(request)
        if agent is None:
            raise web.HTTPUnauthorized(text=json.dumps({"error": "log in"}), content_type="application/json")
        return agent

    # --- pages ---

    async def index(self, request: web.Request) -> web.StreamResponse:
        if await self._agent(request) is None:
            raise web.HTTPSeeOther("/login")
        return web.Response(text=_page("console.html"), content_type="text/html")

    async def login_page(self, request: web.Request) -> web.StreamResponse:
        if await self._agent(request) is not None:
            raise web.HTTPSeeOther("/")
        return web.Response(text=_page("login.html"), content_type="text/html")

    async def login(self, request: web.Request) -> web.StreamResponse:
        client = request.remote or "?"
        wait = self.limiter.retry_after(client)
        if wait > 0:
            log.warning("console: login from %s refused: too many failures", client)
            return web.Response(
                status=429,
                headers={"Retry-After": str(int(wait) + 1)},
                text=_page("login.html", error=f"Too many attempts. Try again in {int(wait) + 1} seconds."),
                content_type="text/html",
            )
        form = await request.post()
        token = form.get("token")
        agent = find_agent(self.roster, token.strip()) if isinstance(token, str) and token.strip() else None
        if agent is None:
            self.limiter.failed(client)
            log.warning("console: failed login from %s", client)
            return web.Response(
                status=401,
                text=_page("login.html", error="That token is not valid. Check it and try again."),
                content_type="text/html",
            )
        try:
            cookie = await self.sessions.create(agent.id)
        except (RedisError, OSError) as exc:
            log.warning("console: session not stored: %s", type(exc).__name__)
            return web.Response(
                status=503,
                text=_page("login.html", error="The console cannot reach its store. Try again shortly."),
                content_type="text/html",
            )
        log.info("console: %s logged in", agent.id)
        response = web.HTTPSeeOther("/")
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=self.settings.session_ttl_s,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=self.settings.cookie_secure,
        )
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        cookie = request.cookies.get(COOKIE)
        agent_id = await self.sessions.agent_id(cookie)
        await self.sessions.end(cookie)
        if agent_id:
            log.info("console: %s logged out", agent_id)
        response = web.HTTPSeeOther("/login")
        response.del_cookie(COOKIE, path="/")
        return response

    async def health(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"ok": True})

    # --- api ---

    async def me(self, request: web.Request) -> web.StreamResponse:
        agent = await self._api_agent(request)
        return web.json_response(
            {
                "id": agent.id,
                "name": agent.name,
                "interface": agent.interface,
                "skills": [{"skill": s.value, "proficiency": p} for s, p in agent.skills],
                "languages": list(agent.languages),
                "dispositions": [{"code": d.code, "label": d.label} for d in self.roster.dispositions],
            }
        )

    async def events(self, request: web.Request) -> web.StreamResponse:
        agent = await self._api_agent(request)
        cookie = request.cookies.get(COOKIE)
        # Subscribed before the headers go out: once the browser sees the stream open, nothing is missed.
        with self.desk.subscribe(agent.id) as stream:
            async with sse_response(request, headers={"Cache-Control": "no-store"}) as sse:
                sse.ping_interval = self.settings.ping_s
                next_check = asyncio.get_running_loop().time() + self.settings.ping_s
                while True:
                    message = await stream.get(timeout=1.0)
                    if message is None:
                        break
                    transport = request.transport
                    if transport is None or transport.is_closing():
                        break
                    if message:  # shared by the agent's streams: read, never change it
                        data = {k: v for k, v in message.items() if k != "event"}
                        try:
                            await sse.send(
                                json.dumps(data, separators=(",", ":")), event=str(message["event"])
                            )
                        except ConnectionResetError:
                            break
                    elif asyncio.get_running_loop().time() >= next_check:  # logged out elsewhere?
                        next_check = asyncio.get_running_loop().time() + self.settings.ping_s
                        if await self.sessions.agent_id(cookie) != agent.id:
                            break
        return sse

    def _call_id(self, request: web.Request) -> str:
        call_id = request.match_info["call_id"]
        if not CALL_ID.fullmatch(call_id):
            raise web.HTTPNotFound()
        return call_id

    async def call(self, request: web.Request) -> web.StreamResponse:
        agent = await self._api_agent(request)
        call_id = self._call_id(request)
        try:
            card = await self.desk.card(agent.id, call_id)
        except DeskError as exc:
            log.warning("console: %s refused call %s (%s)", agent.id, call_id, exc.status)
            return _json_error(exc.status, str(exc))
        return web.json_response(card)

    async def disposition(self, request: web.Request) -> web.StreamResponse:
        agent = await self._api_agent(request)
        call_id = self._call_id(request)
        try:
            body = await request.json()
        except ValueError:
            return _json_error(400, "expected JSON")
        code = body.get("code") if isinstance(body, dict) else None
        note = body.get("note", "") if isinstance(body, dict) else ""
        if not isinstance(code, str) or not isinstance(note, str):
            return _json_error(400, "code and note must be text")
        try:
            saved = await self.desk.dispose(agent.id, call_id, code, note)
        except DeskError as exc:
            return _json_error(exc.status, str(exc))
        except CallControlError as exc:
            log.warning("console: queue_log for call %s failed: %s", call_id, type(exc).__name__)
            return _json_error(502, "Asterisk did not take the disposition; try again")
        return web.json_response({"saved": True, "code": saved.code, "duplicate": saved.duplicate})

    async def ready(self, request: web.Request) -> web.StreamResponse:
        agent = await self._api_agent(request)
        try:
            changed = await self.desk.ready(agent.id)
        except CallControlError as exc:
            log.warning("console: unpausing %s failed: %s", agent.id, type(exc).__name__)
            return _json_error(502, "Asterisk did not unpause you; try again")
        return web.json_response({"ready": True, "changed": changed})

    # --- voicemails ---

    async def voicemails(self, request: web.Request) -> web.StreamResponse:
        agent = await self._api_agent(request)
        try:
            items = await self.vm.list_for(agent)
        except (RedisError, OSError) as exc:
            log.warning("console: voicemails not read: %s", type(exc).__name__)
            return _json_error(503, "voicemails are not available right now")
        return web.json_response({"voicemails": items})

    async def voicemail(self, request: web.Request) -> web.StreamResponse:
        agent = await self._api_agent(request)
        try:
            item = await self.vm.detail_for(agent, request.match_info["vm_id"])
        except (RedisError, OSError) as exc:
            log.warning("console: voicemail not read: %s", type(exc).__name__)
            return _json_error(503, "voicemails are not available right now")
        if item is None:
            return _json_error(404, "no such voicemail for you")
        return web.json_response(item)

    async def voicemail_audio(self, request: web.Request) -> web.StreamResponse:
        agent = await self._api_agent(request)
        try:
            path = await self.vm.audio_for(agent, request.match_info["vm_id"])
        except (RedisError, OSError) as exc:
            log.warning("console: voicemail not read: %s", type(exc).__name__)
            return _json_error(503, "voicemails are not available right now")
        if path is None:
            return _json_error(404, "no such recording for you")
        return web.FileResponse(path, headers={"Content-Type": "audio/wav"})

    async def voicemail_mark(self, request: web.Request) -> web.StreamResponse:
        agent = await self._api_agent(request)
        try:
            done = await self.vm.mark(agent, request.match_info["vm_id"], request.match_info["mark"])
        except (RedisError, OSError) as exc:
            log.warning("console: voicemail mark not stored: %s", type(exc).__name__)
            return _json_error(503, "not saved; try again")
        if done is None:
            return _json_error(404, "no such voicemail for you")
        item, won = done
        return web.json_response({"voicemail": item, "duplicate": not won})
