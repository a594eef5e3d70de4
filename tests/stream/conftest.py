"""Workers on threads, their topics and settings, and Kafka read/write helpers."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from anomstream.stream.settings import WorkerSettings
from anomstream.stream.worker import WorkerThread


@pytest.fixture
def topics(new_topic: Callable[..., str]) -> dict[str, str]:
    return {"input": new_topic(), "scores": new_topic(), "anomalies": new_topic(), "dlq": new_topic()}


@pytest.fixture
def worker_settings(kafka_bootstrap: str, ecg_artifact: Path, topics: dict[str, str]) -> WorkerSettings:
    return WorkerSettings(
        model=ecg_artifact,
        bootstrap_servers=kafka_bootstrap,
        input_topic=topics["input"],
        scores_topic=topics["scores"],
        output_topic=topics["anomalies"],
        dlq_topic=topics["dlq"],
        group_id=f"g-{uuid.uuid4().hex[:8]}",
        transactional_id=f"tx-{uuid.uuid4().hex[:8]}",
        metrics_host="127.0.0.1",
        metrics_port=0,
        reload_interval_s=0.5,
        max_wait_ms=20,
    )


@pytest.fixture
def start_worker() -> Iterator[Callable[..., WorkerThread]]:
    """`start_worker(settings, **changes)`: a worker on a thread, ready; stopped after the test."""
    running: list[WorkerThread] = []

    def start(settings: WorkerSettings, **changes: object) -> WorkerThread:
        worker = WorkerThread(replace(settings, **changes))
        running.append(worker)
        return worker.wait_ready(timeout=90)

    yield start
    for worker in running:
        if worker.thread.is_alive():
            worker.stop()


def produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes | None, list | None]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
    for key, value, headers in messages:
        while True:
            try:
                producer.produce(topic, value, key, headers=headers)
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(60) == 0


def consume(
    bootstrap: str,
    topic: str,
    expected: int,
    timeout: float = 120.0,
    committed_only: bool = True,
    distinct: Callable[[Any], object] | None = None,
) -> list:
    """Read `topic` from the start until `expected` messages (or `expected` distinct `distinct(message)` values),
    then a short grace for extras, or until the timeout."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed" if committed_only else "read_uncommitted",
        }
    )
    # assign(), not subscribe(): no group join, which costs seconds (half a session timeout on Tansu).
    partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    out: list = []
    seen: set = set()
    deadline = time.monotonic() + timeout
    grace: float | None = None
    try:
        while time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.5):
                if message.error() is None:
                    out.append(message)
                    if distinct is not None:
                        seen.add(distinct(message))
            if (len(seen) if distinct is not None else len(out)) >= expected:
                grace = grace or time.monotonic() + 2.0
                if time.monotonic() > grace:
                    break
    finally:
        consumer.close()
    return out


@pytest.fixture
def send(kafka_bootstrap: str) -> Callable[..., None]:
    """`send(topic, [(key, value, headers), ...])` through a real producer; all acknowledged."""
    return lambda topic, messages: produce(kafka_bootstrap, topic, messages)


@pytest.fixture
def read(kafka_bootstrap: str) -> Callable[..., list]:
    """`read(topic, expected, timeout=120, committed_only=True)`: what a read_committed reader sees."""
    return lambda topic, expected, **kw: consume(kafka_bootstrap, topic, expected, **kw)


@pytest.fixture(scope="module")
def tansu_bootstrap() -> Iterator[str]:
    """A Tansu broker of the module's own, beside the session's broker."""
    from anomstream.brokers import Tansu

    with Tansu() as broker:
        yield broker.bootstrap_servers


@pytest.fixture
def kafka_io():
    """`produce(bootstrap, topic, messages)` and `consume(bootstrap, topic, expected, ...)` for any broker."""
    from types import SimpleNamespace

    return SimpleNamespace(produce=produce, consume=consume)
