"""Threshold recommendations from labelled errors: best F1, a target recall, a target false-positive rate.

These use labels, so they are advice that `validate` reports next to the live
threshold, never a silent default. Anomaly is the positive class throughout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anomstream.models.evaluate import Evaluation, evaluate


@dataclass(frozen=True)
class Recommendation:
    objective: str  # e.g. "best F1", "anomaly recall >= 0.99"
    threshold: float
    evaluation: Evaluation


def _candidates(errors: np.ndarray) -> np.ndarray:
    """Midpoints between neighbouring distinct errors, plus one below the lowest: every distinct verdict split."""
    distinct = np.unique(errors)
    below = distinct[0] - max(1e-9, abs(distinct[0]) * 1e-6)
    return np.concatenate([[below], (distinct[:-1] + distinct[1:]) / 2])


def _counts(errors: np.ndarray, anomalous: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and false positives at each candidate (verdict: error > threshold), in O(n log n)."""
    order = np.sort(errors[anomalous])
    normal = np.sort(errors[~anomalous])
    tp = len(order) - np.searchsorted(order, candidates, side="right")
    fp = len(normal) - np.searchsorted(normal, candidates, side="right")
    return tp, fp


def best_f1(errors: np.ndarray, labels: np.ndarray) -> Recommendation:
    errors = np.asarray(errors, dtype=np.float64)
    anomalous = ~np.asarray(labels).astype(bool)
    candidates = _candidates(errors)
    tp, fp = _counts(errors, anomalous, candidates)
    f1 = 2 * tp / np.maximum(1, 2 * tp + fp + (anomalous.sum() - tp))
    best = candidates[int(np.argmax(f1))]
    return Recommendation("best F1", float(best), evaluate(errors, labels, best))


def target_recall(errors: np.ndarray, labels: np.ndarray, recall: float) -> Recommendation:
    """The highest threshold that still catches at least `recall` of the anomalies."""
    errors = np.asarray(errors, dtype=np.float64)
    anomalous = ~np.asarray(labels).astype(bool)
    candidates = _candidates(errors)
    tp, _ = _counts(errors, anomalous, candidates)
    ok = tp >= recall * max(1, anomalous.sum())
    chosen = candidates[np.flatnonzero(ok)[-1]] if ok.any() else candidates[0]
    return Recommendation(f"anomaly recall >= {recall:g}", float(chosen), evaluate(errors, labels, chosen))


def target_fpr(errors: np.ndarray, labels: np.ndarray, fpr: float) -> Recommendation:
    """The lowest threshold that flags at most `fpr` of the normal windows."""
    errors = np.asarray(errors, dtype=np.float64)
    anomalous = ~np.asarray(labels).astype(bool)
    candidates = _candidates(errors)
    _, fp = _counts(errors, anomalous, candidates)
    ok = fp <= fpr * max(1, (~anomalous).sum())
    chosen = candidates[np.flatnonzero(ok)[0]] if ok.any() else candidates[-1]
    return Recommendation(f"false-positive rate <= {fpr:g}", float(chosen), evaluate(errors, labels, chosen))
