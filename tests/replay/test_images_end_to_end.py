"""Digits end to end, as a user runs it: train an image model, evaluate it, replay the test split through a real
worker as nested JSON rows and as row-major float32, and validate: the live figures are `evaluate`'s."""

from __future__ import annotations

import json

import pytest

from anomstream.cli import main

pytestmark = pytest.mark.integration

DIGITS = ["--data", "digits", "--normal-label", "0"]


def test_digits_train_evaluate_replay_both_formats_and_validate(tmp_path, kafka_bootstrap, new_topic, capsys):
    from anomstream.stream.settings import WorkerSettings
    from anomstream.stream.worker import WorkerThread

    model = tmp_path / "model"
    assert main(["train", *DIGITS, "--out", str(model), "--epochs", "8", "--min-steps", "0", "--json"]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["model"]["architecture"] == "conv2d" and trained["data"]["window_shape"] == [1, 8, 8]
    assert trained["test"]["roc_auc"] > 0.9  # zeros against the other digits
    assert main(["evaluate", "--model", str(model), *DIGITS, "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["split"]["evaluated"] == "test" and evaluated["test"] == trained["test"]

    kafka = ["--bootstrap-servers", kafka_bootstrap]
    for fmt in ("json", "f32"):
        topics = {role: new_topic() for role in ("input", "scores", "anomalies", "dlq")}
        settings = WorkerSettings(
            model=model, bootstrap_servers=kafka_bootstrap, input_topic=topics["input"], scores_topic=topics["scores"],
            output_topic=topics["anomalies"], dlq_topic=topics["dlq"], group_id=f"g-{topics['input']}",
            transactional_id=f"tx-{topics['input']}", metrics_host="127.0.0.1", metrics_port=0,
        )  # fmt: skip
        worker = WorkerThread(settings).wait_ready(timeout=90)
        assert main(["replay", *DIGITS, *kafka, "--model", str(model), "--topic", topics["input"], "--format", fmt, "--json"]) == 0
        replayed = json.loads(capsys.readouterr().out)
        assert replayed["acknowledged"] == trained["test"]["windows"] == 360
        argv = ["validate", *DIGITS, *kafka, "--model", str(model), "--scores-topic", topics["scores"], "--run-id", replayed["run"], "--json"]
        assert main(argv) == 0
        validated = json.loads(capsys.readouterr().out)
        worker.stop()
        assert worker.error is None, worker.error
        assert validated["healthy"] and validated["received"] == validated["expected"] == 360, fmt
        live, offline = validated["test"], evaluated["test"]
        assert live["confusion"] == offline["confusion"], fmt
        assert live["roc_auc"] == pytest.approx(offline["roc_auc"], abs=1e-6), fmt
