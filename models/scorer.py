"""Reconstruction error of raw windows: the one scoring path, offline and in the worker.

Keeping normalisation, the model call and the error in one place is what makes
the worker's verdicts equal `anomstream evaluate`'s window for window, on
either runtime (models/runtimes.py). Windows are (n, channels, length), or
(n, channels, height, width) for images, everywhere; a window's error is the
mean of its channels' errors (each the mean absolute error over the channel's
samples), so one channel gives the tutorial's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anomstream.models.runtimes import Runtime
from anomstream.models.shape import Shape, sample_axes
from anomstream.models.threshold import Threshold

# Offline scoring splits large arrays so memory stays bounded; the worker's
# micro-batches are smaller than this anyway.
CHUNK = 8192


@dataclass(frozen=True)
class Normalisation:
    """Min-max scaling per channel, with constants from the training split only (one channel: the tutorial's)."""

    minimum: np.ndarray  # float64, (channels,)
    maximum: np.ndarray  # float64, (channels,); above minimum

    def __post_init__(self) -> None:
        object.__setattr__(self, "minimum", np.atleast_1d(np.asarray(self.minimum, dtype=np.float64)))
        object.__setattr__(self, "maximum", np.atleast_1d(np.asarray(self.maximum, dtype=np.float64)))
        scale = self.maximum - self.minimum
        object.__setattr__(self, "_offset", self.minimum.astype(np.float32))
        object.__setattr__(self, "_scale", scale.astype(np.float32))

    @property
    def channels(self) -> int:
        return int(self.minimum.size)

    @classmethod
    def fit(cls, windows: np.ndarray) -> Normalisation:
        """Each channel's min and max over (n, channels, ...) windows; a constant channel gets a range of 1,
        so it scales to 0 instead of dividing by zero."""
        windows = np.asarray(windows)
        axes = (0, *sample_axes(windows.ndim))
        minimum = windows.min(axis=axes).astype(np.float64)
        maximum = windows.max(axis=axes).astype(np.float64)
        return cls(minimum, np.where(maximum > minimum, maximum, minimum + 1.0))

    def apply(self, windows: np.ndarray) -> np.ndarray:
        """Scaled float32 windows, (n, channels, ...); a one-channel series may come as (n, length)."""
        windows = np.asarray(windows, dtype=np.float32)
        if windows.ndim == 2 and self.channels == 1:
            windows = windows[:, None, :]
        per_channel = (-1,) + (1,) * (windows.ndim - 2)  # broadcast over each channel's samples
        return ((windows - self._offset.reshape(per_channel)) / self._scale.reshape(per_channel)).astype(np.float32, copy=False)


class Scorer:
    """A model on its runtime, its normalisation and its threshold, called once per batch."""

    def __init__(self, runtime: Runtime, normalisation: Normalisation, threshold: Threshold) -> None:
        self.runtime = runtime
        self.normalisation = normalisation
        self.threshold = threshold
        self.window_shape: Shape = runtime.window_shape

    def channel_errors(self, windows: np.ndarray) -> np.ndarray:
        """Mean absolute reconstruction error of each channel of each raw window, (n, channels) float32."""
        scaled = self.normalisation.apply(windows)
        if len(scaled) <= CHUNK:
            return self.runtime.channel_errors(scaled)
        return np.concatenate([self.runtime.channel_errors(scaled[i : i + CHUNK]) for i in range(0, len(scaled), CHUNK)])

    def errors(self, windows: np.ndarray) -> np.ndarray:
        """Each raw window's error, (n,) float32: the mean of its channel errors."""
        return window_errors(self.channel_errors(windows))

    def sample_errors(self, windows: np.ndarray) -> np.ndarray:
        """|reconstruction - input| of every sample in the normalised scale, (n, channels, ...) float32: the
        errors whose per-channel means are `channel_errors` (models/explain.py locates anomalies with them)."""
        scaled = self.normalisation.apply(windows)
        return np.abs(self.runtime.reconstruct(scaled) - scaled)

    def reconstruct(self, windows: np.ndarray) -> np.ndarray:
        """Reconstructions in the normalised scale, for plots, (n, channels, ...)."""
        return self.runtime.reconstruct(self.normalisation.apply(windows))


def window_errors(channel_errors: np.ndarray) -> np.ndarray:
    """A window's error from its channels' (all channels have the same length, so this is the overall mean)."""
    if channel_errors.shape[1] == 1:
        return channel_errors[:, 0]
    return channel_errors.mean(axis=1, dtype=np.float32)
