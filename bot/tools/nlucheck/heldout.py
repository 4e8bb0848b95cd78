"""Held-out accuracy: the trained model on caller utterances it never saw, clean and with recogniser noise.

Every file in ``nlu-data/test/`` (:func:`heldout_files`: ``heldout.yml``, ``heldout2.yml``, ...) is a
held-out set, written apart from the training data and never trained on (the folder is outside ``nlu/`` and
``stories/``, the folders :mod:`bot.tools.train` passes to Rasa). :func:`score` parses each utterance and
counts intent accuracy, recall per intent and parse times; the parser is any function from text to
``(intent, confidence)``, so the arithmetic is tested without Rasa. :func:`rasa_parser` is the real one: the
trained model (``models/attendant.tar.gz``) loaded in-process with Rasa's ``Agent``, each text parsed as the
Rasa server would, ``nlu_fallback`` counting as a miss. :func:`evaluate` scores each set and all of them
together (:class:`Scores`), every utterance parsed once per variant.

The checker (:mod:`bot.tools.nlucheck.__main__`) runs this module as a process of its own, as it runs the
cross-validation, so that Rasa and TensorFlow are never imported into it:

    python -m bot.tools.nlucheck.heldout MODEL HELDOUT_YML [HELDOUT_YML ...] OUT_JSON [--seed N]

writes the scores (clean, and noisy from :mod:`actions.shared.asrnoise` with the seed) as JSON: ``clean``
and ``noisy`` over all the files, and ``files``, the same per file name.
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

from actions.shared.asrnoise import DEFAULT_SEED, noisy
from actions.shared.paths import REPO_ROOT
from bot.tools import train

HELDOUT_DIR = Path("test")
"""Where the held-out sets live, inside the editors' folder: every ``*.yml`` file there is one."""
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
    """How one variant (clean or noisy) of a held-out set, or of all of them, was understood."""

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


@dataclass(frozen=True, slots=True)
class Scores:
    """The held-out sets' scores: clean and noisy over all of them, and the same per file name."""

    clean: Score
    noisy: Score
    files: dict[str, tuple[Score, Score]]

    def to_json(self) -> dict[str, Any]:
        files = {name: {"clean": c.to_json(), "noisy": n.to_json()} for name, (c, n) in self.files.items()}
        return {"clean": self.clean.to_json(), "noisy": self.noisy.to_json(), "files": files}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Scores:
        return cls(
            clean=Score.from_json(raw["clean"]),
            noisy=Score.from_json(raw["noisy"]),
            files={
                str(name): (Score.from_json(v["clean"]), Score.from_json(v["noisy"]))
                for name, v in raw["files"].items()
            },
        )


def heldout_files(data: Path) -> list[Path]:
    """The held-out sets of the editors' folder ``data``, by name (none when it has no test folder)."""
    return sorted((data / HELDOUT_DIR).glob("*.yml"))


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


@dataclass(frozen=True, slots=True)
class Parsed:
    """One case as the parser understood it, and how long the parse took."""

    case: Case
    predicted: str
    confidence: float
    ms: float


def parse_all(cases: Sequence[Case], parse: Parser) -> list[Parsed]:
    """Parse every case, timing each parse."""
    parsed = []
    for case in cases:
        started = time.perf_counter()
        predicted, confidence = parse(case.text)
        parsed.append(Parsed(case, predicted, confidence, (time.perf_counter() - started) * 1000))
    return parsed


def score(cases: Sequence[Case], parse: Parser, variant: str = "clean") -> Score:
    """Parse every case, timing each parse; accuracy over all cases, recall per true intent."""
    return summarise(parse_all(cases, parse), variant)


def summarise(parsed: Sequence[Parsed], variant: str) -> Score:
    """The score of cases already parsed: accuracy over all of them, recall per true intent, parse times."""
    hits: Counter[str] = Counter()
    support: Counter[str] = Counter()
    misses = []
    for p in parsed:
        support[p.case.intent] += 1
        if p.predicted == p.case.intent:
            hits[p.case.intent] += 1
        else:
            misses.append(Miss(p.case.text, p.case.intent, p.predicted, round(p.confidence, 3)))
    times = [p.ms for p in parsed]
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


def evaluate(parse: Parser, sets: Mapping[str, Sequence[Case]], seed: int = DEFAULT_SEED) -> Scores:
    """Clean and noisy scores of each set (by name) and of all of them, each case parsed once per variant."""
    variants = ("clean", f"noisy (seed {seed})")
    files: dict[str, tuple[Score, Score]] = {}
    together: tuple[list[Parsed], list[Parsed]] = ([], [])
    for name, cases in sets.items():
        clean = parse_all(cases, parse)
        noisy_parsed = parse_all(noisy_cases(cases, seed), parse)
        files[name] = (summarise(clean, variants[0]), summarise(noisy_parsed, variants[1]))
        together[0].extend(clean)
        together[1].extend(noisy_parsed)
    return Scores(summarise(together[0], variants[0]), summarise(together[1], variants[1]), files)


# --- run apart from the checker ------------------------------------------------------------------------


class HeldoutFailed(Exception):
    """The held-out run did not write its scores; the message ends with its log's tail."""


def run_apart(model: Path, heldout: Sequence[Path], seed: int, log: Path) -> Scores:
    """Run this module in a process of its own on the ``heldout`` files (Rasa's output going to ``log``) and
    read its scores back."""
    out = log.with_name("heldout.json")
    out.unlink(missing_ok=True)
    env = train.rasa_env()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, "-m", __name__, str(model), *map(str, heldout), str(out), "--seed", str(seed)]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w", encoding="utf-8") as sink:
        done = subprocess.run(cmd, env=env, stdout=sink, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0 or not out.is_file():
        tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-30:])
        raise HeldoutFailed(f"the held-out run exited {done.returncode}; its log ends:\n{tail}")
    return Scores.from_json(json.loads(out.read_text(encoding="utf-8")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}", description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("heldout", type=Path, nargs="+", help="held-out files (Rasa NLU YAML)")
    parser.add_argument("out", type=Path, help="JSON file for the clean and noisy scores")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the recogniser noise")
    args = parser.parse_args(argv)
    names = [path.name for path in args.heldout]
    if len(set(names)) < len(names):
        parser.error(f"two held-out files with the same name: {' '.join(map(str, args.heldout))}")
    sets = {path.name: read_heldout(path) for path in args.heldout}
    scores = evaluate(rasa_parser(args.model), sets, args.seed)
    payload = {"model": str(args.model), **scores.to_json()}
    args.out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    for name, variants in (("all", (scores.clean, scores.noisy)), *scores.files.items()):
        for s in variants:
            print(f"{name} {s.variant}: accuracy {s.accuracy:.3f}, parse p50 {s.p50_ms} ms p95 {s.p95_ms} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
