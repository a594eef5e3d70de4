"""Per-source thresholds through a real broker: a louder source, `validate --per-source`, and the worker's hot reload.

Two sources replay the real ECG5000 test rows: "steady" as recorded, "amplified" with every sample times GAIN, so
the global threshold flags most of its normal windows. `validate --per-source --write-artifact` writes the
recommended thresholds over the worker's live artifact; the worker reloads it, and the same windows replayed again
are judged by their source's threshold.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid

import numpy as np
import pytest
from confluent_kafka import Producer

from anomstream.cli import main

pytestmark = pytest.mark.integration

GAIN = 1.5


def _send(bootstrap: str, topic: str, rows, run: str) -> None:
    from anomstream.stream import codec

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
    for row, values, label in zip(rows.rows.tolist(), rows.windows, rows.labels.tolist()):
        source = "amplified" if row % 2 else "steady"
        values = np.asarray(values, np.float64).reshape(-1) * (GAIN if source == "amplified" else 1.0)  # one channel: flat
        value = codec.encode_window(f"ecg5000-{row}", values.tolist(), source=source, label=int(label), run=run)
        while True:
            try:
                producer.produce(topic, value, source.encode())
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(60) == 0


def _per_source(bootstrap: str, topic: str, expected: dict[str, int], run: str) -> dict[str, dict[str, float]]:
    """Each source's false-positive rate and accuracy, from the worker's own verdicts of one run."""
    from anomstream.replay.validate import collect

    collected = collect({"bootstrap.servers": bootstrap}, topic, set(expected), 120.0, run=run)
    assert len(collected.verdicts) == len(expected) and not collected.duplicates
    figures = {}
    for source in ("steady", "amplified"):
        mine = [v for v in collected.verdicts.values() if v["source"] == source]
        normal = np.array([expected[v["id"]] == 1 for v in mine])
        flagged = np.array([v["anomaly"] for v in mine])
        figures[source] = {
            "false_positive_rate": float(flagged[normal].mean()),
            "accuracy": float((flagged != normal).mean()),
            "scopes": sorted({v["threshold_scope"] for v in mine}),
            "versions": sorted({v["model"]["version"] for v in mine}),
        }
    return figures


def test_per_source_thresholds_from_validate_fix_a_louder_source(tmp_path, ecg_artifact, kafka_bootstrap, new_topic, capsys):
    from anomstream.models import artifact, data
    from anomstream.replay.producer import Selection
    from anomstream.stream.settings import WorkerSettings
    from anomstream.stream.worker import WorkerThread

    live = tmp_path / "live"
    shutil.copytree(ecg_artifact, live)
    metadata = artifact.read_metadata(live)
    dataset = data.load(data.resolve())
    selection = Selection("test", metadata.split.test_size, metadata.split.seed)
    rows, expected = selection.rows(dataset), selection.expected(dataset)
    topics = {role: new_topic() for role in ("input", "scores", "anomalies", "dlq")}
    settings = WorkerSettings(
        model=live, bootstrap_servers=kafka_bootstrap, input_topic=topics["input"], scores_topic=topics["scores"],
        output_topic=topics["anomalies"], dlq_topic=topics["dlq"], group_id=f"g-{uuid.uuid4().hex[:8]}",
        transactional_id=f"tx-{uuid.uuid4().hex[:8]}", metrics_host="127.0.0.1", metrics_port=0, reload_interval_s=0.5,
    )  # fmt: skip
    worker = WorkerThread(settings).wait_ready(timeout=90)
    try:
        _send(kafka_bootstrap, topics["input"], rows, "global")
        before = _per_source(kafka_bootstrap, topics["scores"], expected, "global")
        assert before["amplified"]["false_positive_rate"] > 0.5  # the global threshold flags most of its normal windows
        assert before["amplified"]["scopes"] == before["steady"]["scopes"] == ["global"]

        argv = ["validate", "--data", str(data.resolve()), "--bootstrap-servers", kafka_bootstrap, "--model", str(live),
                "--scores-topic", topics["scores"], "--run-id", "global", "--per-source", "--source-objective", "target-fpr",
                "--target-fpr", "0.04", "--write-artifact", str(live), "--json"]  # fmt: skip
        assert main(argv) == 0
        found = json.loads(capsys.readouterr().out)["per_source"]
        assert "amplified" in found["thresholds"] and found["artifact"]["version"] == artifact.verify(live).version
        deadline = time.monotonic() + 60
        while worker.worker.model.current.metadata.version != found["artifact"]["version"]:  # the hot reload
            assert time.monotonic() < deadline, "the worker did not reload the artifact with per-source thresholds"
            time.sleep(0.2)

        _send(kafka_bootstrap, topics["input"], rows, "per-source")
        after = _per_source(kafka_bootstrap, topics["scores"], expected, "per-source")
    finally:
        worker.stop()
    with capsys.disabled():  # the measured figures, for the record (pytest -s shows them)
        print(json.dumps({"before": before, "after": after}))
    assert after["amplified"]["scopes"] == ["source"] and after["amplified"]["versions"] == [found["artifact"]["version"]]
    assert after["amplified"]["false_positive_rate"] < 0.05
    for source in ("steady", "amplified"):
        assert after[source]["accuracy"] >= before[source]["accuracy"], source
