"""Fixtures for the deployment tests: the repository's deploy files, the Debian tools, a tiny model,
a worker process configured the way the container is (ANOMSTREAM_* only), and a real Prometheus.

Nothing here runs a container (no Docker engine on these machines): the compose file is validated by
docker-compose, the rules by promtool, and the rules' behaviour by a real Prometheus scraping a real worker.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests import trained
from tests.worker_process import WORKER, WorkerProcess, stop_process

REPO = Path(__file__).resolve().parents[2]
WINDOW = 32
_PROMETHEUS_LOGS = pytest.StashKey[list[Path]]()


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tool() -> Callable[[str], str]:
    """`tool("promtool")`: its path, or a failure naming the package (a missing tool is not a skip)."""

    def find(name: str) -> str:
        path = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None)
        if path is None:
            pytest.fail(f"{name} is missing: apt-get install prometheus docker-compose (.ci/run does)", pytrace=False)
        return path

    return find


def get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _queries(repo: Path) -> list[str]:
    """Every PromQL expression the deploy files hold: dashboard targets, the Grafana rule, the alerts."""
    board = json.loads((repo / "deploy/grafana/dashboards/anomstream.json").read_text())
    queries = [target["expr"] for panel in board["panels"] for target in panel["targets"]]
    grafana = yaml.safe_load((repo / "deploy/grafana/provisioning/alerting/anomstream.yml").read_text())
    queries += [query["model"]["expr"] for group in grafana["groups"] for rule in group["rules"] for query in rule["data"] if "expr" in query["model"]]
    alerts = yaml.safe_load((repo / "deploy/alerts.yml").read_text())
    return queries + [rule["expr"] for group in alerts["groups"] for rule in group["rules"]]


@pytest.fixture(scope="session")
def deploy_queries(repo: Path) -> list[str]:
    return _queries(repo)


@pytest.fixture(scope="session")
def referenced_metrics(repo: Path) -> set[str]:
    """Metric names the deploy files use (regex anomstream_[a-z_]+), histogram suffixes removed."""
    return {re.sub(r"_(bucket|sum|count)$", "", name) for query in _queries(repo) for name in re.findall(r"anomstream_[a-z_]+", query)}


@pytest.fixture(scope="session")
def http_get() -> Callable[..., tuple[int, str]]:
    """`http_get(url)`: (status, body); HTTP errors are answers, not exceptions."""
    return get


def synthetic_windows(n_normal: int, n_anomalous: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Normal: one smooth beat plus noise. Anomalous: shifted phase and a spike. Float32, WINDOW long."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 2 * np.pi, WINDOW)
    normal = np.sin(t) + 0.05 * rng.standard_normal((n_normal, WINDOW))
    anomalous = np.sin(t + 1.5) + 0.05 * rng.standard_normal((n_anomalous, WINDOW))
    anomalous[:, WINDOW // 3] += 2.5
    return normal.astype(np.float32), anomalous.astype(np.float32)


@pytest.fixture(scope="session")
def windows() -> Callable[[int, int, int], tuple[np.ndarray, np.ndarray]]:
    """`windows(n_normal, n_anomalous, seed)`: fresh synthetic windows for the tiny model."""
    return synthetic_windows


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real artifact trained in seconds (once per run). The 99th-percentile threshold flags about 1% of normal
    windows and every anomalous one, so the anomaly rate is far from the alert's 20% either way."""
    from anomstream.models import data
    from anomstream.models.train import TrainConfig

    def dataset() -> data.Dataset:
        normal, anomalous = synthetic_windows(300, 100, seed=0)
        table = np.vstack([np.column_stack([normal, np.ones(len(normal))]), np.column_stack([anomalous, np.zeros(len(anomalous))])])
        csv = tmp_path_factory.mktemp("data") / "synthetic.csv"
        csv.write_text("\n".join(",".join(f"{v:.8g}" for v in row) for row in table) + "\n")
        return data.load(csv)

    config = TrainConfig(
        epochs=30, batch_size=32, learning_rate=1e-2, threshold="percentile", threshold_params={"q": 99.0}, reference_holdout=0.25, name="tiny-dense"
    )
    return trained.artifact(tmp_path_factory, "deploy-tiny", dataset, config)


@pytest.fixture
def worker_topics(new_topic: Callable[..., str]) -> dict[str, str]:
    """The worker's four topics, fresh per test; the input has 2 partitions like a scaled-out setup."""
    return {"input": new_topic(partitions=2), "scores": new_topic(), "anomalies": new_topic(), "dlq": new_topic()}


