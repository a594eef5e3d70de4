"""Image windows (channels, height, width): architectures, the named data sets, training, the artifact and the API."""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import anomstream
from anomstream.errors import ArtifactError, DataError, WindowError
from anomstream.models import architectures, artifact, data
from anomstream.models.recipe import PRESETS, TrainConfig
from anomstream.models.train import noisy, train

QUICK = dict(epochs=4, min_steps=0)


@pytest.fixture(scope="module")
def digits() -> data.Dataset:
    return data.DataOptions(data="digits", normal_labels=("0",)).load()[0]


@pytest.mark.parametrize("arch", architectures.IMAGES)
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (1, 9, 13), (2, 10, 7)])
def test_image_architectures_take_any_image_shape(arch, shape):
    model = architectures.build(arch, shape)
    assert model.input_shape == model.output_shape == (None, *shape)


def test_the_tutorial_models_have_the_tutorials_parameters_on_28_by_28():
    """The tutorial's summaries: the basic autoencoder 50,240 + 50,960 parameters, the denoiser 1,320 + 1,897."""
    assert architectures.build("basic", (1, 28, 28)).count_params() == 101_200
    assert architectures.build("denoise", (1, 28, 28)).count_params() == 3_217
    code = architectures.build("basic", (1, 8, 8)).get_layer("code")
    assert code.units == 5  # 64 of 784, scaled to 64 pixels


def test_conv_is_chosen_by_the_window_and_a_mismatch_is_one_sentence():
    assert architectures.resolve("conv", (1, 8, 8)) == "conv2d"
    assert architectures.resolve("conv", (3, 140)) == "conv1d"
    with pytest.raises(ValueError, match=r"--arch conv1d does not take windows of 1 x 8 x 8 \(channels x height x width\): for images"):
        architectures.resolve("conv1d", (1, 8, 8))
    with pytest.raises(ValueError, match=r"--arch denoise does not take windows of 1 x 140 \(channels x samples\): for series"):
        architectures.resolve("denoise", (1, 140))


def test_digits_load_offline_as_8_by_8_images_and_need_a_normal_label(digits):
    assert digits.window_shape == (1, 8, 8) and len(digits) == 1797
    assert digits.labels.sum() == 178  # the zeros
    assert digits.windows.max() == 16 and digits.layout == "digits"
    with pytest.raises(DataError, match=r"digits \(digits layout\) has the labels 0, 1, 2, 3, 4, 5, 6, 7, 8, 9: say which mean normal"):
        data.DataOptions(data="digits").load()
    with pytest.raises(DataError, match="--data digits is a named data set: --test-data, --layout"):
        data.DataOptions(data="digits", layout="npz", normal_labels=("0",)).load()


def _idx(path, array, magic):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def test_fashion_mnist_goes_through_keras_own_loader_and_its_cache(tmp_path):
    """No network here: the four files in the loader's own format (idx, gzip) in its cache under $KERAS_HOME, which
    it reads instead of downloading. The real `keras.datasets.fashion_mnist.load_data` runs, in `anomstream train`
    (a process of its own: Keras reads KERAS_HOME when it is imported)."""
    env = {**os.environ, "KERAS_HOME": str(tmp_path / "keras")}
    cache = tmp_path / "keras" / "datasets" / "fashion-mnist"
    cache.mkdir(parents=True)
    rng = np.random.default_rng(3)
    parts = {"train": (rng.integers(0, 256, (12, 28, 28)), np.arange(12) % 10), "t10k": (rng.integers(0, 256, (5, 28, 28)), np.arange(5) % 3)}
    for prefix, (pixels, labels) in parts.items():
        _idx(cache / f"{prefix}-images-idx3-ubyte.gz", pixels, 2051)
        _idx(cache / f"{prefix}-labels-idx1-ubyte.gz", labels, 2049)
    argv = [sys.executable, "-m", "anomstream", "train", "--data", "fashion-mnist", "--normal-label", "1", "--normal-label", "2",
            "--epochs", "1", "--min-steps", "0", "--reference-holdout", "0", "--out", str(tmp_path / "model"), "--json"]  # fmt: skip
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["data"]["window_shape"] == [1, 28, 28] and summary["model"]["architecture"] == "conv2d"
    assert summary["split"]["train"] == 12 and summary["test"]["windows"] == 5
    assert summary["test"]["normal"] == int(np.isin(parts["t10k"][1], [1, 2]).sum())
    assert "Downloading" not in done.stdout + done.stderr

    (cache / "t10k-images-idx3-ubyte.gz").unlink()
    env["https_proxy"] = env["HTTPS_PROXY"] = "http://127.0.0.1:9"  # nothing listens: the download fails at once
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "fashion-mnist could not be loaded by Keras" in done.stderr
    assert "it downloads on first use; without a network put train-labels-idx1-ubyte.gz" in done.stderr and str(cache) in done.stderr


