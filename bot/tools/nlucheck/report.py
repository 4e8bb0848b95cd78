"""The cross-validation report: ``index.html`` (from the template ``report.html`` beside this file) and a PNG.

The page: precision, recall and F1 per intent (weakest first), macro and weighted averages, the worst
confusions with the phrases that caused them, the confusion-matrix image, entity scores when Rasa wrote
them, and the validation warnings. The template holds the page and its style; the functions here only
build its tables, every value escaped on the way in.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from string import Template
from typing import Any

from bot.tools.nlucheck.crossval import TARGET_MACRO_F1, Confusion, intents_of
from bot.tools.nlucheck.data import Finding
from bot.tools.nlucheck.heldout import TARGET_CLEAN, TARGET_NOISY, TARGET_RECALL, Score, Scores

REPORT_FILE = "index.html"
MATRIX_FILE = "confusion_matrix.png"
TEMPLATE = Path(__file__).with_name("report.html")
WORST_CONFUSIONS = 10
"""How many confused pairs the report lists."""
EXAMPLES_PER_CONFUSION = 3
SCORE_COLUMNS = ("precision", "recall", "F1", "support")


@dataclass(frozen=True, slots=True)
class RunInfo:
    """How the figures were made, for the report's header."""

    data: str
    config: str
    folds: int
    seed: int
    seconds: float
    examples: int


