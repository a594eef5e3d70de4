"""Numbers from samples, shared by the phases: medians, latency percentiles, the steady 10%..90% rate, whole batches.

One definition each, so that every phase reports a rate or a percentile the same way.
"""

from __future__ import annotations

import statistics

import numpy as np


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 1) if values else None


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    p50, p95, p99 = np.percentile(np.asarray(values) * 1000, [50, 95, 99])
    return {"p50_ms": round(float(p50), 2), "p95_ms": round(float(p95), 2), "p99_ms": round(float(p99), 2),
            "max_ms": round(max(values) * 1000, 2)}  # fmt: skip


def whole(count: int, unit: int) -> int:
    """`count` rounded up to a multiple of `unit`."""
    return -(-count // unit) * unit


def slope(progress: list[tuple[float, int]], total: int) -> float | None:
    """Windows/s between 10% and 90% committed: the steady rate, without start-up and tail effects."""
    t10 = next((t for t, n in progress if n >= 0.1 * total), None)
    t90 = next((t for t, n in progress if n >= 0.9 * total), None)
    if t10 is None or t90 is None or t90 <= t10:
        return None
    n10 = next(n for t, n in progress if t == t10)
    n90 = next(n for t, n in progress if t == t90)
    return round((n90 - n10) / (t90 - t10), 1)
