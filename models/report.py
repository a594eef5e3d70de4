"""Reports a person can read: `report.md`, `report.json` and PNG plots.

Plot functions take plain arrays, not models, so `evaluate` (offline) and
`validate` (live verdicts from Kafka) draw the same figures.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import metrics

from anomstream.errors import ConfigError
from anomstream.models.evaluate import Evaluation

log = logging.getLogger("anomstream.report")

@dataclass(frozen=True)
class Example:
    """One window and its reconstruction, both in the normalised scale."""

    title: str
    window: np.ndarray  # (channels, length), or (length,)
    reconstruction: np.ndarray
    explanation: Any = None  # models.explain.Explanation of a flagged window: its range is shaded


def can_plot() -> bool:
    """Whether matplotlib (the `plot` extra) is installed: without it a report is written without its figures."""
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def _pyplot():  # noqa: ANN202 - matplotlib is an optional extra
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise ConfigError("writing a report needs matplotlib: pip install 'anomstream[plot]'.") from None
    matplotlib.use("Agg")  # files only; never open a window
    import matplotlib.pyplot as plt

    return plt


def training_curve(path: Path, history: Mapping[str, Sequence[float]]) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("loss", "training loss (normal windows)"), ("val_loss", "validation loss (held-out normal windows)")):
        if history.get(key):
            ax.plot(range(1, len(history[key]) + 1), history[key], label=label)
    ax.set(xlabel="epoch", ylabel="loss", title="Training curve")
    ax.legend()
    _save(fig, path)


def error_histogram(path: Path, errors: np.ndarray, labels: np.ndarray, thresholds: Mapping[str, float]) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    normal = labels.astype(bool)
    bins = np.histogram_bin_edges(errors, bins=60)
    ax.hist(errors[normal], bins=bins, alpha=0.6, label=f"normal ({normal.sum()})", color="tab:blue")
    ax.hist(errors[~normal], bins=bins, alpha=0.6, label=f"anomalous ({(~normal).sum()})", color="tab:red")
    for (name, value), style in zip(thresholds.items(), ("-", "--", ":", "-.")):
        ax.axvline(value, color="black", linestyle=style, label=f"{name} threshold {value:.4f}")
    ax.set(xlabel="reconstruction error (MAE)", ylabel="windows", title="Reconstruction error by label")
    ax.legend()
    _save(fig, path)


def roc_pr(path: Path, errors: np.ndarray, labels: np.ndarray) -> None:
    """ROC and precision-recall curves with anomaly as the positive class."""
    plt = _pyplot()
    anomalous = ~labels.astype(bool)
    fig, (roc_ax, pr_ax) = plt.subplots(1, 2, figsize=(10, 4))
    fpr, tpr, _ = metrics.roc_curve(anomalous, errors)
    roc_ax.plot(fpr, tpr, label=f"AUC {metrics.auc(fpr, tpr):.4f}")
    roc_ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    roc_ax.set(xlabel="false-positive rate", ylabel="true-positive rate", title="ROC (anomaly = positive)")
    roc_ax.legend(loc="lower right")
    precision, recall, _ = metrics.precision_recall_curve(anomalous, errors)
    pr_ax.plot(recall, precision, label=f"AP {metrics.average_precision_score(anomalous, errors):.4f}")
    pr_ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (anomaly = positive)")
    pr_ax.legend(loc="lower left")
    _save(fig, path)


def confusion(path: Path, evaluation: Evaluation) -> None:
    plt = _pyplot()
    c = evaluation.confusion
    table = np.array([[c.normal_as_normal, c.normal_as_anomaly], [c.anomaly_as_normal, c.anomaly_as_anomaly]])
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(table, cmap="Blues")
    for (row, col), count in np.ndenumerate(table):
        ax.text(col, row, str(count), ha="center", va="center", color="white" if count > table.max() / 2 else "black")
    ax.set_xticks([0, 1], ["normal", "anomaly"])
    ax.set_yticks([0, 1], ["normal", "anomalous"])
    ax.set(xlabel="verdict", ylabel="label", title=f"Confusion at threshold {evaluation.threshold:.4f}")
    _save(fig, path)


def examples(path: Path, shown: Sequence[Example]) -> None:
    """The tutorial's figure: a window, its reconstruction, and the error between them; a row per channel, and a
    flagged window's explained range shaded."""
    plt = _pyplot()
    channels = max((np.atleast_2d(example.window).shape[0] for example in shown), default=1)
    fig, axes = plt.subplots(channels, len(shown), figsize=(6 * len(shown), 4 * channels), squeeze=False)
    for column, example in enumerate(shown):
        window, reconstruction = np.atleast_2d(example.window), np.atleast_2d(example.reconstruction)
        for channel in range(window.shape[0]):
            ax = axes[channel, column]
            x = np.arange(window.shape[1])
            ax.plot(x, window[channel], color="tab:blue", label="input")
            ax.plot(x, reconstruction[channel], color="tab:red", label="reconstruction")
            ax.fill_between(x, reconstruction[channel], window[channel], color="lightcoral", label="error")
            title = example.title if channels == 1 else f"{example.title}, channel {channel}"
            found = example.explanation
            if found is not None:
                ax.axvspan(found.start - 0.5, found.end - 0.5, color="gold", alpha=0.35, label=f"explained ({found.share:.0%} of the error)")
                if found.channel == channel:
                    title += " (the largest error)"
            ax.set(title=title, xlabel="sample", ylabel="normalised value")
            ax.legend()
    _save(fig, path)


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)


