"""Train the Rasa model when, and only when, its inputs changed: ``python -m bot.tools.train [--force]``.

Inputs: ``nlu-data/domain.yml``, every file under ``nlu-data/nlu/`` and ``nlu-data/stories/``,
``bot/rasa/config.yml``, the code of the project's own pipeline component (``bot/rasa/linear_intent.py``,
the intent classifier, and ``actions/shared/asrnoise.py``, the noise it trains on), and the installed Rasa
version. Their SHA-256 fingerprint is kept in
``models/fingerprint.json`` next to ``models/attendant.tar.gz``; when both are there and the fingerprint
matches, this prints "model up to date" and exits at once, without importing Rasa.

Otherwise the data is checked first: YAML syntax (file and line, read as Rasa reads it by
:mod:`bot.tools.rasayaml`), then ``rasa data validate``. Invalid data
is never trained on. Other files in ``nlu-data/`` (``prompts.yml``, reports) are not Rasa's and are not
passed to it, nor are the held-out test sets in ``nlu-data/test/``: they are never trained on.

Exit status: 0 up to date or trained, 1 invalid data, 2 training failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from actions.shared.paths import REPO_ROOT
from bot.tools import rasayaml

MODEL_NAME = "attendant"
COMPONENTS = (
    REPO_ROOT / "bot" / "rasa" / "linear_intent.py",
    REPO_ROOT / "actions" / "shared" / "asrnoise.py",
)
"""The project's code that shapes the model (its intent classifier and the recogniser noise that classifier
trains on): a training input like the data."""
FINGERPRINT_FILE = "fingerprint.json"


@dataclass(frozen=True, slots=True)
class RasaInputs:
    """Where the training inputs are: ``ROOT/nlu-data`` and ``ROOT/bot/rasa/config.yml`` unless overridden."""

    root: Path
    data_root: Path | None = None
    """The editors' folder (``domain.yml``, ``nlu/``, ``stories/``); default ``ROOT/nlu-data``."""
    config_file: Path | None = None
    """The Rasa pipeline and policies; default ``ROOT/bot/rasa/config.yml``."""

    @property
    def data(self) -> Path:
        return self.data_root or self.root / "nlu-data"

    @property
    def domain(self) -> Path:
        return self.data / "domain.yml"

    @property
    def data_dirs(self) -> tuple[Path, Path]:
        return (self.data / "nlu", self.data / "stories")

    @property
    def config(self) -> Path:
        return self.config_file or self.root / "bot" / "rasa" / "config.yml"

    def display(self, path: Path) -> str:
        """``path`` as shown in messages: relative to the root when inside it, else as given."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def files(self) -> list[Path]:
        """Every input file, in a stable order (missing directories contribute nothing)."""
        found = [self.domain]
        for folder in self.data_dirs:
            if folder.is_dir():
                found += sorted(
                    p
                    for p in folder.rglob("*")
                    if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
                )
        found.append(self.config)
        found += COMPONENTS
        return found

    def rasa_args(self) -> list[str]:
        """The ``--domain/--data/--config`` arguments that point Rasa at exactly these inputs."""
        return [
            "--domain", str(self.domain),
            "--data", *(str(d) for d in self.data_dirs),
            "--config", str(self.config),
        ]  # fmt: skip


def rasa_version() -> str:
    """The installed Rasa version (read from package metadata: Rasa is not imported)."""
    try:
        return metadata.version("rasa")
    except metadata.PackageNotFoundError:
        return "not-installed"


def fingerprint(inputs: RasaInputs, version: str | None = None) -> str:
    """SHA-256 over the inputs' relative paths and contents, plus the Rasa version."""
    h = hashlib.sha256()
    h.update(f"rasa={version or rasa_version()}\0".encode())
    for path in inputs.files():
        rel = inputs.display(path)
        h.update(rel.encode() + b"\0")
        h.update(path.read_bytes() if path.is_file() else b"<missing>")
        h.update(b"\0")
    return h.hexdigest()


def is_up_to_date(inputs: RasaInputs, models: Path) -> bool:
    """Whether the model exists and was trained from exactly these inputs."""
    model = models / f"{MODEL_NAME}.tar.gz"
    stamp = models / FINGERPRINT_FILE
    if not model.is_file() or model.stat().st_size == 0 or not stamp.is_file():
        return False
    try:
        recorded = json.loads(stamp.read_text()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return False
    return bool(recorded) and recorded == fingerprint(inputs)


def yaml_errors(inputs: RasaInputs) -> list[str]:
    """YAML syntax errors as ``path:line:column: problem``; missing inputs are errors too."""
    problems: list[str] = []
    for path in inputs.files():
        rel = inputs.display(path)
        if not path.is_file():
            problems.append(f"{rel}: missing")
            continue
        if path.suffix not in (".yml", ".yaml"):
            continue
        try:
            rasayaml.check(path)
        except rasayaml.RasaYamlError as exc:
            where = ":".join([rel, *(str(n) for n in (exc.line, exc.column) if n is not None)])
            problems.append(f"{where}: {exc.problem}")
    return problems


def rasa_env() -> dict[str, str]:
    env = dict(os.environ)
    env["RASA_TELEMETRY_ENABLED"] = "false"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
    # The pipeline names a component of this repository (bot.rasa.linear_intent), whatever Rasa's cwd.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def _run_rasa(args: list[str], root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rasa", *args],
        cwd=root,
        env=rasa_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )


