import dataclasses
from pathlib import Path

import numpy as np
import pytest

from anomstream.models import architectures, data
from anomstream.models.train import TrainConfig, fit_normal, train

FAST = dict(epochs=30, batch_size=32, learning_rate=1e-2)


@pytest.fixture(scope="module")
def dataset(synthetic_csv):
    return data.load(synthetic_csv)


@pytest.mark.parametrize("arch", architectures.SERIES)
def test_each_architecture_separates_the_synthetic_anomalies(dataset, arch):
    result = train(dataset, TrainConfig(arch=arch, threshold="percentile", threshold_params={"q": 95}, **FAST))
    assert result.evaluation.roc_auc > 0.95
    assert result.evaluation.anomaly.recall > 0.9
    assert result.evaluation.accuracy > 0.9
    assert result.model.output_shape == (None, 1, 32)


@pytest.mark.parametrize("arch", architectures.SERIES)
@pytest.mark.parametrize("shape", [(1, 140), (1, 30), (1, 33), (3, 24), (2, 2000), (4, 301)])
def test_both_architectures_take_any_window_shape(arch, shape):
    model = architectures.build(arch, shape)
    assert model.input_shape == model.output_shape == (None, *shape)


@pytest.mark.parametrize("arch", architectures.SERIES)
def test_several_channels_train_and_each_is_scored(arch):
    """Three channels on scales 1, 10 and 0.1: per-channel constants put each in [0, 1], and an anomaly on one
    channel shows in that channel's error."""
    rng = np.random.default_rng(5)
    t = np.linspace(0, 2 * np.pi, 41)
    base = np.stack([np.sin(t), 10 * np.cos(t) + 50, 0.1 * np.sin(2 * t)])
    windows = (base[None] * (1 + 0.1 * rng.normal(size=(400, 1, 1))) + 0.02 * rng.normal(size=(400, 3, 41))).astype(np.float32)
    labels = (np.arange(400) % 5 != 0).astype(np.int8)
    windows[labels == 0, 2] += 0.3 * rng.normal(size=((labels == 0).sum(), 41))  # anomalies on channel 2 only
    dataset = data.Dataset(windows, labels, np.arange(400), Path("made.npz"), "0" * 64, layout="npz")
    result = train(dataset, TrainConfig(arch=arch, **FAST))
    norm = result.metadata_fields["normalisation"]
    train_windows = result.split.train.windows
    np.testing.assert_allclose(norm["minimum"], train_windows.min(axis=(0, 2)), rtol=1e-6)
    np.testing.assert_allclose(norm["maximum"], train_windows.max(axis=(0, 2)), rtol=1e-6)
    assert result.metadata_fields["channels"] == 3 and result.metadata_fields["window_length"] == 41
    assert result.evaluation.roc_auc > 0.95
    per_channel = result.scorer.channel_errors(result.split.test.windows)
    anomalous = result.split.test.labels == 0
    gap = per_channel[anomalous].mean(axis=0) - per_channel[~anomalous].mean(axis=0)
    assert gap.argmax() == 2, gap


def test_training_repeats_with_the_same_seed(dataset):
    first = train(dataset, TrainConfig(epochs=3, batch_size=64))
    second = train(dataset, TrainConfig(epochs=3, batch_size=64))
    np.testing.assert_array_equal(first.test_errors, second.test_errors)
    assert first.metadata_fields["threshold"]["value"] == second.metadata_fields["threshold"]["value"]
    other = train(dataset, TrainConfig(epochs=3, batch_size=64, seed=7))
    assert not np.array_equal(first.test_errors, other.test_errors)


def test_normalisation_uses_the_training_split_only(dataset):
    """One test window gets the data set's most extreme samples, so constants taken from the whole file (or from
    the test split) would differ from the training split's, which they did not on the synthetic data alone."""
    config = TrainConfig(epochs=1)
    held_out = data.split(dataset, config.test_size, config.split_seed).test.rows[0]
    windows = dataset.windows.copy()
    row = int(np.flatnonzero(dataset.rows == held_out)[0])
    windows[row, 0, 0], windows[row, 0, 1] = windows.max() + 100.0, windows.min() - 100.0
    result = train(dataclasses.replace(dataset, windows=windows), config)
    norm = result.metadata_fields["normalisation"]
    train_windows = result.split.train.windows
    assert held_out not in set(result.split.train.rows.tolist())
    assert norm["minimum"] == pytest.approx([float(train_windows.min())]) and norm["minimum"][0] > windows.min()
    assert norm["maximum"] == pytest.approx([float(train_windows.max())]) and norm["maximum"][0] < windows.max()


