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


def edit_json(path: Path, change, seal: bool = True) -> None:
    """Change model.json as a writer would (sealed: its digest matches), or as a hand edit would (`seal=False`)."""
    meta = json.loads((path / artifact.META_FILE).read_text())
    change(meta)
    (path / artifact.META_FILE).write_text(json.dumps(artifact.sealed(meta) if seal else meta))


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
    with pytest.raises(ArtifactError, match="has schema_version 99; this anomstream reads versions 1, 2, 3, 4, 5: retrain"):
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
    with pytest.raises(ArtifactError, match=r"is inconsistent: model.keras takes windows of 1 x 32 \(channels x samples\), model.json says 1 x 140 \(channels x samples\)\."):
        artifact.load(copy)
    edit_json(copy, lambda meta: meta.update(window_length=32, channels=2, normalisation={**meta["normalisation"], "minimum": [0.0] * 2, "maximum": [1.0] * 2}))
    with pytest.raises(ArtifactError, match=r"model.keras takes windows of 1 x 32 \(channels x samples\), model.json says 2 x 32 \(channels x samples\)\."):
        artifact.load(copy)
    with pytest.raises(ArtifactError, match=r"model.tflite takes windows of 1 x 32 \(channels x samples\), model.json says 2 x 32 \(channels x samples\)\."):
        artifact.scorer(copy, "litert")


def test_a_schema_3_artifact_with_a_one_dimensional_model_loads_on_both_runtimes(copy, tmp_path):
    """Releases before schema 4 saved models taking (batch, length): they score (n, length) windows as before."""
    from anomstream.models.backend import keras

    inputs = keras.Input(shape=(32,))
    legacy = keras.Model(inputs, keras.layers.Dense(32, activation="sigmoid")(keras.layers.Dense(8, activation="relu")(inputs)))
    meta = json.loads((copy / artifact.META_FILE).read_text())
    fields = {k: v for k, v in meta.items() if k not in ("schema_version", "version", "created_at", "model_file", "litert_file", "digest")}
    old = tmp_path / "legacy"
    artifact.save(old, legacy, fields)

    def as_schema_3(m: dict) -> None:
        as_schema_1(m)
        m.update(schema_version=3, litert_file=json.loads((old / artifact.META_FILE).read_text())["litert_file"])

    edit_json(old, as_schema_3)
    windows = np.random.default_rng(0).normal(size=(5, 32)).astype(np.float32)
    for runtime in ("tensorflow", "litert"):
        metadata, scorer = artifact.scorer(old, runtime)
        assert metadata.schema_version == 3 and metadata.window_shape == (1, 32) and scorer.window_shape == (1, 32)
        norm = meta["normalisation"]
        scaled = (windows - norm["minimum"][0]) / (norm["maximum"][0] - norm["minimum"][0])
        expected = np.abs(legacy(scaled).numpy() - scaled).mean(axis=1)
        np.testing.assert_allclose(scorer.errors(windows), expected, atol=1e-5)


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
    """What a release before model.tflite wrote: one channel, one global min-max pair, the file's sha256 only."""
    meta.update(schema_version=1)
    meta.pop("litert_file")
    meta.pop("channels")
    norm = meta["normalisation"]
    meta["normalisation"] = {"method": "global-min-max", "minimum": norm["minimum"][0], "maximum": norm["maximum"][0]}
    for field in ("content", "layout", "normal_labels", "window", "stride", "test_data"):
        meta["data"].pop(field, None)


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


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda m: m["threshold"].update(value=0.0), "threshold.value: Value error, the threshold must be a finite number above 0, not 0.0"),
        (lambda m: m["threshold"].update(value=-0.5), "threshold.value: Value error, the threshold must be a finite number above 0, not -0.5"),
        (lambda m: m["threshold"].update(value=float("nan")), "threshold.value: Value error, the threshold must be a finite number above 0, not nan"),
        (lambda m: m["threshold"].update(value=float("inf")), "threshold.value: Value error, the threshold must be a finite number above 0, not inf"),
        (lambda m: m["normalisation"].update(minimum=[float("nan")]), r"normalisation: Value error, minimum and maximum must be finite, not \[nan\] and"),
        (lambda m: m["normalisation"].update(maximum=[float("-inf")]), "normalisation: Value error, minimum and maximum must be finite"),
        (lambda m: m["normalisation"].update(maximum=m["normalisation"]["minimum"]), "normalisation: Value error, minimum (.*) must be below maximum"),
        (lambda m: m["normalisation"].update(minimum=[9.0], maximum=[1.0]), r"normalisation: Value error, minimum \(\[9.0\]\) must be below maximum \(\[1.0\]\)"),
        (lambda m: m["normalisation"].update(minimum=9.0), "normalisation: Value error, per-channel-min-max takes a list per channel for minimum and maximum"),
        (lambda m: m["normalisation"].update(minimum=[0.0, 0.0], maximum=[1.0, 1.0]), ": Value error, normalisation has 2 channels, the window 1"),
        (lambda m: m["model_file"].update(file="/etc/passwd"), "model_file.file: Value error, '/etc/passwd' is not a file name inside the artifact directory"),
        (lambda m: m["model_file"].update(file=".."), "model_file.file: Value error, '..' is not a file name inside the artifact directory"),
        (lambda m: m["litert_file"].update(file="../other/model.tflite"), "litert_file.file: Value error, '../other/model.tflite' is not a file name"),
    ],
    ids=["threshold-0", "threshold-negative", "threshold-nan", "threshold-inf", "min-nan", "max-inf", "min-equals-max",
         "min-above-max", "one-number-per-channel", "channels-disagree", "absolute-file", "dotdot-file", "relative-escape"],
)
def test_values_that_would_break_a_worker_are_refused(copy, change, problem):
    """Sealed but wrong (a buggy writer): a zero threshold made every batch raise, a NaN one flagged nothing."""
    edit_json(copy, change)
    with pytest.raises(ArtifactError, match=r"model.json does not match the artifact schema \(1 problems; first: " + problem):
        artifact.read_metadata(copy)


