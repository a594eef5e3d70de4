"""`validate --per-source` without a broker: which sources get a threshold, and why the others do not."""

from __future__ import annotations

import numpy as np
import pytest

from anomstream.cli import main
from anomstream.replay.per_source import judge_sources
from anomstream.replay.validate import Collected, judge


def _source(rng: np.random.Generator, n: int, gain: float) -> tuple[np.ndarray, np.ndarray]:
    """Normal errors around 0.02, anomalous ones around 0.08 (every fourth window), all times `gain`."""
    labels = (np.arange(n) % 4 != 0).astype(np.int8)
    errors = np.where(labels == 1, 0.02, 0.08) * (1 + 0.1 * rng.standard_normal(n)) * gain
    return errors, labels


def test_a_louder_source_gets_its_own_threshold_and_a_quiet_one_keeps_the_global() -> None:
    rng = np.random.default_rng(0)
    steady, steady_labels = _source(rng, 200, 1.0)
    loud, loud_labels = _source(rng, 200, 3.0)  # its normal errors (0.06) sit above the global threshold
    errors, labels = np.concatenate([steady, loud]), np.concatenate([steady_labels, loud_labels])
    sources = ["steady"] * 200 + ["loud"] * 200
    found = judge_sources(errors, labels, sources, global_threshold=0.04)
    by_source = {entry["source"]: entry for entry in found["sources"]}
    assert by_source["loud"]["global"]["false_positive_rate"] > 0.9
    assert by_source["loud"]["recommended"]["false_positive_rate"] < 0.05
    assert by_source["loud"]["recommended"]["accuracy"] > by_source["loud"]["global"]["accuracy"]
    assert set(found["thresholds"]) <= {"steady", "loud"} and found["thresholds"]["loud"] > 0.1
    for entry in found["sources"]:  # nobody's accuracy drops
        assert entry["recommended"] is None or entry["recommended"]["accuracy"] >= entry["global"]["accuracy"]


def test_a_source_with_too_few_windows_gets_no_recommendation_and_the_report_says_why() -> None:
    rng = np.random.default_rng(1)
    errors, labels = _source(rng, 60, 3.0)
    sources = ["big"] * 50 + ["small"] * 10
    found = judge_sources(errors, labels, sources, global_threshold=0.04, min_windows=50)
    small = next(entry for entry in found["sources"] if entry["source"] == "small")
    assert small["recommended"] is None and "small" not in found["thresholds"]
    assert small["reason"] == "10 labelled windows, fewer than --min-source-windows 50: it keeps the global threshold"
    assert "big" in found["thresholds"]


def test_an_unreachable_objective_and_an_accuracy_loss_are_reasons_too() -> None:
    rng = np.random.default_rng(2)
    normal_only = 0.02 * (1 + 0.1 * rng.standard_normal(60))
    found = judge_sources(normal_only, np.ones(60, np.int8), ["calm"] * 60, global_threshold=0.04)
    assert found["sources"][0]["reason"].startswith("best F1 is not reachable on its windows (they hold normal windows only")
    errors, labels = _source(rng, 200, 1.0)  # the global threshold already separates the classes perfectly
    strict = judge_sources(errors, labels, ["x"] * 200, 0.04, objective="target-fpr", target_fpr=0.0)
    assert strict["sources"][0]["recommended"] is not None  # target FPR 0: met with no accuracy lost
    errors[np.flatnonzero(labels == 1)[:3]] = 0.2  # three normal windows above every anomaly: FPR 0 means flagging nothing
    lossy = judge_sources(errors, labels, ["x"] * 200, 0.04, "target-fpr", target_fpr=0.0)
    entry = lossy["sources"][0]
    assert entry["recommended"] is None and "would lower its accuracy from" in entry["reason"]