def test_a_digits_model_trains_saves_loads_and_scores_like_the_worker(digits, tmp_path):
    result = train(digits, dataclasses.replace(PRESETS["default"], **QUICK))
    assert result.metadata_fields["architecture"]["name"] == "conv2d"
    assert result.evaluation.roc_auc > 0.8  # zeros against the other nine digits, 4 epochs
    saved = artifact.save(tmp_path / "model", result.model, result.metadata_fields, result.fitted)
    assert saved.schema_version == 5 and saved.window_shape == (1, 8, 8)
    raw = json.loads((tmp_path / "model" / "model.json").read_text())
    assert raw["window_height"] == 8 and raw["window_length"] == 8

    test = result.split.test.windows
    for runtime in ("tensorflow", "litert"):
        detector = anomstream.load(tmp_path / "model", runtime=runtime)
        assert detector.window_shape == (1, 8, 8)
        np.testing.assert_allclose(detector.score(test).errors, result.test_errors, atol=1e-5)
        np.testing.assert_allclose(detector.score(test[:, 0]).errors, result.test_errors, atol=1e-5)  # (n, height, width)
    explained = detector.score(test, explain="range")
    found = [e for e in explained.explanations if e is not None]
    assert found and all(0 <= e.start < e.end <= 8 for e in found)  # rows of the image
    with pytest.raises(WindowError, match=r"windows have shape \(3, 64\); this model takes \(n, 8, 8\) or \(n, 1, 8, 8\)\."):
        detector.score(test.reshape(-1, 64)[:3])


def test_an_image_artifact_is_schema_5_and_schema_4_cannot_claim_a_height(digits, tmp_path):
    result = train(digits, TrainConfig(arch="dense", **QUICK))
    artifact.save(tmp_path / "model", result.model, result.metadata_fields)
    path = tmp_path / "model" / "model.json"
    raw = json.loads(path.read_text())
    path.write_text(json.dumps(artifact.sealed({**raw, "schema_version": 4})))
    with pytest.raises(ArtifactError, match="schema_version 4 has no window_height"):
        artifact.read_metadata(tmp_path / "model")


def test_the_tutorials_noise_is_fixed_per_window_and_clipped():
    clean = np.full((50, 1, 8, 8), 0.5, np.float32)
    first, again = noisy(clean, 0.2, seed=1), noisy(clean, 0.2, seed=1)
    np.testing.assert_array_equal(first, again)
    assert first.min() >= 0 and first.max() <= 1 and abs(float(first.std()) - 0.2) < 0.02
    assert noisy(clean, 0.0, seed=1) is clean


