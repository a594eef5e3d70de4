import dataclasses

import numpy as np
import pytest

from anomstream.models import architectures, data
from anomstream.models.train import TrainConfig, train

FAST = dict(epochs=30, batch_size=32, learning_rate=1e-2)


@pytest.fixture(scope="module")
def dataset(synthetic_csv):
    return data.load(synthetic_csv)


@pytest.mark.parametrize("arch", architectures.ARCHITECTURES)
def test_each_architecture_separates_the_synthetic_anomalies(dataset, arch):
    result = train(dataset, TrainConfig(arch=arch, threshold="percentile", threshold_params={"q": 95}, **FAST))
    assert result.evaluation.roc_auc > 0.95
    assert result.evaluation.anomaly.recall > 0.9
    assert result.evaluation.accuracy > 0.9
    assert result.model.output_shape == (None, 32)


@pytest.mark.parametrize("length", [140, 30, 33])
def test_conv1d_handles_window_lengths_not_divisible_by_four(length):
    model = architectures.build("conv1d", length)
    assert model.output_shape == (None, length)


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
    windows[row, 0], windows[row, 1] = windows.max() + 100.0, windows.min() - 100.0
    result = train(dataclasses.replace(dataset, windows=windows), config)
    norm = result.metadata_fields["normalisation"]
    train_windows = result.split.train.windows
    assert held_out not in set(result.split.train.rows.tolist())
    assert norm["minimum"] == pytest.approx(float(train_windows.min())) and norm["minimum"] > windows.min()
    assert norm["maximum"] == pytest.approx(float(train_windows.max())) and norm["maximum"] < windows.max()


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
