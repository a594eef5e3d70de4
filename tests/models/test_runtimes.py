"""LiteRT scores like TensorFlow: same errors to float32 rounding, same verdicts, for every architecture."""

import sys

import numpy as np
import pytest

from anomstream.errors import ConfigError
from anomstream.models import artifact
from anomstream.models.architectures import build
from anomstream.models.runtimes import KerasRuntime, LiteRTRuntime, check_available, export_litert

# float32 rounding: the two runtimes sum the same products in different orders.
ERROR_ATOL = 1e-5


@pytest.mark.parametrize(
    ("arch", "noise", "shape"),
    [("dense", 0.0, (1, 140)), ("conv1d", 0.0, (1, 140)), ("dense", 0.1, (1, 140)), ("conv1d", 0.1, (1, 140)),
     ("dense", 0.0, (3, 37)), ("conv1d", 0.0, (3, 37)), ("conv1d", 0.0, (2, 2000)), ("dense", 0.0, (1, 24))],
)  # fmt: skip
def test_an_exported_model_reconstructs_like_keras(tmp_path, arch, noise, shape):
    """Untrained weights are random, so any layer converted wrongly shows; the noise layer is training-only.
    Any window shape: odd lengths, 24 to 2,000 samples, several channels."""
    model = build(arch, shape, noise)
    export_litert(model, tmp_path / "model.tflite")
    assert [p.name for p in tmp_path.iterdir()] == ["model.tflite"]  # no partial file left behind
    keras_runtime, litert = KerasRuntime(model), LiteRTRuntime(tmp_path / "model.tflite")
    assert litert.window_shape == keras_runtime.window_shape == shape
    windows = np.random.default_rng(1).random((300, *shape), dtype=np.float32)
    reconstructed = keras_runtime.reconstruct(windows)
    assert reconstructed.shape == windows.shape
    np.testing.assert_allclose(litert.reconstruct(windows), reconstructed, atol=ERROR_ATOL)
    errors = keras_runtime.channel_errors(windows)
    assert errors.shape == (300, shape[0])
    np.testing.assert_allclose(errors, np.abs(reconstructed - windows).mean(axis=2), atol=1e-6)
    np.testing.assert_allclose(litert.channel_errors(windows), errors, atol=ERROR_ATOL)


def test_litert_serves_every_batch_size_and_thread_count(tiny_artifact):
    _, reference = artifact.scorer(tiny_artifact)
    _, one = artifact.scorer(tiny_artifact, "litert")
    _, two = artifact.scorer(tiny_artifact, "litert", threads=2)
    windows = np.random.default_rng(0).normal(size=(300, 32)).astype(np.float32)
    for size in (1, 7, 300, 1, 64):  # the interpreter is resized whenever the batch length changes
        expected = reference.errors(windows[:size])
        assert one.errors(windows[:size]).dtype == np.float32
        np.testing.assert_allclose(one.errors(windows[:size]), expected, atol=ERROR_ATOL)
        np.testing.assert_allclose(two.errors(windows[:size]), expected, atol=ERROR_ATOL)


def test_on_the_ecg5000_test_split_litert_gives_the_same_verdicts(ecg_artifact, ecg_split):
    """The tutorial's model: every verdict on the 1,000 test windows agrees, unless its error is within rounding of the threshold."""
    metadata, tensorflow = artifact.scorer(ecg_artifact)
    _, litert = artifact.scorer(ecg_artifact, "litert")
    windows = ecg_split.test.windows
    reference, errors = tensorflow.errors(windows), litert.errors(windows)
    np.testing.assert_allclose(errors, reference, atol=ERROR_ATOL)
    threshold = metadata.threshold.value
    differing = (errors > threshold) != (reference > threshold)
    assert np.all(np.abs(reference[differing] - threshold) < ERROR_ATOL), reference[differing]
    assert differing.sum() <= 1, differing.sum()


def test_a_missing_litert_package_is_one_sentence(monkeypatch):
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # makes the import fail as if not installed
    with pytest.raises(ConfigError) as caught:
        check_available("litert")
    assert str(caught.value) == (
        "--runtime litert needs the ai-edge-litert package, a dependency of anomstream missing here: pip install ai-edge-litert,"
        " or use --runtime tensorflow."
    )
    check_available("tensorflow")


def test_an_unknown_runtime_is_refused():
    with pytest.raises(ConfigError, match=r"^--runtime onnx is not one of auto, tensorflow, litert\.$"):
        check_available("onnx")