def write_report(
    out_dir: Path,
    report: Mapping[str, Any],
    confusion: Confusion,
    findings: Sequence[Finding],
    run: RunInfo,
    errors: Sequence[Mapping[str, Any]] = (),
    entity_report: Mapping[str, Any] | None = None,
    heldout: str = "",
) -> Path:
    """Write ``index.html`` and the confusion-matrix PNG into ``out_dir``; return the HTML file's path.

    ``heldout`` is the held-out section (:func:`heldout_html`), shown beside the cross-validation figures."""
    out_dir.mkdir(parents=True, exist_ok=True)
    draw_confusion_matrix(confusion, out_dir / MATRIX_FILE)
    e = html.escape
    macro = report.get("macro avg", {})
    weighted = report.get("weighted avg", {})
    macro_f1 = float(macro.get("f1-score", 0.0))
    page = Template(TEMPLATE.read_text(encoding="utf-8")).substitute(
        when=e(datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        data=e(run.data),
        config=e(run.config),
        examples=run.examples,
        intents=len(intents_of(report)),
        folds=run.folds,
        seed=run.seed,
        seconds=f"{run.seconds:.0f}",
        verdict="ok" if macro_f1 >= TARGET_MACRO_F1 else "bad",
        macro_f1=f"{macro_f1:.3f}",
        target=f"{TARGET_MACRO_F1:.2f}",
        weighted_f1=_num(weighted.get("f1-score")),
        accuracy=_num(_accuracy(report)),
        per_intent=_per_intent(report),
        confusions=_confusions(confusion, errors),
        matrix=MATRIX_FILE,
        entities=_entities(entity_report) if entity_report else "",
        findings=_findings(findings),
        heldout=heldout,
    )
    path = out_dir / REPORT_FILE
    path.write_text(page, encoding="utf-8")
    return path


# --- the tables ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Row:
    cells: Sequence[str]
    """HTML, escaped already."""
    css: str = ""
    """The row's class: ``weak`` (below target) or ``avg``."""


def _table(head: Sequence[str], rows: Iterable[_Row], text_column: int | None = None) -> str:
    """A table; the ``text_column`` (free text: phrases) is aligned left like the first."""

    def cell(tag: str, i: int, content: str) -> str:
        css = ' class="text"' if i == text_column else ""
        return f"<{tag}{css}>{content}</{tag}>"

    titles = "".join(cell("th", i, html.escape(title)) for i, title in enumerate(head))
    lines = [f"<table><thead><tr>{titles}</tr></thead>", "<tbody>"]
    for row in rows:
        css = f' class="{row.css}"' if row.css else ""
        lines.append(f"<tr{css}>" + "".join(cell("td", i, c) for i, c in enumerate(row.cells)) + "</tr>")
    lines.append("</tbody></table>")
    return "\n".join(lines)


def _scores(name: str, r: Mapping[str, Any], css: str = "") -> _Row:
    """A row of name, precision, recall, F1 and support."""
    return _Row(
        (
            html.escape(name),
            _num(r.get("precision")),
            _num(r.get("recall")),
            _num(r.get("f1-score")),
            str(int(r.get("support", 0))),
        ),
        css,
    )


def _per_intent(report: Mapping[str, Any]) -> str:
    """Weakest first, rows under the target shaded; then the macro and weighted averages."""
    weakest_first = sorted(intents_of(report), key=lambda i: (float(report[i].get("f1-score", 0.0)), i))
    rows = [
        _scores(i, report[i], "weak" if float(report[i].get("f1-score", 0.0)) < TARGET_MACRO_F1 else "")
        for i in weakest_first
    ]
    rows += [_scores(label, report.get(label, {}), "avg") for label in ("macro avg", "weighted avg")]
    return _table(("intent", *SCORE_COLUMNS), rows)


def heldout_html(scores: Scores) -> str:
    """The held-out section: accuracy and parse times per variant, over all the sets and per set; recall per
    intent over all the sets (weakest first, rows under target shaded), and per set beside it; and the misses
    most often made."""
    e = html.escape
    targets = {"clean": TARGET_CLEAN}
    both = (scores.clean, scores.noisy)
    sets: list[tuple[str, tuple[Score, Score]]] = [("all", both)]
    if len(scores.files) > 1:
        sets += list(scores.files.items())
    lines = [
        "<h2>Held-out sets</h2>",
        "<p>Utterances never trained on: every file in <code>nlu-data/test/</code>, "
        f"{e(', '.join(scores.files))}; the noisy variant is the same text through the recogniser-noise "
        "generator. <code>nlu_fallback</code> counts as a miss.</p>",
    ]
    rows = [
        _Row((e(name), e(s.variant), f"{s.accuracy:.3f}", f"{targets.get(s.variant, TARGET_NOISY):.2f}",
              f"{s.p50_ms:.1f}", f"{s.p95_ms:.1f}", str(sum(s.support.values()))),
             "" if s.accuracy >= targets.get(s.variant, TARGET_NOISY) else "weak")
        for name, variants in sets
        for s in variants
    ]  # fmt: skip
    head = ("set", "variant", "accuracy", "target", "parse p50 ms", "parse p95 ms", "utterances")
    lines.append(_table(head, rows))
    recalls = [s.recall for s in both]
    columns = [
        (f"recall {s.variant}" + ("" if name == "all" else f" {name}"), s)
        for name, variants in sets
        for s in variants
    ]
    intents = sorted(recalls[0], key=lambda i: (min(r.get(i, 0.0) for r in recalls), i))
    recall_rows = [
        _Row(
            (
                e(i),
                *(f"{s.recall[i]:.3f}" if i in s.recall else "-" for _, s in columns),
                str(scores.clean.support.get(i, 0)),
            ),
            "weak" if min(r.get(i, 0.0) for r in recalls) < TARGET_RECALL else "",
        )
        for i in intents
    ]
    beside = "; each set's beside it (- where the set has no such utterance)" if len(sets) > 1 else ""
    lines.append(
        f"<p>Recall per intent over all the sets, weakest first; target {TARGET_RECALL:.2f}{beside}.</p>"
    )
    lines.append(_table(("intent", *(title for title, _ in columns), "support"), recall_rows))
    for s in both:
        pairs = s.confusions()[:WORST_CONFUSIONS]
        if not pairs:
            continue
        said = {
            (t, p): "; ".join(f"“{e(m.text)}”" for m in s.misses if (m.intent, m.predicted) == (t, p))
            for t, p, _ in pairs
        }
        miss_rows = [_Row((e(t), e(p), str(n), said[t, p])) for t, p, n in pairs]
        lines.append(f"<p>Misses, {e(s.variant)}:</p>")
        lines.append(_table(("true", "predicted", "count", "said"), miss_rows, text_column=3))
    return "\n".join(lines)


def _confusions(confusion: Confusion, errors: Sequence[Mapping[str, Any]]) -> str:
    """The most frequent (true, predicted) pairs off the diagonal, with some of the phrases."""
    pairs = confusion.pairs()[:WORST_CONFUSIONS]
    if not pairs:
        return "<p>None: every example was predicted as its own intent.</p>"
    phrases: dict[tuple[str, str], list[str]] = defaultdict(list)
    for err in errors:
        prediction = err.get("intent_prediction") or {}
        phrases[(str(err.get("intent")), str(prediction.get("name") or "(none)"))].append(
            str(err.get("text", ""))
        )
    rows = []
    for true, predicted, n in pairs:
        total = sum(confusion.counts[confusion.rows.index(true)]) or 1
        said = "; ".join(f"“{html.escape(t)}”" for t in phrases[(true, predicted)][:EXAMPLES_PER_CONFUSION])
        rows.append(_Row((html.escape(true), html.escape(predicted), str(n), f"{n / total:.0%}", said)))
    head = ("true intent", "predicted as", "examples", "share", "for instance")
    return _table(head, rows, text_column=4)


def _entities(entity_report: Mapping[str, Any]) -> str:
    rows = [_scores(name, entity_report[name]) for name in intents_of(entity_report)]
    return "<h2>Entities</h2>\n" + _table(("entity", *SCORE_COLUMNS), rows) + "\n"


def _findings(findings: Sequence[Finding]) -> str:
    if not findings:
        return "<p>No findings.</p>"
    return "<ul>" + "".join(f"<li><code>{html.escape(str(f))}</code></li>" for f in findings) + "</ul>"


def _num(value: Any) -> str:
    return f"{float(value):.3f}" if isinstance(value, (int, float)) else "-"


def _accuracy(report: Mapping[str, Any]) -> Any:
    acc = report.get("accuracy")
    if acc is None and isinstance(report.get("micro avg"), Mapping):
        acc = report["micro avg"].get("f1-score")
    return acc


# --- the image ----------------------------------------------------------------------------------------------


def draw_confusion_matrix(confusion: Confusion, path: Path) -> None:
    """A PNG of the matrix: colour is the share of each true intent's examples, numbers are counts."""
    # matplotlib takes a while to import and only a finished cross-validation needs it: not for --no-cv.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n_rows, n_cols = len(confusion.rows), len(confusion.columns)
    shares = [[n / (sum(row) or 1) for n in row] for row in confusion.counts]
    size = max(5.0, 0.55 * max(n_rows, n_cols) + 2.5)
    fig = Figure(figsize=(size * n_cols / max(n_rows, 1) if n_cols > n_rows else size, size), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(shares or [[0.0]], cmap="Blues", vmin=0.0, vmax=1.0, aspect="equal")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true intent's examples")
    ax.set_xticks(range(n_cols))
    ax.set_xticklabels(confusion.columns, rotation=60, ha="right", fontsize=9)
    ax.set_yticks(range(n_rows))
    ax.set_yticklabels(confusion.rows, fontsize=9)
    ax.set_xlabel("predicted intent")
    ax.set_ylabel("true intent")
    ax.set_title("Intent confusion matrix (cross-validation)")
    for i, row in enumerate(confusion.counts):
        for j, n in enumerate(row):
            if n:
                colour = "white" if shares[i][j] > 0.5 else "black"
                ax.text(j, i, str(n), ha="center", va="center", fontsize=8, color=colour)
    fig.tight_layout()
    fig.savefig(str(path), format="png")
