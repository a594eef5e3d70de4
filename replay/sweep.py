"""Threshold recommendations from labelled errors: best F1, a target recall, a target false-positive rate.

These use labels, so they are advice that `validate` reports next to the live
threshold, never a silent default. They are fitted on the same labels they are
scored on (in-sample), so their figures are optimistic. Anomaly is the positive
class throughout; labels are 1 normal, 0 anomalous.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from anomstream.errors import ThresholdError
from anomstream.models.evaluate import Evaluation, evaluate

FITTED_ON = "the same labels it is scored on"  # in-sample: every recommendation's figures are optimistic


@dataclass(frozen=True)
class Recommendation:
    """A threshold meeting `objective` on these labels; or, when none can (`met` False), no threshold and why."""

    objective: str  # e.g. "best F1", "anomaly recall >= 0.99"
    threshold: float | None
    evaluation: Evaluation | None
    met: bool = True
    reason: str | None = None  # when not met: why not, after "not reachable on these verdicts: "

    @classmethod
    def unmet(cls, objective: str, reason: str) -> Recommendation:
        return cls(objective, None, None, met=False, reason=reason)


def _candidates(errors: np.ndarray) -> np.ndarray:
    """Every distinct verdict split: one below the lowest error (flag all), the midpoints, one above the highest
    (flag none: without it a false-positive target that only flagging nothing meets had no candidate)."""
    distinct = np.unique(errors)
    below = distinct[0] - max(1e-9, abs(distinct[0]) * 1e-6)
    above = distinct[-1] + max(1e-9, abs(distinct[-1]) * 1e-6)
    return np.concatenate([[below], (distinct[:-1] + distinct[1:]) / 2, [above]])


def _counts(errors: np.ndarray, anomalous: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and false positives at each candidate (verdict: error > threshold), in O(n log n)."""
    order = np.sort(errors[anomalous])
    normal = np.sort(errors[~anomalous])
    tp = len(order) - np.searchsorted(order, candidates, side="right")
    fp = len(normal) - np.searchsorted(normal, candidates, side="right")
    return tp, fp


def _inputs(errors: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(errors, dtype=np.float64), ~np.asarray(labels).astype(bool)


def _rate(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:  # NaN fails too
        raise ThresholdError(f"a target {name} must be between 0 and 1, got {value}: pass a fraction such as 0.01.")


def best_f1(errors: np.ndarray, labels: np.ndarray) -> Recommendation:
    """The threshold of the highest anomaly F1; none on one class, where F1 cannot tell thresholds apart."""
    errors, anomalous = _inputs(errors, labels)
    if anomalous.all() or not anomalous.any():
        only = "anomalous" if anomalous.any() else "normal"
        return Recommendation.unmet(
            "best F1", f"they hold {only} windows only, and F1 needs both classes: on one class it would flag everything"
        )
    candidates = _candidates(errors)
    tp, fp = _counts(errors, anomalous, candidates)
    f1 = 2 * tp / (2 * tp + fp + (anomalous.sum() - tp))
    best = candidates[int(np.argmax(f1))]
    return Recommendation("best F1", float(best), evaluate(errors, labels, best))


def target_recall(errors: np.ndarray, labels: np.ndarray, recall: float) -> Recommendation:
    """The highest threshold that still catches at least `recall` of the anomalies: always one when there are
    anomalies (flagging every window catches them all)."""
    _rate("anomaly recall", recall)
    objective = f"anomaly recall >= {recall:g}"
    errors, anomalous = _inputs(errors, labels)
    if not anomalous.any():
        return Recommendation.unmet(objective, "they hold no anomalous window to catch")
    candidates = _candidates(errors)
    tp, _ = _counts(errors, anomalous, candidates)
    needed = math.ceil(recall * anomalous.sum() - 1e-9)  # in windows: 0.07 * 100 is 7.000000000000001
    chosen = candidates[np.flatnonzero(tp >= needed)[-1]]
    return Recommendation(objective, float(chosen), evaluate(errors, labels, chosen))


def target_fpr(errors: np.ndarray, labels: np.ndarray, fpr: float) -> Recommendation:
    """The lowest threshold that flags at most `fpr` of the normal windows: always one when there are normal
    windows (flagging none flags no normal one)."""
    _rate("false-positive rate", fpr)
    objective = f"false-positive rate <= {fpr:g}"
    errors, anomalous = _inputs(errors, labels)
    if anomalous.all():
        return Recommendation.unmet(objective, "they hold no normal window to flag")
    candidates = _candidates(errors)
    _, fp = _counts(errors, anomalous, candidates)
    allowed = math.floor(fpr * (~anomalous).sum() + 1e-9)  # in windows: 0.29 * 100 is 28.999999999999996
    chosen = candidates[np.flatnonzero(fp <= allowed)[0]]
    return Recommendation(objective, float(chosen), evaluate(errors, labels, chosen))
