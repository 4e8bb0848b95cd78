"""Held-out accuracy: the trained model on caller utterances it never saw, clean and with recogniser noise.

``nlu-data/test/heldout.yml`` is written apart from the training data and never trained on (it is outside
``nlu/`` and ``stories/``, the folders :mod:`bot.tools.train` passes to Rasa). :func:`score` parses each
utterance and counts intent accuracy, recall per intent and parse times; the parser is any function from
text to ``(intent, confidence)``, so the arithmetic is tested without Rasa. :func:`rasa_parser` is the real
one: the trained model (``models/attendant.tar.gz``) loaded in-process with Rasa's ``Agent``, each text
parsed as the Rasa server would, ``nlu_fallback`` counting as a miss.

The checker (:mod:`bot.tools.nlucheck.__main__`) runs this module as a process of its own, as it runs the
cross-validation, so that Rasa and TensorFlow are never imported into it:

    python -m bot.tools.nlucheck.heldout MODEL HELDOUT_YML OUT_JSON [--seed N]

writes both scores (clean, and noisy from :mod:`.noise` with the seed) as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from actions.shared.paths import REPO_ROOT
from bot.tools import train
from bot.tools.nlucheck.noise import DEFAULT_SEED, noisy

HELDOUT_FILE = Path("test") / "heldout.yml"
"""Where the held-out set lives, inside the editors' folder."""
TARGET_CLEAN = 0.97
TARGET_NOISY = 0.93
TARGET_RECALL = 0.90
TARGET_P95_MS = 30.0
"""Issue 12's targets: held-out accuracy clean and noisy, every intent's recall, parse time p95."""

Parser = Callable[[str], tuple[str, float]]
"""Text to ``(predicted intent, confidence)``."""


@dataclass(frozen=True, slots=True)
class Case:
    text: str
    intent: str


@dataclass(frozen=True, slots=True)
class Miss:
    text: str
    intent: str
    predicted: str
    confidence: float


@dataclass(frozen=True, slots=True)
class Score:
    """How one variant of the held-out set (clean or noisy) was understood."""

    variant: str
    accuracy: float
    hits: dict[str, int]
    support: dict[str, int]
    misses: list[Miss]
    p50_ms: float
    p95_ms: float

    @property
    def recall(self) -> dict[str, float]:
        return {i: self.hits.get(i, 0) / n for i, n in sorted(self.support.items()) if n}

    def weakest(self, n: int = 3) -> list[tuple[str, float]]:
        """The ``n`` intents with the lowest recall, lowest first (ties by name)."""
        return sorted(self.recall.items(), key=lambda kv: (kv[1], kv[0]))[:n]

    def confusions(self) -> list[tuple[str, str, int]]:
        """``(true, predicted, count)`` of the misses, most frequent first."""
        pairs = Counter((m.intent, m.predicted) for m in self.misses)
        return sorted(((t, p, n) for (t, p), n in pairs.items()), key=lambda x: (-x[2], x[0], x[1]))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Score:
        return cls(
            variant=str(raw["variant"]),
            accuracy=float(raw["accuracy"]),
            hits={str(k): int(v) for k, v in raw["hits"].items()},
            support={str(k): int(v) for k, v in raw["support"].items()},
            misses=[Miss(**m) for m in raw["misses"]],
            p50_ms=float(raw["p50_ms"]),
            p95_ms=float(raw["p95_ms"]),
        )


def read_heldout(path: Path) -> list[Case]:
    """The utterances of a held-out file in Rasa's NLU format (plain text, no entity annotations)."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    cases = []
    for block in doc.get("nlu") or []:
        for line in str(block.get("examples") or "").splitlines():
            text = line.strip().removeprefix("-").strip()
            if text:
                cases.append(Case(text, str(block["intent"])))
    return cases


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def score(cases: Sequence[Case], parse: Parser, variant: str = "clean") -> Score:
    """Parse every case, timing each parse; accuracy over all cases, recall per true intent."""
    hits: Counter[str] = Counter()
    support: Counter[str] = Counter()
    misses = []
    times = []
    for case in cases:
        started = time.perf_counter()
        predicted, confidence = parse(case.text)
        times.append((time.perf_counter() - started) * 1000)
        support[case.intent] += 1
        if predicted == case.intent:
            hits[case.intent] += 1
        else:
            misses.append(Miss(case.text, case.intent, predicted, round(confidence, 3)))
    total = sum(support.values())
    return Score(
        variant=variant,
        accuracy=sum(hits.values()) / total if total else 0.0,
        hits=dict(hits),
        support=dict(support),
        misses=misses,
        p50_ms=round(percentile(times, 50), 2),
        p95_ms=round(percentile(times, 95), 2),
    )


def noisy_cases(cases: Sequence[Case], seed: int = DEFAULT_SEED) -> list[Case]:
    return [Case(noisy(c.text, seed), c.intent) for c in cases]


def rasa_parser(model: Path) -> Parser:
    """The trained model, loaded in this process with Rasa's ``Agent``; parse as the Rasa server does."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from rasa.core.agent import Agent
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(logging.WARNING)  # a debug line per parse would be timed with it

    agent = Agent.load(str(model))
    loop = asyncio.new_event_loop()

    def parse(text: str) -> tuple[str, float]:
        result = loop.run_until_complete(agent.parse_message(text))
        intent = result.get("intent") or {}
        return str(intent.get("name") or ""), float(intent.get("confidence") or 0.0)

    parse("hello")  # the first parse builds TensorFlow's graph: not a caller's wait
    return parse


def evaluate(parse: Parser, cases: Sequence[Case], seed: int = DEFAULT_SEED) -> tuple[Score, Score]:
    """Clean and noisy scores of the same cases."""
    return score(cases, parse, "clean"), score(noisy_cases(cases, seed), parse, f"noisy (seed {seed})")


# --- run apart from the checker ------------------------------------------------------------------------


class HeldoutFailed(Exception):
    """The held-out run did not write its scores; the message ends with its log's tail."""


def run_apart(model: Path, heldout: Path, seed: int, log: Path) -> tuple[Score, Score]:
    """Run this module in a process of its own (Rasa's output going to ``log``) and read its scores back."""
    out = log.with_name("heldout.json")
    out.unlink(missing_ok=True)
    env = train.rasa_env()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, "-m", __name__, str(model), str(heldout), str(out), "--seed", str(seed)]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w", encoding="utf-8") as sink:
        done = subprocess.run(cmd, env=env, stdout=sink, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0 or not out.is_file():
        tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-30:])
        raise HeldoutFailed(f"the held-out run exited {done.returncode}; its log ends:\n{tail}")
    raw = json.loads(out.read_text(encoding="utf-8"))
    return Score.from_json(raw["clean"]), Score.from_json(raw["noisy"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}", description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("heldout", type=Path)
    parser.add_argument("out", type=Path, help="JSON file for the clean and noisy scores")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the recogniser noise")
    args = parser.parse_args(argv)
    clean, noisy_score = evaluate(rasa_parser(args.model), read_heldout(args.heldout), args.seed)
    payload = {"model": str(args.model), "clean": clean.to_json(), "noisy": noisy_score.to_json()}
    args.out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    for s in (clean, noisy_score):
        print(f"{s.variant}: accuracy {s.accuracy:.3f}, parse p50 {s.p50_ms} ms p95 {s.p95_ms} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
