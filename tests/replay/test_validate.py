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
