"""``python -m bot.tools.launch`` (``make run``): bring up everything a call needs, watch it, stop it cleanly.

Order: Redis (use the one running, or start one we own), the Vosk model (``VOSK_MODEL``, or the English
small model if an administrator fetched it with ``python -m bot.tools.modelfetch``; ``make run`` itself
downloads nothing; without a model, speech recognition is off), the Rasa action server and Rasa (warmed up),
then the gateway.

Supervision (:mod:`bot.tools.supervise`): when a child dies — the action server, Rasa, the gateway (with its
FastAGI server) or a Redis we started — the death is logged with its exit status and log file, and that child
alone is started again after a back-off (1 s, doubling to 30 s; back to 1 s once it stayed up a minute). The
others stay up meanwhile: with Rasa or the action server down, callers hear the holding line and go to a
person, and the dialplan's ``outcome`` AGI still answers. Only Ctrl-C or SIGTERM stops everything (gateway
first, then Rasa and the action server, then our Redis).

Logs: ``.run/actions.log``, ``.run/rasa.log``, ``.run/gateway.log``, ``.run/redis.log``. The channel's shared
secret is ``RASA_TOKEN``, else ``.run/rasa-token`` (mode 0600, generated once); it is passed to Rasa and the
gateway in their environment, never on a command line.
"""

from __future__ import annotations

import argparse
import os
import queue
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import redis

from actions.shared.paths import REPO_ROOT
from bot.tools import modelfetch
from bot.tools.stack import RasaStack
from bot.tools.supervise import Supervisor

RUN_DIR = REPO_ROOT / ".run"
MODEL = REPO_ROOT / "models" / "attendant.tar.gz"


def say(message: str) -> None:
    """Progress for the person at the terminal."""
    print(f"[attendant] {message}", flush=True)


def redis_alive(url: str) -> bool:
    """Whether a Redis answers at ``url``."""
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


def start_redis(url: str) -> subprocess.Popen[bytes]:
    """Start a ``redis-server`` we own on the port of ``url`` (no persistence); exits plainly without one."""
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit(
            f"[attendant] No Redis answers at {url} and there is no redis-server to start.\n"
            "  Install one (Debian/Ubuntu: apt-get install redis-server) or set REDIS_URL to a running Redis."
        )
    data = RUN_DIR / "redis"
    data.mkdir(parents=True, exist_ok=True)
    args = [binary, "--bind", host, "--port", str(port), "--dir", str(data)]
    args += ["--save", "", "--appendonly", "no"]
    return subprocess.Popen(args, stdout=(RUN_DIR / "redis.log").open("ab"), stderr=subprocess.STDOUT)


def ensure_redis(url: str) -> subprocess.Popen[bytes] | None:
    """Use the Redis at ``url``, or start one we own on its port. Exits with a clear message when neither."""
    if redis_alive(url):
        say(f"Redis: using the one at {url}")
        return None
    proc = start_redis(url)
    parsed = urlparse(url)
    where = f"{parsed.hostname or '127.0.0.1'}:{parsed.port or 6379}"
    for _ in range(50):
        if redis_alive(url):
            say(f"Redis: started our own on {where} (log .run/redis.log)")
            return proc
        time.sleep(0.1)
    proc.terminate()
    sys.exit(f"[attendant] Started redis-server on {where} but it does not answer; see .run/redis.log")


def ensure_vosk_model() -> Path | None:
    """``VOSK_MODEL``, else the English small model if it was fetched before (``python -m
    bot.tools.modelfetch``, an administrator's step: nothing is downloaded at run time), else None (ASR
    off, with the two ways to turn it on)."""
    configured = os.environ.get("VOSK_MODEL", "").strip()
    if configured:
        say(f"speech recognition: model {configured}")
        return Path(configured)
    fetched = modelfetch.DEFAULT_DEST / modelfetch.DEFAULT_MODEL_NAME
    if modelfetch.is_vosk_model(fetched):
        say(f"speech recognition: model {fetched}")
        return fetched
    say("speech recognition: OFF (no model: VOSK_MODEL is not set and none was fetched)")
    say("  point VOSK_MODEL=/path/to/vosk-model at a local model, or fetch the English small model once with")
    say("  '.venv/bin/python -m bot.tools.modelfetch' (about 40 MB from alphacephei.com, checksum-verified);")
    say("  callers can still use the keypad, and the simulator can inject text.")
    return None


GATEWAY_READY = "attendant gateway:"


