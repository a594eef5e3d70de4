"""Broker outages: Apache Kafka stopped and restarted (same log dir) under a running worker, and down at start-up."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from stream import codec
from stream.apache_kafka import ApacheKafka
from stream.brokers import free_port

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


@pytest.fixture
def broker() -> Iterator[ApacheKafka]:
    """A broker of this test's own: stopping it must not disturb the session's."""
    if ApacheKafka.missing_tools():
        pytest.skip(ApacheKafka.missing_tools())
    with ApacheKafka() as kafka:
        yield kafka


def make_topics(bootstrap: str, partitions: int = 2) -> dict[str, str]:
    names = {role: f"restart-{role}" for role in ("input", "scores", "anomalies", "dlq")}
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, partitions if role == "input" else 1, 1) for role, name in names.items()])
    for future in futures.values():
        future.result(timeout=60)
    return names


def start_worker(model: Path, bootstrap: str, topics: dict[str, str], log: Path, *extra: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    command = [
        sys.executable, "-m", "stream", "worker", "--model", str(model), "--bootstrap-servers", bootstrap,
        "--input-topic", topics["input"], "--scores-topic", topics["scores"], "--output-topic", topics["anomalies"],
        "--dlq-topic", topics["dlq"], "--group-id", "restart", "--transactional-id", "restart-replica-0",
        "--max-batch", "64", "--max-wait-ms", "5", "--metrics-host", "127.0.0.1", "--metrics-port", str(port),
        "-X", "session.timeout.ms=6000", *extra,
    ]  # fmt: skip
    env = {**os.environ, "ANOMSTREAM_LOG_LEVEL": "INFO"}
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log.open("a"), env=env), port


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL: a wedged worker must not outlive the test."""
    process.terminate()
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def readyz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def wait_for(predicate, timeout: float, what: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.poll() is None, f"the worker exited ({process.returncode}) while {what}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out while {what}:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)


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
    process, port = start_worker(ecg_artifact, bootstrap, topics, log, "--delivery", delivery)
    try:
        wait_for(lambda: readyz(port) == 200, 120, "starting", process, log)
        kafka_io.produce(bootstrap, topics["input"], windows(ecg_split, 0, 3000))
        assert sum(ids(kafka_io, bootstrap, topics["scores"], 3000).values()) >= 3000

        down = time.monotonic()
        broker._terminate()  # a clean stop, as in a rolling restart; the log dir stays
        wait_for(lambda: readyz(port) == 503, 60, "waiting for /readyz to report the outage", process, log)
        time.sleep(3)
        broker.start()
        wait_for(lambda: readyz(port) == 200, 120, "waiting for /readyz to recover", process, log)
        recovered_s = time.monotonic() - down

        kafka_io.produce(bootstrap, topics["input"], windows(ecg_split, 3000, 3000))
        seen = ids(kafka_io, bootstrap, topics["scores"], 6000)
        assert process.poll() is None, f"the worker must ride through, not exit:\n{log.read_text()[-3000:]}"
        # librdkafka can wedge in a transactional call after a restart (stream/delivery.py): then the
        # worker replaces its producer in place. Reported, not required: it does not happen every time.
        replaced = "Replacing the producer" in log.read_text()
    finally:
        stop(process)
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
    process, port = start_worker(ecg_artifact, bootstrap, topics, log, "--startup-timeout-s", "180")
    try:
        wait_for(lambda: "waiting for Kafka" in log.read_text(), 120, "waiting for the first retry", process, log)
        broker.start()
        wait_for(lambda: readyz(port) == 200, 120, "starting once the broker is back", process, log)
        kafka_io.produce(bootstrap, topics["input"], windows(ecg_split, 0, 1000))
        seen = ids(kafka_io, bootstrap, topics["scores"], 1000)
    finally:
        stop(process)
    assert set(seen) == {f"w-{i}" for i in range(1000)}
    assert sum(seen.values()) == 1000
