"""Verdict quality from errors and labels, in both conventions.

The tutorial counts *normal* as the positive class (its accuracy, precision,
recall); operators care about anomalies, so ROC-AUC, PR-AUC and the
`anomaly.*` figures count *anomalous* as positive. Labels: 1 normal, 0 anomalous.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AnomalyScores(_Strict):
    precision: float
    recall: float
    f1: float


class Confusion(_Strict):
    normal_as_normal: int
    normal_as_anomaly: int
    anomaly_as_normal: int
    anomaly_as_anomaly: int


class Evaluation(_Strict):
    windows: int
    normal: int
    anomalous: int
    threshold: float
    accuracy: float
    precision: float  # normal = positive, as the tutorial
    recall: float  # normal = positive, as the tutorial
    roc_auc: float | None  # anomaly = positive; None when only one class is present
    pr_auc: float | None
    anomaly: AnomalyScores
    confusion: Confusion


def evaluate(errors: np.ndarray, labels: np.ndarray, threshold: float, anomalous: np.ndarray | None = None) -> Evaluation:
    """Score verdicts `error > threshold` against labels; or the verdicts given as `anomalous` (live ones, which
    may come from several models after a hot reload, each with its own threshold)."""
    from sklearn import metrics  # here, not at the top: the worker imports this module's records, not scikit-learn

    errors = np.asarray(errors, dtype=np.float64)
    normal = np.asarray(labels).astype(bool)
    if errors.shape != normal.shape:
        raise ValueError(f"{errors.shape[0]} errors but {normal.shape[0]} labels")
    anomalous_pred = errors > threshold if anomalous is None else np.asarray(anomalous, dtype=bool)
    predicted_normal = ~anomalous_pred
    both_classes = normal.any() and (~normal).any()
    zero = {"zero_division": 0.0}
    return Evaluation(
        windows=int(errors.size),
        normal=int(normal.sum()),
        anomalous=int((~normal).sum()),
        threshold=float(threshold),
        accuracy=float(metrics.accuracy_score(normal, predicted_normal)),
        precision=float(metrics.precision_score(normal, predicted_normal, **zero)),
        recall=float(metrics.recall_score(normal, predicted_normal, **zero)),
        roc_auc=float(metrics.roc_auc_score(~normal, errors)) if both_classes else None,
        pr_auc=float(metrics.average_precision_score(~normal, errors)) if both_classes else None,
        anomaly=AnomalyScores(
            precision=float(metrics.precision_score(~normal, anomalous_pred, **zero)),
            recall=float(metrics.recall_score(~normal, anomalous_pred, **zero)),
            f1=float(metrics.f1_score(~normal, anomalous_pred, **zero)),
        ),
        confusion=Confusion(
            normal_as_normal=int((normal & predicted_normal).sum()),
            normal_as_anomaly=int((normal & anomalous_pred).sum()),
            anomaly_as_normal=int((~normal & predicted_normal).sum()),
            anomaly_as_anomaly=int((~normal & anomalous_pred).sum()),
        ),
    )
