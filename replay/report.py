"""The report of a validation run (`anomstream validate --report`, the demo's report)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from anomstream.models import report as models_report
from anomstream.models.drift import sentence as drift_sentence
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
    """`validate --per-source`'s table: each source's figures with the global threshold and with its own."""

    def rate(value: float | None) -> str:
        return "" if value is None else f"{value:.4f}"

    lines = [
        "",
        f"Per-source thresholds ({found['objective']}; global {found['global_threshold']:.5f}):",
        "",
        "| source | windows | threshold | FPR global | FPR source | accuracy global | accuracy source | why not |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for entry in found["sources"]:
        before, after = entry["global"], entry["recommended"] or {}
        threshold = f"{after['threshold']:.5f}" if after else "global"
        lines.append(
            f"| {entry['source']} | {entry['windows']} | {threshold} |"
            f" {rate(before['false_positive_rate'])} | {rate(after.get('false_positive_rate'))} | {before['accuracy']:.4f} |"
            f" {rate(after.get('accuracy'))} | {entry['reason'] or ''} |"
        )
    lines += ["", *(f"- {note}" for note in found["notes"])]
    if "artifact" in found:
        lines.append(f"- artifact with {len(found['thresholds'])} per-source thresholds: {found['artifact']['path']} ({found['artifact']['version']})")
    return lines