def test_a_hand_edit_of_model_json_is_refused(copy):
    """The digest covers model.json itself, as the sha256 records cover the model files."""
    edit_json(copy, lambda meta: meta["threshold"].update(value=0.9), seal=False)
    with pytest.raises(ArtifactError, match=r"model.json was changed after it was written \(its content does not match its digest\)"):
        artifact.read_metadata(copy)
    edit_json(copy, lambda meta: None)  # re-sealed, as a tool that rewrites model.json does: accepted
    assert artifact.read_metadata(copy).threshold.value == 0.9


def test_the_digest_ignores_layout_but_not_content(copy):
    raw = json.loads((copy / artifact.META_FILE).read_text())
    (copy / artifact.META_FILE).write_text(json.dumps(raw, indent=None, sort_keys=True))  # re-indented, keys reordered
    assert artifact.read_metadata(copy).digest == raw["digest"]
    assert artifact.content_digest({**raw, "name": raw["name"] + "x"}) != raw["digest"]


def test_a_schema_3_artifact_without_a_digest_is_refused(copy):
    edit_json(copy, lambda meta: meta.pop("digest"), seal=False)
    with pytest.raises(ArtifactError, match="has no digest \\(schema_version 4 requires one\\): retrain the model"):
        artifact.read_metadata(copy)


def test_verify_checks_the_model_files_without_loading_them(copy):
    assert artifact.verify(copy).name == artifact.read_metadata(copy).name
    (copy / artifact.MODEL_FILE).write_bytes((copy / artifact.MODEL_FILE).read_bytes()[:100])
    artifact.read_metadata(copy)  # model.json alone says nothing about the files
    with pytest.raises(ArtifactError, match="model.keras is corrupt or truncated"):
        artifact.verify(copy)


@pytest.fixture(scope="module")
def retrained(synthetic_csv):
    """A second, quickly trained model for the same data: what `anomstream train --out` on an existing artifact writes."""
    from anomstream.models import data
    from anomstream.models.train import TrainConfig, train

    return train(data.load(synthetic_csv), TrainConfig(epochs=2, batch_size=32))


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_a_failed_conversion_leaves_the_serving_artifact_as_it_was(copy, retrained):
    """A model TensorFlow's converter cannot take (a NumPy function inside): before, model.keras was already replaced."""
    from anomstream.models.backend import keras, tf

    inputs = keras.Input((32,))
    outputs = keras.layers.Lambda(lambda x: tf.numpy_function(lambda a: a, [x], tf.float32), output_shape=(32,))(inputs)
    unconvertible = keras.Model(inputs, outputs)
    before = snapshot(copy)
    with pytest.raises(ArtifactError, match=r"was not replaced: the LiteRT conversion failed \(.*\); the serving artifact is unchanged\.$"):
        artifact.save(copy, unconvertible, retrained.metadata_fields, retrained.fitted)
    assert snapshot(copy) == before  # nothing replaced, nothing staged left behind
    artifact.scorer(copy, "tensorflow")
    artifact.scorer(copy, "litert")


def test_runtimes_that_disagree_on_the_fitted_windows_replace_nothing(copy, retrained, monkeypatch):
    """The check runs both real runtimes on the windows the model was fitted on; here no gap is small enough."""
    before = snapshot(copy)
    monkeypatch.setattr(artifact, "RUNTIMES_AGREE_WITHIN", -1.0)
    with pytest.raises(ArtifactError, match=r"LiteRT conversion's errors differ from TensorFlow's by .* on the fitted windows"):
        artifact.save(copy, retrained.model, retrained.metadata_fields, retrained.fitted)
    assert snapshot(copy) == before


def test_retraining_into_an_artifact_replaces_it_whole(copy, retrained):
    old = artifact.read_metadata(copy)
    new = artifact.save(copy, retrained.model, retrained.metadata_fields, retrained.fitted)
    assert new.version != old.version and artifact.verify(copy) == new
    assert sorted(p.name for p in copy.iterdir()) == [artifact.META_FILE, artifact.MODEL_FILE, artifact.LITERT_FILE]


def test_a_directory_that_is_not_an_artifact_is_not_written_into(tmp_path, retrained):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ArtifactError, match="is a directory with files but no model.json: write the artifact to a new or empty directory"):
        artifact.save(tmp_path, retrained.model, retrained.metadata_fields, retrained.fitted)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
