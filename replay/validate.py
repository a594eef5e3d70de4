"""Read the worker's verdicts back, join them to the labels, and judge the live threshold.

Reads with `read_committed` from the start of every partition (no consumer
group, nothing committed) until every expected id of one replay (its run id)
has a verdict or the timeout passes, then reports missing ids and duplicates
within that run: both must be zero in a healthy run. Verdicts of other runs on
the same topic are counted and left out.
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
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from anomstream.errors import ConfigError
from anomstream.models.evaluate import Evaluation, evaluate
from anomstream.replay import sweep
from anomstream.stream import clients

log = logging.getLogger("anomstream.validate")

DRAIN_S = 1.5  # after the last expected verdict, keep reading this long to catch duplicates
IN_SAMPLE = (
    f"Every recommendation is fitted on {sweep.FITTED_ON} (in-sample), so its figures are optimistic: "
    "confirm it on other labelled windows before adopting it."
)


@dataclass
class Collected:
    run: str | None = None  # the replay whose verdicts these are
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    duplicates: int = 0
    unexpected: int = 0
    other_runs: int = 0  # verdicts of earlier (or other) replays on the same topic: not judged
    seconds: float = 0.0
    completed_at: float | None = None  # time.monotonic() when the last expected verdict arrived


class _Runs:
    """Verdicts read so far, by the run that replayed their windows (None: a producer that stamps no run)."""

    def __init__(self, expected: set[str]) -> None:
        self.expected = expected
        self.by_run: dict[str | None, Collected] = {}
        self.newest: tuple[float, str | None] | None = None  # (scored_at, run) of the latest verdict seen

    def add(self, verdict: dict[str, Any]) -> tuple[Collected, bool]:
        """The run the verdict belongs to, and whether it was a first verdict for an expected id."""
        run = verdict.get("run")
        found = self.by_run.setdefault(run, Collected(run=run))
        scored_at = verdict.get("scored_at") or 0.0
        if self.newest is None or scored_at >= self.newest[0]:
            self.newest = (scored_at, run)
        window_id = verdict.get("id")
        if window_id not in self.expected:
            found.unexpected += 1
        elif window_id in found.verdicts:
            found.duplicates += 1
        else:
            found.verdicts[window_id] = verdict
            return found, True
        return found, False


def collect(
    config: dict[str, Any],
    topic: str,
    expected: set[str],
    timeout_s: float,
    advance: Callable[..., None] | None = None,
    run: str | None = None,
) -> Collected:
    """The verdicts of one replay: `run`, or else the newest run on the topic when the read began (or, on an empty
    topic, the first to arrive). Verdicts of other runs are counted and left out, so a second replay and validate
    on the same topic judge their own verdicts, not the first run's."""
    consumer = clients.create(
        Consumer,
        {
            **config,
            "group.id": f"anomstream-validate-{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,  # tells when the verdicts already on the topic are all read
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
    runs = _Runs(expected)
    at_end: set[int] = set()
    chosen: Collected | None = None if run is None else runs.by_run.setdefault(run, Collected(run=run))
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
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        at_end.add(message.partition())
                    continue
                found, accepted = runs.add(decoder.decode(message.value()))
                if chosen is None and accepted and len(at_end) == len(metadata.partitions):
                    chosen = found  # the topic was empty when the read began: the first replay to arrive
                    log.info("validating run %s, the first to arrive on %s (pass --run-id to choose another)", chosen.run, topic)
                    if advance:
                        advance(len(chosen.verdicts) - 1)
                if accepted and found is chosen and advance:
                    advance(1)
            if chosen is None and len(at_end) == len(metadata.partitions) and runs.newest is not None:
                chosen = runs.by_run[runs.newest[1]]
                log.info("validating run %s, the newest on %s (pass --run-id to choose another)", chosen.run, topic)
                if advance and chosen.verdicts:
                    advance(len(chosen.verdicts))
            if chosen is not None and done_at is None and len(chosen.verdicts) == len(expected):
                done_at = chosen.completed_at = time.monotonic()
    finally:
        consumer.close()
    result = chosen or Collected(run=run)
    result.other_runs = sum(len(c.verdicts) + c.duplicates + c.unexpected for c in runs.by_run.values() if c is not result)
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
    sources: tuple[str | None, ...] = ()  # each judged verdict's `source`, in the order of `errors` (--per-source)
    global_threshold: float | None = None  # the threshold of the verdicts judged by the global one, the most common


def judge(expected: dict[str, int], collected: Collected, target_recall: float, target_fpr: float) -> Validation:
    """Metrics of the live verdicts, and what each recommended threshold would have changed."""
    ids = [window_id for window_id in expected if window_id in collected.verdicts]
    missing = [window_id for window_id in expected if window_id not in collected.verdicts]
    verdicts = [collected.verdicts[window_id] for window_id in ids]
    errors = np.array([v["error"] for v in verdicts], dtype=np.float64)
    labels = np.array([expected[window_id] for window_id in ids], dtype=np.int8)
    thresholds = Counter(v["threshold"] for v in verdicts)
    # A source's own threshold (threshold_scope "source") is not the live global one; verdicts before the field: global.
    global_thresholds = Counter(v["threshold"] for v in verdicts if v.get("threshold_scope", "global") == "global")
    sources = tuple(v.get("source") for v in verdicts)
    models = Counter(v["model"]["version"] for v in verdicts)
    summary: dict[str, Any] = {
        "run": collected.run,
        "other_runs": collected.other_runs,
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
    live = (global_thresholds or thresholds).most_common(1)[0][0]
    # Each verdict as the worker gave it: after a hot reload, windows were judged by different thresholds.
    evaluation = evaluate(errors, labels, live, anomalous=np.array([bool(v["anomaly"]) for v in verdicts]))
    scopes = Counter(v.get("threshold_scope", "global") for v in verdicts)
    summary.update(threshold=live, thresholds_seen=len(thresholds), threshold_scopes=dict(scopes), test=evaluation.model_dump())
    recommendations = [
        sweep.best_f1(errors, labels),
        sweep.target_recall(errors, labels, target_recall),
        sweep.target_fpr(errors, labels, target_fpr),
    ]
    met = [r for r in recommendations if r.met]
    unmet = [r for r in recommendations if not r.met]
    # Only met ones carry a threshold and figures, so every entry of "recommendations" is one to print as is.
    summary["recommendations"] = [_compare(evaluation, r) for r in met]
    summary["not_recommended"] = [{"objective": r.objective, "met": False, "reason": r.reason} for r in unmet]
    summary["notes"] = [f"{r.objective}: not reachable on these verdicts ({r.reason})." for r in unmet]
    if met:
        summary["notes"].append(IN_SAMPLE)
    summary["healthy"] = healthy
    shown = {"live": live, **{r.objective: r.threshold for r in met if r.objective == "best F1"}}
    return Validation(summary, evaluation, errors, labels, shown, healthy, sources, live if global_thresholds else None)


def _compare(live: Evaluation, recommendation: sweep.Recommendation) -> dict[str, Any]:
    new, old = recommendation.evaluation, live
    return {
        "objective": recommendation.objective,
        "met": recommendation.met,
        "fitted_on": sweep.FITTED_ON,
        "threshold": recommendation.threshold,
        "accuracy": new.accuracy,
        "anomaly": new.anomaly.model_dump(),
        "change": {
            "normal_flagged": new.confusion.normal_as_anomaly - old.confusion.normal_as_anomaly,
            "anomalies_missed": new.confusion.anomaly_as_normal - old.confusion.anomaly_as_normal,
        },
    }
