"""Prometheus config and alert rules through promtool, and the Grafana provisioning files.

Grafana itself is not run here: its files are parsed and cross-checked, and every PromQL query they
hold is compiled by promtool (wrapped as recording rules) so a typo cannot reach a dashboard.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

DATASOURCE_UID = "anomstream-prometheus"


def promtool(tool: Callable[[str], str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def dashboard(repo: Path) -> dict[str, Any]:
    return json.loads((repo / "deploy/grafana/dashboards/anomstream.json").read_text())


def dashboard_queries(repo: Path) -> list[str]:
    return [target["expr"] for panel in dashboard(repo)["panels"] for target in panel["targets"]]


def grafana_rule(repo: Path) -> dict[str, Any]:
    provisioning = yaml.safe_load((repo / "deploy/grafana/provisioning/alerting/anomstream.yml").read_text())
    assert provisioning["apiVersion"] == 1
    (group,) = provisioning["groups"]
    (rule,) = group["rules"]
    return {**rule, "group": group}


def test_promtool_check_config(repo: Path, tool: Callable[[str], str]) -> None:
    done = promtool(tool, "check", "config", "deploy/prometheus.yml", cwd=repo)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 rule files found" in done.stdout


def test_promtool_check_rules(repo: Path, tool: Callable[[str], str]) -> None:
    done = promtool(tool, "check", "rules", "deploy/alerts.yml", cwd=repo)
    assert done.returncode == 0, done.stdout + done.stderr
    alerts = sum(len(group["rules"]) for group in yaml.safe_load((repo / "deploy/alerts.yml").read_text())["groups"])
    assert alerts == 7 and f"SUCCESS: {alerts} rules found" in done.stdout  # a rule that fails to parse is not counted


def test_promtool_test_rules(repo: Path, tool: Callable[[str], str]) -> None:
    done = promtool(tool, "test", "rules", "deploy/alerts.test.yml", cwd=repo)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_firing_and_a_quiet_case(repo: Path) -> None:
    alerts = {rule["alert"] for group in yaml.safe_load((repo / "deploy/alerts.yml").read_text())["groups"] for rule in group["rules"]}
    cases = [case for test in yaml.safe_load((repo / "deploy/alerts.test.yml").read_text())["tests"] for case in test["alert_rule_test"]]
    firing = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    assert firing == alerts and quiet == alerts
    for group in yaml.safe_load((repo / "deploy/alerts.yml").read_text())["groups"]:
        for rule in group["rules"]:
            assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), rule["alert"]
            assert rule["labels"]["severity"] in {"warning", "critical"}
            anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
            assert f"### {rule['alert']}" in (repo / "deploy/README.md").read_text() and anchor == rule["alert"].lower()


@pytest.mark.parametrize(
    ("what", "old", "new"),
    [
        ("a higher threshold", ") > 0.2\n", ") > 0.5\n"),
        ("no `for:` window", "        for: 5m\n        labels:\n          severity: warning\n", "        labels:\n          severity: warning\n"),
        ("no low-traffic guard", "          and\n          sum(rate(anomstream_windows_scored_total[5m])) > 0.1\n", "\n"),
        ("a higher drift threshold", "(anomstream_error_drift) > 0.3\n", "(anomstream_error_drift) > 0.5\n"),
        ("drift summed over replicas", "max by (instance) (anomstream_error_drift)", "sum(anomstream_error_drift)"),
        ("a shorter drift `for:`", "        for: 10m\n", "        for: 5m\n"),
        ("lag alert without the progress check", "          and\n          sum(rate(anomstream_windows_scored_total[5m])) == 0\n", "\n"),
    ],
)
def test_the_unit_tests_catch_a_changed_rule(repo: Path, tool: Callable[[str], str], tmp_path: Path, what: str, old: str, new: str) -> None:
    """Mutants of alerts.yml must fail alerts.test.yml: the unit tests pin the behaviour, not just the syntax."""
    rules = (repo / "deploy/alerts.yml").read_text()
    assert rules.count(old) == 1, f"mutation '{what}' no longer applies"
    (tmp_path / "alerts.yml").write_text(rules.replace(old, new))
    shutil.copy(repo / "deploy/alerts.test.yml", tmp_path / "alerts.test.yml")
    assert promtool(tool, "check", "rules", "alerts.yml", cwd=tmp_path).returncode == 0
    done = promtool(tool, "test", "rules", "alerts.test.yml", cwd=tmp_path)
    assert done.returncode != 0, f"alerts.test.yml still passes with {what}"


def test_dashboard_parses_and_covers_the_panels(repo: Path) -> None:
    board = dashboard(repo)
    assert board["uid"] == "anomstream" and board["panels"]
    titles = [panel["title"] for panel in board["panels"]]
    assert len(titles) == len(set(titles))
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == DATASOURCE_UID and panel["targets"], panel["title"]
        assert all(target["datasource"]["uid"] == DATASOURCE_UID for target in panel["targets"])
    queries = "\n".join(dashboard_queries(repo))
    for needle in (
        "rate(anomstream_windows_scored_total",
        "sum(rate(anomstream_anomalies_total[$__rate_interval])) / sum(rate(anomstream_windows_scored_total[$__rate_interval]))",
        "histogram_quantile(0.5, sum by (le) (rate(anomstream_reconstruction_error_bucket",
        "anomstream_batch_size_bucket",
        "histogram_quantile(0.99, sum by (le, stage) (rate(anomstream_batch_duration_seconds_bucket",
        "histogram_quantile(0.5, sum by (le, stage) (rate(anomstream_batch_duration_seconds_bucket",
        "anomstream_end_to_end_latency_seconds_bucket",
        "max by (partition) (anomstream_consumer_lag)",
        "sum by (reason) (rate(anomstream_invalid_messages_total",
        "anomstream_model_info",
        "max(anomstream_threshold)",
        "max by (instance) (anomstream_error_drift)",
        "max by (q) (anomstream_live_error_quantile)",
        "max by (q) (anomstream_reference_error_quantile)",
    ):
        assert needle in queries, f"no dashboard query has {needle}"


def test_dashboard_panels_do_not_overlap(repo: Path) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard(repo)["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells.get((x, y))}"
                cells[(x, y)] = panel["title"]


def test_grafana_provisioning_is_consistent(repo: Path) -> None:
    datasources = yaml.safe_load((repo / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasources["apiVersion"] == 1 and datasources["datasources"][0]["uid"] == DATASOURCE_UID
    providers = yaml.safe_load((repo / "deploy/grafana/provisioning/dashboards/dashboards.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and "folderUid" not in provider
    rule = grafana_rule(repo)
    assert rule["group"]["folder"] == provider["folder"], "alert rules and dashboard share one folder"
    data = {query["refId"]: query for query in rule["data"]}
    assert rule["condition"] in data
    assert data["A"]["datasourceUid"] == DATASOURCE_UID and data["A"]["model"]["instant"] is True
    assert (data["B"]["model"]["type"], data["B"]["model"]["expression"]) == ("reduce", "A")
    assert (data["C"]["model"]["type"], data["C"]["model"]["expression"]) == ("threshold", "B")
    assert all(data[ref]["datasourceUid"] == "__expr__" for ref in ("B", "C"))
    # The same signal as the Prometheus alert: threshold, window and `for:`.
    prometheus_rule = next(r for g in yaml.safe_load((repo / "deploy/alerts.yml").read_text())["groups"] for r in g["rules"] if r["alert"] == "AnomstreamAnomalyRateHigh")
    (condition,) = data["C"]["model"]["conditions"]
    assert condition["evaluator"] == {"type": "gt", "params": [0.2]} and ") > 0.2\n" in prometheus_rule["expr"]
    assert rule["for"] == prometheus_rule["for"] == "5m"
    assert "[5m]" in data["A"]["model"]["expr"]
    assert {"summary", "description", "runbook_url"} <= set(rule["annotations"])


def test_every_query_compiles(repo: Path, tool: Callable[[str], str], tmp_path: Path) -> None:
    """Dashboard and Grafana alert PromQL, compiled by promtool as recording rules ($__rate_interval -> 1m)."""
    queries = dashboard_queries(repo) + [grafana_rule(repo)["data"][0]["model"]["expr"]]
    rules = [{"record": f"anomstream:dashboard_query_{i}", "expr": query.replace("$__rate_interval", "1m")} for i, query in enumerate(queries)]
    (tmp_path / "queries.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = promtool(tool, "check", "rules", "queries.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules)} rules found" in done.stdout


def test_referenced_metrics_are_declared_in_stream_metrics(referenced_metrics: set[str]) -> None:
    """A fast, static version of tests/deploy/test_live_metrics.py: the names exist in the code."""
    from prometheus_client import REGISTRY

    import anomstream.stream.metrics  # noqa: F401  (registers the metrics)

    declared = {metric.name + ("_total" if metric.type == "counter" else "") for metric in REGISTRY.collect()}
    referenced = referenced_metrics
    assert len(referenced) >= 12
    assert not referenced - declared, sorted(referenced - declared)


def test_validate_judges_a_replay_by_the_drift_alerts_own_threshold(repo: Path) -> None:
    """`validate` says whether a replay would fire AnomstreamErrorDrift: its figure must be the rule's."""
    from anomstream.models.drift import ALERT_AT

    rules = yaml.safe_load((repo / "deploy/alerts.yml").read_text())
    (rule,) = [r for g in rules["groups"] for r in g["rules"] if r["alert"] == "AnomstreamErrorDrift"]
    assert rule["expr"].strip().endswith(f"(anomstream_error_drift) > {ALERT_AT}")
