"""Training: the default recipe, the tutorial's as a preset, the rest by option.

The tutorial's protocol (TensorFlow "Intro to Autoencoders", ECG) is the
`tutorial` preset: 80/20 split with seed 21, min-max constants from the
training split, fit on normal training windows only (Adam, MAE, 20 epochs,
batch 512), threshold = mean + 1 std of their errors. The `default` preset was
chosen on a validation split carved from ECG5000's training rows; across data
sets, `benchmarks/quality.py --select` ranks the candidates on TRAIN rows only
(models/MODEL_CARD.md). Nothing here looks at
test rows until the final evaluation: no choice, curve or stopping rule uses them.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from anomstream.errors import DataError
from anomstream.models import architectures
from anomstream.models import threshold as thresholds
from anomstream.models.backend import keras, tf
from anomstream.models.data import Dataset, Split, parts
from anomstream.models.drift import MIN_REFERENCE, THIN_REFERENCE, DriftReference
from anomstream.models.evaluate import Evaluation, evaluate
from anomstream.models.recipe import LOSSES, PRESETS, TrainConfig  # noqa: F401 (PRESETS: re-exported beside fit_normal)
from anomstream.models.runtimes import KerasRuntime
from anomstream.models.scorer import Normalisation, Scorer
from anomstream.models.shape import is_image

log = logging.getLogger("anomstream.models")

EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass
class Fitted:
    """An autoencoder and its threshold fitted on normal windows, ready to score raw windows."""

    arch: str  # the architecture built (`conv` resolved for the window's dimensions)
    model: keras.Model
    scorer: Scorer
    fitted: np.ndarray  # the scaled windows the model was fitted on: `artifact.save` checks LiteRT against TensorFlow on them
    holdout: int  # normal windows held out to fit the threshold on
    reference: DriftReference | None  # errors of normal windows held out of both fits, for drift
    fitted_on: str  # "train-normal" | "holdout-normal"
    seconds: float
    history: dict[str, list[float]]


@dataclass
class TrainResult:
    model: keras.Model
    scorer: Scorer
    split: Split
    evaluation: Evaluation
    test_errors: np.ndarray
    metadata_fields: dict[str, Any]
    fitted: np.ndarray


class _EpochProgress(keras.callbacks.Callback):
    def __init__(self, on_epoch: EpochCallback) -> None:
        super().__init__()
        self._on_epoch = on_epoch

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self._on_epoch(epoch + 1, dict(logs or {}))


class _InterruptBetweenBatches(keras.callbacks.Callback):
    """Ctrl-C during `fit` raised between two batches, from Python. Raised wherever the signal lands, it could unwind
    through TensorFlow's C++ and come out as `SystemError: ... bad argument to internal function` (exit 1 and a
    traceback instead of 130 and one sentence: clean-clone CI, 2026-12-08). A second Ctrl-C raises at once."""

    pending = False

    def _check(self, *_: object, **__: object) -> None:
        if self.pending:
            raise KeyboardInterrupt

    on_train_batch_end = on_test_batch_end = on_epoch_end = _check

    def _signalled(self, *_: object) -> None:
        self._check()  # the second Ctrl-C
        self.pending = True

    @contextlib.contextmanager
    def installed(self) -> Iterator[_InterruptBetweenBatches]:
        """The SIGINT handler while `fit` runs, where Python's own is in place (the main thread of a CLI)."""
        if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            yield self
            return
        previous = signal.signal(signal.SIGINT, self._signalled)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)
        self._check()


