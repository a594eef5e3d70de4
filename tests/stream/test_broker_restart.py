"""Broker outages: Apache Kafka stopped and restarted (same log dir) under a running worker, and down at start-up."""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from anomstream.brokers.apache_kafka import ApacheKafka
from anomstream.stream import codec
from tests.needs import unavailable
from tests.worker_process import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


@pytest.fixture
def broker() -> Iterator[ApacheKafka]:
    """A broker of this test's own: stopping it must not disturb the session's."""
    if ApacheKafka.missing_tools():
        unavailable(ApacheKafka.missing_tools())
    with ApacheKafka() as kafka:
        yield kafka


def make_topics(bootstrap: str, partitions: int = 2) -> dict[str, str]:
    names = {role: f"restart-{role}" for role in ("input", "scores", "anomalies", "dlq")}
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, partitions if role == "input" else 1, 1) for role, name in names.items()])
    for future in futures.values():
        future.result(timeout=60)
    return names


def start_worker(model: Path, bootstrap: str, topics: dict[str, str], log: Path, *extra: str) -> WorkerProcess:
    return WorkerProcess.start(
        model, bootstrap, topics, "restart", log, "--transactional-id", "restart-replica-0",
        "--max-batch", "64", "--max-wait-ms", "5", "-X", "session.timeout.ms=6000", *extra,
        env={**os.environ, "ANOMSTREAM_LOG_LEVEL": "INFO"},
    )  # fmt: skip


def windows(split, start: int, count: int) -> list[tuple[bytes, bytes, None]]:
    test = split.test
    return [(b"k%d" % (i % 4), codec.encode_window(f"w-{i}", test.windows[i % len(test)]), None) for i in range(start, start + count)]


def ids(kafka_io, bootstrap: str, topic: str, expected: int, timeout: float = 180) -> Counter:
    messages = kafka_io.consume(bootstrap, topic, expected, timeout=timeout, distinct=lambda m: json.loads(m.value())["id"])
    return Counter(json.loads(m.value())["id"] for m in messages)


@pytest.mark.parametrize("delivery", ["exactly-once", "at-least-once"])
def test_the_worker_rides_through_a_broker_restart_and_loses_nothing(delivery, broker, ecg_artifact, ecg_split, kafka_io, tmp_path):
    bootstrap = broker.bootstrap_servers
    topics = make_topics(bootstrap)
    log = tmp_path / "worker.log"
    with start_worker(ecg_artifact, bootstrap, topics, log, "--delivery", delivery) as worker:
        worker.wait_ready(120)
        kafka_io.produce(bootstrap, topics["input"], windows(ecg_split, 0, 3000))
        assert sum(ids(kafka_io, bootstrap, topics["scores"], 3000).values()) >= 3000

        down = time.monotonic()
        broker._terminate()  # a clean stop, as in a rolling restart; the log dir stays
        worker.wait_for(lambda: worker.readyz() == 503, 60, "waiting for /readyz to report the outage")
        time.sleep(3)
        broker.start()
        worker.wait_for(lambda: worker.readyz() == 200, 120, "waiting for /readyz to recover")
        recovered_s = time.monotonic() - down

        kafka_io.produce(bootstrap, topics["input"], windows(ecg_split, 3000, 3000))
        seen = ids(kafka_io, bootstrap, topics["scores"], 6000)
        assert worker.process.poll() is None, f"the worker must ride through, not exit:\n{worker.log_tail()}"
        # librdkafka can wedge in a transactional call after a restart (stream/delivery.py): then the
        # worker replaces its producer in place. Reported, not required: it does not happen every time.
        replaced = "Replacing the producer" in log.read_text()
    text = log.read_text()
    assert set(seen) == {f"w-{i}" for i in range(6000)}, text[-3000:]  # 0 lost
    duplicated = sum(seen.values()) - len(seen)
    if delivery == "exactly-once":
        assert duplicated == 0, text[-3000:]
    assert "Kafka is reachable again" in text
    # The outage shows as librdkafka's lines through our logging (at WARNING), never raw (`%3|<ts>|FAIL|...`).
    assert re.search(r" WARNING anomstream\.librdkafka: FAIL \[anomstream-worker#(producer|consumer)-\d+\] ", text), text[-3000:]
    assert not re.search(r"^%\d\|", text, re.MULTILINE), text[-3000:]
    print(f"\nRELIABILITY broker restart {delivery}: windows=6000 lost=0 duplicated={duplicated} "
          f"outage_to_ready={recovered_s:.1f}s producer_replaced={replaced} worker_restarts=0")


def test_a_broker_that_comes_up_after_the_worker_is_waited_for(broker, ecg_artifact, ecg_split, kafka_io, tmp_path):
    bootstrap = broker.bootstrap_servers
    topics = make_topics(bootstrap)
    broker._terminate()
    log = tmp_path / "worker.log"
    with start_worker(ecg_artifact, bootstrap, topics, log, "--startup-timeout-s", "180") as worker:
        worker.wait_for(lambda: "waiting for Kafka" in log.read_text(), 120, "waiting for the first retry")
        broker.start()
        worker.wait_for(lambda: worker.readyz() == 200, 120, "starting once the broker is back")
        kafka_io.produce(bootstrap, topics["input"], windows(ecg_split, 0, 1000))
        seen = ids(kafka_io, bootstrap, topics["scores"], 1000)
    assert set(seen) == {f"w-{i}" for i in range(1000)}
    assert sum(seen.values()) == 1000
