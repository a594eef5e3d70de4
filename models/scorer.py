"""Reconstruction error of raw windows: the one scoring path, offline and in the worker.

Keeping normalisation, the model call and the error in one place is what makes
the worker's verdicts equal `anomstream evaluate`'s window for window.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from models.threshold import Threshold

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
    """A model, its normalisation and its threshold, called once per batch through a compiled function."""

    def __init__(self, model: keras.Model, normalisation: Normalisation, threshold: Threshold) -> None:
        self.model = model
        self.normalisation = normalisation
        self.threshold = threshold
        self.window_length = int(model.input_shape[-1])
        # A fixed signature with a free batch dimension: one trace, whatever the batch size.
        signature = [tf.TensorSpec([None, self.window_length], tf.float32)]
        self._errors = tf.function(self._batch_errors, input_signature=signature)
        self._reconstruct = tf.function(lambda x: self.model(x, training=False), input_signature=signature)

    def _batch_errors(self, x: tf.Tensor) -> tf.Tensor:
        return tf.reduce_mean(tf.abs(self.model(x, training=False) - x), axis=1)

    def errors(self, windows: np.ndarray) -> np.ndarray:
        """Mean absolute reconstruction error of each raw (unnormalised) window."""
        scaled = self.normalisation.apply(windows)
        if len(scaled) <= CHUNK:
            return self._errors(scaled).numpy()
        return np.concatenate([self._errors(scaled[i : i + CHUNK]).numpy() for i in range(0, len(scaled), CHUNK)])

    def reconstruct(self, windows: np.ndarray) -> np.ndarray:
        """Reconstructions in the normalised scale, for plots."""
        return self._reconstruct(self.normalisation.apply(windows)).numpy()

    def is_anomaly(self, errors: np.ndarray) -> np.ndarray:
        return self.threshold.predict(errors)