def fit_normal(
    normal: np.ndarray,
    config: TrainConfig,
    normalisation: Normalisation | None = None,
    on_epoch: EpochCallback | None = None,
) -> Fitted:
    """Fit an autoencoder and its threshold on raw normal windows (n, channels, length).

    `normalisation` defaults to min-max constants of `normal`. The threshold is fitted on held-out normal
    windows when the config holds some out (`holdout_fraction`), else on the fitted ones; the held-out ones
    also give the validation-loss curve, so a curve never shows test windows.
    """
    threshold = thresholds.make(config.threshold, **config.threshold_params)  # bad params fail before training
    if config.loss not in LOSSES:
        raise ValueError(f"unknown loss {config.loss!r}: choose one of {', '.join(LOSSES)}")
    normal = np.asarray(normal, dtype=np.float32)
    if normal.ndim == 2:
        normal = normal[:, None, :]
    config = replace(config, arch=architectures.resolve(config.arch, normal.shape[1:]))
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    normalisation = normalisation or Normalisation.fit(normal)
    reference_fraction = config.reference_holdout
    if reference_fraction and round(len(normal) * reference_fraction) < MIN_REFERENCE:
        log.warning(
            "no drift reference: --reference-holdout %g of %d normal windows is %d, fewer than %d; they are fitted"
            " on instead, and the worker measures no drift for this model", reference_fraction, len(normal),
            round(len(normal) * reference_fraction), MIN_REFERENCE,
        )
        reference_fraction = 0.0
    fit_raw, holdout_raw, reference_raw = _holdout(normal, config.holdout_fraction, reference_fraction, config.split_seed)
    fit_windows = normalisation.apply(fit_raw)
    model = architectures.build(config.arch, fit_windows.shape[1:], config.noise_factor)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=config.loss)
    started = time.monotonic()
    held = normalisation.apply(holdout_raw) if len(holdout_raw) else None
    with _InterruptBetweenBatches().installed() as interrupt:
        history = model.fit(
            **_inputs(fit_windows, noisy(fit_windows, config.input_noise, config.seed), config),
            epochs=config.epochs,
            validation_data=(held, held) if held is not None else None,
            verbose=0,
            callbacks=[interrupt, *([_EpochProgress(on_epoch)] if on_epoch else [])],
        )
    seconds = time.monotonic() - started
    scorer = Scorer(KerasRuntime(model), normalisation, threshold)
    # Errors are computed on raw windows through the Scorer, exactly as the worker will.
    threshold.fit(scorer.errors(holdout_raw if len(holdout_raw) else fit_raw))
    reference = DriftReference.of(scorer.errors(reference_raw)) if len(reference_raw) else None
    if reference is not None and reference.windows < THIN_REFERENCE:
        log.warning(
            "the drift reference has only %d held-out normal windows: pass a larger --reference-holdout for a steadier"
            " anomstream_error_drift", reference.windows,
        )
    return Fitted(
        arch=config.arch,
        model=model,
        scorer=scorer,
        fitted=fit_windows,
        holdout=len(holdout_raw),
        reference=reference,
        fitted_on="holdout-normal" if len(holdout_raw) else "train-normal",
        seconds=seconds,
        history={key: [float(v) for v in values] for key, values in history.history.items()},
    )


def train(dataset: Dataset, config: TrainConfig, on_epoch: EpochCallback | None = None, test: Dataset | None = None) -> TrainResult:
    """Fit on `dataset`'s training rows (all of it when `test`, a --test-data file, is given), evaluate on the test rows."""
    split = parts(dataset, test, config.test_size, config.split_seed)
    train_normal = split.train.windows[split.train.labels == 1]
    _warn_about_labels(split.train, len(train_normal))
    # The tutorial's constants: min and max of every training window, normal or not; never of test windows.
    fitted = fit_normal(train_normal, config, Normalisation.fit(split.train.windows), on_epoch)
    test_errors = fitted.scorer.errors(split.test.windows)
    result = evaluate(test_errors, split.test.labels, fitted.scorer.threshold.value)
    if result.roc_auc is not None and result.roc_auc < 0.5:
        log.warning(
            "ROC-AUC on the test rows is %.3f, below chance: anomalies reconstruct better than normal windows. Is"
            " --normal-label the normal class (now %s)?", result.roc_auc, ", ".join(dataset.normal_labels) or "unlabelled",
        )
    normalisation = fitted.scorer.normalisation
    shape = dataset.window_shape
    data_record = dataset.describe()
    if test is not None:
        data_record["test_data"] = test.describe()
    fields = {
        "name": config.name or f"{dataset.path.name.split('.')[0].lower().replace('_train', '')}-{fitted.arch}",
        "window_length": shape[-1],
        "channels": shape[0],
        **({"window_height": shape[1]} if is_image(shape) else {}),
        "architecture": {"name": fitted.arch, "noise_factor": config.noise_factor, "parameters": fitted.model.count_params()},
        "normalisation": {
            "method": "per-channel-min-max",
            "minimum": normalisation.minimum.tolist(),
            "maximum": normalisation.maximum.tolist(),
        },
        "threshold": {**fitted.scorer.threshold.describe(), "fitted_on": fitted.fitted_on},
        "data": data_record,
        "split": {
            "test_size": split.test_size,
            "seed": config.split_seed,
            "train": len(split.train),
            "test": len(split.test),
            "train_normal": len(fitted.fitted),
            "holdout_normal": fitted.holdout,
            "reference_normal": fitted.reference.windows if fitted.reference else 0,
        },
        "training": {
            "seed": config.seed,
            "epochs": config.epochs,
            "batch_size": config.batch_size,
            "min_steps": config.min_steps,
            "steps_per_epoch": config.steps_per_epoch(len(fitted.fitted)),
            "optimizer": f"adam(lr={config.learning_rate:g})",
            "loss": config.loss,
            "input_noise": config.input_noise,
            "seconds": round(fitted.seconds, 3),
            "history": fitted.history,
        },
        "evaluation": result,
        "drift": fitted.reference,
    }
    return TrainResult(fitted.model, fitted.scorer, split, result, test_errors, fields, fitted.fitted)


