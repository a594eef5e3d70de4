"""The report of a validation run (`anomstream validate --report`, the demo's report)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from anomstream.models import report as models_report
from anomstream.models.drift import sentence as drift_sentence
from anomstream.replay import per_source
from anomstream.replay.validate import Validation


def write_validation(directory: Path, summary: dict[str, Any], validation: Validation) -> None:
    """Markdown, JSON and plots of one validation run, with the threshold recommendations as a table and, below it,
    what was not reachable and that every figure there is in-sample."""
    notes = [
        f"{summary['received']} of {summary['expected']} expected verdicts read from {summary['scores_topic']}; "
        f"{summary['missing']} missing, {summary['duplicates']} duplicated. Models: {summary['models']}.",
        "",
        "| recommendation | threshold | accuracy | anomaly F1 | normal windows newly flagged | anomalies newly missed |",
        "| --- | --- | --- | --- | --- | --- |",
        *(
            f"| {r['objective']} | {r['threshold']:.5f} | {r['accuracy']:.4f} | {r['anomaly']['f1']:.4f} | "
            f"{r['change']['normal_flagged']:+d} | {r['change']['anomalies_missed']:+d} |"
            for r in summary["recommendations"]
        ),
        "",
        *(f"- {note}" for note in summary.get("notes", [])),
        *([f"- {drift_sentence(summary['drift'])}"] if "drift" in summary else []),
        *(_per_source(summary["per_source"]) if "per_source" in summary else []),
    ]
    models_report.write(
        directory,
        title=f"Live verdicts from {summary['scores_topic']}",
        summary=summary,
        evaluation=validation.evaluation,
        errors=validation.errors,
        labels=validation.labels,
        thresholds=validation.thresholds,
        notes=notes,
    )


def _per_source(found: dict[str, Any]) -> list[str]:
    """`validate --per-source`'s table, as the terminal shows it, in markdown."""
    return [
        "",
        f"{per_source.title(found).capitalize()}:",
        "",
        "| " + " | ".join(per_source.COLUMNS) + " |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        *("| " + " | ".join(row) + " |" for row in per_source.table_rows(found)),
        "",
        *(f"- {line}" for line in per_source.footer(found)),
    ]
