"""Model artifacts: a directory with `model.keras`, `model.tflite` and a strict, versioned `model.json`.

`model.json` is written last and atomically, records the sha256 of both model
files, and carries a digest of its own content: a reader (the worker's hot
reload too) either sees a complete, unaltered artifact or a clear
`ArtifactError` naming the path and the problem. Its values are checked as well
as its shape: a threshold is finite and positive, normalisation constants are
finite with minimum < maximum, and a model file is a name inside the directory.

A new artifact is written beside the one it replaces: both model files under
staging names first, then checked (LiteRT's errors against TensorFlow's on the
windows the model was fitted on), then renamed into place, and `model.json`
last. A conversion or check that fails leaves the serving artifact as it was.

`model.tflite` is the same model converted for LiteRT (`--runtime litert`).
Schema 2 added it; 3 the value checks and the digest; 4 the channels,
per-channel normalisation and what identifies the data; optional fields since
(per-source thresholds, the drift reference) keep 4; 5 is a model of 2-D windows
(`window_height`), written only for those, so a 1-D artifact stays readable by
releases that know 4 and an older release refuses a 2-D one by its version. Versions 1 to 3 load as
one-channel models (1 on TensorFlow only).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from anomstream.errors import ArtifactError
from anomstream.models.drift import DriftReference
from anomstream.models.evaluate import Evaluation
from anomstream.models.shape import Shape, text

log = logging.getLogger("anomstream.models")

SCHEMA_VERSION = 4
IMAGE_SCHEMA_VERSION = 5  # what a model of 2-D windows is written as: a reader of 1-4 refuses it by its version
READABLE_VERSIONS = (1, 2, 3, 4, 5)
# LiteRT's errors may differ from TensorFlow's by float32 rounding (measured ~1e-7), never by more than this.
RUNTIMES_AGREE_WITHIN = 1e-4
MODEL_FILE = "model.keras"
LITERT_FILE = "model.tflite"
META_FILE = "model.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ThresholdRecord(_Strict):
    method: Literal["mean-std", "percentile", "fpr", "mad"]
    params: dict[str, float]
    value: float
    fitted_on: Literal["train-normal", "holdout-normal"]
    # Optional (schema_version stays 4; older artifacts load unchanged): a window whose `source` is here is judged by its value.
    per_source: dict[str, float] = Field(default_factory=dict)

    @field_validator("value")
    @classmethod
    def _finite_and_positive(cls, value: float) -> float:
        # A verdict's score is error / threshold, and a NaN threshold flags nothing: neither may reach a worker.
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"the threshold must be a finite number above 0, not {value}")
        return value

    @field_validator("per_source")
    @classmethod
    def _each_finite_and_positive(cls, per_source: dict[str, float]) -> dict[str, float]:
        for source, value in per_source.items():
            if not (source and math.isfinite(value) and value > 0):
                raise ValueError(f"the threshold of source {source!r} must be a finite number above 0 for a named source, not {value}")
        return per_source


class NormalisationRecord(_Strict):
    """Min-max constants: one pair for the window (schemas 1-3, "global-min-max"), or one per channel."""

    method: Literal["global-min-max", "per-channel-min-max"] = "global-min-max"
    minimum: float | list[float]
    maximum: float | list[float]

    @model_validator(mode="after")
    def _a_finite_range(self) -> NormalisationRecord:
        per_channel = self.method == "per-channel-min-max"
        if per_channel != isinstance(self.minimum, list) or per_channel != isinstance(self.maximum, list):
            raise ValueError(f"{self.method} takes {'a list per channel' if per_channel else 'one number'} for minimum and maximum")
        low, high = self.bounds()
        if low.size != high.size or not low.size:
            raise ValueError(f"minimum has {low.size} values and maximum {high.size}: give one pair per channel")
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            raise ValueError(f"minimum and maximum must be finite, not {self.minimum} and {self.maximum}")
        if not (low < high).all():
            raise ValueError(f"minimum ({self.minimum}) must be below maximum ({self.maximum}): windows would scale to infinity")
        return self

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return np.atleast_1d(np.asarray(self.minimum, np.float64)), np.atleast_1d(np.asarray(self.maximum, np.float64))


class ArchitectureRecord(_Strict):
    name: Literal["dense", "conv1d", "conv2d", "basic", "denoise"]
    noise_factor: float
    parameters: int


class DataRecord(_Strict):
    file: str
    sha256: str  # of the uncompressed file, so .csv and .csv.gz of the same data agree
    rows: int
    normal: int
    anomalous: int
    # Schema 4 on. `content`: sha256 of the parsed windows and their row numbers (models/data.py), which is what
    # identifies data across copies (CRLF, gzip, reformatting); the layout, normal labels and windowing read it.
    content: str | None = None
    layout: Literal["tutorial", "ucr", "npz", "series", "digits", "fashion-mnist"] | None = None
    normal_labels: list[str] | None = None
    window: int | None = None
    stride: int | None = None
    test_data: DataRecord | None = None  # the --test-data file, when the data set ships split


class SplitRecord(_Strict):
    test_size: float | None  # None: the test rows are the --test-data file, nothing was carved
    seed: int
    train: int
    test: int
    train_normal: int
    holdout_normal: int
    reference_normal: int = 0  # normal windows held out of both fits for the drift reference


class TrainingRecord(_Strict):
    seed: int
    epochs: int
    batch_size: int
    min_steps: int = Field(default=0, ge=0)  # absent before min_steps existed: one pass per epoch
    steps_per_epoch: int | None = Field(default=None, ge=1)
    optimizer: str
    loss: str
    input_noise: float = Field(default=0.0, ge=0)  # the tutorial's denoising: fixed noise on the inputs, clean targets
    seconds: float
    history: dict[str, list[float]]


class ModelFileRecord(_Strict):
    file: str
    sha256: str
    bytes: int

    @field_validator("file")
    @classmethod
    def _a_name_in_the_directory(cls, file: str) -> str:
        if not file or file in (".", "..") or "/" in file or "\\" in file or "\0" in file:
            raise ValueError(f"{file!r} is not a file name inside the artifact directory")
        return file


class Metadata(_Strict):
    """Everything a worker or a reader of a report needs to know about one model."""

    schema_version: Literal[1, 2, 3, 4, 5] = SCHEMA_VERSION
    name: str
    version: str
    created_at: str
    window_length: int
    channels: int = 1  # schema 4 on; a window is (channels, window_length)
    window_height: int | None = None  # schema 5: a 2-D window, (channels, window_height, window_length)
    architecture: ArchitectureRecord
    normalisation: NormalisationRecord
    threshold: ThresholdRecord
    model_file: ModelFileRecord
    litert_file: ModelFileRecord | None = None  # schema 2 on; the worker's --runtime litert reads it
    data: DataRecord
    split: SplitRecord
    training: TrainingRecord
    evaluation: Evaluation
    drift: DriftReference | None = None  # optional (schema stays 4): the errors live drift is measured against
    digest: str | None = None  # schema 3 on: sha256 of this file's canonical content without this field (`content_digest`)

    @model_validator(mode="after")
    def _one_shape(self) -> Metadata:
        if self.channels < 1 or self.window_length < 2 or (self.window_height is not None and self.window_height < 2):
            raise ValueError(f"a window of {text(self.window_shape)} is not a window")
        if (self.window_height is not None) != (self.schema_version >= IMAGE_SCHEMA_VERSION):
            raise ValueError(f"schema_version {self.schema_version} {'needs' if self.schema_version >= 5 else 'has no'} window_height")
        if self.normalisation.bounds()[0].size not in (1, self.channels):
            raise ValueError(f"normalisation has {self.normalisation.bounds()[0].size} channels, the window {self.channels}")
        return self

    @property
    def window_shape(self) -> Shape:
        if self.window_height is not None:
            return (self.channels, self.window_height, self.window_length)
        return (self.channels, self.window_length)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_record(path: Path, name: str) -> ModelFileRecord:
    """The record of the file at `path`, under the `name` it will have in the artifact."""
    return ModelFileRecord(file=name, sha256=sha256_file(path), bytes=path.stat().st_size)


def content_digest(raw: dict[str, Any]) -> str:
    """sha256 of `model.json`'s content without its `digest`: canonical JSON, so it survives re-indenting."""
    body = {key: value for key, value in raw.items() if key != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()


def sealed(raw: dict[str, Any]) -> dict[str, Any]:
    """`raw` with the digest of its content: what `save` writes, and what a tool that rewrites model.json must write."""
    return {**raw, "digest": content_digest(raw)}


def save(
    directory: str | os.PathLike[str], model: Any, fields: dict[str, Any], fitted: np.ndarray | None = None
) -> Metadata:
    """Write both model files beside the serving ones, check them, rename them into place, then `model.json`.

    `fields` is everything but the file records, version and digest. `fitted`: scaled windows the model was
    fitted on; LiteRT must reproduce TensorFlow's errors on them (`RUNTIMES_AGREE_WITHIN`) or nothing is replaced.
    """
    from anomstream.models.runtimes import export_litert

    directory = Path(directory)
    if directory.is_dir() and any(directory.iterdir()) and not (directory / META_FILE).exists():
        raise ArtifactError(f"{directory} is a directory with files but no {META_FILE}: write the artifact to a new or empty directory.")
    directory.mkdir(parents=True, exist_ok=True)
    staged = {name: directory / f".new.{name}" for name in (MODEL_FILE, LITERT_FILE)}  # hidden; Keras keeps its suffix
    try:
        model.save(staged[MODEL_FILE])
        try:
            export_litert(model, staged[LITERT_FILE])
        except Exception as exc:  # TensorFlow's converter raises many types; each means the same here
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ArtifactError(f"{directory} was not replaced: the LiteRT conversion failed ({reason}); the serving artifact is unchanged.") from exc
        if fitted is not None:
            _check_runtimes_agree(model, staged[LITERT_FILE], fitted, directory)
        created = datetime.now(timezone.utc)
        model_file = _file_record(staged[MODEL_FILE], MODEL_FILE)
        try:
            metadata = Metadata(
                schema_version=IMAGE_SCHEMA_VERSION if fields.get("window_height") else SCHEMA_VERSION,
                version=f"{created:%Y%m%dT%H%M%SZ}-{model_file.sha256[:8]}",
                created_at=created.isoformat(timespec="seconds"),
                model_file=model_file,
                litert_file=_file_record(staged[LITERT_FILE], LITERT_FILE),
                **fields,
            )
        except ValidationError as exc:
            raise ArtifactError(f"{directory} was not written: {_first_problem(exc)}.") from None
        raw = sealed(metadata.model_dump(mode="json", exclude={"digest"}))
        for name, path in staged.items():
            path.replace(directory / name)
    finally:
        for path in staged.values():
            path.unlink(missing_ok=True)
    meta_partial = directory / (META_FILE + ".partial")
    meta_partial.write_text(json.dumps(raw, indent=2) + "\n")
    meta_partial.replace(directory / META_FILE)
    return Metadata.model_validate(raw)


def _check_runtimes_agree(model: Any, litert_path: Path, fitted: np.ndarray, directory: Path) -> None:
    from anomstream.models import runtimes

    if not runtimes.litert_installed():
        log.warning("%s not checked against TensorFlow: ai-edge-litert is not installed (pip install ai-edge-litert)", LITERT_FILE)
        return
    sample = np.asarray(fitted[:2048], dtype=np.float32)
    keras_errors = runtimes.KerasRuntime(model).channel_errors(sample)
    litert_errors = runtimes.LiteRTRuntime(litert_path).channel_errors(sample)
    gap = float(np.max(np.abs(keras_errors - litert_errors))) if len(sample) else 0.0
    if not gap <= RUNTIMES_AGREE_WITHIN:
        raise ArtifactError(
            f"{directory} was not replaced: the LiteRT conversion's errors differ from TensorFlow's by {gap:.3g} on the"
            f" fitted windows (more than {RUNTIMES_AGREE_WITHIN:g}); the serving artifact is unchanged."
        )
    log.info("%s agrees with TensorFlow on %d fitted windows (largest difference %.2g)", LITERT_FILE, len(sample), gap)


def read_metadata(directory: str | os.PathLike[str]) -> Metadata:
    """Read and check `model.json` without loading TensorFlow weights."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ArtifactError(f"model artifact {directory} does not exist: train one with `anomstream train --out {directory}`.")
    path = directory / META_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{directory} is not a model artifact: {META_FILE} is missing.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path} is corrupt: {exc}.") from None
    if not isinstance(raw, dict):
        raise ArtifactError(f"{path} is corrupt: expected a JSON object.")
    version = raw.get("schema_version")
    if version not in READABLE_VERSIONS:
        raise ArtifactError(
            f"{path} has schema_version {version!r}; this anomstream reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}: retrain the model or use a matching anomstream release."
        )
    try:
        metadata = Metadata.model_validate(raw)
    except ValidationError as exc:
        raise ArtifactError(f"{path} does not match the artifact schema ({exc.error_count()} problems; first: {_first_problem(exc)}).") from None
    if version >= 3:
        if not raw.get("digest"):
            raise ArtifactError(f"{path} has no digest (schema_version {version} requires one): retrain the model.")
        if raw["digest"] != content_digest(raw):
            raise ArtifactError(
                f"{path} was changed after it was written (its content does not match its digest): retrain the model,"
                " or rewrite model.json with a tool that seals it (anomstream.models.artifact.sealed)."
            )
    return metadata


def _first_problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}"


def verify(directory: str | os.PathLike[str]) -> Metadata:
    """The checked metadata, and both model files present with the sha256 it records (no model is loaded)."""
    directory = Path(directory)
    metadata = read_metadata(directory)
    for record in (metadata.model_file, metadata.litert_file):
        if record is not None:
            _checked(directory, record)
    return metadata


def _checked(directory: Path, record: ModelFileRecord) -> Path:
    """The path of a model file that exists and has the sha256 `model.json` records for it."""
    path = directory / record.file
    if not path.is_file():
        raise ArtifactError(f"{directory} is incomplete: {record.file} is missing.")
    if sha256_file(path) != record.sha256:
        raise ArtifactError(f"{path} is corrupt or truncated: its sha256 does not match {META_FILE}.")
    return path


def load(directory: str | os.PathLike[str]) -> tuple[Metadata, Any]:
    """The checked metadata and the Keras model, loaded with `safe_mode=True`."""
    from anomstream.models.backend import keras
    from anomstream.models.shape import of_input

    directory = Path(directory)
    metadata = read_metadata(directory)
    model_path = _checked(directory, metadata.model_file)
    try:
        model = keras.saving.load_model(model_path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types for a bad file; all mean the same to the user
        raise ArtifactError(f"{model_path} cannot be loaded by Keras: {str(exc).splitlines()[0]}.") from exc
    _check_shape(directory, MODEL_FILE, of_input(model.input_shape), metadata)
    return metadata, model


def _check_shape(directory: Path, file: str, shape: Shape, metadata: Metadata) -> None:
    if shape != metadata.window_shape:
        raise ArtifactError(
            f"{directory} is inconsistent: {file} takes windows of {text(shape)}, {META_FILE} says {text(metadata.window_shape)}."
        )


def scorer(directory: str | os.PathLike[str], runtime: str = "tensorflow", threads: int = 1) -> tuple[Metadata, Any]:
    """The metadata and a ready `Scorer` for an artifact, on TensorFlow or LiteRT (`threads` is LiteRT's)."""
    from anomstream.models import runtimes
    from anomstream.models.scorer import Normalisation, Scorer
    from anomstream.models.threshold import restore

    runtimes.check_available(runtime)
    if runtime == "litert":
        metadata, model = _litert(Path(directory), threads)
    else:
        metadata, keras_model = load(directory)
        model = runtimes.KerasRuntime(keras_model)
    minimum, maximum = metadata.normalisation.bounds()
    if minimum.size != metadata.channels:  # one global pair (schemas 1-3) serves every channel
        minimum, maximum = np.repeat(minimum, metadata.channels), np.repeat(maximum, metadata.channels)
    norm = Normalisation(minimum, maximum)
    threshold = restore(metadata.threshold.method, metadata.threshold.params, metadata.threshold.value)
    return metadata, Scorer(model, norm, threshold)


def _litert(directory: Path, threads: int) -> tuple[Metadata, Any]:
    from anomstream.models.runtimes import LiteRTRuntime

    metadata = read_metadata(directory)
    if metadata.litert_file is None:
        raise ArtifactError(
            f"{directory} has no {LITERT_FILE} (schema_version {metadata.schema_version}): "
            "retrain it with this anomstream, or use --runtime tensorflow."
        )
    runtime = LiteRTRuntime(_checked(directory, metadata.litert_file), threads)
    _check_shape(directory, LITERT_FILE, runtime.window_shape, metadata)
    return metadata, runtime
