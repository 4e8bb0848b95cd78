"""What one load level of the turn-taking benchmark measured, from the simulator's results and the gateway's
log.

Times are seconds since each call's connect (the simulator's clock); gateway log lines are put on the same
clock by their wall time and the call's wall-clock start (same machine, millisecond log stamps).

- **turn gap**: end of caller speech (last voiced frame sent) to the first voiced bot frame of the reply, for
  spoken turns that did not talk over the bot and were not cut early (those count as false cuts); when the
  caller first heard the holding phrase (the words or the reply were late), the gap runs on to the reply
  (from the gateway's decision and first-audio marks) and the turn counts in ``first_audio_not_the_reply``;
- **processing**: the gateway's own part of the gap, from its end-of-turn decision to the first bot audio
  (``first_audio`` of its ``turn latency ms`` line); the rest is the silence it waited;
- **false cut**: a line with a spliced mid-sentence pause whose turn the gateway ended between the pause's
  start and the end of the speech (its end-of-turn decision, logged with the reply, falls there; a cut whose
  reply never played shows only as an extra turn: ``extra_turns_heard``, the gateway's turn count per call
  beyond the turns played);
- **barge-in**: a caller line started over the bot (greeting or reply); *stopped* when the bot's voice ended
  within 200 ms of the caller's first voiced frame and the gateway confirmed the barge-in; *missed*
  otherwise. A **false barge-in** is one the gateway logged while the caller was not speaking (the echo of
  its own voice);
- **late frames**: bot frames received more than 40 ms after the previous one.
"""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.run import pct as percentile
from bench.utterances import Line
from telephony.sim import CallResult
from telephony.sim.segment import Utterance

STOP_WITHIN_S = 0.2
CALLER_TAIL_S = 3.0
"""After the caller's last voiced frame, a barge-in still counts as caused by the caller for this long: it is
logged when confirmed, by words from the recogniser, which lag under load (and a false cut's second half
starts over the bot's reply to its first)."""

_STAMP = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ [\w.]+: call ([0-9a-f-]{36}): "
TURN_RE = re.compile(_STAMP + r"turn latency ms (\{.*\})$", re.M)
BARGE_RE = re.compile(_STAMP + r"barge-in, (\d+) ms", re.M)
END_RE = re.compile(r"call ([0-9a-f-]{36}) ended: .*?turns=(\d+) barge_ins=(\d+) gated=(\d+)", re.M)


@dataclass
class CallLog:
    """What the gateway logged about one call (wall times)."""

    turns: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    barge_ins: list[float] = field(default_factory=list)
    gated: int = 0
    heard_turns: int | None = None
    """Caller turns the gateway took in the whole call."""


