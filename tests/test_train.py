"""bot.tools.train: fingerprints, the fast up-to-date path, and refusing invalid data."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.tools import train

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the Rasa inputs laid out like the repository (plus a non-Rasa file in nlu-data/)."""
    root = tmp_path / "proj"
    shutil.copytree(REPO / "nlu-data" / "nlu", root / "nlu-data" / "nlu")
    shutil.copytree(REPO / "nlu-data" / "stories", root / "nlu-data" / "stories")
    shutil.copy(REPO / "nlu-data" / "domain.yml", root / "nlu-data" / "domain.yml")
    (root / "bot" / "rasa").mkdir(parents=True)
    shutil.copy(REPO / "bot" / "rasa" / "config.yml", root / "bot" / "rasa" / "config.yml")
    (root / "nlu-data" / "prompts.yml").write_text("not: [rasa, data\n")  # not Rasa's, and broken
    return root


def _run_train(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.tools.train", "--root", str(root), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_fingerprint_is_stable(project: Path) -> None:
    inputs = train.RasaInputs(project)
    assert train.fingerprint(inputs) == train.fingerprint(inputs)
    assert len(train.fingerprint(inputs)) == 64


def test_fingerprint_follows_content_config_and_rasa_version(project: Path) -> None:
    inputs = train.RasaInputs(project)
    base = train.fingerprint(inputs, version="3.6.21")
    assert train.fingerprint(inputs, version="3.6.22") != base

    nlu = project / "nlu-data" / "nlu" / "conversation.yml"
    original = nlu.read_text()
    nlu.write_text(original.replace("      - hello\n", "      - hello hello hello\n", 1))
    assert train.fingerprint(inputs, version="3.6.21") != base
    nlu.write_text(original)
    assert train.fingerprint(inputs, version="3.6.21") == base

    (project / "nlu-data" / "stories" / "more.yml").write_text('version: "3.1"\n')
    assert train.fingerprint(inputs, version="3.6.21") != base
    (project / "nlu-data" / "stories" / "more.yml").unlink()

    config = project / "bot" / "rasa" / "config.yml"
    text = config.read_text()
    changed = re.sub(r"noisy_copies: (\d+)", lambda m: f"noisy_copies: {int(m.group(1)) + 1}", text, count=1)
    assert changed != text
    config.write_text(changed)
    assert train.fingerprint(inputs, version="3.6.21") != base
    config.write_text(text)
    assert train.fingerprint(inputs, version="3.6.21") == base


def test_fingerprint_follows_the_classifiers_code(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The project's own pipeline code (the intent classifier, the noise it trains on) shapes the model."""
    assert {p.name for p in train.COMPONENTS} == {"linear_intent.py", "asrnoise.py"}
    assert all(p.is_file() for p in train.COMPONENTS)
    code = tmp_path / "linear_intent.py"
    code.write_text(train.COMPONENTS[0].read_text())
    monkeypatch.setattr(train, "COMPONENTS", (code,))
    inputs = train.RasaInputs(project)
    base = train.fingerprint(inputs, version="3.6.21")
    code.write_text(code.read_text().replace('"C": 1.0', '"C": 2.0'))
    assert train.fingerprint(inputs, version="3.6.21") != base


def test_files_outside_rasa_inputs_do_not_count(project: Path) -> None:
    inputs = train.RasaInputs(project)
    base = train.fingerprint(inputs)
    (project / "nlu-data" / "prompts.yml").write_text("something: else\n")
    (project / "nlu-data" / "report.html").write_text("<html></html>")
    heldout = project / "nlu-data" / "test"
    heldout.mkdir()
    (heldout / "heldout9.yml").write_text('version: "3.1"\nnlu: []\n')
    assert train.fingerprint(inputs) == base
    assert all("prompts.yml" not in str(p) for p in inputs.files())
    # The held-out sets are never trained on: neither an input nor a folder Rasa is given.
    assert not any(Path(p).is_relative_to(heldout) for p in [*inputs.files(), *inputs.rasa_args()])


def test_yaml_errors_name_file_and_line(project: Path) -> None:
    bad = project / "nlu-data" / "nlu" / "tasks.yml"
    lines = bad.read_text().splitlines()
    index = lines.index("  - intent: ask_balance")
    lines[index] = "  - intent: ask_balance: oops"  # a mapping value where none may be
    bad.write_text("\n".join(lines) + "\n")
    problems = train.yaml_errors(train.RasaInputs(project))
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"nlu-data/nlu/tasks.yml:{index + 1}:"), problems


def test_invalid_yaml_refuses_to_train(project: Path) -> None:
    domain = project / "nlu-data" / "domain.yml"
    domain.write_text(domain.read_text().replace("intents:\n", "intents:\n  - greet: [oops\n", 1))
    done = _run_train(project)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Refusing to train on invalid data" in done.stderr
    assert "nlu-data/domain.yml:" in done.stderr
    assert not (project / "models" / "attendant.tar.gz").exists()


def test_validator_failure_refuses_to_train(project: Path) -> None:
    """Well-formed YAML that Rasa's validator rejects: a story uses an action the domain lacks."""
    (project / "nlu-data" / "stories" / "broken.yml").write_text(
        'version: "3.1"\nstories:\n  - story: uses an unknown action\n    steps:\n'
        "      - intent: greet\n      - action: utter_no_such_response\n"
    )
    done = _run_train(project)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "rasa data validate found problems" in done.stderr
    assert "utter_no_such_response" in done.stderr
    assert not (project / "models" / "attendant.tar.gz").exists()


def test_up_to_date_is_fast_and_does_not_import_rasa(project: Path) -> None:
    models = project / "models"
    models.mkdir()
    (models / "attendant.tar.gz").write_bytes(b"model")
    fp = train.fingerprint(train.RasaInputs(project))
    (models / "fingerprint.json").write_text(json.dumps({"fingerprint": fp}))
    probe = (
        "import sys, time; t = time.monotonic(); from bot.tools import train; "
        f"code = train.main(['--root', {str(project)!r}]); "
        "print('ELAPSED', time.monotonic() - t); "
        "print('RASA_IMPORTED', any(m == 'rasa' or m.startswith('rasa.') for m in sys.modules)); "
        "sys.exit(code)"
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    wall = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert "model up to date" in done.stdout
    assert "RASA_IMPORTED False" in done.stdout
    elapsed = float(done.stdout.split("ELAPSED")[1].split()[0])
    assert elapsed < 0.5, elapsed
    assert wall < 5, wall


def test_changed_data_is_not_up_to_date(project: Path) -> None:
    models = project / "models"
    models.mkdir()
    (models / "attendant.tar.gz").write_bytes(b"model")
    inputs = train.RasaInputs(project)
    (models / "fingerprint.json").write_text(json.dumps({"fingerprint": train.fingerprint(inputs)}))
    assert train.is_up_to_date(inputs, models)
    domain = project / "nlu-data" / "domain.yml"
    domain.write_text(domain.read_text().replace("How can I help you today?", "How may I help?", 1))
    assert not train.is_up_to_date(inputs, models)
    (models / "attendant.tar.gz").unlink()
    (models / "fingerprint.json").write_text(json.dumps({"fingerprint": train.fingerprint(inputs)}))
    assert not train.is_up_to_date(inputs, models), "a fingerprint without a model is not up to date"


def test_rule_contradictions_are_reported_as_invalid_data() -> None:
    output = (
        "2026-01-01 INFO training\n\x1b[91mInvalidRule: \nContradicting rules or stories found\n"
        "- the prediction of the action 'utter_x' in story 's' is contradicting with rule(s) 'r'\n"
    )
    message = train._invalid_rules(output)
    assert message is not None and "utter_x" in message and "\x1b" not in message
    assert train._invalid_rules("all good\n") is None


def test_serious_validator_warnings() -> None:
    output = (
        "/x/io.py:100: UserWarning: The utterance 'utter_greet' is not used in any story or rule.\n"
        "/x/io.py:100: UserWarning: The action 'utter_nope' is used in the stories, but is not a valid "
        "utterance action. Please make sure the action is listed in your domain.\n"
    )
    found = train.serious_warnings(output)
    assert len(found) == 1 and found[0].startswith("The action 'utter_nope'")
