"""Error drift: the artifact's reference errors, and the statistic live errors are compared with.

The reference is the reconstruction errors of normal training windows that neither the autoencoder nor
its threshold was fitted on (`TrainConfig.reference_holdout`, 10% in the default preset), scored through
the `Scorer` exactly as the worker scores. The statistic is the two-sample Kolmogorov-Smirnov distance
D = sup |F_live(e) - F_reference(e)| (scipy.stats.ks_2samp), chosen because it is bounded (0 to 1), needs
no binning, and reads as a share of traffic: when a fraction p of the live windows are anomalies and the
rest still look like the reference, D is at most about p. A D of 0.5 therefore says that at least half of
the windows' errors moved: a recalibrated sensor, a new population, a model that no longer fits, not a
handful of incidents. Sampling noise alone, with 1,000 live and 200 reference errors, stays under about 0.15 (99.9%).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

STATISTIC = "ks"
MIN_REFERENCE = 10  # fewer held-out windows make no reference: no drift is measured
THIN_REFERENCE = 50  # under this many, training warns that the drift gauge will be noisy
MAX_STORED = 1000  # a larger reference is stored as this many evenly spaced quantiles
QUANTILES = (0.5, 0.9, 0.99)  # exported live and for the reference (`anomstream_error_quantile`)


class DriftReference(BaseModel):
    """What `model.json` keeps under `drift`: the sorted reference errors and where they came from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    statistic: Literal["ks"] = STATISTIC
    drawn_from: Literal["reference-holdout-normal"] = "reference-holdout-normal"
    windows: int = Field(ge=MIN_REFERENCE)  # held-out windows scored; `errors` has min(windows, MAX_STORED) values
    errors: list[float] = Field(min_length=MIN_REFERENCE, max_length=MAX_STORED)

    @field_validator("errors")
    @classmethod
    def _sorted_finite_errors(cls, errors: list[float]) -> list[float]:
        if not all(math.isfinite(value) and value >= 0 for value in errors):
            raise ValueError("reference errors must be finite and not negative")
        if any(later < earlier for earlier, later in zip(errors, errors[1:])):
            raise ValueError("reference errors must be sorted ascending")
        return errors

    @classmethod
    def of(cls, errors: np.ndarray) -> DriftReference | None:
        """The reference for these held-out errors, or None when there are too few to make one."""
        errors = np.sort(np.asarray(errors, dtype=np.float64))
        if len(errors) < MIN_REFERENCE:
            return None
        stored = errors if len(errors) <= MAX_STORED else np.quantile(errors, np.linspace(0, 1, MAX_STORED))
        return cls(windows=len(errors), errors=[float(value) for value in stored])

    def quantiles(self) -> dict[float, float]:
        return quantiles(np.asarray(self.errors))


def distance(reference: Sequence[float] | np.ndarray, live: Sequence[float] | np.ndarray) -> float:
    """The two-sample Kolmogorov-Smirnov distance between two samples of errors; NaN when either is empty."""
    from scipy.stats import ks_2samp

    reference, live = np.asarray(reference, dtype=np.float64), np.asarray(live, dtype=np.float64)
    live = live[np.isfinite(live)]
    if not len(reference) or not len(live):
        return math.nan
    return float(ks_2samp(reference, live, method="asymp").statistic)


def quantiles(errors: np.ndarray) -> dict[float, float]:
    """`QUANTILES` of `errors` (NaN for none)."""
    errors = np.asarray(errors, dtype=np.float64)
    if not len(errors):
        return {q: math.nan for q in QUANTILES}
    return {q: float(value) for q, value in zip(QUANTILES, np.quantile(errors, QUANTILES))}
