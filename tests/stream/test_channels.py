"""A three-channel model served through a real broker: nested JSON and float32 windows, channel errors, wrong shapes."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import anomstream
from anomstream.stream import codec

pytestmark = pytest.mark.integration

CHANNELS, LENGTH = 3, 45  # an odd length: the convolutional model pads and crops


@pytest.fixture(scope="module")
def three_channels(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A small conv1d artifact on three synthetic channels (each its own offset and scale), and test windows."""
    from anomstream.models import artifact, data
    from anomstream.models.train import TrainConfig, train

    rng = np.random.default_rng(3)
    t = np.linspace(0, 2 * np.pi, LENGTH)
    n = 300
    base = np.stack([np.sin(t), 10 * np.cos(t) + 50, 0.1 * np.sin(2 * t)])  # channels on very different scales
    windows = base[None] * (1 + 0.1 * rng.normal(size=(n, 1, 1))) + 0.02 * rng.normal(size=(n, CHANNELS, LENGTH))
    labels = np.where(np.arange(n) % 5 == 0, 0, 1)
    windows[labels == 0, 1] += 5 * rng.normal(size=((labels == 0).sum(), LENGTH))  # anomalies on channel 1 only
    directory = tmp_path_factory.mktemp("channels")
    np.savez(directory / "windows.npz", windows=windows.astype(np.float32), labels=labels)
    dataset = data.load(directory / "windows.npz", normal_labels=["1"])
    result = train(dataset, TrainConfig(arch="conv1d", epochs=8, batch_size=32))
    artifact.save(directory / "model", result.model, result.metadata_fields, result.fitted)
    return directory / "model", result.split.test.windows


@pytest.mark.parametrize("fmt", ["json", "f32"])
def test_a_three_channel_model_serves_both_formats_with_channel_errors(three_channels, worker_settings, topics, send, read, start_worker, fmt):
    model, windows = three_channels
    messages = []
    for index, window in enumerate(windows):
        if fmt == "json":
            messages.append((b"k", codec.encode_window(f"w-{index}", window, source="s"), None))
        else:
            headers = [("content-type", codec.F32), ("id", f"w-{index}".encode())]
            messages.append((b"k", np.ascontiguousarray(window, dtype="<f4").tobytes(), headers))
    wrong = [
        (b"flat", codec.encode_json({"id": "flat", "values": [0.5] * (CHANNELS * LENGTH)}), None),
        (b"two", codec.encode_json({"id": "two", "values": [[0.5] * LENGTH] * 2}), None),
        (b"ragged", codec.encode_json({"id": "ragged", "values": [[0.5] * LENGTH, [0.5] * LENGTH, [0.5] * (LENGTH - 1)]}), None),
        (b"f32", np.zeros(LENGTH, "<f4").tobytes(), [("content-type", codec.F32), ("id", b"f32")]),
    ]
    send(topics["input"], messages + wrong)
    worker = start_worker(replace(worker_settings, model=model))
    verdicts = {v["id"]: v for v in (json.loads(m.value()) for m in read(topics["scores"], len(messages)))}
    letters = {m.key(): dict(m.headers()) for m in read(topics["dlq"], len(wrong))}
    worker.stop()

    detector = anomstream.load(model, runtime="tensorflow")  # `anomstream evaluate`'s path
    assert detector.window_shape == (CHANNELS, LENGTH)
    offline = detector.score(windows)
    assert len(verdicts) == len(windows)
    live = np.array([verdicts[f"w-{i}"]["error"] for i in range(len(windows))])
    live_channels = np.array([verdicts[f"w-{i}"]["channel_errors"] for i in range(len(windows))])
    np.testing.assert_allclose(live, offline.errors, rtol=0, atol=1e-5)
    np.testing.assert_allclose(live_channels, offline.channel_errors, rtol=0, atol=1e-5)
    np.testing.assert_allclose(live_channels.mean(axis=1), live, rtol=0, atol=1e-6)  # a window's error is its channels' mean
    assert live_channels.shape == (len(windows), CHANNELS)
    assert {v["anomaly"] for v in verdicts.values()} == {True, False}

    assert set(letters) == {b"flat", b"two", b"ragged", b"f32"}
    assert {h["error.reason"] for h in letters.values()} == {codec.WRONG_LENGTH.encode()}
    detail = {key: h["error.detail"].decode() for key, h in letters.items()}
    takes = f"the model takes {CHANNELS} lists of {LENGTH} numbers (channel-major)."
    assert detail[b"flat"] == f"values is {CHANNELS * LENGTH} numbers; {takes}"
    assert detail[b"two"] == f"values is 2 lists of {LENGTH} numbers; {takes}"
    assert detail[b"ragged"] == f"values is 3 lists of {LENGTH - 1} to {LENGTH} numbers; {takes}"
    assert detail[b"f32"] == (
        f"the body holds {LENGTH} float32 values; the model takes {CHANNELS} x {LENGTH} = {CHANNELS * LENGTH}"
        " (channels x samples, channel-major)."
    )


@pytest.mark.parametrize("explain", ["range", "full", "off"])
def test_anomalous_verdicts_explain_where_the_error_sits(three_channels, worker_settings, topics, send, read, start_worker, explain):
    """The worker's explanations are the Python API's, and name the channel with the largest of the verdict's channel errors."""
    model, windows = three_channels
    send(topics["input"], [(b"k", codec.encode_window(f"w-{i}", w, source="s"), None) for i, w in enumerate(windows)])
    worker = start_worker(replace(worker_settings, model=model, explain=explain))
    verdicts = [json.loads(m.value()) for m in read(topics["scores"], len(windows))]
    worker.stop()

    offline = anomstream.load(model, runtime="tensorflow").score(windows, explain="full")
    by_id = {v["id"]: v for v in verdicts}
    anomalous = [i for i in range(len(windows)) if by_id[f"w-{i}"]["anomaly"]]
    assert anomalous and len(anomalous) < len(windows)
    assert all("explanation" not in by_id[f"w-{i}"] for i in set(range(len(windows))) - set(anomalous))
    if explain == "off":
        assert all("explanation" not in v for v in verdicts)
        return
    for i in anomalous:
        live, expected = by_id[f"w-{i}"]["explanation"], offline.explanations[i]
        assert (live["start"], live["end"], live["channel"]) == (expected.start, expected.end, expected.channel)
        assert live["share"] == pytest.approx(expected.share, abs=1e-4)
        assert 0 <= live["start"] < live["end"] <= LENGTH
        if explain == "full":
            np.testing.assert_allclose(live["sample_errors"], expected.sample_errors, rtol=0, atol=1e-5)
            assert np.mean(live["sample_errors"]) == pytest.approx(by_id[f"w-{i}"]["error"], abs=1e-5)
        else:
            assert "sample_errors" not in live
        assert live["channel"] == int(np.argmax(by_id[f"w-{i}"]["channel_errors"]))