@pytest.fixture
def worker_delivery() -> str:
    """The worker's --delivery; a test overrides it with @pytest.mark.parametrize("worker_delivery", ...)."""
    return "exactly-once"


@pytest.fixture
def worker_artifact(tiny_artifact: Path) -> Path:
    """The artifact the worker process serves; a test module overrides it (a fixture of the same name)."""
    return tiny_artifact


@pytest.fixture
def worker_env() -> dict[str, str]:
    """More ANOMSTREAM_* settings for the worker process; a test module overrides it."""
    return {}


@pytest.fixture
def worker_process(
    kafka_bootstrap: str, worker_artifact: Path, worker_topics: dict[str, str], worker_delivery: str, worker_env: dict[str, str], tmp_path: Path
) -> Iterator[WorkerProcess]:
    """`python -m anomstream worker` with no flag at all: every setting from ANOMSTREAM_* variables, as in
    the container. Its own process, so its counters start at zero. Ready (/readyz 200) when yielded."""
    from anomstream.brokers import free_port

    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ANOMSTREAM_")},
        "ANOMSTREAM_MODEL": str(worker_artifact),
        "ANOMSTREAM_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "ANOMSTREAM_INPUT_TOPIC": worker_topics["input"],
        "ANOMSTREAM_SCORES_TOPIC": worker_topics["scores"],
        "ANOMSTREAM_OUTPUT_TOPIC": worker_topics["anomalies"],
        "ANOMSTREAM_DLQ_TOPIC": worker_topics["dlq"],
        "ANOMSTREAM_GROUP_ID": f"deploy-{uuid.uuid4().hex[:8]}",
        "ANOMSTREAM_DELIVERY": worker_delivery,
        "ANOMSTREAM_METRICS_HOST": "127.0.0.1",
        "ANOMSTREAM_METRICS_PORT": str(port),
        "ANOMSTREAM_MAX_WAIT_MS": "20",
        "ANOMSTREAM_LOG_LEVEL": "INFO",
        **worker_env,
    }
    log = tmp_path / "worker.log"
    with WorkerProcess(WORKER, log, port, env=env, stdout=log) as worker:
        try:
            worker.wait_ready(120)
        except AssertionError as error:  # a set-up failure: the log's tail says it all, not a traceback
            pytest.fail(str(error), pytrace=False)
        yield worker


class Prometheus:
    """A real Prometheus on 127.0.0.1 with a temp storage dir; `query`, `alerts`, `rules` read its API."""

    def __init__(self, binary: str, workdir: Path, config: dict[str, Any]) -> None:
        from anomstream.brokers import free_port

        self.port = free_port()
        self.workdir = workdir
        self.log = workdir / "prometheus.log"
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        command = [
            binary,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=info",
        ]
        with self.log.open("wb") as sink:
            self.process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, cwd=workdir)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30.0) -> Prometheus:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if get(self.url + "/-/ready", timeout=2)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"prometheus was not ready after {timeout} s:\n{self.log.read_text()[-3000:]}")

    def api(self, path: str, **params: str) -> Any:
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        status, body = get(f"{self.url}/api/v1/{path}{query}")
        payload = json.loads(body)
        assert status == 200 and payload["status"] == "success", f"{path} {params}: {status} {body[:500]}"
        return payload["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.api("query", query=expr)["result"]

    def alerts(self) -> list[dict[str, Any]]:
        return self.api("alerts")["alerts"]

    def rules(self) -> list[dict[str, Any]]:
        return [rule for group in self.api("rules")["groups"] for rule in group["rules"]]

    def stop(self) -> None:
        stop_process(self.process, 20)


@pytest.fixture
def prometheus(tool: Callable[[str], str], tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[[dict[str, Any]], Prometheus]]:
    """`prometheus(config)`: Debian's Prometheus running `config`, ready. Always stopped; its log is
    attached to the report of a failed test."""
    binary = tool("prometheus")
    started: list[Prometheus] = []
    request.node.stash[_PROMETHEUS_LOGS] = []

    def start(config: dict[str, Any]) -> Prometheus:
        workdir = tmp_path / f"prometheus-{len(started)}"
        workdir.mkdir()
        server = Prometheus(binary, workdir, config)
        started.append(server)
        request.node.stash[_PROMETHEUS_LOGS].append(server.log)
        return server.wait_ready()

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On failure, show what Prometheus said (config errors, scrape failures, rule evaluation)."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for log in item.stash.get(_PROMETHEUS_LOGS, []):
            if log.exists():
                report.sections.append((f"prometheus log ({log.parent.name}, tail)", "\n".join(log.read_text().splitlines()[-60:])))
