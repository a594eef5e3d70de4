"""Training: the tutorial's protocol by default, the extensions by option.

Protocol (TensorFlow "Intro to Autoencoders", ECG): 80/20 split with seed 21,
global min-max constants from the training split, fit on normal training
windows only (Adam, MAE, 20 epochs, batch 512), threshold = mean + 1 std of
their errors. Nothing here looks at test labels except the final evaluation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from anomstream.models import architectures
from anomstream.models import threshold as thresholds
from anomstream.models.backend import keras, tf
from anomstream.models.data import Dataset, Split, split
from anomstream.models.evaluate import Evaluation, evaluate
from anomstream.models.runtimes import KerasRuntime
from anomstream.models.scorer import Normalisation, Scorer

EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a training run; the defaults are the tutorial's."""

    arch: str = "dense"
    epochs: int = 20
    batch_size: int = 512
    seed: int = 21  # weights, shuffling, noise
    split_seed: int = 21  # the train/test split, kept apart so seeds can vary on one split
    test_size: float = 0.2
    noise_factor: float = 0.0
    learning_rate: float = 1e-3
    threshold: str = "mean-std"
    threshold_params: dict[str, float] = field(default_factory=dict)
    # Fraction of normal training windows held out to fit the threshold on; None: 0.2 for fpr, else 0.
    holdout: float | None = None
    name: str | None = None

    @property
    def holdout_fraction(self) -> float:
        if self.holdout is not None:
            return self.holdout
        return 0.2 if self.threshold == "fpr" else 0.0


@dataclass
class TrainResult:
    model: keras.Model
    scorer: Scorer
    split: Split
    evaluation: Evaluation
    test_errors: np.ndarray
    metadata_fields: dict[str, Any]
    fitted: np.ndarray  # the scaled windows the model was fitted on: `artifact.save` checks LiteRT against TensorFlow on them


class _EpochProgress(keras.callbacks.Callback):
    def __init__(self, on_epoch: EpochCallback) -> None:
        super().__init__()
        self._on_epoch = on_epoch

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self._on_epoch(epoch + 1, dict(logs or {}))


def train(dataset: Dataset, config: TrainConfig, on_epoch: EpochCallback | None = None) -> TrainResult:
    """Fit an autoencoder and its threshold on `dataset`'s training split, evaluate on its test split."""
    threshold = thresholds.make(config.threshold, **config.threshold_params)  # bad params fail before training
    if config.arch not in architectures.ARCHITECTURES:
        raise ValueError(f"unknown architecture {config.arch!r}")
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()

    parts = split(dataset, config.test_size, config.split_seed)
    normalisation = Normalisation.fit(parts.train.windows)
    fit_raw, holdout_raw = _holdout(parts.train.windows[parts.train.labels == 1], config.holdout_fraction, config.split_seed)
    fit_windows = normalisation.apply(fit_raw)
    test_windows = normalisation.apply(parts.test.windows)

    model = architectures.build(config.arch, dataset.window_length, config.noise_factor)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="mae")
    started = time.monotonic()
    history = model.fit(
        fit_windows,
        fit_windows,
        epochs=config.epochs,
        batch_size=config.batch_size,
        validation_data=(test_windows, test_windows),  # as the tutorial: a curve to look at, never a stopping rule
        shuffle=True,
        verbose=0,
        callbacks=[_EpochProgress(on_epoch)] if on_epoch else [],
    )
    seconds = time.monotonic() - started

    scorer = Scorer(KerasRuntime(model), normalisation, threshold)
    # Errors are computed on raw windows through the Scorer, exactly as the worker will.
    fit_on = "holdout-normal" if len(holdout_raw) else "train-normal"
    threshold.fit(scorer.errors(holdout_raw if len(holdout_raw) else fit_raw))
    test_errors = scorer.errors(parts.test.windows)
    result = evaluate(test_errors, parts.test.labels, threshold.value)

    fields = {
        "name": config.name or f"ecg-{config.arch}",
        "window_length": dataset.window_length,
        "architecture": {"name": config.arch, "noise_factor": config.noise_factor, "parameters": model.count_params()},
        "normalisation": {"minimum": normalisation.minimum, "maximum": normalisation.maximum},
        "threshold": {**threshold.describe(), "fitted_on": fit_on},
        "data": {
            "file": dataset.path.name,
            "sha256": dataset.sha256,
            "rows": len(dataset),
            "normal": int(dataset.labels.sum()),
            "anomalous": int(len(dataset) - dataset.labels.sum()),
        },
        "split": {
            "test_size": config.test_size,
            "seed": config.split_seed,
            "train": len(parts.train),
            "test": len(parts.test),
            "train_normal": len(fit_windows),
            "holdout_normal": len(holdout_raw),
        },
        "training": {
            "seed": config.seed,
            "epochs": config.epochs,
            "batch_size": config.batch_size,
            "optimizer": f"adam(lr={config.learning_rate:g})",
            "loss": "mae",
            "seconds": round(seconds, 3),
            "history": {key: [float(v) for v in values] for key, values in history.history.items()},
        },
        "evaluation": result,
    }
    return TrainResult(model, scorer, parts, result, test_errors, fields, fit_windows)


def _holdout(windows: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if fraction <= 0:
        return windows, windows[:0]
    if fraction >= 1:
        raise ValueError(f"holdout fraction {fraction} must be below 1")
    order = np.random.default_rng(seed).permutation(len(windows))
    cut = int(round(len(windows) * fraction))
    return windows[order[cut:]], windows[order[:cut]]

