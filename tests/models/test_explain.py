"""Explained anomalies: where in the window the error sits (models/explain.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import anomstream
from anomstream.errors import ConfigError
from anomstream.models import artifact, data
from anomstream.models.explain import explain, half_maximum_range
from anomstream.models.train import TrainConfig, train


def test_the_range_is_the_run_above_half_the_peak():
    curve = np.array([0.1, 0.2, 0.6, 1.0, 0.5, 0.7, 0.2, 0.9], np.float32)
    assert half_maximum_range(curve) == (2, 6)  # 0.6 1.0 0.5 0.7; the 0.9 beyond the dip is another run
    assert half_maximum_range(np.array([1.0, 0.9, 0.1], np.float32)) == (0, 2)
    assert half_maximum_range(np.array([0.1, 0.9, 1.0], np.float32)) == (1, 3)


def test_share_is_the_range_part_of_the_window_error_and_channel_the_largest():
    errors = np.zeros((1, 2, 10), np.float32)
    errors[0, 1, 4:6] = 1.0  # channel 1 holds all of it, on samples 4 and 5
    errors[0, 0, :] = 0.05
    (found,) = explain(errors)
    assert (found.start, found.end, found.channel) == (4, 6, 1)
    assert found.share == pytest.approx((2 * 0.5 + 2 * 0.025) / (0.5 * 10 * 0.05 + 1.0), rel=1e-5)
    assert found.sample_errors is None
    assert explain(errors[:, :1])[0].channel is None  # one channel: no channel field


@pytest.fixture(scope="module")
def detector(tiny_artifact: Path) -> anomstream.Detector:
    return anomstream.load(tiny_artifact, runtime="tensorflow")


def test_a_spike_is_anomalous_and_its_range_covers_it(detector, synthetic):
    windows, _ = synthetic(20, 0, seed=3)
    normal = detector.score(windows, explain="range")
    assert [e is not None for e in normal.explanations] == normal.anomalous.tolist()  # normal ones: None
    spiked = windows.copy()
    spiked[:, 12:17] += 2.0
    scores = detector.score(spiked, explain="range")
    assert scores.anomalous.all()
    for found in scores.explanations:
        assert found.start <= 12 and found.end >= 17, (found.start, found.end)
        assert found.end - found.start <= 5 + 4  # the spike and at most two samples of spill on each side
        assert found.share > 0.5


def test_full_gives_every_sample_error_whose_mean_is_the_window_error(detector, synthetic):
    windows, _ = synthetic(5, 0, seed=4)
    windows[:, 20] += 3.0
    scores = detector.score(windows, explain="full")
    for error, found in zip(scores.errors, scores.explanations):
        assert found.sample_errors.shape == (1, 32)
        assert float(found.sample_errors.mean()) == pytest.approx(float(error), rel=1e-5)
        assert found.start <= 20 < found.end
    assert detector.score(windows).explanations == ()  # the API's default: no second model call


def test_an_unknown_explain_mode_is_one_sentence(detector):
    with pytest.raises(ConfigError, match=r"explain='yes' is not one of off, range, full\."):
        detector.score(np.zeros((1, 32), np.float32), explain="yes")


def test_a_multi_channel_anomaly_names_its_channel(tmp_path):
    rng = np.random.default_rng(8)
    t = np.linspace(0, 2 * np.pi, 40)
    base = np.stack([np.sin(t), np.cos(t), np.sin(2 * t)])
    windows = (base[None] + 0.03 * rng.normal(size=(300, 3, 40))).astype(np.float32)
    dataset = data.Dataset(windows, np.ones(300, np.int8), np.arange(300), Path("three.npz"), "0" * 64, layout="npz")
    result = train(dataset, TrainConfig(arch="conv1d", epochs=40, batch_size=32, learning_rate=3e-3))
    artifact.save(tmp_path / "three", result.model, result.metadata_fields, result.fitted)
    detector = anomstream.load(tmp_path / "three", runtime="tensorflow")
    spiked = windows[:10].copy()
    spiked[:, 2, 25:29] -= 1.5  # a dropout on channel 2
    scores = detector.score(spiked, explain="range")
    assert scores.anomalous.all()
    assert [e.channel for e in scores.explanations] == [2] * 10
    assert all(e.start <= 25 and e.end >= 29 for e in scores.explanations)


def _one_by_one(window: np.ndarray) -> tuple[int, int, float, int]:
    """The rule as the module docstring states it, one window at a time with plain loops: the reference."""
    curve = window.mean(axis=0)
    if curve.ndim == 2:
        curve = curve.mean(axis=1)
    peak = int(curve.argmax())
    start = peak
    while start > 0 and curve[start - 1] >= curve[peak] / 2:
        start -= 1
    end = peak + 1
    while end < len(curve) and curve[end] >= curve[peak] / 2:
        end += 1
    total = float(curve.astype(np.float64).sum())
    share = float(curve[start:end].astype(np.float64).sum()) / total if total > 0 else 0.0
    return start, end, share, int(window.reshape(len(window), -1).mean(axis=1).argmax())


@pytest.mark.parametrize("shape", [(200, 1, 140), (50, 3, 33), (40, 1, 8, 8), (30, 2, 5, 7)])
def test_the_batch_explanation_is_the_rule_applied_to_each_window(shape):
    """`explain` works on the whole batch at once; each window's answer is the one-window rule's."""
    errors = np.abs(np.random.default_rng(sum(shape)).normal(size=shape)).astype(np.float32)
    errors[::7] = 0.0  # windows with no error at all: share 0
    for found, window in zip(explain(errors), errors):
        start, end, share, channel = _one_by_one(window)
        assert (found.start, found.end) == (start, end)
        assert found.share == pytest.approx(share, abs=2e-6)
        assert found.channel == (channel if shape[1] > 1 else None)
