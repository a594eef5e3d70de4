"""Reconstruction error of raw windows: the one scoring path, offline and in the worker.

Keeping normalisation, the model call and the error in one place is what makes
the worker's verdicts equal `anomstream evaluate`'s window for window, on
either runtime (models/runtimes.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anomstream.models.runtimes import Runtime
from anomstream.models.threshold import Threshold

# Offline scoring splits large arrays so memory stays bounded; the worker's
# micro-batches are smaller than this anyway.
CHUNK = 8192


@dataclass(frozen=True)
class Normalisation:
    """The tutorial's global min-max scaling, with constants from the training split only."""

    minimum: float
    maximum: float

    @classmethod
    def fit(cls, windows: np.ndarray) -> Normalisation:
        return cls(float(np.min(windows)), float(np.max(windows)))

    def apply(self, windows: np.ndarray) -> np.ndarray:
        return ((np.asarray(windows, dtype=np.float32) - self.minimum) / (self.maximum - self.minimum)).astype(
            np.float32, copy=False
        )


class Scorer:
    """A model on its runtime, its normalisation and its threshold, called once per batch."""

    def __init__(self, runtime: Runtime, normalisation: Normalisation, threshold: Threshold) -> None:
        self.runtime = runtime
        self.normalisation = normalisation
        self.threshold = threshold
        self.window_length = runtime.window_length

    def errors(self, windows: np.ndarray) -> np.ndarray:
        """Mean absolute reconstruction error of each raw (unnormalised) window."""
        scaled = self.normalisation.apply(windows)
        if len(scaled) <= CHUNK:
            return self.runtime.errors(scaled)
        return np.concatenate([self.runtime.errors(scaled[i : i + CHUNK]) for i in range(0, len(scaled), CHUNK)])

    def reconstruct(self, windows: np.ndarray) -> np.ndarray:
        """Reconstructions in the normalised scale, for plots."""
        return self.runtime.reconstruct(self.normalisation.apply(windows))

    def is_anomaly(self, errors: np.ndarray) -> np.ndarray:
        return self.threshold.predict(errors)
