"""`validate` judges one replay: its own run's verdicts, each as the worker gave it (replay/validate.py)."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest
from confluent_kafka import Producer

from anomstream.replay.validate import Collected, collect, judge


def verdict(window_id: str, run: str | None, error: float, threshold: float, scored_at: float, version: str = "v1") -> dict:
    out = {"id": window_id, "error": error, "threshold": threshold, "score": error / threshold, "anomaly": error > threshold,
           "model": {"name": "m", "version": version, "sha256": "x"}, "input": {"topic": "t", "partition": 0, "offset": 0},
           "scored_at": scored_at}  # fmt: skip
    if run is not None:
        out["run"] = run
    return out


def publish(bootstrap: str, topic: str, verdicts: list[dict]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for v in verdicts:
        producer.produce(topic, json.dumps(v).encode(), v["id"].encode())
    assert producer.flush(30) == 0


EXPECTED = {f"w-{i}": i % 2 for i in range(10)}  # ids of one replay and their labels (1 normal)


@pytest.mark.integration
def test_a_second_replay_is_judged_on_its_own_verdicts(kafka_bootstrap: str, new_topic: Callable[..., str]) -> None:
    """Before, the first run's verdicts were judged and every new one called a duplicate."""
    topic = new_topic(partitions=2)
    first = [verdict(f"w-{i}", "run-a", 0.1, 0.5, 100.0 + i) for i in range(10)]
    second = [verdict(f"w-{i}", "run-b", 0.9 if i % 2 == 0 else 0.1, 0.5, 200.0 + i) for i in range(10)]
    second += [verdict("w-3", "run-b", 0.1, 0.5, 250.0), verdict("stray", "run-b", 0.1, 0.5, 251.0)]  # a repeat, and an id not replayed
    publish(kafka_bootstrap, topic, first + second)
    config = {"bootstrap.servers": kafka_bootstrap}

    newest = collect(config, topic, set(EXPECTED), timeout_s=30)
    assert newest.run == "run-b" and len(newest.verdicts) == 10
    assert (newest.duplicates, newest.unexpected, newest.other_runs) == (1, 1, 10)
    assert {v["run"] for v in newest.verdicts.values()} == {"run-b"}

    chosen = collect(config, topic, set(EXPECTED), timeout_s=30, run="run-a")
    assert chosen.run == "run-a" and (chosen.duplicates, chosen.unexpected, chosen.other_runs) == (0, 0, 12)
    result = judge(EXPECTED, newest, 0.99, 0.01)
    assert result.summary["run"] == "run-b" and result.summary["other_runs"] == 10
    assert result.evaluation.accuracy == 1.0  # run b flags exactly the anomalous (even) ids; run a flags none


@pytest.mark.integration
def test_on_an_empty_topic_it_judges_the_first_run_to_arrive(kafka_bootstrap: str, new_topic: Callable[..., str]) -> None:
    import threading
    import time

    topic = new_topic()
    later = threading.Timer(2.0, publish, (kafka_bootstrap, topic, [verdict(f"w-{i}", "late", 0.1, 0.5, time.time()) for i in range(10)]))
    later.start()
    collected = collect({"bootstrap.servers": kafka_bootstrap}, topic, set(EXPECTED), timeout_s=60)
    later.join()
    assert collected.run == "late" and len(collected.verdicts) == 10 and collected.completed_at is not None


def test_after_a_hot_reload_each_verdict_keeps_its_own_threshold() -> None:
    """Two models judged these windows; re-applying the most common threshold to all of them was wrong."""
    collected = Collected(run="r")
    for i in range(10):
        threshold, version = (0.5, "v1") if i < 6 else (0.05, "v2")  # after the reload, a much lower threshold
        collected.verdicts[f"w-{i}"] = verdict(f"w-{i}", "r", 0.1, threshold, float(i), version)
    result = judge(EXPECTED, collected, 0.99, 0.01)
    flagged = [i for i in range(10) if collected.verdicts[f"w-{i}"]["anomaly"]]
    assert flagged == [6, 7, 8, 9]
    confusion = result.evaluation.confusion
    assert confusion.normal_as_anomaly + confusion.anomaly_as_anomaly == len(flagged)
    assert result.summary["models"] == {"v1": 6, "v2": 4} and result.summary["thresholds_seen"] == 2
    # Re-thresholding at the most common threshold (0.5) would have flagged nothing.
    assert int((np.full(10, 0.1) > result.summary["threshold"]).sum()) == 0


