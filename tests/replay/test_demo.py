"""`anomstream demo --json`, end to end on the embedded broker (Tansu), as `make demo` runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_demo_trains_serves_replays_and_validates(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}  # no cached model: it must train one
    done = subprocess.run(
        [sys.executable, "-m", "anomstream", "demo", "--report", str(tmp_path / "report"), "--json"],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["replayed"] == summary["scored"] == 1000
    assert summary["missing"] == 0 and summary["duplicates"] == 0
    assert summary["dead_letters"] == 3
    assert summary["healthy"] is True
    test = summary["test"]
    assert test["windows"] == 1000
    assert summary["anomalies"] == test["confusion"]["normal_as_anomaly"] + test["confusion"]["anomaly_as_anomaly"]
    # Live verdicts reproduce the offline evaluation of the same artifact.
    evaluated = subprocess.run(
        [sys.executable, "-m", "anomstream", "evaluate", "--model", summary["model"], "--json"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    offline = json.loads(evaluated.stdout)["test"]
    for key in ("accuracy", "precision", "recall", "roc_auc"):
        assert test[key] == pytest.approx(offline[key], abs=1e-9), key
    assert test["accuracy"] >= 0.935
    assert (tmp_path / "report" / "report.md").is_file()
    assert (tmp_path / "report" / "error_histogram.png").stat().st_size > 5000
    assert "embedded broker (Tansu)" in done.stderr
    # A first run is quiet: no TensorFlow C++ lines (CUDA probes) and no librdkafka configuration warnings.
    assert [word for word in ("cuda", "cuInit", "NodeDef", "absl::", "XNNPACK", "CONFWARN") if word.lower() in done.stderr.lower()] == []
    # Each figure says what it measures: the worker's own rate while it had input, and the wall time end to end.
    assert 0 < summary["worker_busy_seconds"] < summary["end_to_end_seconds"]
    assert summary["worker_windows_per_s"] == round(1000 / summary["worker_busy_seconds"])
    assert "throughput" not in summary
