"""The launcher's supervisor: a dead child is logged (exit status, log file) and restarted alone, with
back-off (1 s doubling to 30 s, reset after a minute up); the others are left alone. Logic on a fake clock
with fake processes; then the same with real child processes."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from bot.tools.supervise import Backoff, Supervisor, exit_status


class FakeProc:
    _next_pid = 100

    def __init__(self) -> None:
        FakeProc._next_pid += 1
        self.pid = FakeProc._next_pid
        self.code: int | None = None

    def poll(self) -> int | None:
        return self.code


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fake_child(sup: Supervisor, name: str) -> list[FakeProc]:
    spawned: list[FakeProc] = []

    def spawn() -> FakeProc:
        spawned.append(FakeProc())
        return spawned[-1]

    sup.add(name, spawn, log_path=Path(f".run/{name}.log"))
    return spawned


def test_backoff_doubles_to_thirty_seconds() -> None:
    assert [Backoff().delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 30, 30, 30]


def test_exit_status_names_the_signal() -> None:
    assert (exit_status(3), exit_status(-9), exit_status(-15)) == (
        "exited with status 3",
        "was killed by SIGKILL",
        "was killed by SIGTERM",
    )


def test_a_dead_child_is_restarted_alone_with_growing_delays() -> None:
    clock, said = Clock(), []
    sup = Supervisor(clock=clock, say=said.append)
    actions, gateway = fake_child(sup, "actions"), fake_child(sup, "gateway")
    restarts_at = []
    for _ in range(6):  # it dies at once each time
        actions[-1].code = 1
        before = len(actions)
        sup.check()
        while len(actions) == before:
            clock.now += 0.25
            sup.check()
        restarts_at.append(clock.now)
    gaps = [b - a for a, b in zip([0.0, *restarts_at], restarts_at, strict=False)]
    assert gaps == [1, 2, 4, 8, 16, 30]
    assert len(gateway) == 1 and gateway[0].code is None  # never touched
    assert said[0] == "actions exited with status 1 after 0 s; restarting in 1 s (log .run/actions.log)"
    assert said[1] == f"actions restarted (pid {actions[1].pid}, restart 1)"


def test_a_child_that_stayed_up_a_minute_starts_over_at_one_second() -> None:
    clock, said = Clock(), []
    sup = Supervisor(clock=clock, say=said.append)
    rasa = fake_child(sup, "rasa")
    for _ in range(3):  # 1, 2, 4 s
        rasa[-1].code = -9
        sup.check()
        clock.now += 5
        sup.check()
    assert "restarting in 4 s" in said[-2]
    clock.now += 61  # healthy for a minute
    rasa[-1].code = -9
    sup.check()
    assert said[-1] == "rasa was killed by SIGKILL after 61 s; restarting in 1 s (log .run/rasa.log)"


def test_a_spawn_that_fails_counts_as_a_death_and_is_tried_again() -> None:
    clock, said = Clock(), []
    sup = Supervisor(clock=clock, say=said.append)
    attempts = []

    def spawn() -> FakeProc:
        attempts.append(clock.now)
        if len(attempts) < 3:
            raise OSError("no such file")
        return FakeProc()

    sup.add("redis", spawn, log_path=Path(".run/redis.log"))
    for _ in range(40):
        clock.now += 0.25
        sup.check()
    assert attempts == [0.0, 1.0, 3.0]
    assert said[0] == "redis could not be started: no such file; restarting in 1 s (log .run/redis.log)"
    assert sup.process("redis") is not None


def test_check_says_how_long_to_sleep() -> None:
    clock = Clock()
    sup = Supervisor(clock=clock, say=lambda _: None, poll_s=0.5)
    procs = fake_child(sup, "actions")
    assert sup.check() == 0.5
    procs[-1].code = 0
    clock.now = 10.0
    assert sup.check() == 0.5  # restart due at 11.0
    clock.now = 10.8
    assert abs(sup.check() - 0.2) < 1e-9


def test_real_processes_die_and_come_back_the_others_stay_up(tmp_path: Path) -> None:
    """Real child processes: one exits with status 3 soon after each start, one runs; both under the real
    clock. The dying one is restarted (new pids), the running one keeps its pid; stopping ends the loop."""
    said: list[str] = []
    log = tmp_path / "flaky.log"
    children: list[subprocess.Popen[bytes]] = []

    def spawn(code: str) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            children.append(subprocess.Popen([sys.executable, "-c", code], stdout=out, stderr=out))
        return children[-1]

    quick = Backoff(initial_s=0.1, max_s=0.4, reset_after_s=60)
    sup = Supervisor(backoff=quick, say=said.append, poll_s=0.05)
    flaky = sup.add("flaky", lambda: spawn("import sys; sys.exit(3)"), log_path=log)
    steady = sup.add("steady", lambda: spawn("import time; time.sleep(60)"))
    steady_pid = steady.proc.pid if steady.proc else None
    stop = threading.Event()
    runner = threading.Thread(target=sup.run, args=(stop.is_set,))
    runner.start()
    try:
        deadline = time.monotonic() + 20
        while flaky.restarts < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        runner.join(5)
        for child in children:
            if child.poll() is None:
                child.kill()
            child.wait(5)
    assert not runner.is_alive()
    assert flaky.restarts >= 4 and flaky.exits[:4] == [3, 3, 3, 3]
    assert steady.proc is not None and steady.proc.pid == steady_pid and steady.restarts == 0
    deaths = [line for line in said if line.startswith("flaky exited")]
    assert deaths[0] == f"flaky exited with status 3 after 0 s; restarting in 0 s (log {log})"
    assert "restarting in 0 s" in deaths[1] and len({c.pid for c in children}) == len(children)
