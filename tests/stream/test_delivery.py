"""Delivery on a real broker: transactions that span batches, and backpressure when Kafka refuses outputs."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from anomstream.stream import codec
from tests.needs import unavailable

pytestmark = pytest.mark.integration


def ecg_messages(split, count: int, prefix: str = "w") -> list[tuple[bytes, bytes, None]]:
    test = split.test
    return [(b"k%d" % (i % 5), codec.encode_window(f"{prefix}-{i}", test.windows[i % len(test)]), None) for i in range(count)]


def committed_offset(bootstrap: str, group: str, topic: str) -> int:
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "isolation.level": "read_uncommitted"})
    try:
        (position,) = reader.committed([TopicPartition(topic, 0)], timeout=10)
        return position.offset
    finally:
        reader.close()


def test_one_transaction_spans_the_batches_of_a_commit_interval(ecg_split, worker_settings, topics, send, read, start_worker, kafka_bootstrap):
    """Scored batches stay invisible to read_committed readers until the interval's one commit (here: at stop)."""
    worker = start_worker(worker_settings, max_batch=16, commit_interval_ms=60_000, transaction_timeout_ms=130_000)
    send(topics["input"], ecg_messages(ecg_split, 100))
    uncommitted = read(topics["scores"], 100, committed_only=False, timeout=60)
    assert len(uncommitted) == 100  # 7 batches of at most 16, all produced...
    assert worker.worker.batches >= 7
    assert read(topics["scores"], 1, timeout=3) == []  # ...inside one open transaction
    assert committed_offset(kafka_bootstrap, worker_settings.group_id, topics["input"]) < 0
    worker.stop()  # stopping commits it
    ids = [json.loads(m.value())["id"] for m in read(topics["scores"], 100)]
    assert sorted(ids) == sorted(f"w-{i}" for i in range(100))
    assert committed_offset(kafka_bootstrap, worker_settings.group_id, topics["input"]) == 100


def set_producer_quota(bootstrap: str, client_id: str, bytes_per_s: int | None) -> None:
    """A broker-side quota on the worker's produce rate: Kafka slows the outputs down, for real."""
    from anomstream.brokers.apache_kafka import java_binary, kafka_libs

    java = java_binary()
    if java is None:
        unavailable("needs Java (the Apache Kafka test broker needs it too)")
    program = Path(__file__).with_name("kafka_quota.java")
    rate = "none" if bytes_per_s is None else str(bytes_per_s)
    subprocess.run([java, "-cp", f"{kafka_libs()}/*", str(program), bootstrap, client_id, rate], check=True, capture_output=True, timeout=120)


@pytest.mark.chaos
@pytest.mark.parametrize("delivery", ["exactly-once", "at-least-once"])
def test_a_slow_output_pauses_consumption_with_bounded_memory_and_loses_nothing(
    delivery, ecg_split, worker_settings, topics, send, read, start_worker, kafka_bootstrap
):
    """A 2 kB/s produce quota (about 5 verdicts/s): the producer queue fills, the worker stops taking batches."""
    windows = 3000
    queue_bound = 300  # librdkafka's producer queue, made small so that the pause comes quickly
    client_id = f"slow-{uuid.uuid4().hex[:8]}"
    set_producer_quota(kafka_bootstrap, client_id, 2000)
    try:
        worker = start_worker(
            worker_settings,
            delivery=delivery,
            max_batch=100,
            kafka={"client.id": client_id, "queue.buffering.max.messages": str(queue_bound)},
        )
        worker.worker.health.busy_after_s = 2.0
        send(topics["input"], ecg_messages(ecg_split, windows))
        time.sleep(5)  # the worker fills the producer queue, then waits in produce
        batches_then = worker.worker.batches
        queued = []
        for _ in range(10):
            time.sleep(0.5)
            queued.append(len(worker.worker.delivery.producer))
        ready, why = worker.worker.health.ready()
        assert worker.worker.batches <= batches_then + 1  # paused: at most the batch in hand went on in 5 s
        assert batches_then * 100 < windows / 2  # ...long before the end of the backlog
        assert max(queued) <= queue_bound + 10  # bounded: what is in hand never exceeds the queue (plus reports in flight)
        assert not ready and "waiting on Kafka" in why
    finally:
        set_producer_quota(kafka_bootstrap, client_id, None)
    ids = [json.loads(m.value())["id"] for m in read(topics["scores"], windows, timeout=180, distinct=lambda m: json.loads(m.value())["id"])]
    worker.stop()
    assert set(ids) == {f"w-{i}" for i in range(windows)}  # 0 lost
    if delivery == "exactly-once":
        assert len(ids) == windows  # 0 duplicated
    assert committed_offset(kafka_bootstrap, worker_settings.group_id, topics["input"]) == windows
    print(f"\nRELIABILITY slow output {delivery}: windows={windows} batches_while_paused={batches_then} "
          f"queued_max={max(queued)} lost=0 duplicated={len(ids) - windows}")


def test_a_replaced_producer_fences_the_stuck_one_and_redoes_its_transaction(ecg_split, worker_settings, topics, send, read, start_worker, kafka_bootstrap):
    """What the worker does when librdkafka wedges (stream/delivery.py, ProducerWedged), triggered by hand here:
    the open transaction's outputs are written again by a fresh producer; the stuck one's copy is aborted."""
    from anomstream.stream.delivery import ProducerWedged

    worker = start_worker(worker_settings, max_batch=16, commit_interval_ms=60_000, transaction_timeout_ms=130_000)
    send(topics["input"], ecg_messages(ecg_split, 100))
    assert len(read(topics["scores"], 100, committed_only=False, timeout=60)) == 100
    stuck = worker.worker.delivery.producer
    # The loop is idle (no input left, no commit due for 60 s), so the test thread may act for it.
    worker.worker._replace_producer(ProducerWedged("(a test stands in for librdkafka)"))
    assert worker.worker.delivery.producer is not stuck
    assert len(read(topics["scores"], 200, committed_only=False, timeout=30)) == 200  # written twice, uncommitted
    worker.stop()
    ids = [json.loads(m.value())["id"] for m in read(topics["scores"], 100)]
    assert sorted(ids) == sorted(f"w-{i}" for i in range(100))  # once each: the stuck producer's copy was aborted
    assert committed_offset(kafka_bootstrap, worker_settings.group_id, topics["input"]) == 100
