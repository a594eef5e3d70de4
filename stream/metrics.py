"""Prometheus metrics, declared once. Names and labels are a contract (DESIGN.md, dashboards, alerts).

No per-id or per-source labels: cardinality stays bounded whatever the traffic.
"""

from __future__ import annotations

from collections import Counter as Tally
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from prometheus_client import Counter, Gauge, Histogram

from anomstream.stream.codec import REASONS

WINDOWS_CONSUMED = Counter("anomstream_windows_consumed_total", "Messages read from the input topic, valid or not.")
WINDOWS_SCORED = Counter("anomstream_windows_scored_total", "Windows scored and published to the scores topic.")
ANOMALIES = Counter("anomstream_anomalies_total", "Windows whose reconstruction error was above the threshold.")
INVALID = Counter("anomstream_invalid_messages_total", "Messages sent to the dead-letter topic, by reason.", ["reason"])
DEAD_LETTERS_TRUNCATED = Counter(
    "anomstream_dead_letters_truncated_total",
    "Dead letters sent as a prefix of the input (header error.truncated): the whole copy did not fit the DLQ.",
)
PRODUCER_REPLACEMENTS = Counter(
    "anomstream_producer_replacements_total",
    "Transactional producers replaced because librdkafka wedged in a transactional call (after broker restarts).",
)
MODEL_RELOADS = Counter("anomstream_model_reloads_total", "Hot reloads of the model artifact, by result.", ["result"])

RECONSTRUCTION_ERROR = Histogram(
    "anomstream_reconstruction_error",
    "Mean absolute reconstruction error per window.",
    buckets=(0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.05, 0.06, 0.08, 0.1, 0.15, 0.2, 0.5),
)
BATCH_SIZE = Histogram(
    "anomstream_batch_size", "Messages per micro-batch.", buckets=(1, 4, 16, 64, 128, 256, 512, 1024, 2048, 4096)
)
BATCH_DURATION = Histogram(
    "anomstream_batch_duration_seconds",
    "Time per micro-batch stage.",
    ["stage"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
END_TO_END_LATENCY = Histogram(
    "anomstream_end_to_end_latency_seconds",
    "From the input message's timestamp to its verdict being committed.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

THRESHOLD = Gauge("anomstream_threshold", "The live model's reconstruction-error threshold.")
CONSUMER_LAG = Gauge(
    "anomstream_consumer_lag", "Messages between the worker's last commit and the partition's end (its last stable offset).", ["partition"]
)
# Drift (stream/drift.py): computed at scrape time from the latest live errors and the artifact's reference.
# The label is `q`, not `quantile`: Prometheus reserves that one for summaries (promtool check metrics refuses it).
ERROR_DRIFT = Gauge(
    "anomstream_error_drift",
    "Kolmogorov-Smirnov distance (0-1) between the latest live reconstruction errors and the model's reference errors;"
    " NaN without a reference or with too few live errors.",
)
LIVE_ERROR_QUANTILE = Gauge("anomstream_live_error_quantile", "Quantiles of the latest live reconstruction errors (the drift window).", ["q"])
REFERENCE_ERROR_QUANTILE = Gauge(
    "anomstream_reference_error_quantile", "Quantiles of the model's reference errors (held-out normal windows).", ["q"]
)
MODEL_INFO = Gauge("anomstream_model_info", "The live model (value 1) and the runtime it runs on.", ["name", "version", "runtime"])

STAGES = ("poll", "decode", "score", "produce", "commit")

# Pre-create the label sets so every series exists (at zero) from the first scrape:
# rate() and absent() in alerts then behave from the start.
for _reason in REASONS:
    INVALID.labels(_reason)
for _result in ("success", "failed"):
    MODEL_RELOADS.labels(_result)
for _stage in STAGES:
    BATCH_DURATION.labels(_stage)


def observe_many(histogram: Histogram, values: np.ndarray) -> None:
    """`histogram.observe` for a whole batch at once: per-window calls were a visible slice of the profile.

    prometheus_client keeps one counter per bucket (an observation lands in the first bucket whose
    upper bound is >= it) plus the sum; there is no public bulk API, so this fills those directly.
    `tests/stream/test_metrics.py` checks it against `observe` one value at a time.
    """
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]  # observe() puts NaN in no bucket; do the same
    if not len(values):
        return
    bounds = np.asarray(histogram._upper_bounds)
    counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds))
    histogram._sum.inc(float(values.sum()))
    for bucket, count in zip(histogram._buckets, counts.tolist()):
        if count:
            bucket.inc(count)


@dataclass
class BatchTally:
    """What one batch adds to the counters, published only once the batch is committed,
    so the counters agree with what readers of the outputs can see."""

    consumed: int
    scored: int
    anomalies: int
    errors: np.ndarray  # reconstruction errors of the scored windows
    produced_ms: np.ndarray  # input message timestamps (ms since the epoch; <= 0 when unknown)
    invalid: Tally[str] = field(default_factory=Tally)
    offsets: list[Any] = field(default_factory=list)  # TopicPartitions: where the batch ends, committed with it
    model_version: str = ""  # of the model that scored the batch: its errors join that model's drift window only

    def publish(self, now: float) -> None:
        BATCH_SIZE.observe(self.consumed)
        WINDOWS_CONSUMED.inc(self.consumed)
        WINDOWS_SCORED.inc(self.scored)
        if self.anomalies:
            ANOMALIES.inc(self.anomalies)
        for reason, count in self.invalid.items():
            INVALID.labels(reason).inc(count)
        observe_many(RECONSTRUCTION_ERROR, self.errors)
        stamped = self.produced_ms[self.produced_ms > 0]
        observe_many(END_TO_END_LATENCY, np.maximum(0.0, now - stamped / 1000.0))
