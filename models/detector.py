"""The Python API: an artifact loaded once, scoring windows exactly as the worker does.

    import anomstream
    detector = anomstream.load("artifacts/ecg-dense")
    result = detector.score(windows)        # (n, length) or (n, channels, length); images (n, height, width)
    result.errors, result.anomalous
    detector.score(windows, explain="range").explanations  # where each anomalous window's error sits
    detector.score(windows, sources=["patient-7", None, ...]).scopes  # per-source thresholds, where the artifact has them

`Detector.score` is the one scoring path: the worker calls it on every
micro-batch and `anomstream evaluate` on the data set, so the same artifact and
windows give the same errors and verdicts from all three.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from anomstream.errors import ConfigError, WindowError
from anomstream.models.explain import MODES, Explanation
from anomstream.models.explain import explain as explain_errors
from anomstream.models.scorer import window_errors
from anomstream.models.shape import Shape, sample_axes
from anomstream.models.source_thresholds import applied

if TYPE_CHECKING:
    from anomstream.models.artifact import Metadata
    from anomstream.models.scorer import Scorer

_NUMERIC_KINDS = "biuf"  # bool, integers, floats: each casts to float32 keeping its meaning; others are tried


@dataclass(frozen=True)
class Scores:
    """The verdicts on a batch of windows, in their order."""

    errors: np.ndarray  # float32: each window's mean absolute reconstruction error
    anomalous: np.ndarray  # bool: error > the window's applied threshold (`thresholds`)
    threshold: float  # the artifact's global threshold
    channel_errors: np.ndarray  # float32, (n, channels): each channel's error; `errors` is their mean
    # explain="range" or "full": one per window, None for a normal one; empty with explain="off"
    explanations: tuple[Explanation | None, ...] = ()
    # The threshold each window was judged by (float64) and its scope, "global" or "source" (models/source_thresholds.py)
    thresholds: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    scopes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.thresholds) != len(self.errors):  # built without them (older callers): every window global
            thresholds, scopes = applied(self.threshold, {}, None, len(self.errors))
            object.__setattr__(self, "thresholds", thresholds)
            object.__setattr__(self, "scopes", scopes)

    def __len__(self) -> int:
        return len(self.errors)


class Detector:
    """A model artifact on one runtime, with its normalisation and threshold."""

    def __init__(self, path: Path, metadata: Metadata, scorer: Scorer, runtime: str) -> None:
        self.path = path
        self.metadata = metadata
        self.runtime = runtime
        self._scorer = scorer

    @property
    def threshold(self) -> float:
        return float(self.metadata.threshold.value)

    @property
    def window_shape(self) -> Shape:
        """One window's shape: (channels, length), or (channels, height, width) for an image model."""
        return self._scorer.window_shape

    @property
    def channels(self) -> int:
        return self.window_shape[0]

    @property
    def window_length(self) -> int:
        """Samples per channel of a series; an image's width."""
        return self.window_shape[-1]

    @property
    def model_ref(self) -> dict[str, str]:
        """What every verdict names the model by."""
        return {"name": self.metadata.name, "version": self.metadata.version, "sha256": self.metadata.model_file.sha256}

    def score(self, windows: Any, explain: str = "off", sources: Sequence[str | None] | None = None) -> Scores:
        """Errors and verdicts of raw (unnormalised) windows, one per row; with `explain` "range" (or "full",
        which adds every sample's error) each anomalous window also gets an `Explanation` (models/explain.py),
        at the cost of a second model call on the anomalous windows only. `sources`: each window's source (or
        None); a source with its own threshold in the artifact is judged by it, every other window by the global one."""
        if explain not in MODES:
            raise ConfigError(f"explain={explain!r} is not one of {', '.join(MODES)}.")
        values = self.check(windows)
        thresholds, scopes = applied(self.threshold, self.metadata.threshold.per_source, sources, len(values))
        if not len(values):
            return Scores(np.empty(0, np.float32), np.empty(0, bool), self.threshold, np.empty((0, self.channels), np.float32), (), thresholds)
        channel_errors = self._scorer.channel_errors(values)
        errors = window_errors(channel_errors)
        # Compared in float64, as Threshold.predict does: the verdict's Python-float compare gives the same answer.
        anomalous = np.asarray(errors, dtype=np.float64) > thresholds
        explanations: tuple[Explanation | None, ...] = ()
        if explain != "off":
            explanations = self._explain(values, anomalous, full=explain == "full")
        return Scores(errors, anomalous, self.threshold, channel_errors, explanations, thresholds, scopes)

    def _explain(self, values: np.ndarray, anomalous: np.ndarray, full: bool) -> tuple[Explanation | None, ...]:
        found: list[Explanation | None] = [None] * len(values)
        rows = np.flatnonzero(anomalous)
        if rows.size:
            for row, explanation in zip(rows.tolist(), explain_errors(self._scorer.sample_errors(values[rows]), full)):
                found[row] = explanation
        return tuple(found)

    def reconstruct(self, windows: Any, scaled: bool = False) -> np.ndarray:
        """Reconstructions in the normalised scale (for plots), with the inputs scaled alike by `normalise`;
        `scaled`: the windows are in that scale already (a denoiser's noisy inputs)."""
        if scaled:
            return self._scorer.runtime.reconstruct(self.check(windows))
        return self._scorer.reconstruct(self.check(windows))

    def normalise(self, windows: Any) -> np.ndarray:
        return self._scorer.normalisation.apply(self.check(windows))

    def check(self, windows: Any) -> np.ndarray:
        """Windows as float32 (n, channels, length), or one sentence saying what is wrong with them."""
        return check_windows(windows, self.window_shape)


