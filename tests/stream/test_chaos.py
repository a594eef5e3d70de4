"""Crash tests: `kill -9` of the worker at random points mid-stream, then a restart (RELIABILITY.md)."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from stream import codec
from stream.brokers import free_port

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

WINDOWS = 20_000
KILLS = 5


def start(model: Path, bootstrap: str, topics: dict[str, str], group: str, delivery: str, log: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    command = [
        sys.executable, "-m", "stream", "worker", "--model", str(model), "--bootstrap-servers", bootstrap,
        "--input-topic", topics["input"], "--scores-topic", topics["scores"], "--output-topic", topics["anomalies"],
        "--dlq-topic", topics["dlq"], "--group-id", group, "--delivery", delivery,
        # A stable id per replica: the restarted worker fences its crashed predecessor at once.
        "--transactional-id", f"{group}-replica-0",
        "--max-batch", "64", "--max-wait-ms", "5", "--metrics-host", "127.0.0.1", "--metrics-port", str(port),
        "-X", "session.timeout.ms=6000",
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log.open("a")), port


def committed(bootstrap: str, group: str, topic: str) -> int:
    """The group's committed input offset: how far the stream had durably got when the worker died."""
    from confluent_kafka import Consumer, TopicPartition

    # read_uncommitted: do not wait for the killed worker's open transaction to time out (KIP-447 stable offsets).
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "isolation.level": "read_uncommitted"})
    try:
        (partition,) = consumer.committed([TopicPartition(topic, 0)], timeout=10)
    finally:
        consumer.close()
    return max(partition.offset, 0)


def window_id(message) -> str:
    return json.loads(message.value())["id"]


def wait_ready(process: subprocess.Popen, port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "worker died during start-up"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("worker never became ready")


@pytest.mark.parametrize("delivery", ["exactly-once", "at-least-once"])
def test_kill_9_at_random_points_loses_nothing(delivery, ecg_artifact, ecg_split, kafka_bootstrap, topics, send, read, tmp_path):
    rng = random.Random(7)
    test = ecg_split.test
    rows = np.resize(np.arange(len(test)), WINDOWS)
    send(topics["input"], [(None, codec.encode_window(f"w-{i}", test.windows[r]), None) for i, r in enumerate(rows)])
    log = tmp_path / "worker.log"
    group = f"chaos-{delivery}"
    kills_mid_stream = 0
    for _ in range(KILLS):
        process, port = start(ecg_artifact, kafka_bootstrap, topics, group, delivery, log)
        try:
            wait_ready(process, port)
            time.sleep(rng.uniform(0.1, 0.8))
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(30)
        kills_mid_stream += committed(kafka_bootstrap, group, topics["input"]) < WINDOWS
    assert kills_mid_stream >= 3, "the kills should land while windows are still being scored"

    process, port = start(ecg_artifact, kafka_bootstrap, topics, group, delivery, log)
    try:
        wait_ready(process, port)
        verdicts = read(topics["scores"], WINDOWS, timeout=300, distinct=window_id)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    counts = Counter(window_id(m) for m in verdicts)
    lost = WINDOWS - len(counts)
    duplicated = sum(n - 1 for n in counts.values())
    print(f"\nRELIABILITY crash {delivery}: kills={KILLS} (mid-stream {kills_mid_stream}) windows={WINDOWS} lost={lost} duplicated={duplicated}")
    assert lost == 0
    if delivery == "exactly-once":
        assert duplicated == 0