def test_trains_on_normal_windows_only_and_holds_out_for_fpr(dataset):
    result = train(dataset, TrainConfig(epochs=1, threshold="fpr", threshold_params={"fpr": 0.05}))
    normal_train = int(result.split.train.labels.sum())
    split = result.metadata_fields["split"]
    assert split["train_normal"] + split["holdout_normal"] == normal_train
    assert split["holdout_normal"] == round(normal_train * 0.2)
    assert result.metadata_fields["threshold"]["fitted_on"] == "holdout-normal"


def test_denoising_adds_a_training_only_noise_layer(dataset):
    result = train(dataset, TrainConfig(epochs=1, noise_factor=0.2))
    assert any(layer.name == "denoise" for layer in result.model.layers)
    windows = data.split(dataset).test.windows[:8]
    # Inference ignores the noise: two calls agree.
    np.testing.assert_array_equal(result.scorer.errors(windows), result.scorer.errors(windows))


def test_bad_threshold_parameters_fail_before_training(dataset):
    from anomstream.errors import ThresholdError

    with pytest.raises(ThresholdError, match="fpr must be strictly between 0 and 1"):
        train(dataset, TrainConfig(epochs=500, threshold="fpr", threshold_params={"fpr": 2.0}))


def test_the_test_rows_never_reach_keras(dataset, monkeypatch):
    """The tutorial passed the test windows as `validation_data`; no curve, choice or stopping rule may see them."""
    from anomstream.models.backend import keras

    seen: list = []
    original = keras.Model.fit

    def fit(self, x=None, y=None, **kwargs):
        seen.append((np.asarray(x), kwargs.get("validation_data")))
        return original(self, x, y, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", fit)
    result = train(dataset, TrainConfig(epochs=1, threshold="fpr", threshold_params={"fpr": 0.05}))
    test_windows = result.scorer.normalisation.apply(result.split.test.windows)
    (fitted, validation), = seen
    assert fitted.shape[0] == result.metadata_fields["split"]["train_normal"]
    held = validation[0]
    assert held.shape[0] == result.metadata_fields["split"]["holdout_normal"]  # the curve is on held-out training rows
    for window in test_windows:
        assert not (fitted == window).all(axis=(1, 2)).any() and not (held == window).all(axis=(1, 2)).any()


def test_a_minority_normal_class_is_warned(dataset, caplog):
    inverted = dataclasses.replace(dataset, labels=(1 - dataset.labels).astype(np.int8), normal_labels=("0",))
    with caplog.at_level("WARNING", "anomstream.models"):
        train(inverted, TrainConfig(epochs=1))
    assert "only 83 of 320 training rows are normal (labels 0): the autoencoder is fitted on the minority class" in caplog.text


def test_a_roc_auc_below_chance_is_warned(caplog):
    """Labelled anomalies that reconstruct better than the normal windows: the normal label is likely the wrong one."""
    rng = np.random.default_rng(6)
    t = np.sin(np.linspace(0, 2 * np.pi, 32))
    noisy = t + 0.4 * rng.normal(size=(300, 32))  # labelled normal
    clean = t + 0.01 * rng.normal(size=(100, 32))  # labelled anomalous: closer to what the model learns
    windows = np.vstack([noisy, clean]).astype(np.float32)[:, None, :]
    labels = np.r_[np.ones(300), np.zeros(100)].astype(np.int8)
    made = data.Dataset(windows, labels, np.arange(400), Path("made.npz"), "0" * 64, layout="npz", normal_labels=("noisy",))
    with caplog.at_level("WARNING", "anomstream.models"):
        result = train(made, TrainConfig(**FAST))
    assert result.evaluation.roc_auc < 0.5
    assert "below chance: anomalies reconstruct better than normal windows. Is --normal-label the normal class (now noisy)?" in caplog.text


def test_min_steps_gives_a_small_data_set_more_updates_per_epoch():
    """30 windows at batch 32 are one update per epoch; min_steps asks for 40 updates over 4 epochs."""
    normal = np.random.default_rng(0).random((30, 1, 24), dtype=np.float32)
    plain = fit_normal(normal, TrainConfig(epochs=4, batch_size=32))
    budget = fit_normal(normal, TrainConfig(epochs=4, batch_size=32, min_steps=40))
    assert int(plain.model.optimizer.iterations) == 4
    assert int(budget.model.optimizer.iterations) == 40
    assert len(budget.history["loss"]) == 4  # still 4 epochs: progress and history count epochs


def test_min_steps_leaves_a_large_data_set_at_one_pass_per_epoch():
    config = TrainConfig(epochs=50, batch_size=64, min_steps=1500)
    assert config.steps_per_epoch(2335) == 37  # ECG5000's normal training rows: 1,850 updates already
    assert config.steps_per_epoch(30) == 30


def test_the_artifact_records_the_update_budget(dataset):
    result = train(dataset, TrainConfig(epochs=2, batch_size=32, min_steps=30))
    training = result.metadata_fields["training"]
    assert training["min_steps"] == 30
    assert training["steps_per_epoch"] == max(15, -(-len(result.fitted) // 32))