def judged(labels: list[int], errors: list[float], threshold: float = 0.5) -> dict:
    """The summary of judging one run of these windows (no broker)."""
    expected = {f"w-{i}": label for i, label in enumerate(labels)}
    collected = Collected(run="r")
    for i, error in enumerate(errors):
        collected.verdicts[f"w-{i}"] = verdict(f"w-{i}", "r", error, threshold, float(i))
    return judge(expected, collected, 0.99, 0.01).summary


def test_on_normal_windows_only_best_f1_is_not_recommended() -> None:
    """Before, best F1 on one class recommended a threshold below every error: flag all of them."""
    summary = judged([1] * 6, [0.1, 0.2, 0.3, 0.4, 0.6, 0.7])
    assert [r["objective"] for r in summary["recommendations"]] == ["false-positive rate <= 0.01"]
    assert summary["recommendations"][0]["anomaly"]["recall"] == 0.0 and summary["recommendations"][0]["threshold"] > 0.7
    unmet = [(r["objective"], r["met"]) for r in summary["not_recommended"]]
    assert unmet == [("best F1", False), ("anomaly recall >= 0.99", False)]
    assert summary["notes"][:2] == [
        "best F1: not reachable on these verdicts (they hold normal windows only, and F1 needs both classes: "
        "on one class it would flag everything).",
        "anomaly recall >= 0.99: not reachable on these verdicts (they hold no anomalous window to catch).",
    ]


def test_on_anomalous_windows_only_only_the_recall_target_is_recommended() -> None:
    summary = judged([0] * 4, [0.1, 0.2, 0.6, 0.7])
    assert [r["objective"] for r in summary["recommendations"]] == ["anomaly recall >= 0.99"]
    assert summary["recommendations"][0]["anomaly"]["recall"] == 1.0
    assert [r["objective"] for r in summary["not_recommended"]] == ["best F1", "false-positive rate <= 0.01"]
    assert summary["notes"][1] == (
        "false-positive rate <= 0.01: not reachable on these verdicts (they hold no normal window to flag)."
    )


def test_a_false_positive_target_met_only_by_flagging_nothing_is_met_so() -> None:
    """Before, the highest midpoint was reported under 'false-positive rate <= 0.01' while it flagged 2 of 3 normal windows."""
    summary = judged([1, 0, 1, 1, 0], [0.1, 0.5, 0.9, 0.9, 0.9])
    (fpr,) = [r for r in summary["recommendations"] if r["objective"] == "false-positive rate <= 0.01"]
    assert fpr["threshold"] > 0.9 and fpr["anomaly"]["recall"] == 0.0
    assert fpr["change"] == {"normal_flagged": -2, "anomalies_missed": 1}  # the live 0.5 flagged the three 0.9s
    assert fpr["met"]
    assert summary["not_recommended"] == []


def test_every_recommendation_says_it_is_fitted_on_the_labels_it_is_scored_on() -> None:
    """In-sample figures are optimistic: the summary said nothing of it."""
    summary = judged([1, 1, 1, 0, 1, 0, 0, 0], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    assert len(summary["recommendations"]) == 3
    for r in summary["recommendations"]:
        assert {"objective", "threshold", "accuracy", "anomaly", "change"} <= r.keys()
        assert r["fitted_on"] == "the same labels it is scored on" and r["met"]
    assert summary["notes"] == [
        "Every recommendation is fitted on the same labels it is scored on (in-sample), so its figures are optimistic: "
        "confirm it on other labelled windows before adopting it."
    ]
