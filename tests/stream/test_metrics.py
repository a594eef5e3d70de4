"""Bulk histogram updates must expose exactly what per-value `observe` calls would."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry, Histogram

from anomstream.stream.metrics import observe_many

BUCKETS = (0.01, 0.05, 0.1, 1.0)


def _pair() -> tuple[Histogram, Histogram, CollectorRegistry, CollectorRegistry]:
    one, many = CollectorRegistry(), CollectorRegistry()
    return Histogram("h", "h", buckets=BUCKETS, registry=one), Histogram("h", "h", buckets=BUCKETS, registry=many), one, many


def test_observe_many_equals_observe_one_by_one() -> None:
    # Values on bucket bounds, between them, below the first and above the last (+Inf bucket).
    values = np.array([0.0, 0.01, 0.0100001, 0.05, 0.07, 0.1, 0.5, 1.0, 1.5, 100.0, -1.0] * 3)
    single, bulk, one, many = _pair()
    for value in values:
        single.observe(float(value))
    observe_many(bulk, values)
    assert _samples(many) == _samples(one)


def test_observe_many_skips_nan_like_observe_and_accepts_empty() -> None:
    single, bulk, one, many = _pair()
    for value in (0.02, float("nan")):
        single.observe(value)
    observe_many(bulk, np.array([0.02, np.nan]))
    observe_many(bulk, np.array([]))
    # observe() adds NaN to the sum (making it NaN) but to no bucket; we keep the sum finite instead.
    assert {k: v for k, v in _samples(many).items() if k[0] != "h_sum"} == {k: v for k, v in _samples(one).items() if k[0] != "h_sum"}
    assert _samples(many)[("h_count", ())] == 1
    assert _samples(many)[("h_sum", ())] == 0.02


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple], float]:
    """Every sample but the creation time, sums rounded (bulk sums add in another order)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): round(s.value, 9)
        for metric in registry.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }
