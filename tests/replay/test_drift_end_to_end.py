"""Error drift through a real broker: `replay --only normal` as recorded and with `--gain`, the worker's gauge on
/metrics, and `validate --model`'s statistic, which is the same computation on the same errors."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid

import numpy as np
import pytest

from anomstream.cli import main

pytestmark = pytest.mark.integration

GAIN = 1.3  # ECG5000's normal beats then read about 0.6, with 32% of them flagged (models/drift.py)


def gauge(url: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    (line,) = [line for line in text.splitlines() if line.startswith("anomstream_error_drift ")]
    return float(line.split()[1])


def wait_for_commits(worker, scored: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while len(worker.worker.drift.live()) < scored:
        assert time.monotonic() < deadline, f"the worker committed {len(worker.worker.drift.live())} of {scored} windows"
        time.sleep(0.1)


def test_a_gain_drives_the_drift_statistic_over_the_alert_and_unchanged_windows_do_not(ecg_drift_artifact, kafka_bootstrap, new_topic, capsys):
    from anomstream.models import artifact, data, detector, drift
    from anomstream.replay.producer import Selection
    from anomstream.stream.settings import WorkerSettings
    from anomstream.stream.worker import WorkerThread

    metadata = artifact.read_metadata(ecg_drift_artifact)
    assert metadata.drift is not None and metadata.drift.windows > 400
    ecg = str(data.resolve())
    normal = Selection("test", metadata.split.test_size, metadata.split.seed, only="normal").rows(data.load(data.resolve()))
    topics = {role: new_topic() for role in ("input", "scores", "anomalies", "dlq")}
    settings = WorkerSettings(
        model=ecg_drift_artifact, bootstrap_servers=kafka_bootstrap, input_topic=topics["input"], scores_topic=topics["scores"],
        output_topic=topics["anomalies"], dlq_topic=topics["dlq"], group_id=f"g-{uuid.uuid4().hex[:8]}",
        transactional_id=f"tx-{uuid.uuid4().hex[:8]}", metrics_host="127.0.0.1", metrics_port=0,
        drift_window=len(normal), drift_min_windows=100,
    )  # fmt: skip
    common = ["--data", ecg, "--model", str(ecg_drift_artifact), "--only", "normal", "--bootstrap-servers", kafka_bootstrap, "--json"]
    worker = WorkerThread(settings).wait_ready(timeout=90)
    found = {}
    try:
        for run, gain in (("steady", 1.0), ("gain", GAIN)):
            assert main(["replay", *common, "--topic", topics["input"], "--run-id", run, "--gain", str(gain)]) == 0
            sent = json.loads(capsys.readouterr().out)
            assert sent["acknowledged"] == len(normal) and sent.get("gain", 1.0) == gain
            assert main(["validate", *common, "--scores-topic", topics["scores"], "--run-id", run]) == 0
            found[run] = json.loads(capsys.readouterr().out)
            assert found[run]["received"] == len(normal) and found[run]["healthy"]
            # The worker commits the verdicts before validate can read them; the ring holds this run's errors only.
            wait_for_commits(worker, len(normal))
            found[run]["gauge"] = gauge(worker.url)
    finally:
        worker.stop()
    with capsys.disabled():  # the measured figures, for the record (pytest -s shows them)
        print(json.dumps({run: {**f["drift"], "gauge": f["gauge"]} for run, f in found.items()}))

    steady, gained = found["steady"]["drift"], found["gain"]["drift"]
    assert steady["measured"] and steady["reference_windows"] == metadata.drift.windows
    assert steady["distance"] < 0.15 and not steady["would_alert"]
    assert gained["distance"] > drift.ALERT_AT and gained["would_alert"]
    assert gained["live_quantiles"]["0.5"] > steady["live_quantiles"]["0.5"]
    # The worker's gauge reads the same errors the same way: validate's figure, within float rounding.
    assert found["steady"]["gauge"] == pytest.approx(steady["distance"], abs=1e-3)
    assert found["gain"]["gauge"] == pytest.approx(gained["distance"], abs=1e-3)
    # And the Python API's errors of the same windows give it too (one scoring path).
    loaded = detector.load(ecg_drift_artifact)
    offline = drift.distance(metadata.drift.errors, loaded.score(normal.windows * np.float32(GAIN)).errors, below=metadata.threshold.value)
    assert gained["distance"] == pytest.approx(offline, abs=1e-3)
