"""Start and stop the dialogue side: the Rasa server and the rasa-sdk action server, as child processes.

    with RasaStack(rasa_port=5005, action_port=5055, token=token, redis_url="redis://127.0.0.1:6379/0",
                   model_path=Path("models/attendant.tar.gz"), log_dir=Path(".run")) as stack:
        stack.wait_ready(timeout=180)
        ...  # POST stack.webhook_url with "Authorization: Bearer <token>"

Both listen on 127.0.0.1 only (Rasa: ``-i 127.0.0.1``; the action server, ``actions/server.py``: rasa-sdk's
server behind the same shared secret, ``SANIC_HOST``). Their output goes to
``rasa.log`` and ``actions.log`` in ``log_dir``. :meth:`RasaStack.wait_ready` returns once the action
server answers ``/health``, the Attendant channel answers its health route (Rasa opens its port only once
the model is loaded), and one warm-up parse went through the channel's ``/warmup`` (the first parse builds
TensorFlow graphs and is slow). Nothing here imports Rasa.

Rasa runs **without its HTTP API**: no ``--enable-api``, no ``--auth-token``, so it serves only the
channel's routes (``/webhooks/attendant/...``) and its ``GET /`` hello — no ``/conversations/*`` through which
a tracker could be read or a slot set in a live call. The token is the channel's own shared secret; it
reaches Rasa in its environment (``RASA_TOKEN``, which ``credentials.yml`` reads), never on a command line
(which any local user can read in ``/proc/<pid>/cmdline``).

Errors::

    StackError          a process would not start, died, or was not ready in time; the message ends with
                        the tail of its log
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from urllib.parse import urlsplit

from actions.shared.paths import REPO_ROOT

ENDPOINTS = REPO_ROOT / "bot" / "rasa" / "endpoints.yml"
CREDENTIALS = REPO_ROOT / "bot" / "rasa" / "credentials.yml"
LOOPBACK = "127.0.0.1"


class StackError(RuntimeError):
    """The Rasa stack could not be brought up (or died)."""


def redis_env(redis_url: str) -> dict[str, str]:
    """``REDIS_HOST``/``REDIS_PORT``/``REDIS_DB`` (what endpoints.yml reads) from a ``redis://`` URL."""
    parts = urlsplit(redis_url)
    if parts.scheme not in ("redis", ""):
        raise StackError(f"unsupported Redis URL scheme {parts.scheme!r} (use redis://host:port/db)")
    db = (parts.path or "/0").lstrip("/") or "0"
    if not db.isdigit():
        raise StackError(f"Redis database must be a number, not {db!r}")
    return {
        "REDIS_HOST": parts.hostname or LOOPBACK,
        "REDIS_PORT": str(parts.port or 6379),
        "REDIS_DB": db,
    }


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


