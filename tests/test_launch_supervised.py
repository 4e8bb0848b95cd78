"""The real launcher (``python -m bot.tools.launch``, what ``make run`` runs) with its real children: kill the
action server, then the gateway; each death is logged with its exit status and log file, that child alone
comes back, FastAGI answers the dialplan's ``outcome`` all the while the gateway itself is up; SIGTERM stops
everything cleanly."""

from __future__ import annotations

import asyncio
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import redis

from tests.conftest import MODEL, REPO, free_port
from tests.test_agi import asterisk_header, expected, play_asterisk

pytestmark = pytest.mark.timeout(600)


class Launcher:
    def __init__(self, run_dir: Path, redis_url: str) -> None:
        self.rasa_port, self.action_port = free_port(), free_port()
        self.port, self.agi_port = free_port(), free_port()
        self.token = "-" + secrets.token_urlsafe(16)
        env = dict(
            os.environ,
            RASA_TOKEN=self.token,
            REDIS_URL=redis_url,
            ATTENDANT_PORT=str(self.port),
            ATTENDANT_AGI_PORT=str(self.agi_port),
            ATTENDANT_CONSOLE_PORT="0",
            ATTENDANT_AGENT_TOKENS=str(run_dir / "agent-tokens.json"),
            ATTENDANT_TEXT_INJECTION="loopback",
            PYTHONUNBUFFERED="1",
        )
        argv = [sys.executable, "-m", "bot.tools.launch", "--no-asr", "--run-dir", str(run_dir)]
        argv += ["--rasa-port", str(self.rasa_port), "--action-port", str(self.action_port)]
        self.proc = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self._new: queue.Queue[str] = queue.Queue()
        self._eof = threading.Event()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in iter(self.proc.stdout.readline, ""):
            self.lines.append(line.rstrip("\n"))
            self._new.put(line)
        self._eof.set()

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            finished = self.proc.poll() is not None and self._eof.is_set()  # every line it wrote is read
            for line in self.lines:
                if text in line:
                    return line
            if finished:
                break
            try:
                self._new.get(timeout=0.2)
            except queue.Empty:
                pass
        raise AssertionError(f"no {text!r} from the launcher:\n" + "\n".join(self.lines[-40:]))


def child_pid(parent: int, *words: str) -> int:
    """The pid of the child of ``parent`` whose command line holds all ``words`` (only our own children: other
    test runs on this machine have gateways of their own)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and all(w in argv for w in words):
            return int(proc.name)
    raise AssertionError(f"no child of {parent} with {words}")


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


async def agi_answers(port: int, call: str) -> bool:
    try:
        return await play_asterisk(port, asterisk_header(call)) == expected("completed", "none", "general")
    except OSError:
        return False


async def test_the_launcher_restarts_a_dead_part_and_keeps_the_rest_up(
    tmp_path: Path, redis_url: str
) -> None:
    if not MODEL.exists():
        pytest.fail("no trained model: run the tests with 'make test' (it trains first)")
    launcher = Launcher(tmp_path, redis_url)
    done = str(uuid.uuid4())
    r = redis.Redis.from_url(redis_url)
    r.hset(f"attendant:call:{done}", mapping={"outcome": "completed"})
    try:
        launcher.wait_for("stop with Ctrl-C", 400)
        # What an administrator needs to hand out: the console's address and each demo agent's token.
        assert launcher.wait_for("Agent console: http://127.0.0.1:", 5)
        assert launcher.wait_for("Maya Chen (maya, PJSIP/1001): token ", 5)
        actions = child_pid(launcher.proc.pid, "actions.server", str(launcher.action_port))
        rasa = child_pid(launcher.proc.pid, "rasa", "run", str(launcher.rasa_port))
        gateway = child_pid(launcher.proc.pid, "bot", "--rasa-wait")
        assert await agi_answers(launcher.agi_port, done)

        # The action server dies: logged, restarted alone; FastAGI answers all along.
        os.kill(actions, signal.SIGKILL)
        killed = time.monotonic()
        answered = 0
        while not any("actions restarted" in line for line in launcher.lines):
            assert await agi_answers(launcher.agi_port, done)
            answered += 1
            await asyncio.sleep(0.1)
            assert time.monotonic() - killed < 30, launcher.lines[-10:]
        death = launcher.wait_for("actions was killed by SIGKILL", 1)
        assert death.endswith(f"restarting in 1 s (log {tmp_path / 'actions.log'})"), death
        assert answered >= 3
        new_actions = child_pid(launcher.proc.pid, "actions.server", str(launcher.action_port))
        assert new_actions != actions
        assert alive(rasa) and alive(gateway) and launcher.proc.poll() is None

        # The gateway dies: restarted, and its FastAGI is back on the same port.
        os.kill(gateway, signal.SIGKILL)
        launcher.wait_for("gateway was killed by SIGKILL", 10)
        launcher.wait_for("gateway restarted", 10)
        deadline = time.monotonic() + 60
        while not await agi_answers(launcher.agi_port, done):
            assert time.monotonic() < deadline, launcher.lines[-10:]
            await asyncio.sleep(0.2)
        new_gateway = child_pid(launcher.proc.pid, "bot", "--rasa-wait")
        assert new_gateway != gateway and alive(rasa) and alive(new_actions)

        # SIGTERM: everything stops, nothing left behind.
        launcher.proc.send_signal(signal.SIGTERM)
        assert launcher.proc.wait(60) == 0
        launcher.wait_for("stopped", 1)
        for pid in (new_actions, rasa, new_gateway):
            assert not alive(pid), pid
    finally:
        r.delete(f"attendant:call:{done}")
        if launcher.proc.poll() is None:
            launcher.proc.send_signal(signal.SIGTERM)
            try:
                launcher.proc.wait(60)
            except subprocess.TimeoutExpired:
                launcher.proc.kill()
    print("\n" + "\n".join(line for line in launcher.lines if "restart" in line or "killed" in line))
