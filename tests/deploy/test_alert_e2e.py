"""End to end with a real Prometheus (Debian's) scraping a real worker every second, loading
deploy/alerts.yml with the anomaly-rate alert's windows shortened (5m -> 15s, for: 5m -> 2s):
anomalous traffic makes it fire; normal traffic leaves it inactive."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.deploy.alerting import RATE, prometheus_config, traffic, wait_for_scoring

pytestmark = pytest.mark.integration

ALERT = "AnomstreamAnomalyRateHigh"


def fast_rules(repo: Path, out: Path) -> Path:
    """A copy of alerts.yml whose anomaly-rate alert judges 15 s of data and fires after 2 s."""
    rules = yaml.safe_load((repo / "deploy/alerts.yml").read_text())
    (rule,) = [r for g in rules["groups"] for r in g["rules"] if r["alert"] == ALERT]
    shortened = rule["expr"].replace("[5m]", "[15s]")
    assert shortened != rule["expr"] and "[5m]" not in shortened and shortened.count("[15s]") == 3
    assert rule["for"] == "5m"
    rule["expr"], rule["for"] = shortened, "2s"
    out.write_text(yaml.safe_dump(rules, sort_keys=False))
    return out


def states(server: Any) -> set[str]:
    return {alert["state"] for alert in server.alerts() if alert["labels"]["alertname"] == ALERT}


def scrape_health(server: Any) -> list[dict[str, Any]]:
    return [{k: t.get(k) for k in ("health", "lastError", "lastScrapeDuration")} for t in server.api("targets")["activeTargets"]]


def settled_query(server: Any, expr: str, within_s: float = 10.0) -> list[dict[str, Any]]:
    """`expr`'s result, asked again for up to `within_s` while it is empty. One scrape that misses its 1 s timeout
    on a loaded machine makes Prometheus mark every series of the target stale, and an instant selector such as
    the model-version panel's reads nothing until the next scrape lands; a panel with no data at all stays empty."""
    deadline = time.monotonic() + within_s
    while not (result := server.query(expr)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return result


def grafana_query(repo: Path) -> str:
    """The Grafana alert rule's query A with the same shortened window."""
    provisioning = yaml.safe_load((repo / "deploy/grafana/provisioning/alerting/anomstream.yml").read_text())
    return provisioning["groups"][0]["rules"][0]["data"][0]["model"]["expr"].replace("[5m]", "[15s]")


@pytest.fixture
def scenario(repo: Path, tmp_path: Path, worker_process: Any, worker_topics: dict[str, str], kafka_bootstrap: str,
             prometheus: Callable[[dict[str, Any]], Any]) -> Callable[[np.ndarray], Any]:
    """`scenario(windows)`: Prometheus on the worker, traffic flowing, Prometheus seeing it scored."""
    rules = fast_rules(repo, tmp_path / "alerts-fast.yml")
    server = prometheus(prometheus_config(repo, worker_process.port, rules))
    (rule,) = [r for r in server.rules() if r.get("name") == ALERT]
    assert rule["duration"] == 2 and "[15s]" in rule["query"]

    @contextmanager
    def run(windows: np.ndarray) -> Iterator[Any]:
        with traffic(kafka_bootstrap, worker_topics["input"], windows):
            yield server

    return run


def test_anomalous_traffic_fires_the_anomaly_rate_alert(scenario: Callable[[np.ndarray], Any], windows: Callable[..., Any], repo: Path) -> None:
    normal, anomalous = windows(500, 500, 11)
    mixed = np.empty((1000, normal.shape[1]), dtype=np.float32)
    mixed[0::2], mixed[1::2] = normal, anomalous  # half anomalous: far above the 20% line
    with scenario(mixed) as server:
        wait_for_scoring(server)
        seen: list[str] = []
        deadline = time.monotonic() + 90
        while "firing" not in seen and time.monotonic() < deadline:
            seen.extend(sorted(states(server) - set(seen[-1:])))
            time.sleep(0.2)
        assert "firing" in seen, f"{ALERT} did not fire within 90 s; states seen: {seen}; rule: {[r for r in server.rules() if r['name'] == ALERT]}"
        assert seen.index("pending") < seen.index("firing"), "the `for:` window held it pending first"
        (alert,) = [a for a in server.alerts() if a["labels"]["alertname"] == ALERT]
        assert alert["labels"]["severity"] == "warning"
        ratio = float(alert["value"])
        assert 0.4 < ratio < 0.6, ratio
        assert alert["annotations"]["summary"].startswith("Anomaly rate is ")
        # The Grafana-provisioned rule's query sees the same: above its 0.2 threshold.
        (grafana,) = server.query(grafana_query(repo))
        assert float(grafana["value"][1]) > 0.2
        # Every dashboard query evaluates in a real Prometheus (server.query asserts success), with data behind it.
        board = yaml.safe_load((repo / "deploy/grafana/dashboards/anomstream.json").read_text())
        for panel in board["panels"]:
            for target in panel["targets"]:
                result = settled_query(server, target["expr"].replace("$__rate_interval", "15s"))
                assert result, f"panel {panel['title']!r}: {target['expr']} returned nothing; targets: {scrape_health(server)}"


def test_normal_traffic_leaves_the_anomaly_rate_alert_inactive(scenario: Callable[[np.ndarray], Any], windows: Callable[..., Any], repo: Path) -> None:
    normal, _ = windows(1000, 0, 12)
    with scenario(normal) as server:
        scored_before = wait_for_scoring(server)
        watched_from = time.monotonic()
        while time.monotonic() - watched_from < 20:  # longer than the rule's 15 s window plus its 2 s `for:`
            assert not states(server), f"{ALERT} went {states(server)} on normal traffic"
            time.sleep(0.5)
        (rule,) = [r for r in server.rules() if r.get("name") == ALERT]
        assert rule["health"] == "ok" and rule["state"] == "inactive", rule
        scored_after = float(server.query("sum(anomstream_windows_scored_total)")[0]["value"][1])
        assert scored_after - scored_before >= 10 * RATE, "traffic kept flowing while the alert was watched"
        # The rule judged real data: the ratio is defined and small (the model flags ~1% of normal windows).
        (ratio,) = server.query("sum(rate(anomstream_anomalies_total[15s])) / sum(rate(anomstream_windows_scored_total[15s]))")
        assert 0.0 <= float(ratio["value"][1]) < 0.1
        (grafana,) = server.query(grafana_query(repo)) or [{"value": [0, "0"]}]
        assert float(grafana["value"][1]) <= 0.2
