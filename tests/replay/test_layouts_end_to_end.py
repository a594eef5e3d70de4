"""Each data layout end to end, as a user runs it: train, evaluate, then replay through a real worker and validate.

The verdicts `validate` judges are the worker's; their figures must be `evaluate`'s on the same rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from anomstream.cli import main

pytestmark = pytest.mark.integration


def _shapes(rng: np.random.Generator, n: int, channels: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Normal windows: a phase-jittered sine per channel; anomalous ones (every fifth) add a bump to one channel."""
    t = np.linspace(0, 2 * np.pi, length)
    phase = 0.1 * rng.normal(size=(n, 1, 1))
    windows = np.sin(t[None, None, :] * (1 + np.arange(channels))[None, :, None] + phase) + 0.05 * rng.normal(size=(n, channels, length))
    anomalous = np.arange(n) % 5 == 0
    windows[anomalous, -1, length // 3 : length // 2] += 1.5
    return windows.astype(np.float32), anomalous


def ucr_pair(directory: Path) -> list[str]:
    rng = np.random.default_rng(11)
    windows, anomalous = _shapes(rng, 300, 1, 57)
    labels = np.where(anomalous, 2, 1)
    for name, part in (("Made_TRAIN.tsv", slice(0, 150)), ("Made_TEST.tsv", slice(150, 300))):
        rows = ["\t".join([str(label), *(f"{v:.6f}" for v in window[0])]) for window, label in zip(windows[part], labels[part])]
        (directory / name).write_text("\n".join(rows) + "\n")
    return ["--data", str(directory / "Made_TRAIN.tsv"), "--test-data", str(directory / "Made_TEST.tsv"), "--normal-label", "1"]


def npz_three_channels(directory: Path) -> list[str]:
    windows, anomalous = _shapes(np.random.default_rng(12), 300, 3, 40)
    np.savez(directory / "made.npz", windows=windows, labels=np.where(anomalous, "fault", "ok"))
    return ["--data", str(directory / "made.npz"), "--normal-label", "ok"]


def series(directory: Path) -> list[str]:
    windows, anomalous = _shapes(np.random.default_rng(13), 300, 2, 30)
    samples = np.concatenate(list(windows), axis=1)
    labels = np.repeat(np.where(anomalous, "bad", "good"), 30)
    lines = ["x,y,label", *(f"{a:.6f},{b:.6f},{label}" for a, b, label in zip(samples[0], samples[1], labels))]
    (directory / "series.csv").write_text("\n".join(lines) + "\n")
    return ["--data", str(directory / "series.csv"), "--window", "30", "--stride", "30", "--normal-label", "good"]


@pytest.mark.parametrize("make", [ucr_pair, npz_three_channels, series], ids=["ucr", "npz-3-channels", "series"])
def test_a_layout_trains_evaluates_replays_and_validates(make, tmp_path, kafka_bootstrap, new_topic, capsys):
    from anomstream.stream.settings import WorkerSettings
    from anomstream.stream.worker import WorkerThread

    flags = make(tmp_path)
    model = tmp_path / "model"
    assert main(["train", *flags, "--out", str(model), "--arch", "conv1d", "--epochs", "15", "--batch-size", "16", "--min-steps", "0", "--json"]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert main(["evaluate", "--model", str(model), *flags, "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["split"]["evaluated"] == "test" and evaluated["test"] == trained["test"]
    assert trained["test"]["roc_auc"] > 0.9  # the bump is easy to see: a broken layout (labels, channels) would not be

    topics = {role: new_topic() for role in ("input", "scores", "anomalies", "dlq")}
    settings = WorkerSettings(
        model=model, bootstrap_servers=kafka_bootstrap, input_topic=topics["input"], scores_topic=topics["scores"],
        output_topic=topics["anomalies"], dlq_topic=topics["dlq"], group_id=f"g-{topics['input']}", transactional_id=f"tx-{topics['input']}",
        metrics_host="127.0.0.1", metrics_port=0,
    )  # fmt: skip
    worker = WorkerThread(settings).wait_ready(timeout=90)
    kafka = ["--bootstrap-servers", kafka_bootstrap]
    assert main(["replay", *flags, *kafka, "--model", str(model), "--topic", topics["input"], "--format", "f32", "--json"]) == 0
    replayed = json.loads(capsys.readouterr().out)
    assert replayed["acknowledged"] == trained["test"]["windows"]
    argv = ["validate", *flags, *kafka, "--model", str(model), "--scores-topic", topics["scores"], "--run-id", replayed["run"], "--json"]
    assert main(argv) == 0
    validated = json.loads(capsys.readouterr().out)
    worker.stop()
    assert worker.error is None, worker.error
    assert validated["healthy"] and validated["received"] == validated["expected"] == trained["test"]["windows"]
    live, offline = validated["test"], evaluated["test"]
    # The worker's float32 batches round like the API's to ~1e-7: the same verdicts, so the same counts.
    assert live["confusion"] == offline["confusion"]
    assert live["roc_auc"] == pytest.approx(offline["roc_auc"], abs=1e-6)
