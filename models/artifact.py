"""Model artifacts: a directory with `model.keras`, `model.tflite` and a strict, versioned `model.json`.

`model.json` is written last and atomically, and records the sha256 of both
model files: a reader (the worker's hot reload too) either sees a complete
artifact or a clear `ArtifactError` naming the path and the problem.

`model.tflite` is the same model converted for LiteRT at training time
(`--runtime litert`). Schema version 2 added it; version 1 artifacts, which lack
it, still load on TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from anomstream.errors import ArtifactError
from anomstream.models.evaluate import Evaluation

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
MODEL_FILE = "model.keras"
LITERT_FILE = "model.tflite"
META_FILE = "model.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ThresholdRecord(_Strict):
    method: Literal["mean-std", "percentile", "fpr"]
    params: dict[str, float]
    value: float
    fitted_on: Literal["train-normal", "holdout-normal"]


class NormalisationRecord(_Strict):
    method: Literal["global-min-max"] = "global-min-max"
    minimum: float
    maximum: float


class ArchitectureRecord(_Strict):
    name: Literal["dense", "conv1d"]
    noise_factor: float
    parameters: int


class DataRecord(_Strict):
    file: str
    sha256: str  # of the uncompressed CSV, so .csv and .csv.gz of the same data agree
    rows: int
    normal: int
    anomalous: int


class SplitRecord(_Strict):
    test_size: float
    seed: int
    train: int
    test: int
    train_normal: int
    holdout_normal: int


class TrainingRecord(_Strict):
    seed: int
    epochs: int
    batch_size: int
    optimizer: str
    loss: str
    seconds: float
    history: dict[str, list[float]]


class ModelFileRecord(_Strict):
    file: str
    sha256: str
    bytes: int


class Metadata(_Strict):
    """Everything a worker or a reader of a report needs to know about one model."""

    schema_version: Literal[1, 2] = SCHEMA_VERSION
    name: str
    version: str
    created_at: str
    window_length: int
    architecture: ArchitectureRecord
    normalisation: NormalisationRecord
    threshold: ThresholdRecord
    model_file: ModelFileRecord
    litert_file: ModelFileRecord | None = None  # schema 2 on; the worker's --runtime litert reads it
    data: DataRecord
    split: SplitRecord
    training: TrainingRecord
    evaluation: Evaluation


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_record(path: Path) -> ModelFileRecord:
    return ModelFileRecord(file=path.name, sha256=sha256_file(path), bytes=path.stat().st_size)


def save(directory: str | os.PathLike[str], model: Any, fields: dict[str, Any]) -> Metadata:
    """Write both model files, then `model.json` (atomically); `fields` is everything but the file records and version."""
    from anomstream.models.runtimes import export_litert

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model_path = directory / MODEL_FILE
    partial = directory / (MODEL_FILE + ".partial.keras")
    model.save(partial)
    partial.replace(model_path)
    export_litert(model, directory / LITERT_FILE)
    model_file = _file_record(model_path)
    created = datetime.now(timezone.utc)
    metadata = Metadata(
        version=f"{created:%Y%m%dT%H%M%SZ}-{model_file.sha256[:8]}",
        created_at=created.isoformat(timespec="seconds"),
        model_file=model_file,
        litert_file=_file_record(directory / LITERT_FILE),
        **fields,
    )
    meta_partial = directory / (META_FILE + ".partial")
    meta_partial.write_text(metadata.model_dump_json(indent=2) + "\n")
    meta_partial.replace(directory / META_FILE)
    return metadata


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
        return Metadata.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ArtifactError(
            f"{path} does not match the artifact schema ({exc.error_count()} problems; first: {where}: {first['msg']})."
        ) from None


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

    directory = Path(directory)
    metadata = read_metadata(directory)
    model_path = _checked(directory, metadata.model_file)
    try:
        model = keras.saving.load_model(model_path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types for a bad file; all mean the same to the user
        raise ArtifactError(f"{model_path} cannot be loaded by Keras: {str(exc).splitlines()[0]}.") from exc
    if model.input_shape[-1] != metadata.window_length:
        raise ArtifactError(
            f"{directory} is inconsistent: the model takes windows of {model.input_shape[-1]},"
            f" {META_FILE} says {metadata.window_length}."
        )
    return metadata, model


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
    norm = Normalisation(metadata.normalisation.minimum, metadata.normalisation.maximum)
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
    if runtime.window_length != metadata.window_length:
        raise ArtifactError(
            f"{directory} is inconsistent: {LITERT_FILE} takes windows of {runtime.window_length},"
            f" {META_FILE} says {metadata.window_length}."
        )
    return metadata, runtime