def _wall(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def parse_log(text: str) -> dict[str, CallLog]:
    calls: dict[str, CallLog] = {}
    for m in TURN_RE.finditer(text):
        calls.setdefault(m.group(2), CallLog()).turns.append((_wall(m.group(1)), json.loads(m.group(3))))
    for m in BARGE_RE.finditer(text):
        calls.setdefault(m.group(2), CallLog()).barge_ins.append(_wall(m.group(1)))
    for m in END_RE.finditer(text):
        call = calls.setdefault(m.group(1), CallLog())
        call.heard_turns, call.gated = int(m.group(2)), int(m.group(4))
    return calls


def pct(values: list[float], q: float) -> float | None:
    """:func:`bench.run.pct`, ``None`` for no values."""
    return percentile(values, q) if values else None


def ms(v: float | None) -> int | None:
    return None if v is None else round(v * 1000)


@dataclass
class Tally:
    gaps: list[float] = field(default_factory=list)
    processing: list[float] = field(default_factory=list)
    asr: list[float] = field(default_factory=list)
    """End-of-turn decision to the final transcript (the recogniser catching up and finishing)."""
    rasa: list[float] = field(default_factory=list)
    """Decision to the assistant's reply (includes ``asr``)."""
    false_barge_at: list[dict[str, Any]] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    """Every spoken turn, for a closer look."""
    silences: list[float] = field(default_factory=list)
    shares: list[float] = field(default_factory=list)
    rules: Counter[str] = field(default_factory=Counter)
    spoken: int = 0
    unanswered: int = 0
    paused: int = 0
    false_cuts: int = 0
    cut_lines: Counter[str] = field(default_factory=Counter)
    early_replies: int = 0
    extra_turns: int = 0
    """Caller turns the gateway took beyond those played: a sentence cut in two, or echo taken for a turn."""
    other_first: int = 0
    """Turns whose first bot audio was not the reply (the holding phrase while the words or the reply were
    late); their gap runs to the reply."""
    barge_turns: int = 0
    barge_stopped: int = 0
    barge_missed: int = 0
    barge_na: int = 0
    stop_latencies: list[float] = field(default_factory=list)
    false_barge_ins: int = 0
    false_barge_echo: int = 0
    echo_calls: int = 0
    gated: int = 0
    frames: int = 0
    late: int = 0
    max_gap: float = 0.0
    call_s: float = 0.0
    calls: int = 0
    ended_early: int = 0
    speech_end_error: float = 0.0


def tally_call(
    t: Tally, result: CallResult, lines: list[Line | None], echo: bool, log: CallLog | None
) -> None:
    """Add one call to ``t``; ``lines[i]`` is the line played in turn ``i`` (``None`` for text turns)."""
    t.calls += 1
    t.call_s += result.duration_s
    t.frames += result.frames_received
    t.late += result.late_frames
    t.max_gap = max(t.max_gap, result.max_frame_gap_s)
    if result.ended_by != "we hung up":
        t.ended_early += 1
    w0 = result.wall_start
    log = log or CallLog()
    decisions = sorted((wall - (rec.get("first_audio") or 0) / 1000 - w0, rec) for wall, rec in log.turns)
    barges = [wall - w0 for wall in log.barge_ins]
    if echo:
        t.echo_calls += 1
        t.gated += log.gated
    sent = sum(1 for tr in result.turns if not tr.skipped and tr.ended is not None)
    if log.heard_turns is not None and log.heard_turns > sent:
        t.extra_turns += log.heard_turns - sent
    speaking: list[tuple[float, float]] = []
    for tr, line in zip(result.turns, lines, strict=True):
        if tr.skipped or tr.started is None:
            continue
        if line is None:  # a typed turn: injected text stops the bot too (not an echo barge-in)
            speaking.append((tr.started - 0.05, tr.started + 1.0))
            continue
        t0 = tr.started - line.speech_start_s  # the file's first sample went out here
        end = t0 + line.speech_end_s
        speaking.append((tr.started, end + CALLER_TAIL_S))
        if tr.ended is not None:
            t.speech_end_error = max(t.speech_end_error, abs(tr.ended - end))
        t.spoken += 1
        cut = False
        if line.pause is not None:
            t.paused += 1
            p0 = t0 + line.pause[0]
            cut = any(p0 <= d < end - 0.02 for d, _ in decisions)
            t.false_cuts += cut
            if cut:
                t.cut_lines[f"{line.name} ({line.pause[1] - line.pause[0]:.1f} s pause)"] += 1
        elif any(tr.started < d < end - 0.02 for d, _ in decisions):
            t.early_replies += 1
            cut = True
        record: dict[str, Any] = {
            "call": str(result.call_id)[:8],
            "at_s": round(tr.started, 2),
            "line": line.name,
            "echo": echo,
            "barge": tr.turn.barge_s is not None,
            "cut": cut,
            "gap_ms": ms(tr.latency),
        }
        t.records.append(record)
        if tr.turn.barge_s is not None:
            _barge(t, result, tr.started, tr.ended or end, barges)
            continue
        if tr.latency is None:
            t.unanswered += 1
            continue
        if cut:
            continue  # its "gap" follows the bot's reply to half a sentence: counted as a false cut instead
        gap = tr.latency
        mine = [rec for d, rec in decisions if end - 0.05 <= d <= end + gap + 0.05]
        if mine:
            reply_after = ((mine[0].get("silence") or 0) + (mine[0].get("first_audio") or 0)) / 1000
            if reply_after > gap + 0.3:  # the caller heard something else first (the holding phrase)
                t.other_first += 1
                record.update(first_audio_was_not_the_reply=True, first_sound_ms=ms(gap))
                gap = reply_after  # what the caller waits for is the answer: the gap runs to it
                record["gap_ms"] = ms(gap)
        t.gaps.append(gap)
        if mine:
            rec = mine[0]
            record.update(
                rule=rec.get("end_rule"),
                silence_ms=rec.get("silence"),
                transcript_ms=rec.get("asr"),
                reply_ms=rec.get("rasa"),
                first_audio_ms=rec.get("first_audio"),
            )
            t.rules[str(rec.get("end_rule", "fixed"))] += 1
            if rec.get("first_audio") is not None:
                proc = rec["first_audio"] / 1000
                t.processing.append(proc)
                t.shares.append(min(1.0, proc / gap) if gap > 0 else 1.0)
            if rec.get("asr") is not None:
                t.asr.append(rec["asr"] / 1000)
            if rec.get("rasa") is not None:
                t.rasa.append(rec["rasa"] / 1000)
            if rec.get("silence") is not None:
                t.silences.append(rec["silence"] / 1000)
    for b in barges:
        if not any(a <= b <= z for a, z in speaking):
            t.false_barge_ins += 1
            t.false_barge_echo += echo
            spoke = [round(a, 2) for a, _ in speaking]
            t.false_barge_at.append(
                {"call": str(result.call_id), "t": round(b, 2), "echo": echo, "turns": spoke}
            )


def _barge(t: Tally, result: CallResult, started: float, ended: float, barges: list[float]) -> None:
    t.barge_turns += 1

    def last(u: Utterance) -> float:
        return u.last_at if u.last_at is not None else u.start + u.duration

    talking = [u for u in result.utterances if u.start <= started <= last(u) + 0.02]
    if not talking:
        t.barge_na += 1  # the bot had already finished: nothing to interrupt
        return
    stop = last(talking[0]) - started
    t.stop_latencies.append(max(0.0, stop))
    confirmed = any(started <= b <= ended + 1.0 for b in barges)
    if stop <= STOP_WITHIN_S and confirmed:
        t.barge_stopped += 1
    else:
        t.barge_missed += 1


def figures(t: Tally) -> dict[str, Any]:
    minutes = t.call_s / 60
    return {
        "calls": t.calls,
        "calls_ended_early": t.ended_early,
        "call_minutes": round(minutes, 2),
        "spoken_turns": t.spoken,
        "answered_turns_timed": len(t.gaps),
        "unanswered_turns": t.unanswered,
        "gap_ms_p50": ms(pct(t.gaps, 0.5)),
        "gap_ms_p95": ms(pct(t.gaps, 0.95)),
        "gap_ms_max": ms(max(t.gaps) if t.gaps else None),
        "processing_ms_p50": ms(pct(t.processing, 0.5)),
        "processing_ms_p95": ms(pct(t.processing, 0.95)),
        "silence_ms_p50": ms(pct(t.silences, 0.5)),
        "decision_to_transcript_ms_p50": ms(pct(t.asr, 0.5)),
        "decision_to_reply_ms_p50": ms(pct(t.rasa, 0.5)),
        "processing_share_p50": round(statistics.median(t.shares), 2) if t.shares else None,
        "end_rules": dict(t.rules),
        "paused_turns": t.paused,
        "false_cuts": t.false_cuts,
        "false_cut_pct": round(100 * t.false_cuts / t.paused, 1) if t.paused else None,
        "false_cuts_by_line": dict(t.cut_lines),
        "early_replies_unpaused": t.early_replies,
        "extra_turns_heard": t.extra_turns,
        "first_audio_not_the_reply": t.other_first,
        "barge_turns": t.barge_turns,
        "barge_stopped_within_200ms": t.barge_stopped,
        "barge_missed": t.barge_missed,
        "barge_bot_already_quiet": t.barge_na,
        "barge_stop_ms_p50": ms(pct(t.stop_latencies, 0.5)),
        "barge_stop_ms_max": ms(max(t.stop_latencies) if t.stop_latencies else None),
        "false_barge_ins": t.false_barge_ins,
        "false_barge_ins_in_echo_calls": t.false_barge_echo,
        "false_barge_ins_where": t.false_barge_at,
        "echo_calls": t.echo_calls,
        "echo_frames_gated": t.gated,
        "frames_received": t.frames,
        "late_frames": t.late,
        "late_frames_pct": round(100 * t.late / t.frames, 3) if t.frames else None,
        "max_frame_gap_ms": ms(t.max_gap),
        "speech_end_error_ms_max": ms(t.speech_end_error),
        "turns": t.records,
    }


def load_log(path: Path) -> dict[str, CallLog]:
    return parse_log(path.read_text(errors="replace"))