def _warn_about_labels(train: Dataset, normal: int) -> None:
    if normal == 0:
        raise DataError(
            f"{train.path} has no normal training rows (normal labels: {', '.join(train.normal_labels)}): the autoencoder"
            " learns what normal looks like, so pass --normal-label with the label of normal windows."
        )
    if normal < len(train) - normal:
        log.warning(
            "only %d of %d training rows are normal (labels %s): the autoencoder is fitted on the minority class. If"
            " the normal class is another label, pass it with --normal-label.", normal, len(train), ", ".join(train.normal_labels),
        )


def noisy(windows: np.ndarray, factor: float, seed: int) -> np.ndarray:
    """The tutorial's noisy inputs: `x + factor * N(0, 1)` once per window, clipped to [0, 1]; `windows` when 0."""
    if factor <= 0:
        return windows
    noise = np.random.default_rng(seed).standard_normal(windows.shape).astype(np.float32)
    return np.clip(windows + np.float32(factor) * noise, 0.0, 1.0)


def _inputs(windows: np.ndarray, inputs: np.ndarray, config: TrainConfig) -> dict[str, Any]:
    """`model.fit`'s inputs (`inputs`, noisy copies for the tutorial's denoiser, else `windows`) and targets
    (`windows`): the arrays for one shuffled pass per epoch, or, when `min_steps` asks for more updates than
    that gives, a shuffled and repeated stream of the same pairs cut into epochs of equal length."""
    steps = config.steps_per_epoch(len(windows))
    if steps <= -(-len(windows) // config.batch_size):  # one pass per epoch is enough
        return {"x": inputs, "y": windows, "batch_size": config.batch_size, "shuffle": True}
    stream = tf.data.Dataset.from_tensor_slices((inputs, windows))
    stream = stream.shuffle(len(windows), seed=config.seed, reshuffle_each_iteration=True).repeat().batch(config.batch_size)
    return {"x": stream.prefetch(2), "steps_per_epoch": steps, "shuffle": False}


def _holdout(windows: np.ndarray, threshold: float, reference: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fit, threshold holdout, drift reference) of the normal windows; fractions are of all of them."""
    if threshold <= 0 and reference <= 0:
        return windows, windows[:0], windows[:0]
    if not (0 <= threshold and 0 <= reference and threshold + reference < 1):
        raise ValueError(f"holdout fractions {threshold} (threshold) and {reference} (drift reference) must add up to below 1")
    order = np.random.default_rng(seed).permutation(len(windows))
    cut = int(round(len(windows) * threshold))
    end = cut + int(round(len(windows) * reference))
    return windows[order[end:]], windows[order[:cut]], windows[order[cut:end]]
