"""``python -m bot.tools.launch`` (``make run``): bring up everything a call needs, watch it, stop it cleanly.

Order: Redis (use the one running, or start one we own), the Vosk model (``VOSK_MODEL``, or download the
English small model; without one, speech recognition is off), the Rasa action server and Rasa (warmed up),
then the gateway. If any process dies the others are stopped and the exit status says so; Ctrl-C stops all.
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
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import redis

from actions.shared.paths import REPO_ROOT
from bot.tools import modelfetch
from bot.tools.stack import RasaStack

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


def ensure_redis(url: str) -> subprocess.Popen[bytes] | None:
    """Use the Redis at ``url``, or start one we own on its port. Exits with a clear message when neither."""
    if redis_alive(url):
        say(f"Redis: using the one at {url}")
        return None
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
    args = [
        binary,
        "--bind",
        host,
        "--port",
        str(port),
        "--dir",
        str(data),
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    proc = subprocess.Popen(args, stdout=(RUN_DIR / "redis.log").open("ab"), stderr=subprocess.STDOUT)
    for _ in range(50):
        if redis_alive(url):
            say(f"Redis: started our own on {host}:{port} (log .run/redis.log)")
            return proc
        time.sleep(0.1)
    proc.terminate()
    sys.exit(f"[attendant] Started redis-server on {host}:{port} but it does not answer; see .run/redis.log")


def ensure_vosk_model() -> Path | None:
    """``VOSK_MODEL``, else the official English small model (downloaded once), else None (ASR off)."""
    configured = os.environ.get("VOSK_MODEL", "").strip()
    if configured:
        say(f"speech recognition: model {configured}")
        return Path(configured)
    try:
        path = modelfetch.ensure_model(
            modelfetch.DEFAULT_MODEL_URL, modelfetch.DEFAULT_MODEL_SHA256, modelfetch.DEFAULT_DEST
        )
    except modelfetch.ModelFetchError as exc:
        say(f"speech recognition: OFF ({exc})")
        say("  point VOSK_MODEL=/path/to/vosk-model at a local model to turn it on;")
        say("  callers can still use the keypad, and the simulator can inject text.")
        return None
    say(f"speech recognition: model {path}")
    return path


GATEWAY_READY = "attendant gateway:"


def spawn_gateway(
    env: dict[str, str], *, stderr: Any = None, timeout_s: float = 120.0, rasa_wait_s: float = 30.0
) -> tuple[subprocess.Popen[str], str]:
    """Start ``python -m bot`` with ``env`` and wait for its ready line (which names its ports).

    Raises ``RuntimeError`` if it exits or stays silent past ``timeout_s``.
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
        for line in iter(stdout.readline, ""):
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
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
    """``RASA_TOKEN``, else one generated once and kept in .run/rasa-token (mode 0600)."""
    token = os.environ.get("RASA_TOKEN", "").strip()
    if token:
        return token
    path = RUN_DIR / "rasa-token"
    if path.exists():
        return path.read_text().strip()
    token = secrets.token_urlsafe(24)
    RUN_DIR.mkdir(exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(token)
    return token


def main(argv: list[str] | None = None) -> int:
    """Start everything and supervise it."""
    parser = argparse.ArgumentParser(prog="python -m bot.tools.launch", description=__doc__)
    parser.add_argument("--rasa-port", type=int, default=int(os.environ.get("RASA_PORT", "5005")))
    parser.add_argument("--action-port", type=int, default=int(os.environ.get("ACTION_PORT", "5055")))
    parser.add_argument("--rasa-timeout", type=float, default=300.0)
    args = parser.parse_args(argv)

    # Everything we and our children create (logs, the store, Redis' files) is the owner's only.
    os.umask(0o077)
    RUN_DIR.mkdir(mode=0o700, exist_ok=True)
    RUN_DIR.chmod(0o700)
    if not MODEL.exists():
        sys.exit("[attendant] No trained model at models/attendant.tar.gz: run 'make run' (it trains first).")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    own_redis = ensure_redis(redis_url)
    vosk_model = ensure_vosk_model()
    token = rasa_token()
    stack = RasaStack(
        rasa_port=args.rasa_port,
        action_port=args.action_port,
        token=token,
        redis_url=redis_url,
        model_path=MODEL,
        log_dir=RUN_DIR,
    )
    gateway: subprocess.Popen[str] | None = None
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = 0
    try:
        t0 = time.monotonic()
        say("starting the action server and Rasa (loading the model takes a while)...")
        stack.start()
        stack.wait_ready(timeout=args.rasa_timeout)
        say(
            f"Rasa ready on 127.0.0.1:{args.rasa_port} in {time.monotonic() - t0:.0f} s "
            f"(actions on :{args.action_port})"
        )
        env = dict(os.environ)
        env.update(
            RASA_URL=f"http://127.0.0.1:{args.rasa_port}",
            RASA_TOKEN=token,
            REDIS_URL=redis_url,
            VOSK_MODEL=str(vosk_model) if vosk_model else "",
        )
        try:
            gateway, ready = spawn_gateway(env)
        except RuntimeError as exc:
            say(f"{exc}; see the messages above")
            return 1
        say(ready)
        say("try a call:  .venv/bin/python -m telephony.sim --text 'what is my balance' --out bot.wav")
        say("stop with Ctrl-C")
        while not stopping:
            if gateway.poll() is not None:
                say(f"the gateway exited with {gateway.returncode}; stopping")
                status = 1
                break
            if not stack.running():
                say("Rasa or the action server exited; stopping (see .run/*.log)")
                status = 1
                break
            if own_redis is not None and own_redis.poll() is not None:
                say("our Redis exited; stopping (see .run/redis.log)")
                status = 1
                break
            time.sleep(0.5)
    except Exception as exc:
        say(f"start-up failed: {exc}")
        status = 1
    finally:
        if gateway is not None and gateway.poll() is None:
            gateway.terminate()
            try:
                gateway.wait(10)
            except subprocess.TimeoutExpired:
                gateway.kill()
        stack.stop()
        if own_redis is not None:
            own_redis.terminate()
        say("stopped")
    return status


if __name__ == "__main__":
    sys.exit(main())
