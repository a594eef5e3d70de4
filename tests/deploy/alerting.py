"""What the end-to-end alert tests share: deploy/prometheus.yml pointed at a test worker, steady traffic, and
waiting until Prometheus has seen windows scored."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from confluent_kafka import Producer

from anomstream.stream import codec

RATE = 60  # windows/s sent while a scenario runs


def prometheus_config(repo: Path, worker_port: int, rules: Path) -> dict[str, Any]:
    """deploy/prometheus.yml with 1 s intervals, the worker job pointed at the test worker."""
    config = yaml.safe_load((repo / "deploy/prometheus.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "anomstream-worker"]
    del job["dns_sd_configs"]
    job["static_configs"] = [{"targets": [f"127.0.0.1:{worker_port}"]}]
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(rules)]
    config["scrape_configs"] = [job]
    return config


@contextmanager
def traffic(bootstrap: str, topic: str, windows: np.ndarray, rate: int = RATE) -> Iterator[None]:
    """Send `windows` round-robin at `rate`/s on a background thread while the block runs (at most 5 min)."""
    stop = threading.Event()
    errors: list[str] = []

    def run() -> None:
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
        started, sent = time.monotonic(), 0
        while not stop.is_set() and time.monotonic() - started < 300:
            due = int((time.monotonic() - started) * rate)
            for _ in range(max(0, due - sent)):
                row = windows[sent % len(windows)]
                producer.produce(topic, codec.encode_window(f"w-{sent}", row, source=f"s-{sent % 4}", ts=time.time()), f"s-{sent % 4}".encode())
                sent += 1
            producer.poll(0)
            time.sleep(0.02)
        if producer.flush(30):
            errors.append("windows left unsent")

    thread = threading.Thread(target=run, name="traffic", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(60)
    assert not errors, errors


def wait_for_scoring(server: Any, timeout: float = 60.0) -> float:
    """Until Prometheus has seen the worker score windows; returns the count it saw."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = server.query('sum(rate(anomstream_windows_scored_total{job="anomstream-worker"}[15s])) > 0')
        if result:
            return float(server.query("sum(anomstream_windows_scored_total)")[0]["value"][1])
        time.sleep(0.5)
    raise AssertionError(f"Prometheus saw no windows scored within {timeout} s; targets: {server.api('targets')['activeTargets']}")
