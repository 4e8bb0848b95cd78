"""The command line: ``python -m bot.tools.nlucheck [--no-cv] [--data DIR] [--folds N] ...`` (make nlu-check).

Validation first (:mod:`.checks`), each finding on stderr as ``file:line: message``; then, on valid data
and without ``--no-cv``, the held-out scores (:mod:`.heldout`: the trained model, trained first if its inputs
changed, on every file in ``nlu-data/test/``, clean and with recogniser noise), the cross-validation
(:mod:`.crossval`) and the report (:mod:`.report`). ``--heldout-only`` skips the cross-validation. Prints
held-out accuracy over all the sets and per set, the weakest recalls and parse times, the macro F1 and the
report's path. Exit status: 0 valid (and report written), 1 invalid data, 2 cross-validation or the held-out
run failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from actions.shared.asrnoise import DEFAULT_SEED as NOISE_SEED
from actions.shared.paths import REPO_ROOT
from bot.tools import nlucheck, train
from bot.tools.nlucheck.checks import code_folders, validate
from bot.tools.nlucheck.crossval import (
    DEFAULT_FOLDS,
    DEFAULT_SEED,
    TARGET_MACRO_F1,
    CvFailed,
    confusion_from_rasa,
    cross_validate,
    intents_of,
)
from bot.tools.nlucheck.data import Finding
from bot.tools.nlucheck.heldout import (
    HELDOUT_DIR,
    TARGET_CLEAN,
    TARGET_NOISY,
    TARGET_P95_MS,
    TARGET_RECALL,
    HeldoutFailed,
    Scores,
    heldout_files,
    run_apart,
)
from bot.tools.nlucheck.report import RunInfo, heldout_html, write_report


def _print_findings(findings: Sequence[Finding]) -> None:
    for f in findings:
        print(f, file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    doc = nlucheck.__doc__ or ""
    parser = argparse.ArgumentParser(prog="python -m bot.tools.nlucheck", description=doc.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="the editors' folder (default: nlu-data)")
    parser.add_argument(
        "--config", type=Path, default=None, help="Rasa config (default: bot/rasa/config.yml)"
    )
    parser.add_argument(
        "--actions",
        type=Path,
        default=None,
        help="action code scanned for response names (default: DATA/../actions; DATA/../bot/rasa, the "
        "Rasa channel plugin, is scanned too)",
    )
    parser.add_argument("--folds", type=int, default=DEFAULT_FOLDS, help=f"folds (default {DEFAULT_FOLDS})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the fold split")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: reports/nlu)")
    parser.add_argument("--no-cv", action="store_true", help="validate only (fast)")
    parser.add_argument(
        "--heldout-only",
        action="store_true",
        help="validate and score the held-out sets, no cross-validation",
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="model scored on the held-out sets (default: models/attendant.tar.gz, trained first if its "
        "inputs changed; with --data or --config, trained into OUT/model)",
    )
    parser.add_argument("--noise-seed", type=int, default=NOISE_SEED, help="seed of the recogniser noise")
    return parser


def _heldout(inputs: train.RasaInputs, model: Path | None, out_dir: Path, seed: int) -> Scores | None:
    """Score the held-out sets (None when the data has none); raises :class:`HeldoutFailed`."""
    heldout = heldout_files(inputs.data)
    if not heldout:
        where = inputs.display(inputs.data / HELDOUT_DIR)
        print(f"No held-out set ({where}/*.yml): held-out scores skipped.")
        return None
    if model is None:
        default = inputs.data_root is None and inputs.config_file is None
        models = inputs.root / "models" if default else out_dir / "model"
        if not train.is_up_to_date(inputs, models) and train.train(inputs, models) != 0:
            raise HeldoutFailed("training the model for the held-out sets failed (see above)")
        model = models / f"{train.MODEL_NAME}.tar.gz"
    log = out_dir / "heldout.log"
    sets = ", ".join(inputs.display(path) for path in heldout)
    print(f"Scoring {sets} with {inputs.display(model)} (log: {inputs.display(log)}) ...")
    return run_apart(model, heldout, seed, log)


def _print_heldout(scores: Scores) -> None:
    clean, noisy = scores.clean, scores.noisy
    print(
        f"Held-out accuracy: clean {clean.accuracy:.3f} (target {TARGET_CLEAN:.2f}), {noisy.variant} "
        f"{noisy.accuracy:.3f} (target {TARGET_NOISY:.2f}), {sum(clean.support.values())} utterances"
        + (f", {len(scores.files)} sets:" if len(scores.files) > 1 else "")
    )
    if len(scores.files) > 1:
        for name, (c, n) in scores.files.items():
            print(
                f"  {name}: clean {c.accuracy:.3f}, noisy {n.accuracy:.3f}, {sum(c.support.values())} "
                "utterances; weakest clean recall " + ", ".join(f"{i} {r:.3f}" for i, r in c.weakest(3))
            )
    for s in (clean, noisy):
        print(
            f"Weakest held-out recall, {s.variant} (target {TARGET_RECALL:.2f}): "
            + ", ".join(f"{i} {r:.3f}" for i, r in s.weakest(3))
        )
    print(
        f"Parse time: p50 {clean.p50_ms:.1f} ms, p95 {clean.p95_ms:.1f} ms "
        f"(target p95 {TARGET_P95_MS:.0f} ms)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.folds < 2:
        parser.error("--folds must be at least 2")

    root = REPO_ROOT
    inputs = train.RasaInputs(
        root,
        data_root=args.data.resolve() if args.data else None,
        config_file=args.config.resolve() if args.config else None,
    )
    code = code_folders(inputs, args.actions.resolve() if args.actions else None)
    out_dir = (args.out or root / "reports" / "nlu").resolve()

    print(f"Checking {inputs.display(inputs.data)} ...", flush=True)
    data, findings = validate(inputs, code)
    _print_findings(findings)
    errors = [f for f in findings if f.error]
    warnings = len(findings) - len(errors)
    if errors:
        print(
            f"{len(errors)} problem(s), {warnings} warning(s): fix the data and run again"
            + ("" if args.no_cv else " (no cross-validation on invalid data)")
            + ".",
            file=sys.stderr,
        )
        return 1
    counts = data.example_counts()
    print(f"Data valid: {len(counts)} intents, {sum(counts.values())} examples, {warnings} warning(s).")
    if args.no_cv:
        return 0
    try:
        scores = _heldout(inputs, args.model.resolve() if args.model else None, out_dir, args.noise_seed)
    except HeldoutFailed as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if scores:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "heldout.json").write_text(json.dumps(scores.to_json(), indent=2) + "\n", encoding="utf-8")
    if args.heldout_only:
        if scores:
            _print_heldout(scores)
        return 0

    log = out_dir / "rasa-cv.log"
    print(
        f"Cross-validating ({args.folds} folds: {args.folds} NLU models trained; minutes, not seconds). "
        f"Rasa's log: {inputs.display(log)}",
        flush=True,
    )
    try:
        result = cross_validate(inputs, args.folds, args.seed, log)
    except CvFailed as exc:
        print(str(exc), file=sys.stderr)
        return 2
    confusion = confusion_from_rasa(result.report, result.errors)
    run = RunInfo(
        data=inputs.display(inputs.data),
        config=inputs.display(inputs.config),
        folds=args.folds,
        seed=args.seed,
        seconds=result.seconds,
        examples=sum(counts.values()),
    )
    path = write_report(
        out_dir,
        result.report,
        confusion,
        findings,
        run,
        result.errors,
        result.entity_report,
        heldout_html(scores) if scores else "",
    )
    for name, payload in (("intent_report.json", result.report), ("intent_errors.json", result.errors)):
        (out_dir / name).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    f1 = {i: float(result.report[i].get("f1-score", 0.0)) for i in intents_of(result.report)}
    weakest = sorted(f1, key=lambda i: f1[i])[:3]
    print("Weakest intents: " + ", ".join(f"{i} {f1[i]:.3f}" for i in weakest))
    print(f"Cross-validation took {result.seconds:.0f} s.")
    macro_f1 = float(result.report.get("macro avg", {}).get("f1-score", 0.0))
    print(f"Macro F1 {macro_f1:.3f} (target {TARGET_MACRO_F1:.2f})")
    if scores:
        _print_heldout(scores)
    print(f"Report: {inputs.display(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
