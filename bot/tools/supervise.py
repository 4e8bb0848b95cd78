"""Keep child processes running: when one dies, log it and start it again after a back-off; the others go on.

    sup = Supervisor(say=print)
    sup.add("actions", spawn=start_actions, log_path=Path(".run/actions.log"))
    sup.run(stopping)          # until stopping() is true (Ctrl-C / SIGTERM); then stop the children yourself

Back-off: the first restart after a death comes ``initial_s`` (1 s) later, each further one in a row twice as
late, up to ``max_s`` (30 s); a child that stayed up ``reset_after_s`` (60 s) counts as healthy again, so its
next death is restarted after ``initial_s``. A spawn that raises counts as a death. Each death is logged with
its exit status (or the signal) and the child's log file, each restart with its new pid.

Nothing here sleeps or reads the clock except through the ``clock`` and ``sleep`` given (tests drive it with
fake ones) and spawns nothing except through each child's ``spawn``.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


class Process(Protocol):
    """What a spawn returns (``subprocess.Popen`` is one)."""

    pid: int

    def poll(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class Backoff:
    """Restart delays, seconds."""

    initial_s: float = 1.0
    factor: float = 2.0
    max_s: float = 30.0
    reset_after_s: float = 60.0
    """A child up this long before it died is restarted after ``initial_s`` again."""

    def delay(self, deaths_in_a_row: int) -> float:
        """Seconds before restart number ``deaths_in_a_row`` (1 = the first death after a healthy run)."""
        return min(self.max_s, self.initial_s * self.factor ** min(max(deaths_in_a_row - 1, 0), 64))


def exit_status(code: int) -> str:
    """``exited with status 3`` or ``was killed by SIGKILL`` (Popen gives ``-N`` for a signal)."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


@dataclass(slots=True)
class Child:
    """One supervised process and its restart state."""

    name: str
    spawn: Callable[[], Process]
    log_path: Path | None = None
    proc: Process | None = None
    started_at: float = 0.0
    deaths_in_a_row: int = 0
    restart_at: float | None = None
    """When the next start is due (``None``: running)."""
    restarts: int = 0
    exits: list[int] = field(default_factory=list)
    """Exit statuses seen, in order (for tests and the final summary)."""


class Supervisor:
    """Watches children; restarts the dead with back-off (see the module docstring)."""

    def __init__(
        self,
        *,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        say: Callable[[str], None] = print,
        poll_s: float = 0.5,
    ) -> None:
        self.backoff = backoff or Backoff()
        self._clock = clock
        self._sleep = sleep
        self._say = say
        self.poll_s = poll_s
        self.children: dict[str, Child] = {}

    def add(
        self,
        name: str,
        spawn: Callable[[], Process],
        *,
        log_path: Path | None = None,
        running: Process | None = None,
    ) -> Child:
        """Supervise ``name``: adopt ``running`` if given, else start it now via ``spawn``."""
        child = Child(name, spawn, log_path)
        self.children[name] = child
        if running is not None:
            child.proc, child.started_at = running, self._clock()
        else:
            self._start(child)
        return child

    def process(self, name: str) -> Process | None:
        """The current process of ``name`` (``None`` while it waits for its restart)."""
        return self.children[name].proc

    def _where(self, child: Child) -> str:
        return f" (log {child.log_path})" if child.log_path is not None else ""

    def _start(self, child: Child) -> None:
        child.restart_at = None
        try:
            child.proc = child.spawn()
        except Exception as exc:
            child.proc = None
            self._died(child, f"could not be started: {exc}", self._clock())
            return
        child.started_at = self._clock()

    def _died(self, child: Child, what: str, now: float) -> None:
        if child.proc is not None and now - child.started_at >= self.backoff.reset_after_s:
            child.deaths_in_a_row = 0
        child.deaths_in_a_row += 1
        child.proc = None
        delay = self.backoff.delay(child.deaths_in_a_row)
        child.restart_at = now + delay
        self._say(f"{child.name} {what}; restarting in {delay:.0f} s{self._where(child)}")

    def check(self) -> float:
        """One pass: note deaths, start what is due. Returns the seconds until the next restart is due
        (at most ``poll_s``), for the caller to sleep."""
        now = self._clock()
        for child in self.children.values():
            if child.proc is not None:
                code = child.proc.poll()
                if code is not None:
                    child.exits.append(code)
                    up = now - child.started_at
                    self._died(child, f"{exit_status(code)} after {up:.0f} s", now)
        wait = self.poll_s
        for child in self.children.values():
            if child.restart_at is None:
                continue
            if child.restart_at <= now:
                child.restarts += 1
                self._start(child)
                if child.proc is not None:
                    self._say(f"{child.name} restarted (pid {child.proc.pid}, restart {child.restarts})")
            if child.restart_at is not None:
                wait = min(wait, max(0.0, child.restart_at - now))
        return wait

    def run(self, stopping: Callable[[], bool]) -> None:
        """Check, sleep, repeat until ``stopping()`` is true (it is checked between passes)."""
        while not stopping():
            wait = self.check()
            if stopping():
                break
            self._sleep(max(wait, 0.01))