def check_windows(windows: Any, window_shape: Shape) -> np.ndarray:
    """`windows` as float32 (n, *window_shape); a one-channel shape also takes the windows without their channel
    axis, (n, length) or (n, height, width)."""
    channels, inner = window_shape[0], tuple(window_shape[1:])
    full = "(n, " + ", ".join(map(str, window_shape)) + ")"
    expected = full if channels > 1 else f"(n, {', '.join(map(str, inner))}) or {full}"
    try:
        values = np.asarray(windows)
    except ValueError as exc:  # ragged nested lists
        raise WindowError(f"windows are not a rectangular array ({exc}): this model takes {expected}.") from None
    if values.dtype.kind == "c":  # it would cast, with a warning, by dropping the imaginary part
        raise WindowError(f"windows of dtype {values.dtype} are not real numbers.")
    if values.dtype.kind not in _NUMERIC_KINDS:
        try:
            values = values.astype(np.float32)
        except (TypeError, ValueError):
            raise WindowError(f"windows of dtype {values.dtype} cannot be read as float32 samples: give numbers.") from None
    if channels == 1 and values.ndim == len(window_shape) and values.shape[1:] == inner:
        values = values.reshape(len(values), *window_shape)
    if values.ndim != len(window_shape) + 1 or values.shape[1:] != tuple(window_shape):
        hint = " (one window? pass windows[None])" if values.shape in (inner, tuple(window_shape)) else ""
        raise WindowError(f"windows have shape {values.shape}; this model takes {expected}{hint}.")
    values = values.astype(np.float32, copy=False)
    finite = np.isfinite(values).all(axis=(1, *sample_axes(values.ndim)))
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise WindowError(
            f"{bad.size} of {len(values)} windows hold NaN or infinite samples (first: row {bad[0]}): every sample must be finite."
        )
    return values


def load(path: str | os.PathLike[str], runtime: str = "auto", threads: int = 1) -> Detector:
    """Load an artifact directory; `runtime` is tensorflow, litert, or auto (LiteRT when the artifact
    has model.tflite and ai-edge-litert is installed, else TensorFlow)."""
    from anomstream.models import artifact, runtimes

    path = Path(path)
    chosen = runtimes.resolve(runtime, has_litert=artifact.read_metadata(path).litert_file is not None)
    metadata, scorer = artifact.scorer(path, chosen, threads)
    return Detector(path, metadata, scorer, chosen)