def write(
    directory: str | Path,
    title: str,
    summary: Mapping[str, Any],
    evaluation: Evaluation,
    errors: np.ndarray,
    labels: np.ndarray,
    thresholds: Mapping[str, float],
    history: Mapping[str, Sequence[float]] | None = None,
    shown: Sequence[Example] = (),
    notes: Sequence[str] = (),
    pictures: Sequence[tuple[str, str]] = (),
) -> Path:
    """Write the whole report; `summary` goes to report.json verbatim. `pictures`: (caption, file) of figures
    already drawn in `directory` (an image model's, models/pictures.py), shown after the others."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    figures: list[tuple[str, str]] = []
    if not can_plot():
        # The numbers are the report; the figures are a convenience that must not cost a finished run.
        log.warning("matplotlib is not installed: %s has no figures (pip install 'anomstream[plot]' adds them)", directory)
        notes = [*notes, "", "Figures are left out: matplotlib is not installed (`pip install 'anomstream[plot]'`)."]
    else:
        if history:
            training_curve(directory / "training_curve.png", history)
            figures.append(("Training curve", "training_curve.png"))
        error_histogram(directory / "error_histogram.png", errors, labels, thresholds)
        figures.append(("Reconstruction error by label", "error_histogram.png"))
        if evaluation.roc_auc is not None:
            roc_pr(directory / "roc_pr.png", errors, labels)
            figures.append(("ROC and precision-recall", "roc_pr.png"))
        confusion(directory / "confusion.png", evaluation)
        figures.append(("Confusion matrix", "confusion.png"))
        if shown:
            examples(directory / "examples.png", shown)
            figures.append(("Windows and their reconstructions", "examples.png"))
        figures += pictures

    (directory / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
    (directory / "report.md").write_text(_markdown(title, evaluation, thresholds, figures, notes))
    return directory / "report.md"


def write_scores(path: Path, rows: np.ndarray, labels: np.ndarray, errors: np.ndarray, anomalous: np.ndarray) -> None:
    """One line per window: its row, label, error (exact: the shortest repr of the float32) and verdict."""
    lines = ["row,label,error,anomalous"]
    lines += [
        f"{row},{int(label)},{error!r},{int(flag)}"
        for row, label, error, flag in zip(rows.tolist(), labels.tolist(), errors.astype(np.float64).tolist(), anomalous.tolist())
    ]
    path.write_text("\n".join(lines) + "\n")


def _markdown(
    title: str,
    evaluation: Evaluation,
    thresholds: Mapping[str, float],
    figures: Sequence[tuple[str, str]],
    notes: Sequence[str],
) -> str:
    e, c = evaluation, evaluation.confusion

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    lines = [
        f"# {title}",
        "",
        *notes,
        "",
        f"{e.windows} windows: {e.normal} normal, {e.anomalous} anomalous. "
        f"Thresholds: {', '.join(f'{name} {value:.5f}' for name, value in thresholds.items())}.",
        "",
        "| metric | value |",
        "| --- | --- |",
        f"| accuracy | {fmt(e.accuracy)} |",
        f"| precision (normal = positive, as the tutorial) | {fmt(e.precision)} |",
        f"| recall (normal = positive, as the tutorial) | {fmt(e.recall)} |",
        f"| ROC-AUC (anomaly = positive) | {fmt(e.roc_auc)} |",
        f"| PR-AUC (anomaly = positive) | {fmt(e.pr_auc)} |",
        f"| anomaly precision | {fmt(e.anomaly.precision)} |",
        f"| anomaly recall | {fmt(e.anomaly.recall)} |",
        f"| anomaly F1 | {fmt(e.anomaly.f1)} |",
        "",
        "| label \\ verdict | normal | anomaly |",
        "| --- | --- | --- |",
        f"| normal | {c.normal_as_normal} | {c.normal_as_anomaly} |",
        f"| anomalous | {c.anomaly_as_normal} | {c.anomaly_as_anomaly} |",
        "",
    ]
    for caption, file in figures:
        lines += [f"## {caption}", "", f"![{caption}]({file})", ""]
    return "\n".join(lines)
