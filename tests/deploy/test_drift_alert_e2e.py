"""End to end with a real Prometheus scraping a real worker that serves an ECG5000 model with a drift reference,
loading deploy/alerts.yml with the drift alert's `for:` shortened (10m -> 2s). `anomstream replay --only normal`
streams the normal test beats: with `--gain 1.3` the drift alert fires; as recorded it stays inactive while the
gauge is measured and low."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.alerting import RATE, prometheus_config, wait_for_scoring
from tests.worker_process import stop_process

pytestmark = pytest.mark.integration

ALERT = "AnomstreamErrorDrift"
GAIN = 1.3  # ECG5000's normal beats then read about 0.6 (models/drift.py), twice the alert's 0.3


@pytest.fixture
def worker_artifact(ecg_drift_artifact: Path) -> Path:
    return ecg_drift_artifact


def fast_rules(repo: Path, out: Path) -> Path:
    """A copy of alerts.yml whose drift alert fires after 2 s above its threshold instead of 10 minutes."""
    rules = yaml.safe_load((repo / "deploy/alerts.yml").read_text())
    (rule,) = [r for g in rules["groups"] for r in g["rules"] if r["alert"] == ALERT]
    assert rule["for"] == "10m" and rule["expr"].strip() == "max by (instance) (anomstream_error_drift) > 0.3"
    rule["for"] = "2s"
    out.write_text(yaml.safe_dump(rules, sort_keys=False))
    return out


@pytest.fixture
def scenario(repo: Path, tmp_path: Path, worker_process: Any, worker_topics: dict[str, str], kafka_bootstrap: str,
             prometheus: Callable[[dict[str, Any]], Any], worker_artifact: Path) -> Callable[[float], Any]:
    """`scenario(gain)`: Prometheus on the worker, `anomstream replay` sending the normal test beats times `gain`."""
    from anomstream.models import data

    server = prometheus(prometheus_config(repo, worker_process.port, fast_rules(repo, tmp_path / "alerts-fast.yml")))
    (rule,) = [r for r in server.rules() if r.get("name") == ALERT]
    assert rule["duration"] == 2

    @contextmanager
    def run(gain: float) -> Iterator[Any]:
        command = [sys.executable, "-m", "anomstream", "replay", "--data", str(data.resolve()), "--model", str(worker_artifact),
                   "--only", "normal", "--loop", "100", "--rate", str(RATE), "--gain", str(gain), "--topic", worker_topics["input"],
                   "--bootstrap-servers", kafka_bootstrap]  # fmt: skip
        log = tmp_path / "replay.log"
        with log.open("wb") as sink:
            replay = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        try:
            yield server
            assert replay.poll() is None, f"the replay ended early:\n{log.read_text()[-2000:]}"
        finally:
            stop_process(replay, 20)

    return run


def states(server: Any) -> list[str]:
    return [alert["state"] for alert in server.alerts() if alert["labels"]["alertname"] == ALERT]


def drift_seen(server: Any, timeout: float = 60.0) -> float:
    """Until the worker's gauge is measured (not NaN: NaN >= 0 is false), its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = server.query("anomstream_error_drift >= 0")
        if found:
            return float(found[0]["value"][1])
        time.sleep(0.5)
    raise AssertionError(f"anomstream_error_drift was not measured within {timeout} s: {server.query('anomstream_error_drift')}")


def test_a_gain_on_normal_beats_fires_the_drift_alert(scenario: Callable[[float], Any], worker_process: Any) -> None:
    with scenario(GAIN) as server:
        wait_for_scoring(server)
        seen: list[str] = []
        deadline = time.monotonic() + 90
        while "firing" not in seen and time.monotonic() < deadline:
            seen.extend(state for state in states(server) if state not in seen[-1:])
            time.sleep(0.2)
        assert "firing" in seen, f"{ALERT} did not fire within 90 s; states seen: {seen}; drift: {server.query('anomstream_error_drift')}"
        assert seen.index("pending") < seen.index("firing"), "the `for:` window held it pending first"
        (alert,) = [a for a in server.alerts() if a["labels"]["alertname"] == ALERT]
        assert alert["labels"]["severity"] == "warning" and alert["labels"]["instance"] == f"127.0.0.1:{worker_process.port}"
        assert 0.3 < float(alert["value"]) <= 1.0
        assert alert["annotations"]["summary"].startswith("Reconstruction errors drifted from the model's reference on 127.0.0.1:")
        # The live median moved above the reference's: the dashboard's quantile panel shows the shift.
        (live,) = server.query('max by (q) (anomstream_live_error_quantile{q="0.5"})')
        (reference,) = server.query('max by (q) (anomstream_reference_error_quantile{q="0.5"})')
        assert float(live["value"][1]) > 1.2 * float(reference["value"][1])


def test_normal_beats_as_recorded_leave_the_drift_alert_inactive(scenario: Callable[[float], Any]) -> None:
    with scenario(1.0) as server:
        wait_for_scoring(server)
        drift_seen(server)
        watched_from = time.monotonic()
        while time.monotonic() - watched_from < 20:  # ten times the rule's 2 s `for:`
            assert not states(server), f"{ALERT} went {states(server)} on unchanged normal beats"
            time.sleep(0.5)
        (rule,) = [r for r in server.rules() if r.get("name") == ALERT]
        assert rule["health"] == "ok" and rule["state"] == "inactive", rule
        # The rule judged a measured value, and it is low: the alert could have fired, and did not.
        assert 0.0 <= drift_seen(server) < 0.2
