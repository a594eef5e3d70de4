"""Error drift: the artifact's reference errors, and the statistic live errors are compared with.

The reference is the reconstruction errors of normal training windows that neither the autoencoder nor
its threshold was fitted on (`TrainConfig.reference_holdout`, 10% in the default preset), scored through
the `Scorer` exactly as the worker scores.

The statistic is the two-sample Kolmogorov-Smirnov distance D = sup |F_live(e) - F_reference(e)|
(scipy.stats.ks_2samp) between the errors at or below the model's threshold on both sides: the windows
the model calls normal against the reference windows it would call normal. KS because it is bounded (0 to
1) and needs no binning; below the threshold because that is what tells drift from an incident. Anomalies
leave the live sample, so an incident does not move D (ECG5000's test rows, 42% anomalous, read 0.07);
a gain or an offset moves every normal window's error, so D rises with it (ECG5000's normal test rows
read 0.06 as they are, 0.47 with a gain of 1.2, 0.46 with an offset of -0.2, while the anomaly rate is
still 19% and 10%). Sampling noise, with 200 live and 400 reference errors, stays under about 0.17
(99.9%). When nearly every window is anomalous there is nothing left to compare: D is NaN and the
anomaly-rate alert speaks.
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
# deploy/alerts.yml's AnomstreamErrorDrift fires above this; `validate` says whether a replay would fire it
# (tests/deploy/test_rules.py keeps the two equal).
ALERT_AT = 0.3
QUANTILES = (0.5, 0.9, 0.99)  # exported live and for the reference (`anomstream_{live,reference}_error_quantile{q}`)


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


def distance(reference: Sequence[float] | np.ndarray, live: Sequence[float] | np.ndarray, below: float = math.inf) -> float:
    """The two-sample Kolmogorov-Smirnov distance between the errors at or below `below` (the threshold) of
    both samples; NaN when either has fewer than MIN_REFERENCE such errors."""
    from scipy.stats import ks_2samp

    reference, live = np.asarray(reference, dtype=np.float64), np.asarray(live, dtype=np.float64)
    reference, live = reference[reference <= below], live[live <= below]  # NaN compares False: dropped too
    if len(reference) < MIN_REFERENCE or len(live) < MIN_REFERENCE:
        return math.nan
    return float(ks_2samp(reference, live, method="asymp").statistic)


def quantiles(errors: np.ndarray) -> dict[float, float]:
    """`QUANTILES` of `errors` (NaN for none)."""
    errors = np.asarray(errors, dtype=np.float64)
    if not len(errors):
        return {q: math.nan for q in QUANTILES}
    return {q: float(value) for q, value in zip(QUANTILES, np.quantile(errors, QUANTILES))}


def summary(reference: DriftReference | None, threshold: float, errors: np.ndarray, normal: np.ndarray) -> dict[str, object]:
    """What `anomstream validate` reports: the distance of all replayed errors (what the worker's gauge would
    read on this traffic) and of the normal-labelled ones, against the reference, with the quantiles."""
    if reference is None:
        return {"measured": False, "reason": "the model has no drift reference (trained with --reference-holdout 0)"}
    errors = np.asarray(errors, dtype=np.float64)

    def measured(value: float) -> float | None:
        return None if math.isnan(value) else round(value, 4)

    everything = measured(distance(reference.errors, errors, below=threshold))
    return {
        "measured": True,
        "statistic": "ks-below-threshold",
        "distance": everything,
        "distance_normal": measured(distance(reference.errors, errors[np.asarray(normal, bool)], below=threshold)),
        "alert_at": ALERT_AT,
        "would_alert": everything is not None and everything > ALERT_AT,
        "windows_below_threshold": int((errors <= threshold).sum()),
        "reference_windows": reference.windows,
        "live_quantiles": {f"{q:g}": round(v, 6) for q, v in quantiles(errors).items()},
        "reference_quantiles": {f"{q:g}": round(v, 6) for q, v in reference.quantiles().items()},
    }


def sentence(found: dict[str, object]) -> str:
    """`summary`'s finding in one line, for the terminal and the report."""
    if not found["measured"]:
        return f"drift: not measured ({found['reason']})"
    if found["distance"] is None:
        return f"drift: too few windows at or below the threshold ({found['windows_below_threshold']}) to compare with the reference"
    verdict = "would fire AnomstreamErrorDrift" if found["would_alert"] else "under AnomstreamErrorDrift's"
    return (
        f"drift: KS distance {found['distance']:.3f} against {found['reference_windows']} reference windows ({verdict} {found['alert_at']});"
        f" live median error {found['live_quantiles']['0.5']:.5f}, reference median {found['reference_quantiles']['0.5']:.5f}"
    )