def test_windows_without_a_source_are_noted_and_never_get_a_threshold() -> None:
    rng = np.random.default_rng(3)
    errors, labels = _source(rng, 100, 1.0)
    found = judge_sources(errors, labels, [None] * 40 + ["a"] * 60, global_threshold=0.04)
    assert [entry["source"] for entry in found["sources"]] == ["a"]
    assert found["notes"] == ["40 verdicts carry no source: such windows are always judged by the global threshold."]


def test_judge_hands_each_verdicts_source_and_the_global_threshold_to_per_source() -> None:
    collected = Collected(run="r")
    for i, (source, threshold, scope) in enumerate([("a", 0.5, "global"), ("b", 0.9, "source"), (None, 0.5, "global")]):
        collected.verdicts[f"w{i}"] = {"id": f"w{i}", "source": source, "error": 0.6, "threshold": threshold, "threshold_scope": scope,
                                       "anomaly": 0.6 > threshold, "model": {"version": "v"}, "scored_at": 1.0}  # fmt: skip
    validation = judge({"w0": 1, "w1": 0, "w2": 1}, collected, 0.99, 0.01)
    assert validation.sources == ("a", "b", None) and validation.global_threshold == 0.5
    assert validation.summary["threshold"] == 0.5 and validation.summary["threshold_scopes"] == {"global": 2, "source": 1}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--per-source", "--min-source-windows", "1"], "--min-source-windows 1 is out of range; see `anomstream validate --help`."),
        (["--write-artifact", "out"], "--write-artifact needs --per-source and --model (the artifact to copy the thresholds into)."),
        (["--per-source", "--write-artifact", "out"], "--write-artifact needs --per-source and --model"),
    ],
)
def test_bad_per_source_flags_are_one_sentence(flags, message, capsys) -> None:
    assert main(["validate", "--data", "nowhere.csv", *flags]) == 2
    assert message in capsys.readouterr().err


def test_the_validation_report_has_the_per_source_table_and_the_drift_line(tmp_path) -> None:
    from anomstream.models import drift
    from anomstream.replay.report import write_validation

    rng = np.random.default_rng(4)
    steady, steady_labels = _source(rng, 200, 1.0)
    loud, loud_labels = _source(rng, 200, 3.0)
    collected = Collected(run="r")
    for i, (error, source) in enumerate(zip(np.concatenate([steady, loud]), ["steady"] * 200 + ["loud"] * 200)):
        collected.verdicts[f"w{i}"] = {"id": f"w{i}", "source": source, "error": float(error), "threshold": 0.04, "threshold_scope": "global",
                                       "anomaly": bool(error > 0.04), "model": {"version": "v"}, "scored_at": 1.0}  # fmt: skip
    labels = np.concatenate([steady_labels, loud_labels])
    validation = judge({f"w{i}": int(label) for i, label in enumerate(labels)}, collected, 0.99, 0.01)
    reference = drift.DriftReference.of(0.02 * (1 + 0.1 * rng.standard_normal(300)))
    summary = {
        "scores_topic": "t", **validation.summary,
        "per_source": judge_sources(validation.errors, validation.labels, validation.sources, global_threshold=0.04),
        "drift": drift.summary(reference, 0.04, validation.errors, validation.labels == 1),
    }  # fmt: skip
    write_validation(tmp_path, summary, validation)
    text = (tmp_path / "report.md").read_text()
    loud_row = next(line for line in text.splitlines() if line.startswith("| loud |"))
    cells = [cell.strip() for cell in loud_row.strip("|").split("|")]
    assert cells[1] == "200" and float(cells[2]) == pytest.approx(summary["per_source"]["thresholds"]["loud"], abs=1e-5)
    assert float(cells[3]) > 0.9 > 0.05 > float(cells[4])  # FPR with the global threshold, then with its own
    assert "| steady | 200 |" in text
    # The loud source's normal errors (0.06) sit above the threshold: only the steady ones are compared, and they match.
    assert f"- {drift.sentence(summary['drift'])}" in text and summary["drift"]["distance"] < 0.15
