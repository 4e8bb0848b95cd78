"""bot.tools.nlucheck: the editors' check. Our own checks on small trees written here (file and line, exit 1,
no traceback), the real project data through Rasa's validator too, and the HTML report writer."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.tools import train
from bot.tools.nlucheck.checks import MIN_EXAMPLES_MAIN, MIN_EXAMPLES_OTHER, code_folders, validate
from bot.tools.nlucheck.crossval import Confusion, confusion_from_rasa, intents_of
from bot.tools.nlucheck.data import Finding, normalise
from bot.tools.nlucheck.report import MATRIX_FILE, RunInfo, write_report
from tests.test_info import GOOD_ENTRY

REPO = Path(__file__).resolve().parent.parent

NAMES = (
    "anna ben carla dan eve frank gina hugo ida jon kim leo mia ned olga paul quinn rosa sam tina uma vic "
    "walt xena yuri zoe abe bea cy dot"
).split()

DOMAIN = """\
version: "3.1"
intents:
  - greet
  - goodbye
responses:
  utter_greet:
    - text: "Hello."
  utter_goodbye:
    - text: "Goodbye."
"""

RULES = """\
version: "3.1"
rules:
  - rule: greet back
    steps:
      - intent: greet
      - action: utter_greet
  - rule: say goodbye
    steps:
      - intent: goodbye
      - action: utter_goodbye
"""

ACTIONS = """\
def run(dispatcher):
    dispatcher.utter_message(response="utter_greet")
"""


def nlu_block(intent: str, examples: list[str]) -> str:
    return f"  - intent: {intent}\n    examples: |\n" + "".join(f"      - {e}\n" for e in examples)


def nlu_file(*blocks: str) -> str:
    return 'version: "3.1"\nnlu:\n' + "".join(blocks)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small valid project: ``nlu-data/`` with two main intents of 25 examples each, and ``actions/``."""
    root = tmp_path / "proj"
    data = root / "nlu-data"
    (data / "nlu").mkdir(parents=True)
    (data / "stories").mkdir()
    (root / "actions").mkdir()
    (data / "domain.yml").write_text(DOMAIN)
    (data / "stories" / "rules.yml").write_text(RULES)
    (data / "nlu" / "conversation.yml").write_text(
        nlu_file(
            nlu_block("greet", [f"hello {n}" for n in NAMES[:25]]),
            nlu_block("goodbye", [f"bye {n}" for n in NAMES[:25]]),
        )
    )
    (root / "actions" / "actions.py").write_text(ACTIONS)
    return root


def line_of(path: Path, text: str, nth: int = 1) -> int:
    """1-based number of the ``nth`` line of ``path`` containing ``text``."""
    hits = [i for i, line in enumerate(path.read_text().splitlines(), start=1) if text in line]
    return hits[nth - 1]


def at(path: Path, marker: str) -> str:
    """``path:line:`` of the first line containing ``marker``, as the messages start."""
    return f"{path}:{line_of(path, marker)}:"