def test_the_tutorial_denoiser_learns_to_remove_its_noise():
    """Noisy digits in, clean digits out, every class normal as in the tutorial: the output is closer to the clean
    test images than the noisy inputs themselves are. 40 epochs: the tutorial's 10 are 18,750 updates on
    Fashion-MNIST's 60,000 images but 450 on digits' 1,437, too few (measured: 0.029 against the input's 0.025)."""
    every_digit = data.DataOptions(data="digits", normal_labels=tuple("0123456789")).load()[0]
    result = train(every_digit, dataclasses.replace(PRESETS["tutorial-denoise"], epochs=40))
    assert result.metadata_fields["architecture"]["name"] == "denoise"
    assert result.metadata_fields["training"]["loss"] == "mse"
    clean = result.scorer.normalisation.apply(result.split.test.windows)
    corrupted = noisy(clean, 0.2, seed=99)
    denoised = result.scorer.runtime.reconstruct(corrupted)
    identity, after = float(((corrupted - clean) ** 2).mean()), float(((denoised - clean) ** 2).mean())
    assert after < 0.8 * identity, (after, identity)


@pytest.mark.parametrize("preset, pictures", [("tutorial-basic", ["reconstructions.png"]), ("tutorial-denoise", ["reconstructions.png", "denoised.png"])])
def test_the_tutorial_presets_write_the_tutorials_pictures_and_mse(tmp_path, capsys, preset, pictures):
    from anomstream.cli import main
    from anomstream.models.train import noisy

    every_digit = ["--data", "digits", *(f"--normal-label={d}" for d in range(10))]
    argv = ["train", *every_digit, "--preset", preset, "--epochs", "2", "--out", str(tmp_path / "model"), "--report", str(tmp_path / "report"), "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    report = (tmp_path / "report" / "report.md").read_text()
    for picture in pictures:
        assert (tmp_path / "report" / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({picture})" in report
    assert "examples.png" not in report  # the series plots are not drawn for images
    merit = json.loads((tmp_path / "report" / "report.json").read_text())["images"]

    detector = anomstream.load(tmp_path / "model", runtime="tensorflow")
    test = data.split(data.DataOptions(data="digits", normal_labels=tuple("0123456789")).load()[0], 0.2, 21).test.windows
    clean = detector.normalise(test)
    assert merit["reconstruction_mse"] == pytest.approx(float(((detector.reconstruct(test) - clean) ** 2).mean()), rel=1e-5)
    assert f"Reconstruction MSE on these windows (normalised scale): {merit['reconstruction_mse']:.5f}." in report
    if preset == "tutorial-denoise":
        corrupted = noisy(clean, 0.2, summary["training"]["seed"])
        assert merit["noisy_input_mse"] == pytest.approx(float(((corrupted - clean) ** 2).mean()), rel=1e-5)
        assert f"the noisy input's own (the identity) {merit['noisy_input_mse']:.5f}" in report
    else:
        assert "noisy_input_mse" not in merit


def test_an_npz_of_images_reads_as_image_windows(tmp_path):
    """A user's own images (spectrogram frames, say) come as an .npz of (n, channels, height, width)."""
    rng = np.random.default_rng(4)
    frames = rng.random((40, 2, 6, 10)).astype(np.float32)
    np.savez(tmp_path / "frames.npz", windows=frames, labels=np.where(np.arange(40) % 4, "ok", "fault"))
    dataset = data.load(tmp_path / "frames.npz", normal_labels=["ok"])
    assert dataset.window_shape == (2, 6, 10) and dataset.labels.sum() == 30
    np.testing.assert_array_equal(dataset.windows, frames)
    result = train(dataset, TrainConfig(arch="conv", epochs=1, batch_size=8))
    assert result.metadata_fields["architecture"]["name"] == "conv2d" and result.scorer.channel_errors(frames).shape == (40, 2)
    np.savez(tmp_path / "bad.npz", windows=np.zeros((3, 1, 1, 5)), labels=np.zeros(3))
    with pytest.raises(DataError, match=r"windows have shape \(3, 1, 1, 5\); expected .* or, for images, \(n, channels, height, width\)\."):
        data.load(tmp_path / "bad.npz", normal_labels=["0"])
