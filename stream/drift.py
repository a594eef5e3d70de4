"""The worker's drift window: the latest live errors, compared with the model's reference at scrape time.

The errors of committed batches go into a ring of `--drift-window` slots (each with its arrival time). A
scrape of /metrics computes `anomstream_error_drift`: models/drift.py's distance between the ring's errors
of the last `--drift-max-age-s` seconds that are at or below the model's threshold and the reference's, and
the quantiles of all those live errors beside the reference's. The hot path only copies a batch's errors
into the ring; the statistic costs one sort per scrape. With fewer than `--drift-min-windows` live errors
at or below the threshold, or a model without a reference, the gauge is NaN, which no alert comparison
matches. A new model version empties the ring: another model's errors are not comparable with its reference.
"""
from __future__ import annotations

import logging
import math
import threading
import time

import numpy as np

from anomstream.models import drift
from anomstream.models.artifact import Metadata
from anomstream.stream import metrics

log = logging.getLogger("anomstream.worker")


class DriftWindow:
    def __init__(self, size: int = 1000, max_age_s: float = 600.0, min_windows: int = 200) -> None:
        self.size, self.max_age_s, self.min_windows = size, max_age_s, min_windows
        self._errors = np.zeros(size, dtype=np.float64)
        self._times = np.full(size, -math.inf)
        self._next = 0  # the slot the next error goes to
        self._reference: np.ndarray | None = None
        self._threshold = math.inf
        self._version: str | None = None
        self._lock = threading.Lock()  # the worker writes, the /metrics thread reads

    def use(self, model: Metadata) -> None:
        """The model whose errors come next: another version empties the window and publishes its reference."""
        if model.version == self._version:
            return
        reference = model.drift
        with self._lock:
            self._version = model.version
            self._reference = None if reference is None else np.asarray(reference.errors, dtype=np.float64)
            self._threshold = model.threshold.value
            self._times[:] = -math.inf
            self._next = 0
        if reference is None:
            log.warning("model %s has no drift reference (trained with --reference-holdout 0): anomstream_error_drift stays NaN", model.version)
        for q, value in (reference.quantiles() if reference else drift.quantiles(np.empty(0))).items():
            metrics.REFERENCE_ERROR_QUANTILE.labels(f"{q:g}").set(value)

    def add(self, errors: np.ndarray, version: str, now: float | None = None) -> None:
        """A committed batch's errors, scored by model `version` (ignored when that is no longer the model in use)."""
        if version != self._version:
            return
        errors = np.asarray(errors, dtype=np.float64)
        errors = errors[np.isfinite(errors)][-self.size :]
        if not len(errors):
            return
        slots = (self._next + np.arange(len(errors))) % self.size
        with self._lock:
            self._errors[slots] = errors
            self._times[slots] = time.monotonic() if now is None else now
            self._next = int(slots[-1] + 1) % self.size

    def live(self, now: float | None = None) -> np.ndarray:
        """The errors that count now: in the ring and younger than max_age_s."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return self._errors[self._times >= now - self.max_age_s].copy()

    def statistic(self, now: float | None = None) -> float:
        live = self.live(now)
        if self._reference is None or (live <= self._threshold).sum() < self.min_windows:
            return math.nan
        return drift.distance(self._reference, live, below=self._threshold)

    def export(self) -> None:
        """Compute the gauges at each scrape (prometheus_client calls these on its own thread)."""
        metrics.ERROR_DRIFT.set_function(self.statistic)
        for q in drift.QUANTILES:
            metrics.LIVE_ERROR_QUANTILE.labels(f"{q:g}").set_function(lambda q=q: drift.quantiles(self.live())[q])
