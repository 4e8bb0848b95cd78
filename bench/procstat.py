"""CPU and memory of the processes a benchmark drives, from ``/proc``.

The gateway runs Vosk and Piper in its own worker threads, named ``asr_*`` and ``tts_*`` at the OS level
(``bot.gateway.name_os_thread``), so its CPU splits into decoding, synthesis and the gateway's own work (the
event loop, framing, pacing, the rest) by thread name. Rasa and the action server are processes of their own
(with any children).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_cpu(path: Path) -> float:
    """utime + stime of a ``stat`` file, seconds (0 when it is gone)."""
    try:
        fields = path.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def process_cpu(pid: int) -> float:
    """CPU seconds of a process, all its threads (dead ones included)."""
    return _stat_cpu(Path(f"/proc/{pid}/stat"))


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds by thread group: ``asr`` (Vosk workers), ``tts`` (Piper workers), ``gateway`` (the rest,
    including threads that have exited)."""
    asr = tts = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
        except OSError:
            continue
        if name.startswith("asr"):
            asr += _stat_cpu(task / "stat")
        elif name.startswith("tts"):
            tts += _stat_cpu(task / "stat")
    total = process_cpu(pid)
    return {"asr": asr, "tts": tts, "gateway": max(0.0, total - asr - tts), "total": total}


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo.extend(int(c) for c in task.read_text().split())
            except (OSError, ValueError):
                pass
    return out


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its descendants (those alive now)."""
    return sum(process_cpu(p) for p in descendants(pid))


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class CpuMark:
    """A reading of everything at one moment."""

    at: float
    gateway: dict[str, float]
    engines: dict[str, float]

    @classmethod
    def take(cls, gateway_pid: int, engine_pids: dict[str, int]) -> CpuMark:
        return cls(
            time.monotonic(),
            thread_cpu(gateway_pid),
            {name: tree_cpu(pid) for name, pid in engine_pids.items()},
        )

    def since(self, start: CpuMark) -> dict[str, float]:
        """CPU seconds used between ``start`` and this mark, by part, and the wall time."""
        out = {f"gateway_{k}": self.gateway[k] - start.gateway[k] for k in self.gateway}
        out.update({k: self.engines[k] - start.engines.get(k, 0.0) for k in self.engines})
        out["wall"] = self.at - start.at
        return out


class RssPeaks(threading.Thread):
    """Samples resident memory of some processes (with their children) every 100 ms; keeps each peak."""

    def __init__(self, pids: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.peaks: dict[str, float] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            for name, pid in self.pids.items():
                rss = sum(rss_mb(p) for p in descendants(pid))
                self.peaks[name] = max(self.peaks.get(name, 0.0), rss)
            self._halt.wait(0.1)

    def stop(self) -> dict[str, float]:
        self._halt.set()
        self.join(2)
        return {k: round(v, 1) for k, v in self.peaks.items()}