_ANSI = re.compile(r"\x1b\[[0-9;]*m")

SERIOUS_WARNINGS = (
    "is not a valid utterance action",  # a story or rule says utter_x, the domain has no such response
    "is not listed in the domain",  # an intent, action or form used in stories but not declared
    "This intent is not listed in your domain",  # NLU examples for an undeclared intent
    "is not found in the NLU training data",  # a declared intent without examples
    "labeled with multiple different intents",  # the same example under two intents
    "Story structure conflict",  # two stories want different actions after the same history
)
"""Validator warnings that mean the model would be wrong; Rasa only warns about them, we refuse."""


def _clean_lines(output: str) -> list[str]:
    return [ln.rstrip() for ln in _ANSI.sub("", output).splitlines() if ln.strip()]


def _validator_message(output: str) -> str:
    """The lines of the validator's output worth showing: errors first, else its tail."""
    lines = _clean_lines(output)
    errors = [ln for ln in lines if "error" in ln.lower() or "invalid" in ln.lower()]
    return "\n".join(errors[-40:] or lines[-40:])


def serious_warnings(output: str) -> list[str]:
    """The validator's warnings that :data:`SERIOUS_WARNINGS` turns into errors, without source paths."""
    found = []
    for line in _clean_lines(output):
        if any(pattern in line for pattern in SERIOUS_WARNINGS):
            found.append(line.split("UserWarning: ", 1)[-1].strip())
    return found


def validate(inputs: RasaInputs) -> str | None:
    """``None`` when the data is valid, else a message saying why (file and line when YAML is broken)."""
    problems = yaml_errors(inputs)
    if problems:
        return "YAML errors:\n" + "\n".join(f"  {p}" for p in problems)
    done = _run_rasa(["data", "validate", *inputs.rasa_args()], inputs.root)
    if done.returncode != 0:
        return "rasa data validate failed:\n" + _validator_message(done.stdout)
    serious = serious_warnings(done.stdout)
    if serious:
        return "rasa data validate found problems:\n" + "\n".join(f"  {w}" for w in serious)
    return None


def _invalid_rules(output: str) -> str | None:
    """Rule contradictions only show up while training (RulePolicy); return Rasa's explanation."""
    lines = _clean_lines(output)
    for i, line in enumerate(lines):
        if "InvalidRule" in line:
            return "\n".join(lines[i : i + 30])
    return None


def train(inputs: RasaInputs, models: Path, force: bool = False) -> int:
    """Validate, train, record the fingerprint. Returns the process exit status."""
    fp = fingerprint(inputs)
    problem = validate(inputs)
    if problem:
        print(f"Refusing to train on invalid data.\n{problem}", file=sys.stderr)
        return 1
    models.mkdir(parents=True, exist_ok=True)
    args = ["train", *inputs.rasa_args(), "--out", str(models), "--fixed-model-name", MODEL_NAME]
    if force:
        args.append("--force")
    print(f"Training the Rasa model ({models / MODEL_NAME}.tar.gz) ...", flush=True)
    started = time.monotonic()
    done = _run_rasa(args, inputs.root)
    took = time.monotonic() - started
    rules = _invalid_rules(done.stdout) if done.returncode != 0 else None
    if rules:
        print(
            f"Refusing to train on invalid data: the rules contradict each other.\n{rules}", file=sys.stderr
        )
        return 1
    if done.returncode != 0 or not (models / f"{MODEL_NAME}.tar.gz").is_file():
        tail = "\n".join(done.stdout.splitlines()[-40:])
        print(f"Training failed (exit {done.returncode}):\n{tail}", file=sys.stderr)
        return 2
    stamp = {
        "fingerprint": fp,
        "rasa": rasa_version(),
        "model": f"{MODEL_NAME}.tar.gz",
        "train_s": round(took, 1),
    }
    tmp = models / (FINGERPRINT_FILE + ".tmp")
    tmp.write_text(json.dumps(stamp, indent=2) + "\n")
    tmp.replace(models / FINGERPRINT_FILE)
    print(f"Model trained in {took:.0f} s.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.tools.train", description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="train even if the model is up to date")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="project root (default: this checkout)")
    parser.add_argument("--models", type=Path, default=None, help="model folder (default: ROOT/models)")
    args = parser.parse_args(argv)
    inputs = RasaInputs(args.root.resolve())
    models = (args.models or inputs.root / "models").resolve()
    if not args.force and is_up_to_date(inputs, models):
        print("model up to date")
        return 0
    return train(inputs, models, force=args.force)


if __name__ == "__main__":
    sys.exit(main())
