"""Every metric a dashboard panel or an alert names is exported by a running worker, with samples,
and each is used the way its type allows (rate() of counters, histogram_quantile of buckets)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from anomstream.stream import codec

pytestmark = pytest.mark.integration


def produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for key, value in messages:
        producer.produce(topic, value, key)
    assert producer.flush(30) == 0


def scrape(http_get: Callable[..., tuple[int, str]], url: str) -> dict[str, tuple[str, list[Any]]]:
    """family name -> (type, samples), as Prometheus would parse the exposition."""
    status, text = http_get(url + "/metrics")
    assert status == 200
    return {family.name: (family.type, family.samples) for family in text_string_to_metric_families(text)}


def value(families: dict[str, tuple[str, list[Any]]], sample: str) -> float:
    return sum(s.value for _, samples in families.values() for s in samples if s.name == sample)


def declared_types(families: dict[str, tuple[str, list[Any]]]) -> dict[str, str]:
    """Metric name as queries spell it (counters with _total) -> type, from the # TYPE lines."""
    return {name + "_total" if kind == "counter" else name: kind for name, (kind, _) in families.items()}


def sample_names(families: dict[str, tuple[str, list[Any]]]) -> dict[str, str]:
    """Exported sample name (histogram suffixes removed) -> its family's type."""
    return {re.sub(r"_(bucket|sum|count)$", "", s.name) if kind == "histogram" else s.name: kind for kind, samples in families.values() for s in samples}


def wait_for(check: Callable[[], tuple[bool, str]], timeout: float, what: str, log: Any) -> None:
    deadline = time.monotonic() + timeout
    while True:
        ok, detail = check()
        if ok:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{what} after {timeout:.0f} s: {detail}\n{log.read_text()[-2000:]}")
        time.sleep(0.5)


@pytest.mark.parametrize("worker_delivery", ["exactly-once", "at-least-once"])
def test_every_referenced_metric_is_exported_by_a_running_worker(
    worker_delivery: str, worker_process: Any, worker_topics: dict[str, str], kafka_bootstrap: str, windows: Callable[..., Any],
    referenced_metrics: set[str], deploy_queries: list[str], http_get: Callable[..., tuple[int, str]],
) -> None:
    normal, anomalous = windows(60, 20, 3)
    rows = [(f"n-{i}", w) for i, w in enumerate(normal)] + [(f"a-{i}", w) for i, w in enumerate(anomalous)]
    messages = [(f"src-{i % 5}".encode(), codec.encode_window(name, values, source=f"src-{i % 5}", ts=time.time())) for i, (name, values) in enumerate(rows)]
    produce(kafka_bootstrap, worker_topics["input"], messages + [(b"bad", b"{not json")])
    state: dict[str, Any] = {}

    def scored_everything() -> tuple[bool, str]:
        state["families"] = families = scrape(http_get, worker_process.url)
        state["exported"] = exported = sample_names(families)
        scored = value(families, "anomstream_windows_scored_total")
        missing = referenced_metrics - set(exported) - {"anomstream_consumer_lag"}
        return scored >= len(rows) and not missing, f"{scored:.0f} of {len(rows)} scored; not exported: {sorted(missing)}"

    def lag_reported() -> tuple[bool, str]:
        ok, detail = scored_everything()
        return ok and "anomstream_consumer_lag" in state["exported"], "no anomstream_consumer_lag sample"

    wait_for(scored_everything, 60, "the worker did not score the windows", worker_process.log)
    families = state["families"]
    assert value(families, "anomstream_anomalies_total") >= len(anomalous)  # the tiny model flags every anomaly
    check_query_types(deploy_queries, declared_types(families))
    (info,) = families["anomstream_model_info"][1]  # the dashboard's "Model version" panel shows its labels
    assert info.labels["name"] == "tiny-dense" and info.labels["version"] and info.value == 1
    assert np.isfinite(value(families, "anomstream_threshold"))

    # The lag gauge comes from librdkafka statistics (every 5 s), in both delivery modes.
    wait_for(lag_reported, 20, "the consumer lag was never reported", worker_process.log)
    families = state["families"]
    lag = families["anomstream_consumer_lag"][1]
    assert {s.labels["partition"] for s in lag} <= {"0", "1"} and all(0 <= s.value <= len(messages) for s in lag)
    assert {"anomstream_windows_scored_total", "anomstream_model_info", "anomstream_batch_duration_seconds", "anomstream_consumer_lag"} <= referenced_metrics


def check_query_types(queries: list[str], types: dict[str, str]) -> None:
    """rate()/increase() only on counters or histogram series, delta() on gauges; quantiles from buckets."""
    for query in queries:
        for function, name in re.findall(r"\b(rate|increase|delta)\((anomstream_[a-z_]+)\[", query):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            expected = "gauge" if function == "delta" else ("histogram" if base != name else "counter")
            assert types[base] == expected, f"{query}: {function}() of {name}, a {types[base]}"
        if "histogram_quantile(" in query:
            names = re.findall(r"anomstream_[a-z_]+", query)
            assert names and all(n.endswith("_bucket") and types[n.removesuffix("_bucket")] == "histogram" for n in names), query