class RasaStack:
    """The Rasa server and the action server for one gateway (see the module docstring)."""

    def __init__(
        self,
        *,
        rasa_port: int,
        action_port: int,
        token: str,
        redis_url: str,
        model_path: Path,
        log_dir: Path,
        python: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        if not token:
            raise StackError("a Rasa token is required")
        self.rasa_port = rasa_port
        self.action_port = action_port
        self.token = token
        self.model_path = Path(model_path).resolve()
        self.log_dir = Path(log_dir)
        self._python = python or sys.executable
        self._env = dict(os.environ)
        self._env.update(redis_env(redis_url))
        self._env.update(
            {
                "RASA_TOKEN": token,
                "ACTION_ENDPOINT_URL": f"http://{LOOPBACK}:{action_port}/webhook",
                "SANIC_HOST": LOOPBACK,
                "RASA_TELEMETRY_ENABLED": "false",
                "TF_CPP_MIN_LOG_LEVEL": self._env.get("TF_CPP_MIN_LOG_LEVEL", "2"),
                "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
                "PYTHONUNBUFFERED": "1",
            }
        )
        self._env.update(extra_env or {})
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}
        self.startup_s: float | None = None
        """Seconds from :meth:`start` until :meth:`wait_ready` returned (model loaded and warmed up)."""
        self._started_at = 0.0

    def env(self, name: str) -> str | None:
        """A setting the stack's processes run with (``ATTENDANT_STORE_URL``: for a gateway beside it)."""
        return self._env.get(name)

    # --- addresses -----------------------------------------------------------------------------------
    @property
    def rasa_url(self) -> str:
        return f"http://{LOOPBACK}:{self.rasa_port}"

    @property
    def action_url(self) -> str:
        return f"http://{LOOPBACK}:{self.action_port}"

    @property
    def channel_url(self) -> str:
        """The Attendant channel's routes (the only ones the Rasa server has, with its ``/``)."""
        return f"{self.rasa_url}/webhooks/attendant"

    @property
    def health_url(self) -> str:
        """The channel's health route: answers once Rasa has its model loaded."""
        return f"{self.channel_url}/"

    @property
    def webhook_url(self) -> str:
        """Where the gateway posts caller turns."""
        return f"{self.channel_url}/webhook"

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    # --- life cycle ----------------------------------------------------------------------------------
    NAMES = ("actions", "rasa")
    """The two processes, in start order."""

    def argv(self, name: str) -> list[str]:
        """The command line of ``actions`` or ``rasa`` (no secret on it)."""
        if name == "actions":
            # actions.server: rasa-sdk's server with the secret checked on every route but /health.
            return [self._python, "-m", "actions.server", "--actions", "actions", "-p", str(self.action_port)]
        if name == "rasa":
            return [
                self._python, "-m", "rasa", "run",
                # No --enable-api / --auth-token: only the channel's routes (module docstring). The token
                # travels in the environment (RASA_TOKEN), never on this command line.
                "-i", LOOPBACK, "-p", str(self.rasa_port),
                "--model", str(self.model_path),
                "--endpoints", str(ENDPOINTS),
                "--credentials", str(CREDENTIALS),
            ]  # fmt: skip
        raise StackError(f"no process called {name!r}")

    def start(self) -> None:
        """Spawn the action server and the Rasa server (returns at once; see :meth:`wait_ready`)."""
        if self._procs:
            raise StackError("already started")
        if not self.model_path.is_file():
            raise StackError(f"no model at {self.model_path}: run `python -m bot.tools.train` first")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._started_at = time.monotonic()
        for name in self.NAMES:
            self.spawn(name)

    def spawn(self, name: str) -> subprocess.Popen[bytes]:
        """Start ``name`` (again): its output is appended to its log. A previous process of that name must
        have exited (a supervisor restarting it after a death)."""
        old = self._procs.get(name)
        if old is not None and old.poll() is None:
            raise StackError(f"{name} is still running (pid {old.pid})")
        if name in self._logs:
            self._logs.pop(name).close()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        argv = self.argv(name)
        # owner-only (0600): a log may hold call ids and errors; closed in stop() or on the next spawn
        fd = os.open(self.log_path(name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)
        log = os.fdopen(fd, "ab")
        self._logs[name] = log
        proc = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stop() reaches any children, nothing else
        )
        self._procs[name] = proc
        return proc

    def process(self, name: str) -> subprocess.Popen[bytes] | None:
        """The current process of ``name`` (``actions`` or ``rasa``), if started."""
        return self._procs.get(name)

    def ready_again(self, timeout: float = 300.0) -> bool:
        """After a restart of Rasa: wait for the channel's health route, then warm it up. Never raises."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self._procs.get("rasa")
            if proc is None or proc.poll() is not None:
                return False
            try:
                if self._get(self.health_url)[1] == {"status": "ok"}:
                    self._warm_up(max(1.0, deadline - time.monotonic()))
                    return True
            except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError, StackError):
                pass
            time.sleep(0.5)
        return False

    def _check_alive(self) -> None:
        for name, proc in self._procs.items():
            code = proc.poll()
            if code is not None:
                raise StackError(f"{name} exited with status {code}:\n{_tail(self.log_path(name))}")

    def _get(self, url: str, timeout: float = 2.0) -> tuple[int, Any]:
        req = urllib.request.Request(url, method="GET")  # noqa: S310 -- our own http://127.0.0.1 URLs
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 -- loopback http only
            body = resp.read()
            return resp.status, json.loads(body) if body else None

    def wait_ready(self, timeout: float = 180.0) -> float:
        """Block until both servers answer and the model is loaded and warmed up; returns seconds taken."""
        if not self._procs:
            raise StackError("not started")
        deadline = time.monotonic() + timeout
        waiting_for = "the action server"
        try:
            while not self._ok(f"{self.action_url}/health", lambda body: True):
                self._pause(deadline, waiting_for)
            waiting_for = "the Rasa server to load its model"
            while not self._ok(self.health_url, lambda body: body == {"status": "ok"}):
                self._pause(deadline, waiting_for)
            waiting_for = "the warm-up parse"
            self._warm_up(max(1.0, deadline - time.monotonic()))
        except StackError:
            raise
        except Exception as exc:
            raise StackError(f"waiting for {waiting_for} failed: {exc}\n{self._tails()}") from exc
        self.startup_s = time.monotonic() - self._started_at
        return self.startup_s

    def _ok(self, url: str, accept: Any) -> bool:
        self._check_alive()
        try:
            code, body = self._get(url)
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            return False
        return code == 200 and bool(accept(body))

    def _pause(self, deadline: float, waiting_for: str) -> None:
        if time.monotonic() > deadline:
            raise StackError(f"timed out waiting for {waiting_for}\n{self._tails()}")
        time.sleep(0.25)

    def _warm_up(self, timeout: float) -> None:
        req = urllib.request.Request(  # noqa: S310 -- our own http://127.0.0.1 URL
            f"{self.channel_url}/warmup",
            data=b"{}",
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"},
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 -- loopback http only
            if resp.status != 200:
                raise StackError(f"warm-up parse answered HTTP {resp.status}")

    def _tails(self) -> str:
        return "\n".join(f"--- {name}.log ---\n{_tail(self.log_path(name))}" for name in self._procs)

    def stop(self, grace: float = 10.0) -> None:
        """Terminate both processes (SIGTERM to their groups), then kill what is left after ``grace`` s."""
        for proc in self._procs.values():
            self._signal(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self._procs.values():
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._signal(proc, signal.SIGKILL)
                proc.wait(timeout=5)
        for log in self._logs.values():
            log.close()
        self._procs.clear()
        self._logs.clear()

    @staticmethod
    def _signal(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)  # the group this stack created for the process
        except ProcessLookupError:
            pass

    def running(self) -> bool:
        """Whether both processes are alive."""
        return bool(self._procs) and all(p.poll() is None for p in self._procs.values())

    def __enter__(self) -> RasaStack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
