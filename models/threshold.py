"""Thresholds on reconstruction error: small fit/predict objects.

Each is fitted on errors of *normal* windows only, so choosing one never needs
anomaly labels. A window is anomalous when its error is above the value.
Inputs are checked the way alibi-detect's `infer_threshold(x, fpr)` checks
its own, so that a threshold fitted on too little data fails loudly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from anomstream.errors import ThresholdError


def _checked(errors: np.ndarray, method: str, minimum: int = 2) -> np.ndarray:
    errors = np.asarray(errors, dtype=np.float64)
    if errors.ndim != 1:
        raise ThresholdError(f"{method} needs a 1-D array of errors, got shape {errors.shape}.")
    if errors.size < minimum:
        raise ThresholdError(f"{method} needs at least {minimum} normal windows to fit on, got {errors.size}.")
    if not np.isfinite(errors).all():
        raise ThresholdError(f"{method} got {int((~np.isfinite(errors)).sum())} non-finite errors: check the model.")
    return errors


@dataclass
class Threshold:
    """Base: `fit` sets `value`; `predict` says which errors are anomalous."""

    method: ClassVar[str] = ""
    value: float | None = field(default=None, init=False)

    def fit(self, errors: np.ndarray) -> Threshold:
        raise NotImplementedError

    def predict(self, errors: np.ndarray) -> np.ndarray:
        if self.value is None:
            raise ThresholdError(f"the {self.method} threshold is not fitted: call fit() on normal errors first.")
        # Compared in float64: with NumPy 2 a float32 array would round the threshold to float32 first, and
        # a window between the two values would be judged unlike the worker's verdict (a Python float compare).
        return np.asarray(errors, dtype=np.float64) > self.value

    @property
    def params(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.init}

    def describe(self) -> dict[str, Any]:
        return {"method": self.method, "params": self.params, "value": self.value}


@dataclass
class MeanStdThreshold(Threshold):
    """The tutorial's rule: mean + k * std of the training errors (k=1)."""

    method: ClassVar[str] = "mean-std"
    k: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.k) and self.k >= 0):
            raise ThresholdError(f"mean-std needs k >= 0, got {self.k}.")

    def fit(self, errors: np.ndarray) -> MeanStdThreshold:
        errors = _checked(errors, self.method)
        # Population std (ddof=0), as tf.math.reduce_std in the tutorial.
        self.value = float(errors.mean() + self.k * errors.std())
        return self


MAD_TO_STD = 1.4826  # 1 / Phi^-1(3/4): the MAD of normal data times this estimates its std
MEAN_AD_TO_STD = math.sqrt(math.pi / 2)  # the same for the mean absolute deviation


@dataclass
class MadThreshold(Threshold):
    """Robust: median + k * MAD (scaled by 1.4826, so it estimates the std of normal data), default k = 3.

    For "normal" training errors that hold a few outliers or mislabelled windows: three among 2,003 raise
    mean + 2 std many-fold and barely move this. MAD 0 (over half the errors equal): the spread is the mean
    absolute deviation from the median, scaled by sqrt(pi/2). All errors equal: no spread at all, so the value is
    just above them (1e-6 of the median, at least 1e-9): finite, above 0, and any larger error is flagged.
    """

    method: ClassVar[str] = "mad"
    k: float = 3.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.k) and self.k >= 0):
            raise ThresholdError(f"mad needs a finite k >= 0, got {self.k}.")

    def fit(self, errors: np.ndarray) -> MadThreshold:
        errors = _checked(errors, self.method)
        median = float(np.median(errors))
        deviations = np.abs(errors - median)
        spread = MAD_TO_STD * float(np.median(deviations)) or MEAN_AD_TO_STD * float(deviations.mean())
        if spread == 0.0:
            self.value = median + max(1e-9, abs(median) * 1e-6)
        else:
            self.value = median + self.k * spread
        return self

@dataclass
class PercentileThreshold(Threshold):
    """The q-th percentile of the normal training errors."""

    method: ClassVar[str] = "percentile"
    q: float = 99.0

    def __post_init__(self) -> None:
        if not 0.0 < self.q < 100.0:
            raise ThresholdError(f"percentile needs q strictly between 0 and 100, got {self.q}.")

    def fit(self, errors: np.ndarray) -> PercentileThreshold:
        # Below 100 / (100 - q) samples the top percentile is just the maximum.
        minimum = max(2, math.ceil(100.0 / (100.0 - self.q)))
        self.value = float(np.percentile(_checked(errors, self.method, minimum), self.q))
        return self


@dataclass
class FprThreshold(Threshold):
    """The smallest observed error with at most `fpr` of the fitting errors strictly above it.

    At n = 100, fpr = 0.01 that is the second-largest error: one window of the 100 (1%) lies above it.
    """

    method: ClassVar[str] = "fpr"
    fpr: float = 0.01

    def __post_init__(self) -> None:
        if not 0.0 < self.fpr < 1.0:
            raise ThresholdError(f"fpr must be strictly between 0 and 1, got {self.fpr}.")

    def fit(self, errors: np.ndarray) -> FprThreshold:
        # As alibi-detect: with fewer than 1/fpr samples the rate cannot be resolved.
        errors = _checked(errors, self.method, max(2, math.ceil(1.0 / self.fpr)))
        # The order statistic itself, counted in windows: np.quantile(1 - fpr, method="higher") was one too high
        # (the maximum at n = 100, fpr = 0.01). The 1e-9 keeps n * fpr = 28.999999999999996 (0.29 * 100) at 29.
        allowed_above = min(errors.size - 1, math.floor(errors.size * self.fpr + 1e-9))
        self.value = float(np.sort(errors)[errors.size - 1 - allowed_above])
        return self


METHODS: dict[str, type[Threshold]] = {
    cls.method: cls for cls in (MeanStdThreshold, PercentileThreshold, FprThreshold, MadThreshold)
}


def make(method: str, **params: float) -> Threshold:
    """Build a threshold by its contract name (`mean-std`, `percentile`, `fpr`, `mad`)."""
    try:
        cls = METHODS[method]
    except KeyError:
        raise ThresholdError(f"unknown threshold method {method!r}: choose one of {', '.join(METHODS)}.") from None
    try:
        return cls(**params)
    except TypeError:
        allowed = [f.name for f in fields(cls) if f.init]
        raise ThresholdError(f"{method} takes only {', '.join(allowed)}, got {', '.join(params)}.") from None


def restore(method: str, params: dict[str, float], value: float) -> Threshold:
    """Rebuild a fitted threshold from an artifact's record."""
    threshold = make(method, **params)
    threshold.value = float(value)
    return threshold