def spawn_gateway(
    env: dict[str, str],
    *,
    stderr: Any = None,
    timeout_s: float = 120.0,
    rasa_wait_s: float = 30.0,
    wait: bool = True,
    echo: Callable[[str], None] | None = None,
) -> tuple[subprocess.Popen[str], str]:
    """Start ``python -m bot`` with ``env`` and wait for its ready line (which names its ports).

    Raises ``RuntimeError`` if it exits or stays silent past ``timeout_s``. With ``wait=False`` it returns at
    once (ready line ``""``). Lines the gateway prints after its ready line (or all, without waiting) go to
    ``echo``.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "--rasa-wait", str(rasa_wait_s)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    stdout = proc.stdout
    assert stdout is not None
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        ready = not wait
        for line in iter(stdout.readline, ""):
            if ready:
                if echo is not None:
                    echo(line.rstrip("\n"))
            else:
                lines.put(line)
                ready = line.startswith(GATEWAY_READY)

    threading.Thread(target=pump, daemon=True).start()
    if not wait:
        return proc, ""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        if line.startswith(GATEWAY_READY):
            return proc, line.strip()
    proc.kill()
    raise RuntimeError(f"the gateway did not start (exit status {proc.poll()})")


def rasa_token() -> str:
    """The channel's shared secret: ``RASA_TOKEN``, else one generated once and kept in .run/rasa-token, a
    file only its owner may read (mode 0600, in a 0700 folder; looser modes are tightened)."""
    token = os.environ.get("RASA_TOKEN", "").strip()
    if token:
        return token
    RUN_DIR.mkdir(mode=0o700, exist_ok=True)
    os.chmod(RUN_DIR, 0o700)
    path = RUN_DIR / "rasa-token"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)
        return path.read_text().strip()
    token = secrets.token_urlsafe(24)
    with os.fdopen(fd, "w") as f:
        f.write(token)
    return token


def stop_process(proc: subprocess.Popen[Any] | None, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` s."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def main(argv: list[str] | None = None) -> int:
    """Start everything and supervise it until Ctrl-C / SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bot.tools.launch", description=__doc__)
    parser.add_argument("--rasa-port", type=int, default=int(os.environ.get("RASA_PORT", "5005")))
    parser.add_argument("--action-port", type=int, default=int(os.environ.get("ACTION_PORT", "5055")))
    parser.add_argument("--rasa-timeout", type=float, default=300.0)
    parser.add_argument("--no-asr", action="store_true", help="no speech recognition (no model download)")
    parser.add_argument("--run-dir", type=Path, default=None, help="logs and the secret (default: .run/)")
    args = parser.parse_args(argv)
    global RUN_DIR
    if args.run_dir is not None:
        RUN_DIR = args.run_dir.resolve()

    # Everything we and our children create (logs, the store, Redis' files) is the owner's only.
    os.umask(0o077)
    RUN_DIR.mkdir(mode=0o700, exist_ok=True)
    RUN_DIR.chmod(0o700)
    if not MODEL.exists():
        sys.exit("[attendant] No trained model at models/attendant.tar.gz: run 'make run' (it trains first).")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    own_redis = ensure_redis(redis_url)
    vosk_model = None if args.no_asr else ensure_vosk_model()
    token = rasa_token()
    stack = RasaStack(
        rasa_port=args.rasa_port,
        action_port=args.action_port,
        token=token,
        redis_url=redis_url,
        model_path=MODEL,
        log_dir=RUN_DIR,
    )
    supervisor = Supervisor(say=say)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = 0
    try:
        if own_redis is not None:
            supervisor.add(
                "redis", lambda: start_redis(redis_url), log_path=RUN_DIR / "redis.log", running=own_redis
            )
        t0 = time.monotonic()
        say("starting the action server and Rasa (loading the model takes a while)...")
        stack.start()
        stack.wait_ready(timeout=args.rasa_timeout)
        say(
            f"Rasa ready on 127.0.0.1:{args.rasa_port} in {time.monotonic() - t0:.0f} s "
            f"(actions on :{args.action_port}; Rasa's HTTP API is off: only the Attendant channel)"
        )

        def respawn_rasa() -> subprocess.Popen[bytes]:
            proc = stack.spawn("rasa")

            def warm() -> None:
                started = time.monotonic()
                if stack.ready_again(args.rasa_timeout):
                    say(f"rasa ready again in {time.monotonic() - started:.0f} s")

            threading.Thread(target=warm, daemon=True).start()
            return proc

        supervisor.add(
            "actions",
            lambda: stack.spawn("actions"),
            log_path=stack.log_path("actions"),
            running=stack.process("actions"),
        )
        supervisor.add("rasa", respawn_rasa, log_path=stack.log_path("rasa"), running=stack.process("rasa"))
        env = dict(os.environ)
        env.update(
            RASA_URL=f"http://127.0.0.1:{args.rasa_port}",
            RASA_TOKEN=token,
            REDIS_URL=redis_url,
            VOSK_MODEL=str(vosk_model) if vosk_model else "",
        )
        gateway_log = RUN_DIR / "gateway.log"

        def gateway(wait: bool) -> subprocess.Popen[str]:
            with gateway_log.open("a") as log:  # the child keeps its own descriptor
                proc, ready = spawn_gateway(
                    env, stderr=log, wait=wait, rasa_wait_s=30.0 if wait else 0.0, echo=say
                )
            if ready:
                say(ready)
            return proc

        try:
            first = gateway(True)
        except RuntimeError as exc:
            say(f"{exc}; see {gateway_log}")
            return 1
        supervisor.add("gateway", lambda: gateway(False), log_path=gateway_log, running=first)
        say(f"logs: {RUN_DIR}/{{actions,rasa,gateway}}.log; a part that dies is restarted, the rest stays up")
        say("try a call:  .venv/bin/python -m telephony.sim --text 'what is my balance' --out bot.wav")
        say("stop with Ctrl-C")
        supervisor.run(lambda: stopping)
    except Exception as exc:
        say(f"start-up failed: {exc}")
        status = 1
    finally:
        if "gateway" in supervisor.children:
            stop_process(supervisor.process("gateway"))  # type: ignore[arg-type]
        stack.stop()
        if "redis" in supervisor.children:
            stop_process(supervisor.process("redis"))  # type: ignore[arg-type]
        elif own_redis is not None:
            stop_process(own_redis)
        say("stopped")
    return status


if __name__ == "__main__":
    sys.exit(main())
