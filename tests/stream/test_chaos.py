"""Crash tests: `kill -9` of the worker at random points mid-stream, then a restart (RELIABILITY.md)."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from anomstream.stream import codec
from tests.worker_process import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

WINDOWS = 20_000
KILLS = 5


def start(model: Path, bootstrap: str, topics: dict[str, str], group: str, delivery: str, log: Path) -> WorkerProcess:
    return WorkerProcess.start(
        model, bootstrap, topics, group, log, "--delivery", delivery,
        # A stable id per replica: the restarted worker fences its crashed predecessor at once.
        "--transactional-id", f"{group}-replica-0",
        "--max-batch", "64", "--max-wait-ms", "5", "-X", "session.timeout.ms=6000",
    )  # fmt: skip


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
        worker = start(ecg_artifact, kafka_bootstrap, topics, group, delivery, log)
        try:
            worker.wait_ready()
            time.sleep(rng.uniform(0.1, 0.8))
        finally:
            worker.kill()
        kills_mid_stream += committed(kafka_bootstrap, group, topics["input"]) < WINDOWS
    assert kills_mid_stream >= 3, "the kills should land while windows are still being scored"

    with start(ecg_artifact, kafka_bootstrap, topics, group, delivery, log) as worker:
        worker.wait_ready()
        verdicts = read(topics["scores"], WINDOWS, timeout=300, distinct=window_id)
    counts = Counter(window_id(m) for m in verdicts)
    lost = WINDOWS - len(counts)
    duplicated = sum(n - 1 for n in counts.values())
    print(f"\nRELIABILITY crash {delivery}: kills={KILLS} (mid-stream {kills_mid_stream}) windows={WINDOWS} lost={lost} duplicated={duplicated}")
    assert lost == 0
    if delivery == "exactly-once":
        assert duplicated == 0
