"""Read the worker's verdicts back, join them to the labels, and judge the live threshold.

Reads with `read_committed` from the start of every partition (no consumer
group, nothing committed) until every expected id has a verdict or the
timeout passes, then reports missing ids and duplicates: both must be zero in
a healthy run.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from anomstream.errors import ConfigError
from anomstream.models.evaluate import Evaluation, evaluate
from anomstream.replay import sweep
from anomstream.stream import clients

log = logging.getLogger("anomstream.validate")

DRAIN_S = 1.5  # after the last expected verdict, keep reading this long to catch duplicates


@dataclass
class Collected:
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    duplicates: int = 0
    unexpected: int = 0
    seconds: float = 0.0
    completed_at: float | None = None  # time.monotonic() when the last expected verdict arrived


def collect(
    config: dict[str, Any],
    topic: str,
    expected: set[str],
    timeout_s: float,
    advance: Callable[..., None] | None = None,
) -> Collected:
    consumer = clients.create(
        Consumer,
        {
            **config,
            "group.id": f"anomstream-validate-{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        },
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
    except KafkaException as exc:
        consumer.close()
        raise ConfigError(f"Kafka at {config['bootstrap.servers']} did not answer ({exc.args[0].str()}).") from None
    if metadata is None or metadata.error is not None or not metadata.partitions:
        consumer.close()
        raise ConfigError(f"topic {topic} does not exist on {config['bootstrap.servers']}: check --scores-topic.")
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in metadata.partitions])
    result = Collected()
    decoder = msgspec.json.Decoder()
    started = time.monotonic()
    done_at: float | None = None
    try:
        while True:
            now = time.monotonic()
            if done_at is None and now - started > timeout_s:
                break
            if done_at is not None and now - done_at > DRAIN_S:
                break
            for message in consumer.consume(1000, timeout=0.2):
                if message.error() is not None:
                    continue
                verdict = decoder.decode(message.value())
                window_id = verdict.get("id")
                if window_id not in expected:
                    result.unexpected += 1
                elif window_id in result.verdicts:
                    result.duplicates += 1
                else:
                    result.verdicts[window_id] = verdict
                    if advance:
                        advance(1)
            if done_at is None and len(result.verdicts) == len(expected):
                done_at = result.completed_at = time.monotonic()
    finally:
        consumer.close()
    result.seconds = time.monotonic() - started
    return result


@dataclass(frozen=True)
class Validation:
    summary: dict[str, Any]
    evaluation: Evaluation | None
    errors: np.ndarray
    labels: np.ndarray
    thresholds: dict[str, float]
    healthy: bool


def judge(expected: dict[str, int], collected: Collected, target_recall: float, target_fpr: float) -> Validation:
    """Metrics of the live verdicts, and what each recommended threshold would have changed."""
    ids = [window_id for window_id in expected if window_id in collected.verdicts]
    missing = [window_id for window_id in expected if window_id not in collected.verdicts]
    verdicts = [collected.verdicts[window_id] for window_id in ids]
    errors = np.array([v["error"] for v in verdicts], dtype=np.float64)
    labels = np.array([expected[window_id] for window_id in ids], dtype=np.int8)
    thresholds = Counter(v["threshold"] for v in verdicts)
    models = Counter(v["model"]["version"] for v in verdicts)
    summary: dict[str, Any] = {
        "expected": len(expected),
        "received": len(ids),
        "missing": len(missing),
        "missing_ids": missing[:20],
        "duplicates": collected.duplicates,
        "unexpected": collected.unexpected,
        "seconds": round(collected.seconds, 3),
        "models": dict(models),
    }
    healthy = not missing and not collected.duplicates
    if not verdicts:
        summary["healthy"] = False
        return Validation(summary, None, errors, labels, {}, False)
    live = thresholds.most_common(1)[0][0]
    evaluation = evaluate(errors, labels, live)
    summary.update(threshold=live, thresholds_seen=len(thresholds), test=evaluation.model_dump())
    recommendations = [sweep.best_f1(errors, labels)]
    if (labels == 0).any():
        recommendations.append(sweep.target_recall(errors, labels, target_recall))
    if (labels == 1).any():
        recommendations.append(sweep.target_fpr(errors, labels, target_fpr))
    summary["recommendations"] = [_compare(evaluation, r) for r in recommendations]
    summary["healthy"] = healthy
    shown = {"live": live, **{r.objective: r.threshold for r in recommendations[:1]}}
    return Validation(summary, evaluation, errors, labels, shown, healthy)


def _compare(live: Evaluation, recommendation: sweep.Recommendation) -> dict[str, Any]:
    new, old = recommendation.evaluation, live
    return {
        "objective": recommendation.objective,
        "threshold": recommendation.threshold,
        "accuracy": new.accuracy,
        "anomaly": new.anomaly.model_dump(),
        "change": {
            "normal_flagged": new.confusion.normal_as_anomaly - old.confusion.normal_as_anomaly,
            "anomalies_missed": new.confusion.anomaly_as_normal - old.confusion.anomaly_as_normal,
        },
    }
