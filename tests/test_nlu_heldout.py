"""The held-out measure (issue 12): the recogniser-noise generator, the scoring arithmetic on a fake parser,
the held-out files (every ``nlu-data/test/*.yml``) kept apart from training, and one real run of the checker
on the trained model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from actions.shared.asrnoise import HOMOPHONES, noisy, noisy_all, number_words, plain
from bot.tools.nlucheck.data import normalise
from bot.tools.nlucheck.heldout import (
    Case,
    Miss,
    Score,
    Scores,
    evaluate,
    heldout_files,
    percentile,
    read_heldout,
    score,
)
from bot.tools.nlucheck.report import heldout_html
from tests.conftest import MODEL

REPO = Path(__file__).resolve().parent.parent
HELDOUT = heldout_files(REPO / "nlu-data")
SETS = {path.name: read_heldout(path) for path in HELDOUT}
CASES = [case for cases in SETS.values() for case in cases]
TEXTS = [c.text for c in CASES]


# --- the noise generator ------------------------------------------------------------------------------------


def test_noise_is_deterministic() -> None:
    assert noisy_all(TEXTS, seed=5) == noisy_all(TEXTS, seed=5)
    assert noisy_all(TEXTS, seed=5) != noisy_all(TEXTS, seed=6)
    # Each text is seeded on its own: the result does not depend on what came before it.
    assert noisy_all(TEXTS[10:20], seed=5) == noisy_all(TEXTS, seed=5)[10:20]


def test_noise_changes_every_text_and_in_every_way() -> None:
    noisy_texts = noisy_all(TEXTS)
    assert all(n != t for n, t in zip(noisy_texts, TEXTS, strict=True))
    words = [set(t.split()) for t in TEXTS]
    noisy_words = [set(n.split()) for n in noisy_texts]
    swapped = sum(
        1
        for clean, noise in zip(words, noisy_words, strict=True)
        if any(alt in noise - clean for w in clean & HOMOPHONES.keys() for alt in HOMOPHONES[w])
    )
    dropped = sum(1 for t, n in zip(TEXTS, noisy_texts, strict=True) if len(n.split()) < len(t.split()))
    fillers = sum(1 for n in noisy_texts if {"um", "uh", "er", "erm"} & set(n.split()))
    assert swapped > 30 and dropped > 30 and fillers > 50, (swapped, dropped, fillers)
    # Not so much that the text is gone: most words survive.
    kept = sum(len(c & n) for c, n in zip(words, noisy_words, strict=True)) / sum(len(c) for c in words)
    assert 0.75 < kept < 0.98, kept


def test_noise_speaks_numbers_and_drops_punctuation() -> None:
    assert plain("I'd like 2 boxes, order 12345, by 2024!") == (
        "id like two boxes order one two three four five by twenty twenty four"
    )
    assert number_words("42") == "forty two" and number_words("07") == "zero seven"
    assert number_words("305") == "three hundred and five" and number_words("1900") == "nineteen hundred"
    assert noisy("Don't   know, 4 U?", seed=1).replace("four", "for").count("for") == 1
    assert "'" not in noisy("what's up", seed=1) and "," not in noisy("yes, please", seed=1)


def test_digit_strings_keep_their_digits() -> None:
    digits = "eight two four two two one"
    for seed in range(30):
        spoken = [w for w in noisy(digits, seed).split() if w not in {"um", "uh", "er", "erm", "like", "so"}]
        assert not {"to", "too", "for", "ate"} & set(spoken), spoken


# --- the arithmetic, on a fake parser --------------------------------------------------------------------


def test_score_counts_accuracy_recall_and_misses() -> None:
    cases = [
        Case("hi", "greet"),
        Case("hello", "greet"),
        Case("hey", "greet"),
        Case("bye", "goodbye"),
        Case("see ya", "goodbye"),
        Case("my box is broken", "report_problem"),
    ]
    answers = {"hey": ("goodbye", 0.7), "see ya": ("nlu_fallback", 0.4)}

    def fake(text: str) -> tuple[str, float]:
        return answers.get(text, (next(c.intent for c in cases if c.text == text), 0.9))

    s = score(cases, fake, "clean")
    assert s.accuracy == pytest.approx(4 / 6)
    assert s.recall == {"goodbye": 0.5, "greet": pytest.approx(2 / 3), "report_problem": 1.0}
    assert s.support == {"greet": 3, "goodbye": 2, "report_problem": 1}
    assert s.misses == [Miss("hey", "greet", "goodbye", 0.7), Miss("see ya", "goodbye", "nlu_fallback", 0.4)]
    assert s.weakest(2) == [("goodbye", 0.5), ("greet", pytest.approx(2 / 3))]
    assert s.confusions() == [("goodbye", "nlu_fallback", 1), ("greet", "goodbye", 1)]
    assert 0 <= s.p50_ms <= s.p95_ms
    assert Score.from_json(json.loads(json.dumps(s.to_json()))) == s
    page = heldout_html(Scores(s, score(cases, lambda t: ("greet", 1.0), "noisy (seed 1)"), {}))
    assert "<td>clean</td><td>0.667</td>" in page and "<td>noisy (seed 1)</td><td>0.500</td>" in page
    assert "“see ya”" in page and page.index("<td>goodbye</td>") < page.index("<td>greet</td>")


def test_each_set_is_scored_and_all_of_them_together() -> None:
    """Two sets: each parsed once per variant, scored alone and together; the JSON round trip keeps all."""
    sets = {
        "a.yml": [Case("hi", "greet"), Case("hey", "greet"), Case("bye", "goodbye")],
        "b.yml": [Case("hello", "greet"), Case("my box is broken", "report_problem")],
    }
    parsed: list[str] = []

    def fake(text: str) -> tuple[str, float]:
        parsed.append(text)
        return ("greet", 0.9) if {"hi", "hello", "bye"} & set(text.split()) else ("out_of_scope", 0.5)

    s = evaluate(fake, sets, seed=3)
    assert len(parsed) == 2 * 5
    assert list(s.files) == ["a.yml", "b.yml"]
    assert s.files["a.yml"][0].accuracy == pytest.approx(1 / 3) and s.files["b.yml"][0].accuracy == 0.5
    assert s.clean.accuracy == pytest.approx(2 / 5)
    assert s.clean.support == {"greet": 3, "goodbye": 1, "report_problem": 1}
    assert s.noisy.variant == "noisy (seed 3)" and sum(s.noisy.support.values()) == 5
    assert Scores.from_json(json.loads(json.dumps(s.to_json()))) == s
    page = heldout_html(s)
    assert "<td>a.yml</td><td>clean</td><td>0.333</td>" in page
    assert "<td>all</td><td>clean</td><td>0.400</td>" in page
    assert "<th>recall clean b.yml</th>" in page


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 95) == 95.0
    assert percentile([3.0], 95) == 3.0 and percentile([], 50) == 0.0


# --- the held-out files themselves ------------------------------------------------------------------------


def test_heldout_sets_cover_every_intent_and_are_never_trained_on() -> None:
    domain = yaml.safe_load((REPO / "nlu-data" / "domain.yml").read_text())
    assert [path.name for path in HELDOUT][:2] == ["heldout.yml", "heldout2.yml"]
    for name, cases in SETS.items():
        assert len(cases) >= 300, name
        # Every intent had its utterances when a set was written; an intent added later should get some too.
        intents = {c.intent for c in cases}
        assert intents <= set(domain["intents"]) and len(intents) >= 21, name
    # A phrase in two sets would be counted twice in the figure over all of them.
    seen: dict[str, str] = {}
    twice = []
    for name, cases in SETS.items():
        for c in cases:
            if seen.setdefault(normalise(c.text), name) != name:
                twice.append(c.text)
    assert not twice, f"utterances in two held-out sets: {twice}"
    trained = set()
    for path in (REPO / "nlu-data" / "nlu").glob("*.yml"):
        for block in yaml.safe_load(path.read_text()).get("nlu") or []:
            for line in str(block.get("examples") or "").splitlines():
                trained.add(normalise(line.strip().removeprefix("-")))
    copied = sorted(c.text for c in CASES if normalise(c.text) in trained)
    assert not copied, f"held-out utterances in the training data: {copied}"


# --- the real model -------------------------------------------------------------------------------------


def test_checker_scores_the_heldout_set_with_the_trained_model(tmp_path: Path) -> None:
    """``--heldout-only``: validation, then the real model loaded in-process (in the checker's child) on the
    clean and the noisy held-out text."""
    if not MODEL.exists():
        pytest.fail("no trained model: run the tests with 'make test' (it trains first)")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot.tools.nlucheck",
            "--heldout-only",
            "--model",
            str(MODEL),
            "--out",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Held-out accuracy: clean " in done.stdout and "Parse time: p50 " in done.stdout, done.stdout
    scores = Scores.from_json(json.loads((tmp_path / "heldout.json").read_text()))
    clean, noisy_score = scores.clean, scores.noisy
    assert sum(clean.support.values()) == len(CASES) == sum(noisy_score.support.values())
    assert {name: sum(c.support.values()) for name, (c, _) in scores.files.items()} == {
        name: len(cases) for name, cases in SETS.items()
    }
    assert all(f"  {name}: clean " in done.stdout for name in SETS), done.stdout
    # Sane, not the targets (heldout.TARGET_*); main's data before issue 12 scored 0.766 clean, 0.725 noisy.
    # With heldout2.yml: 0.893 clean, 0.841 noisy over both sets; the lowest recall, 0.615 clean, is
    # inform_new_customer's, 13 utterances only in heldout2.yml, so one miss moves it by 0.08.
    assert clean.accuracy > 0.85, clean.weakest(5)
    assert 0.78 < noisy_score.accuracy <= clean.accuracy + 0.02, noisy_score.weakest(5)
    assert min(clean.recall.values()) > 0.5, clean.weakest(3)
    assert 0 < clean.p50_ms <= clean.p95_ms < 200
