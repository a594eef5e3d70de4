import numpy as np
import pytest

from anomstream.replay import sweep
from anomstream.replay.validate import Collected, judge

ERRORS = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
LABELS = np.array([1, 1, 1, 0, 1, 0, 0, 0])  # 1 normal, 0 anomalous


def test_best_f1_finds_the_split_with_fewest_mistakes():
    best = sweep.best_f1(ERRORS, LABELS)
    # Above 0.35: one normal (0.5) flagged, all 4 anomalies caught: F1 = 8/9, the best available.
    assert 0.3 < best.threshold < 0.4
    assert best.evaluation.anomaly.recall == 1.0
    assert best.evaluation.anomaly.f1 == pytest.approx(8 / 9)


def test_target_recall_is_the_highest_threshold_that_reaches_it():
    chosen = sweep.target_recall(ERRORS, LABELS, 0.75)
    assert chosen.evaluation.anomaly.recall >= 0.75
    assert 0.5 < chosen.threshold < 0.6  # catching 0.6, 0.7, 0.8 is enough


def test_target_fpr_is_the_lowest_threshold_that_keeps_it():
    chosen = sweep.target_fpr(ERRORS, LABELS, 0.0)
    assert chosen.evaluation.confusion.normal_as_anomaly == 0
    assert 0.5 < chosen.threshold < 0.6


def test_judge_reports_missing_ids_and_the_live_metrics():
    """Duplicates are counted by the collector, on a real topic (tests/replay/test_validate.py)."""
    expected = {f"w-{i}": int(label) for i, label in enumerate(LABELS)}
    collected = Collected()
    for i, error in enumerate(ERRORS[:-1]):  # w-7 never arrives
        verdict = {"id": f"w-{i}", "error": float(error), "threshold": 0.45, "anomaly": float(error) > 0.45, "model": {"version": "v1"}}
        collected.verdicts[f"w-{i}"] = verdict
    result = judge(expected, collected, target_recall=0.99, target_fpr=0.01)
    assert not result.healthy
    assert result.summary["missing"] == 1 and result.summary["missing_ids"] == ["w-7"]
    assert result.summary["threshold"] == 0.45
    assert result.evaluation.windows == 7
    assert result.evaluation.confusion.normal_as_anomaly == 1  # 0.5 > 0.45
    assert [r["objective"] for r in result.summary["recommendations"]] == [
        "best F1", "anomaly recall >= 0.99", "false-positive rate <= 0.01",
    ]
