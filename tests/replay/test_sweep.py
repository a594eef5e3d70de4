import numpy as np
import pytest

from anomstream.errors import ThresholdError
from anomstream.models import report as models_report
from anomstream.models.evaluate import evaluate
from anomstream.replay import sweep
from anomstream.replay.report import write_validation
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


def test_target_fpr_is_reached_by_flagging_nothing_when_the_top_errors_are_normal():
    """Before, with no candidate above the largest error, the fallback was presented as meeting the target at 67% FPR."""
    errors = np.array([0.1, 0.5, 0.9, 0.9, 0.9])
    labels = np.array([1, 0, 1, 1, 0])  # two normal windows tie with an anomaly at the top
    chosen = sweep.target_fpr(errors, labels, 0.01)
    assert chosen.evaluation.confusion.normal_as_anomaly == 0
    assert chosen.threshold > 0.9 and chosen.evaluation.anomaly.recall == 0.0  # the only way: flag nothing
    assert chosen.met and chosen.objective == "false-positive rate <= 0.01"


def test_targets_count_windows_not_products_of_floats():
    """0.07 * 100 is 7.000000000000001 and 0.29 * 100 is 28.999999999999996: each cost one window before."""
    anomalies, normals = np.arange(1.0, 101.0), np.linspace(0.01, 0.5, 10)
    errors, labels = np.concatenate([anomalies, normals]), np.array([0] * 100 + [1] * 10)
    assert 93 < sweep.target_recall(errors, labels, 0.07).threshold < 94  # catches 94..100: 7 of 100
    errors, labels = np.concatenate([np.arange(1.0, 101.0), [1000.0] * 5]), np.array([1] * 100 + [0] * 5)
    assert 71 < sweep.target_fpr(errors, labels, 0.29).threshold < 72  # flags 72..100: 29 of 100


@pytest.mark.parametrize("seed", range(5))
def test_each_target_met_is_the_extreme_threshold_that_meets_it(seed):
    rng = np.random.default_rng(seed)
    errors = np.round(rng.gamma(2.0, 1.0, 300), 1)  # ties, and ties across labels
    labels = (rng.random(300) > 0.2 + 0.5 * (errors > 3)).astype(np.int8)
    distinct = np.unique(errors)
    for target in (0.5, 0.9, 0.99, 1.0):
        chosen = sweep.target_recall(errors, labels, target)
        assert chosen.met and chosen.evaluation.anomaly.recall >= target
        higher = distinct[distinct > chosen.threshold]
        if higher.size:  # raising it past the next error misses too many
            assert evaluate(errors, labels, higher[0]).anomaly.recall < target
    for target in (0.0, 0.01, 0.1, 0.5):
        chosen = sweep.target_fpr(errors, labels, target)
        c = chosen.evaluation.confusion
        assert chosen.met and c.normal_as_anomaly <= target * (c.normal_as_normal + c.normal_as_anomaly)
        lower = distinct[distinct < chosen.threshold]
        if lower.size:  # lowering it below the next error flags too many
            c = evaluate(errors, labels, lower[-1] - 0.01).confusion
            assert c.normal_as_anomaly > target * (c.normal_as_normal + c.normal_as_anomaly)


@pytest.mark.parametrize(
    ("recommend", "labels", "reason"),
    [
        (lambda e, y: sweep.best_f1(e, y), [1, 1, 1], "they hold normal windows only, and F1 needs both classes"),
        (lambda e, y: sweep.best_f1(e, y), [0, 0, 0], "they hold anomalous windows only, and F1 needs both classes"),
        (lambda e, y: sweep.target_recall(e, y, 0.99), [1, 1, 1], "they hold no anomalous window to catch"),
        (lambda e, y: sweep.target_fpr(e, y, 0.01), [0, 0, 0], "they hold no normal window to flag"),
    ],
)
def test_an_objective_one_class_cannot_measure_recommends_nothing(recommend, labels, reason):
    """Before, best F1 on normal windows only recommended flagging every one of them."""
    chosen = recommend(np.array([0.1, 0.2, 0.3]), np.array(labels))
    assert (chosen.met, chosen.threshold, chosen.evaluation) == (False, None, None)
    assert chosen.reason.startswith(reason)


@pytest.mark.parametrize(
    ("recommend", "message"),
    [
        (lambda: sweep.target_recall(ERRORS, LABELS, 1.5), "a target anomaly recall must be between 0 and 1, got 1.5"),
        (lambda: sweep.target_recall(ERRORS, LABELS, -0.1), "a target anomaly recall must be between 0 and 1, got -0.1"),
        (lambda: sweep.target_fpr(ERRORS, LABELS, 1.01), "a target false-positive rate must be between 0 and 1, got 1.01"),
        (lambda: sweep.target_fpr(ERRORS, LABELS, float("nan")), "a target false-positive rate must be between 0 and 1, got nan"),
    ],
)
def test_a_target_out_of_range_says_so(recommend, message):
    """Before, recall >= 1.5 was presented as met by the lowest threshold."""
    with pytest.raises(ThresholdError) as caught:
        recommend()
    assert str(caught.value).startswith(message)


def test_the_report_says_recommendations_are_in_sample_and_what_is_not_reachable(tmp_path, monkeypatch):
    monkeypatch.setattr(models_report, "can_plot", lambda: False)  # the figures are not what is checked here
    expected = {f"w-{i}": 1 for i in range(4)}  # normal windows only
    collected = Collected(run="r")
    for i, error in enumerate([0.1, 0.2, 0.3, 0.9]):
        verdict = {"id": f"w-{i}", "error": error, "threshold": 0.5, "anomaly": error > 0.5, "model": {"version": "v1"}}
        collected.verdicts[f"w-{i}"] = verdict
    validation = judge(expected, collected, target_recall=0.99, target_fpr=0.01)
    write_validation(tmp_path, {**validation.summary, "scores_topic": "scores"}, validation)
    text = (tmp_path / "report.md").read_text()
    assert "| false-positive rate <= 0.01 | 0.90000 |" in text
    assert "| best F1 |" not in text
    assert "best F1: not reachable on these verdicts (they hold normal windows only" in text
    assert "anomaly recall >= 0.99: not reachable on these verdicts (they hold no anomalous window to catch)." in text
    assert "Every recommendation is fitted on the same labels it is scored on (in-sample), so its figures are optimistic" in text
