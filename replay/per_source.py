"""`validate --per-source`: a threshold for each source with enough labelled verdicts, and what it would change.

Each source's verdicts (by their `source` field) go through the same sweep as the global recommendation
(replay/sweep.py) with one objective (best F1 by default). A source gets a recommendation only when it has at
least `min_windows` labelled verdicts, the objective is reachable on them, and the new threshold does not lower
that source's accuracy below the global threshold's on the same windows; otherwise it keeps the global threshold
and the report says why. Figures are in-sample, as every recommendation of validate's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from anomstream.models.evaluate import Evaluation, evaluate
from anomstream.replay import sweep

OBJECTIVES = ("best-f1", "target-recall", "target-fpr")
MIN_WINDOWS = 50


def recommend(objective: str, errors: np.ndarray, labels: np.ndarray, target_recall: float, target_fpr: float) -> sweep.Recommendation:
    """The sweep's recommendation for `objective` on these labelled errors."""
    if objective == "best-f1":
        return sweep.best_f1(errors, labels)
    if objective == "target-recall":
        return sweep.target_recall(errors, labels, target_recall)
    return sweep.target_fpr(errors, labels, target_fpr)


def figures(evaluation: Evaluation, threshold: float) -> dict[str, Any]:
    confusion = evaluation.confusion
    normal = confusion.normal_as_normal + confusion.normal_as_anomaly
    return {
        "threshold": threshold,
        "accuracy": evaluation.accuracy,
        "false_positive_rate": confusion.normal_as_anomaly / normal if normal else None,
        "anomaly_recall": evaluation.anomaly.recall,
        "normal_flagged": confusion.normal_as_anomaly,
        "anomalies_missed": confusion.anomaly_as_normal,
    }


def judge_sources(
    errors: np.ndarray,
    labels: np.ndarray,
    sources: Sequence[str | None],
    global_threshold: float,
    objective: str = "best-f1",
    min_windows: int = MIN_WINDOWS,
    target_recall: float = 0.99,
    target_fpr: float = 0.01,
) -> dict[str, Any]:
    """Per source: its windows, the global threshold's figures, and the recommended threshold's (or why none)."""
    errors, labels = np.asarray(errors, np.float64), np.asarray(labels)
    named = np.array([source is not None for source in sources], dtype=bool)
    by_source = np.array([source or "" for source in sources], dtype=object)
    report: list[dict[str, Any]] = []
    thresholds: dict[str, float] = {}
    for source in sorted({s for s in sources if s is not None}):
        rows = np.flatnonzero(named & (by_source == source))
        e, y = errors[rows], labels[rows]
        before = figures(evaluate(e, y, global_threshold), global_threshold)
        entry: dict[str, Any] = {"source": source, "windows": int(rows.size), "normal": int(y.sum()), "anomalous": int((y == 0).sum()),
                                 "global": before, "recommended": None, "reason": None}  # fmt: skip
        if rows.size < min_windows:
            entry["reason"] = f"{rows.size} labelled windows, fewer than --min-source-windows {min_windows}: it keeps the global threshold"
        else:
            found = recommend(objective, e, y, target_recall, target_fpr)
            if not found.met:
                entry["reason"] = f"{found.objective} is not reachable on its windows ({found.reason}): it keeps the global threshold"
            else:
                after = figures(found.evaluation, found.threshold)
                if after["accuracy"] < before["accuracy"]:
                    entry["reason"] = (
                        f"{found.objective} ({found.threshold:.5g}) would lower its accuracy from {before['accuracy']:.4f} to"
                        f" {after['accuracy']:.4f}: it keeps the global threshold"
                    )
                else:
                    entry["recommended"] = after
                    entry["change"] = {
                        "normal_flagged": after["normal_flagged"] - before["normal_flagged"],
                        "anomalies_missed": after["anomalies_missed"] - before["anomalies_missed"],
                    }
                    thresholds[source] = found.threshold
        report.append(entry)
    unnamed = int((~named).sum())
    notes = [f"{unnamed} verdicts carry no source: such windows are always judged by the global threshold."] if unnamed else []
    return {
        "objective": objective,
        "min_windows": min_windows,
        "global_threshold": global_threshold,
        "fitted_on": sweep.FITTED_ON,
        "sources": report,
        "thresholds": thresholds,
        "notes": notes,
    }


# The table of `judge_sources`' finding, shared by the terminal (rich) and the report (markdown).
COLUMNS = ("source", "windows", "threshold", "FPR global", "FPR source", "accuracy global", "accuracy source", "why not")


def title(found: dict[str, Any]) -> str:
    return f"per-source thresholds ({found['objective']}; global {found['global_threshold']:.5f})"


def table_rows(found: dict[str, Any]) -> list[list[str]]:
    """One row of COLUMNS per source: its figures with the global threshold and with its own."""

    def rate(value: float | None) -> str:
        return "" if value is None else f"{value:.4f}"

    table = []
    for entry in found["sources"]:
        before, after = entry["global"], entry["recommended"] or {}
        table.append([entry["source"], str(entry["windows"]), f"{after['threshold']:.5f}" if after else "global",
                      rate(before["false_positive_rate"]), rate(after.get("false_positive_rate")), f"{before['accuracy']:.4f}",
                      rate(after.get("accuracy")), entry["reason"] or ""])  # fmt: skip
    return table


def footer(found: dict[str, Any]) -> list[str]:
    """The notes under the table, and the artifact written, if any."""
    lines = list(found["notes"])
    if "artifact" in found:
        lines.append(f"artifact with {len(found['thresholds'])} per-source thresholds: {found['artifact']['path']} ({found['artifact']['version']})")
    return lines
