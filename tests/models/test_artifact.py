import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from anomstream.errors import ArtifactError
from anomstream.models import artifact


@pytest.fixture
def copy(tmp_path, tiny_artifact) -> Path:
    target = tmp_path / "artifact"
    shutil.copytree(tiny_artifact, target)
    return target


def edit_json(path: Path, change) -> None:
    meta = json.loads((path / artifact.META_FILE).read_text())
    change(meta)
    (path / artifact.META_FILE).write_text(json.dumps(meta))


def test_round_trip_scores_like_the_saved_model(tiny_artifact, synthetic_csv):
    from anomstream.models import data

    metadata, scorer = artifact.scorer(tiny_artifact)
    assert metadata.schema_version == artifact.SCHEMA_VERSION
    assert metadata.window_length == 32
    assert metadata.version.endswith(metadata.model_file.sha256[:8])
    assert metadata.threshold.method == "mean-std" and metadata.threshold.params == {"k": 1.0}
    ds = data.load(synthetic_csv)
    test = data.split(ds, metadata.split.test_size, metadata.split.seed).test
    errors = scorer.errors(test.windows)
    # The errors recomputed from disk reproduce the evaluation recorded at training time.
    from anomstream.models.evaluate import evaluate

    assert evaluate(errors, test.labels, metadata.threshold.value) == metadata.evaluation


def test_model_json_records_what_the_contract_names(tiny_artifact):
    meta = json.loads((tiny_artifact / artifact.META_FILE).read_text())
    assert {"name", "version", "window_length", "normalisation", "threshold", "data", "split", "training", "evaluation"} <= meta.keys()
    assert meta["normalisation"]["maximum"] > meta["normalisation"]["minimum"]
    assert len(meta["data"]["sha256"]) == 64
    assert len(meta["training"]["history"]["loss"]) == meta["training"]["epochs"]


def test_missing_directory(tmp_path):
    with pytest.raises(ArtifactError) as caught:
        artifact.load(tmp_path / "nowhere")
    assert str(caught.value) == (
        f"model artifact {tmp_path / 'nowhere'} does not exist: train one with `anomstream train --out {tmp_path / 'nowhere'}`."
    )


def test_missing_model_json(copy):
    (copy / artifact.META_FILE).unlink()
    with pytest.raises(ArtifactError, match="is not a model artifact: model.json is missing"):
        artifact.load(copy)


def test_corrupt_model_json(copy):
    (copy / artifact.META_FILE).write_text('{"schema_version": 1, "name": ')
    with pytest.raises(ArtifactError, match=r"model.json is corrupt: Expecting value"):
        artifact.load(copy)


def test_unknown_field_is_refused(copy):
    edit_json(copy, lambda meta: meta.update(surprise=1))
    with pytest.raises(ArtifactError, match=r"does not match the artifact schema \(1 problems; first: surprise: Extra inputs"):
        artifact.load(copy)


def test_missing_field_is_refused(copy):
    edit_json(copy, lambda meta: meta["normalisation"].pop("maximum"))
    with pytest.raises(ArtifactError, match="first: normalisation.maximum: Field required"):
        artifact.load(copy)


def test_newer_schema_version_is_refused(copy):
    edit_json(copy, lambda meta: meta.update(schema_version=99))
    with pytest.raises(ArtifactError, match="has schema_version 99; this anomstream reads versions 1, 2: retrain"):
        artifact.load(copy)


def test_truncated_model_file(copy):
    model = copy / artifact.MODEL_FILE
    model.write_bytes(model.read_bytes()[:1000])
    with pytest.raises(ArtifactError, match="model.keras is corrupt or truncated: its sha256 does not match model.json"):
        artifact.load(copy)


def test_missing_model_file(copy):
    (copy / artifact.MODEL_FILE).unlink()
    with pytest.raises(ArtifactError, match="is incomplete: model.keras is missing"):
        artifact.load(copy)


def test_garbage_model_file_with_matching_hash(copy):
    """A file whose hash was updated but is not a Keras archive still fails clearly."""
    model = copy / artifact.MODEL_FILE
    model.write_bytes(b"not a zip file at all")
    edit_json(copy, lambda meta: meta["model_file"].update(sha256=artifact.sha256_file(model)))
    with pytest.raises(ArtifactError, match="model.keras cannot be loaded by Keras"):
        artifact.load(copy)


def test_window_length_disagreement_is_refused(copy):
    edit_json(copy, lambda meta: meta.update(window_length=140))
    with pytest.raises(ArtifactError, match="is inconsistent: the model takes windows of 32, model.json says 140"):
        artifact.load(copy)


def test_save_leaves_no_partial_files(tiny_artifact):
    assert sorted(p.name for p in tiny_artifact.iterdir()) == [artifact.META_FILE, artifact.MODEL_FILE, artifact.LITERT_FILE]


def test_loading_is_safe_mode(copy, monkeypatch):
    import keras

    seen = {}
    real = keras.saving.load_model

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(keras.saving, "load_model", spy)
    artifact.load(copy)
    assert seen["safe_mode"] is True
    assert np.isfinite(artifact.read_metadata(copy).threshold.value)


def test_both_model_files_are_recorded(tiny_artifact):
    metadata = artifact.read_metadata(tiny_artifact)
    assert metadata.litert_file is not None
    for record in (metadata.model_file, metadata.litert_file):
        path = tiny_artifact / record.file
        assert (record.sha256, record.bytes) == (artifact.sha256_file(path), path.stat().st_size)


def as_schema_1(meta: dict) -> None:
    """What a release before model.tflite wrote."""
    meta.update(schema_version=1)
    meta.pop("litert_file")


def test_a_schema_1_artifact_still_loads_on_tensorflow_and_says_what_litert_needs(copy):
    edit_json(copy, as_schema_1)
    (copy / artifact.LITERT_FILE).unlink()
    metadata, scorer = artifact.scorer(copy)
    assert metadata.schema_version == 1 and metadata.litert_file is None
    assert np.isfinite(scorer.errors(np.zeros((2, 32), dtype=np.float32))).all()
    with pytest.raises(ArtifactError) as caught:
        artifact.scorer(copy, "litert")
    assert str(caught.value) == (
        f"{copy} has no model.tflite (schema_version 1): retrain it with this anomstream, or use --runtime tensorflow."
    )


def test_truncated_litert_file_is_refused_on_litert_only(copy):
    litert = copy / artifact.LITERT_FILE
    litert.write_bytes(litert.read_bytes()[:1000])
    with pytest.raises(ArtifactError, match="model.tflite is corrupt or truncated: its sha256 does not match model.json"):
        artifact.scorer(copy, "litert")
    artifact.scorer(copy, "tensorflow")  # TensorFlow reads model.keras only


def test_garbage_litert_file_with_matching_hash(copy):
    litert = copy / artifact.LITERT_FILE
    litert.write_bytes(b"not a flatbuffer")
    edit_json(copy, lambda meta: meta["litert_file"].update(sha256=artifact.sha256_file(litert)))
    with pytest.raises(ArtifactError, match="model.tflite cannot be loaded by LiteRT: "):
        artifact.scorer(copy, "litert")


def test_litert_round_trip_reproduces_the_recorded_evaluation(tiny_artifact, synthetic_csv):
    from anomstream.models import data
    from anomstream.models.evaluate import evaluate

    metadata, scorer = artifact.scorer(tiny_artifact, "litert")
    test = data.split(data.load(synthetic_csv), metadata.split.test_size, metadata.split.seed).test
    assert evaluate(scorer.errors(test.windows), test.labels, metadata.threshold.value) == metadata.evaluation