def check(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.tools.nlucheck", "--data", str(root / "nlu-data"), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def own_findings(root: Path) -> list[Finding]:
    inputs = train.RasaInputs(REPO, data_root=root / "nlu-data")
    return validate(inputs, root / "actions", with_rasa=False)[1]


def assert_invalid(done: subprocess.CompletedProcess[str]) -> str:
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output, output
    return done.stderr


# --- our own checks -------------------------------------------------------------------------------------


def test_the_small_tree_is_valid(tree: Path) -> None:
    assert own_findings(tree) == []


def test_same_example_under_two_intents_names_both_places(tree: Path) -> None:
    nlu = tree / "nlu-data" / "nlu" / "conversation.yml"
    (tree / "nlu-data" / "nlu" / "more.yml").write_text(nlu_file(nlu_block("goodbye", ["Hello,   ANNA!"])))
    more = tree / "nlu-data" / "nlu" / "more.yml"
    err = assert_invalid(check(tree, "--no-cv"))
    where = at(more, "Hello,   ANNA!")
    first = f"{nlu}:{line_of(nlu, 'hello anna')}"
    assert where in err, err
    assert first in err and "'goodbye'" in err and "'greet'" in err, err


def test_duplicates_within_an_intent(tree: Path) -> None:
    nlu = tree / "nlu-data" / "nlu" / "conversation.yml"
    nlu.write_text(nlu.read_text().replace("      - hello ben\n", "      - hello ben\n      - Hello ben.\n"))
    err = assert_invalid(check(tree, "--no-cv"))
    assert at(nlu, "Hello ben.") + " duplicate example 'Hello ben.' in intent 'greet'" in err, err
    assert f"first at {nlu}:{line_of(nlu, 'hello ben')}" in err, err


def test_too_few_examples_main_and_other_intents(tree: Path) -> None:
    domain = tree / "nlu-data" / "domain.yml"
    domain.write_text(domain.read_text().replace("  - goodbye\n", "  - goodbye\n  - thank\n  - chitchat\n"))
    nlu = tree / "nlu-data" / "nlu" / "conversation.yml"
    nlu.write_text(
        nlu_file(
            nlu_block("greet", [f"hello {n}" for n in NAMES[:24]]),  # main: one short
            nlu_block("goodbye", [f"bye {n}" for n in NAMES[:25]]),
            nlu_block("thank", [f"thanks {n}" for n in NAMES[:9]]),  # not in a rule: needs 10
            nlu_block("chitchat", [f"nice weather {n}" for n in NAMES[:10]]),  # enough for a non-main intent
        )
    )
    err = assert_invalid(check(tree, "--no-cv"))
    assert at(nlu, "intent: greet") + " intent 'greet' has 24 distinct examples" in err, err
    assert f"at least {MIN_EXAMPLES_MAIN}" in err
    assert at(nlu, "intent: thank") + " intent 'thank' has 9 distinct examples" in err, err
    assert f"at least {MIN_EXAMPLES_OTHER}" in err
    assert "'chitchat'" not in err and "'goodbye'" not in err, err


def test_missing_and_unused_responses(tree: Path) -> None:
    rules = tree / "nlu-data" / "stories" / "rules.yml"
    rules.write_text(
        rules.read_text()
        + "  - rule: broken\n    steps:\n      - intent: greet\n      - action: utter_nope\n"
    )
    code = tree / "actions" / "actions.py"
    code.write_text(
        ACTIONS
        + '    dispatcher.utter_message(response="utter_gone")\n'
        + '    dispatcher.utter_message(response=f"utter_handoff_{reason}")\n'
    )
    domain = tree / "nlu-data" / "domain.yml"
    domain.write_text(domain.read_text() + '  utter_spare:\n    - text: "Never said."\n')
    err = assert_invalid(check(tree, "--no-cv"))
    assert at(rules, "utter_nope") + " response 'utter_nope' is used here" in err, err
    assert at(code, "utter_gone") + " response 'utter_gone'" in err, err
    assert at(code, "utter_handoff_") + " the code builds response names starting" in err, err
    assert at(domain, "utter_spare") + " warning: response 'utter_spare' is not used" in err, err


def test_unused_response_alone_is_only_a_warning(tree: Path) -> None:
    domain = tree / "nlu-data" / "domain.yml"
    domain.write_text(domain.read_text() + '  utter_spare:\n    - text: "Never said."\n  utter_ask_pin:\n')
    domain.write_text(
        domain.read_text() + '    - text: "Your PIN?"\nforms:\n  f:\n    required_slots:\n      - pin\n'
    )
    found = own_findings(tree)
    assert [(f.error, f.line) for f in found] == [(False, line_of(domain, "utter_spare"))], found


def test_unknown_intents_both_ways(tree: Path) -> None:
    domain = tree / "nlu-data" / "domain.yml"
    domain.write_text(domain.read_text().replace("  - goodbye\n", "  - goodbye\n  - ask_weather\n"))
    nlu = tree / "nlu-data" / "nlu" / "conversation.yml"
    nlu.write_text(nlu.read_text() + nlu_block("ask_time", [f"what time is it {n}" for n in NAMES[:12]]))
    rules = tree / "nlu-data" / "stories" / "rules.yml"
    rules.write_text(
        rules.read_text() + "  - rule: r\n    steps:\n      - intent: ask_date\n      - action: utter_greet\n"
    )
    err = assert_invalid(check(tree, "--no-cv"))
    assert at(domain, "ask_weather") + " intent 'ask_weather' is in the domain but has no" in err
    assert at(nlu, "what time is it anna") + " examples for intent 'ask_time', which the domain" in err
    assert at(rules, "ask_date") + " intent 'ask_date' is used here but the domain" in err, err


@pytest.mark.parametrize(
    ("name", "content", "marker", "expected"),
    [
        (
            "syntax.yml",
            "nlu:\n  - intent: greet\n    examples: |\n      - hi\n   - oops: [\n",
            "oops",
            "YAML error",
        ),
        ("tabs.yml", "nlu:\n  - intent: greet\n\texamples: |\n      - hi\n", "\texamples", "YAML error"),
        ("dupkey.yml", "nlu:\n  - intent: greet\n    intent: bye\n", "intent: bye", "YAML error"),
        ("shape.yml", "nlu:\n  intent: greet\n", "intent: greet", "'nlu:' should be a list"),
        ("nodash.yml", nlu_file(nlu_block("greet", ["hi"])) + "      hello there\n", "hello there", "'- '"),
        ("scalar.yml", "just some words\n", "just some words", "should be a set of 'key: value' lines"),
        ("steps.yml", "rules:\n  - rule: r\n    steps:\n      - greet\n", "- greet", "a step should be"),
    ],
)
def test_garbage_yaml_is_a_message_with_file_and_line(
    tree: Path, name: str, content: str, marker: str, expected: str
) -> None:
    bad = tree / "nlu-data" / "nlu" / name
    bad.write_text(content)
    err = assert_invalid(check(tree, "--no-cv"))
    assert f"{bad}:{line_of(bad, marker)}: " in err, err
    assert expected in err, err


def test_garbage_domain_and_bytes(tree: Path) -> None:
    domain = tree / "nlu-data" / "domain.yml"
    domain.write_text(DOMAIN.split("responses:")[0] + "responses:\n  - utter_greet\n  - utter_goodbye\n")
    nlu = tree / "nlu-data" / "nlu" / "latin1.yml"
    nlu.write_bytes(b'version: "3.1"\nnlu:\n  - intent: greet\n    examples: |\n      - caf\xe9\n')
    err = assert_invalid(check(tree, "--no-cv"))
    assert at(domain, "responses:") + " 'responses:' should be a set of 'key: value'" in err, err
    assert f"{nlu}:5: not UTF-8 text" in err, err


def test_invalid_data_stops_before_cross_validation(tree: Path, tmp_path: Path) -> None:
    (tree / "nlu-data" / "domain.yml").write_text("intents: [greet\n")
    out = tmp_path / "report"
    started = time.monotonic()
    err = assert_invalid(check(tree, "--out", str(out)))
    assert "no cross-validation" in err, err
    assert not out.exists()
    assert time.monotonic() - started < 30


def test_faq_is_checked_and_stops_before_cross_validation(tree: Path, tmp_path: Path) -> None:
    faq = tree / "nlu-data" / "faq.yml"
    faq.write_text(GOOD_ENTRY.format(id="delivery") + GOOD_ENTRY.format(id="returns"))
    assert own_findings(tree) == []
    faq.write_text(
        GOOD_ENTRY.format(id="delivery")
        + "- id: returns\n  questions:\n    - r1\n    - r2\n  answer: Within thirty days.\n"
    )
    out = tmp_path / "report"
    err = assert_invalid(check(tree, "--out", str(out)))
    assert f"{faq}:{line_of(faq, 'questions:', nth=2)}: 'returns' has 2 question(s)" in err, err
    assert "no cross-validation" in err and not out.exists(), err
    faq.write_text(GOOD_ENTRY.format(id="delivery") + "- id: returns\n  answer: Yes: no\n")
    err = assert_invalid(check(tree, "--no-cv"))
    assert at(faq, "Yes: no") + " not valid YAML" in err, err


def test_code_is_scanned_all_the_way_down_and_in_the_rasa_plugin(tree: Path) -> None:
    """Responses named in a sub-package of ``actions/`` and in ``bot/rasa/`` (the channel plugin) exist."""
    nested = tree / "actions" / "shared" / "deep" / "handoff.py"
    nested.parent.mkdir(parents=True)
    nested.write_text('LINE = "utter_handoff_line"\n')
    plugin = tree / "bot" / "rasa" / "channel.py"
    plugin.parent.mkdir(parents=True)
    plugin.write_text('def fallback(responses):\n    return responses.get("utter_technical_fallback")\n')
    err = assert_invalid(check(tree, "--no-cv"))
    assert at(nested, "utter_handoff_line") + " response 'utter_handoff_line' is used here" in err, err
    assert at(plugin, "utter_technical_fallback") + " response 'utter_technical_fallback'" in err, err
    domain = tree / "nlu-data" / "domain.yml"
    domain.write_text(
        domain.read_text()
        + '  utter_handoff_line:\n    - text: "A colleague."\n'
        + '  utter_technical_fallback:\n    - text: "Sorry."\n'
    )
    inputs = train.RasaInputs(REPO, data_root=tree / "nlu-data")
    assert validate(inputs, code_folders(inputs), with_rasa=False)[1] == []


PROMPTS = (
    """\
prompts:
  technical: "Something went wrong."
  handoff: "One moment."
  no_input: "Are you there?"
  no_input_goodbye: "Goodbye."
  too_long: "Time is up."
  keypad_menu: "Press 1."
  holding: "Hold on."
greeting:
  unknown: "Hello."
  new: "Welcome."
  returning: "Hello again."
  existing: "Hello, customer."
keypad:
  "1": greet
"""
    + (REPO / "nlu-data" / "prompts.yml").read_text().partition("\nwhisper:")[1].lstrip("\n")
    + ((REPO / "nlu-data" / "prompts.yml").read_text().partition("\nwhisper:")[2])
)
"""The gateway's phrases; the whisper's and the wait's words as the project ships them."""


def test_prompts_the_gateway_needs(tree: Path) -> None:
    prompts = tree / "nlu-data" / "prompts.yml"
    prompts.write_text(PROMPTS)
    assert own_findings(tree) == []
    prompts.write_text(PROMPTS.replace('  too_long: "Time is up."\n', "").replace('"Press 1."', '""'))
    err = assert_invalid(check(tree, "--no-cv"))
    assert f"{prompts}: prompts missing or empty: too_long, keypad_menu" in err, err
    prompts.write_text(PROMPTS.replace('"1": greet', '"1": ask_weather'))
    err = assert_invalid(check(tree, "--no-cv"))
    assert f"{prompts}: keypad key '1' starts intent 'ask_weather', which the domain does not" in err, err
    prompts.write_text(PROMPTS.replace('handoff: "One moment."', "handoff: [One moment"))
    err = assert_invalid(check(tree, "--no-cv"))
    assert at(prompts, "no_input:") + " not valid YAML" in err, err
    prompts.write_text(PROMPTS.replace('  returning: "Hello again."\n', ""))
    err = assert_invalid(check(tree, "--no-cv"))
    assert f"{prompts}: greeting.returning is missing or empty" in err, err


def test_normalise() -> None:
    assert normalise("  Um, WHAT'S my   balance?! ") == "um whats my balance"
    assert normalise("my pin is [one two](digits)") == "my pin is one two"
    assert normalise('it is [1234]{"entity": "digits"}') == "it is 1234"


# --- the real project data --------------------------------------------------------------------------------


def test_project_data_passes_validation() -> None:
    """Our checks and Rasa's validator on nlu-data/ as it is in the repository."""
    done = subprocess.run(
        [sys.executable, "-m", "bot.tools.nlucheck", "--no-cv"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Data valid:" in done.stdout


# --- the report -----------------------------------------------------------------------------------------

REPORT = {
    "greet": {
        "precision": 0.9,
        "recall": 0.9,
        "f1-score": 0.9,
        "support": 10,
        "confused_with": {"affirm": 1},
    },
    "affirm": {"precision": 0.875, "recall": 0.7, "f1-score": 0.778, "support": 10, "confused_with": {}},
    "deny": {"precision": 1.0, "recall": 1.0, "f1-score": 1.0, "support": 10, "confused_with": {}},
    "accuracy": 0.867,
    "macro avg": {"precision": 0.925, "recall": 0.867, "f1-score": 0.8927, "support": 30},
    "weighted avg": {"precision": 0.925, "recall": 0.867, "f1-score": 0.8927, "support": 30},
}
ERRORS = [
    {"text": "hi yes", "intent": "greet", "intent_prediction": {"name": "affirm", "confidence": 0.6}},
    {"text": "yeah hello", "intent": "affirm", "intent_prediction": {"name": "greet", "confidence": 0.7}},
    {"text": "sure", "intent": "affirm", "intent_prediction": {"name": "nlu_fallback", "confidence": 0.6}},
    {"text": "mhm", "intent": "affirm", "intent_prediction": {"name": "nlu_fallback", "confidence": 0.5}},
]


def test_confusion_matrix_from_rasa_report_and_errors() -> None:
    confusion = confusion_from_rasa(REPORT, ERRORS)
    assert confusion.rows == ("affirm", "deny", "greet")
    assert confusion.columns == ("affirm", "deny", "greet", "nlu_fallback")
    assert confusion.counts == ((7, 0, 1, 2), (0, 10, 0, 0), (1, 0, 9, 0))
    assert confusion.pairs()[0] == ("affirm", "nlu_fallback", 2)


def test_report_writer(tmp_path: Path) -> None:
    confusion = Confusion(
        rows=("affirm", "deny", "greet"),
        columns=("affirm", "deny", "greet", "nlu_fallback"),
        counts=((7, 0, 1, 2), (0, 10, 0, 0), (1, 0, 9, 0)),
    )
    findings = [Finding("nlu-data/domain.yml", 12, "response 'utter_x' is not used", error=False)]
    run = RunInfo(data="nlu-data", config="bot/rasa/config.yml", folds=5, seed=7, seconds=12.0, examples=30)
    path = write_report(tmp_path / "nlu", REPORT, confusion, findings, run, ERRORS)
    assert path == tmp_path / "nlu" / "index.html"
    page = path.read_text()
    assert "0.893" in page  # macro F1
    for intent in ("greet", "affirm", "deny"):
        assert f"<td>{intent}</td>" in page
    assert page.index("<td>affirm</td>") < page.index("<td>deny</td>"), "weakest first"
    assert "macro avg" in page and "weighted avg" in page
    assert "nlu_fallback" in page and "“sure”; “mhm”" in page  # the worst confusion, with its phrases
    assert "nlu-data/domain.yml:12: warning: response &#x27;utter_x&#x27; is not used" in page
    png = tmp_path / "nlu" / MATRIX_FILE
    assert f'src="{MATRIX_FILE}"' in page
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 1024


# --- one real cross-validation, kept small --------------------------------------------------------------

FAST_CONFIG = """\
recipe: default.v1
language: en
assistant_id: nlucheck-test
pipeline:
  - name: WhitespaceTokenizer
  - name: CountVectorsFeaturizer
    analyzer: char_wb
    min_ngram: 1
    max_ngram: 4
  - name: LogisticRegressionClassifier
policies: []
"""


def test_real_cross_validation_writes_the_report(tmp_path: Path) -> None:
    """Rasa's real ``test nlu --cross-validation`` (2 folds, 3 intents x 10 examples) end to end.

    A TensorFlow-free classifier keeps it to about 25 s (the project's config: about 30 s a fold).
    """
    data = tmp_path / "nlu-data"
    (data / "nlu").mkdir(parents=True)
    (data / "stories").mkdir()
    (data / "domain.yml").write_text('version: "3.1"\nintents:\n  - greet\n  - goodbye\n  - ask_balance\n')
    (data / "stories" / "rules.yml").write_text('version: "3.1"\nrules: []\n')
    (data / "nlu" / "nlu.yml").write_text(
        nlu_file(
            nlu_block("greet", [f"hello {n}" for n in NAMES[:10]]),
            nlu_block("goodbye", [f"bye bye {n}" for n in NAMES[:10]]),
            nlu_block("ask_balance", [f"what is the balance for {n}" for n in NAMES[:10]]),
        )
    )
    config = tmp_path / "config.yml"
    config.write_text(FAST_CONFIG)
    out = tmp_path / "report"
    done = check(tmp_path, "--folds", "2", "--config", str(config), "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Macro F1 " in done.stdout and f"Report: {out / 'index.html'}" in done.stdout, done.stdout
    report = json.loads((out / "intent_report.json").read_text())
    assert sorted(intents_of(report)) == ["ask_balance", "goodbye", "greet"]
    assert all(report[i]["support"] == 10 for i in intents_of(report))
    page = (out / "index.html").read_text()
    assert "<td>ask_balance</td>" in page and "macro avg" in page
    assert (out / MATRIX_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
