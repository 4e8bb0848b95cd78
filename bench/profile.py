"""A sampling profile of the running gateway (py-spy, from PyPI, pinned in requirements.lock), summarised.

``py-spy record --format raw`` writes collapsed stacks (``frame;frame;... count``), innermost frame last.
Stacks that pass through Vosk, Piper/onnxruntime, resampling (soxr) or espeak belong to the engines; the rest
is the gateway's own work, summarised by the innermost function (self time) and by the project's functions
(``bot/``, ``telephony/``) on the stack (inclusive time).
"""

from __future__ import annotations

import collections
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

ENGINE_MARKS = ("vosk", "piper", "onnxruntime", "soxr", "espeak")
IDLE_LEAVES = ("_worker (concurrent/futures/thread.py",)
"""A pool worker waiting for work (its queue's get is C code, so py-spy sees the waiting frame as busy)."""
OWN_MARKS = ("bot/", "telephony/")


def py_spy() -> str | None:
    exe = Path(sys.executable).with_name("py-spy")
    return str(exe) if exe.exists() else shutil.which("py-spy")


class Profiler:
    """``py-spy record`` on ``pid`` from :meth:`start` until :meth:`stop`."""

    def __init__(self, pid: int, out: Path, rate: int = 50) -> None:
        self.pid, self.out, self.rate = pid, out, rate
        self.proc: subprocess.Popen[bytes] | None = None
        self.error: str | None = None

    def start(self) -> bool:
        exe = py_spy()
        if exe is None:
            self.error = "py-spy is not installed"
            return False
        self.out.parent.mkdir(parents=True, exist_ok=True)
        argv = [exe, "record", "--pid", str(self.pid), "--rate", str(self.rate), "--format", "raw"]
        argv += ["--output", str(self.out), "--nonblocking", "--duration", "3600"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return True

    def stop(self) -> dict[str, Any] | None:
        if self.proc is None:
            return {"error": self.error}
        self.proc.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        try:
            _, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        if not self.out.exists():
            return {"error": f"py-spy wrote nothing: {err.decode(errors='replace')[-400:]}"}
        return summarise(self.out)


def _name(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``func (file.py)`` with the path shortened to the package."""
    func, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.rsplit(":", 1)[0]
    for root in ("site-packages/", "python3.10/"):
        if root in path:
            path = path.split(root, 1)[1]
    return f"{func} ({path})"


def summarise(collapsed: Path, top: int = 15) -> dict[str, Any]:
    """Shares of the samples: engines vs the gateway's own, and the gateway's top functions."""
    total = engines = idle = 0
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    for line in collapsed.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        try:
            count = int(count_s)
        except ValueError:
            continue
        frames = [f for f in stack.split(";") if " (" in f]
        if frames and frames[-1].startswith(IDLE_LEAVES):
            idle += count
            continue
        total += count
        if any(m in stack.lower() for m in ENGINE_MARKS):
            engines += count
            continue
        if frames:
            self_time[_name(frames[-1])] += count
        for name in {_name(f) for f in frames if any(m in f for m in OWN_MARKS)}:
            inclusive[name] += count
    own = total - engines

    def pct(n: int) -> float:
        return round(100 * n / total, 1) if total else 0.0

    return {
        "samples_busy": total,
        "samples_idle_pool_workers": idle,
        "engines_pct": pct(engines),
        "gateway_own_pct": pct(own),
        "top_self": [{"function": k, "pct": pct(v)} for k, v in self_time.most_common(top)],
        "top_project_inclusive": [{"function": k, "pct": pct(v)} for k, v in inclusive.most_common(top)],
    }
