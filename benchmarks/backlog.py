"""Input backlogs, topics and committed offsets: the Kafka side of the benchmark.

A backlog is ECG5000 windows tiled to N messages. Each distinct row is encoded
once (its `values` JSON or its float32 body); a message then only splices in a
new id, source and ts, so producing is bound by the client and the broker, not
by encoding. The bytes are exactly what `replay` (and `codec.encode_window`)
would send for the same window.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from anomstream.stream import clients, codec

log = logging.getLogger("anomstream.bench")

# The producer settings of `replay` (idempotent, lz4), with more room to batch: the backlog is produced up front.
BACKLOG_PRODUCER = {
    "enable.idempotence": True,
    "compression.type": "lz4",
    "linger.ms": 50,
    "batch.size": 1_000_000,
    "queue.buffering.max.messages": 500_000,
}


class Templates:
    """Per-row encodings of a data set's windows, for either input format."""

    def __init__(self, windows: np.ndarray, labels: np.ndarray) -> None:
        self.rows = len(windows)
        # The JSON contract: a flat list for one channel, a list per channel otherwise (stream/codec.py).
        self.values_json = [msgspec.json.encode((row[0] if row.ndim == 2 and len(row) == 1 else row).tolist()) for row in windows]
        self.values_f32 = [np.asarray(row, dtype="<f4").tobytes() for row in windows]
        self.labels = [str(int(label)).encode() for label in labels]

    def message(self, fmt: str, index: int, prefix: bytes, ts: float) -> tuple[bytes, bytes, list[tuple[str, bytes]] | None]:
        """(key, value, headers) of window `index` (row index % rows), as replay encodes it."""
        row = index % self.rows
        window_id = prefix + str(index).encode()
        source = b"bench-s%d" % (row % 16)
        stamp = repr(ts).encode()
        if fmt == "f32":
            headers = [("content-type", codec.F32), ("id", window_id), ("source", source), ("ts", stamp), ("label", self.labels[row])]
            return source, self.values_f32[row], headers
        value = b"".join(
            (b'{"id":"', window_id, b'","values":', self.values_json[row], b',"source":"', source, b'","ts":', stamp,
             b',"label":', self.labels[row], b"}")
        )  # fmt: skip
        return source, value, None


@dataclass
class Produced:
    windows: int
    seconds: float
    bytes: int

    def summary(self) -> dict[str, Any]:
        return {
            "windows": self.windows,
            "seconds": round(self.seconds, 3),
            "windows_per_s": round(self.windows / self.seconds, 1) if self.seconds > 0 else None,
            "mean_message_bytes": round(self.bytes / self.windows, 1) if self.windows else 0,
        }


def produce_backlog(
    config: dict[str, Any],
    topic: str,
    templates: Templates,
    fmt: str,
    count: int,
    partitions: int = 1,
    prefix: str = "bench-",
    advance: Callable[..., None] | None = None,
    transactional: bool = False,
) -> tuple[Produced, Producer | None]:
    """Produce `count` windows round-robin over `partitions`, as fast as the broker takes them.

    With `transactional`, everything goes into one open transaction and the producer is
    returned still open: read_committed consumers (the worker) see nothing until the caller
    commits it, so a backlog can be released to already-running workers in one instant.
    """
    settings = {**BACKLOG_PRODUCER, **config}
    if transactional:
        settings.update({"transactional.id": f"bench-backlog-{uuid.uuid4().hex[:8]}", "transaction.timeout.ms": 600_000})
    failed: list[str] = []

    def on_delivery(error: KafkaError | None, _message: Any) -> None:
        if error is not None:
            failed.append(error.str())

    producer = clients.create(Producer, settings)
    if transactional:
        producer.init_transactions(30)
        producer.begin_transaction()
    key_prefix = prefix.encode()
    total_bytes = 0
    started = time.monotonic()
    step = max(1, count // 100)
    ts = time.time()
    for index in range(count):
        if index % 1000 == 0:
            ts = time.time()
        key, value, headers = templates.message(fmt, index, key_prefix, ts)
        total_bytes += len(value)
        while True:
            try:
                producer.produce(topic, value, key, partition=index % partitions, headers=headers, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        if index % step == step - 1:
            producer.poll(0)
            if advance:
                advance(step)
    while producer.flush(1.0):
        pass
    if advance and count % step:
        advance(count % step)
    seconds = time.monotonic() - started
    if failed:
        raise RuntimeError(f"{len(failed)} backlog messages were not acknowledged (first: {failed[0]})")
    log.info("produced %d %s windows to %s in %.1f s (%.0f/s)", count, fmt, topic, seconds, count / max(seconds, 1e-9))
    return Produced(count, seconds, total_bytes), (producer if transactional else None)


class Topics:
    """Creates uniquely named topics and deletes them at the end (best effort)."""

    def __init__(self, config: dict[str, Any], run: str) -> None:
        self.admin = clients.create(AdminClient, config)
        self.run = run
        self.created: list[str] = []

    def create(self, stem: str, partitions: int = 1) -> str:
        name = f"bench-{self.run}-{stem}-{uuid.uuid4().hex[:6]}"
        futures = self.admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)], operation_timeout=30)
        futures[name].result(timeout=60)
        self.created.append(name)
        deadline = time.monotonic() + 30
        while True:  # wait for leaders, or the first produce may fail on a fresh topic
            meta = self.admin.list_topics(topic=name, timeout=5).topics.get(name)
            if meta and meta.error is None and len(meta.partitions) == partitions and all(p.leader >= 0 for p in meta.partitions.values()):
                return name
            if time.monotonic() > deadline:
                raise RuntimeError(f"topic {name} has no leader after 30 s")
            time.sleep(0.1)

    def outputs(self, stem: str) -> dict[str, str]:
        return {kind: self.create(f"{stem}-{kind}") for kind in ("scores", "anomalies", "dlq")}

    def delete(self, names: list[str]) -> None:
        names = [n for n in names if n in self.created]
        if not names:
            return
        try:
            for future in self.admin.delete_topics(names, operation_timeout=30).values():
                future.result(timeout=60)
        except Exception as exc:  # cleanup only; some brokers cannot delete
            log.debug("deleting %s failed: %s", names, exc)
        self.created = [n for n in self.created if n not in names]

    def delete_all(self) -> None:
        self.delete(list(self.created))


def end_offsets(config: dict[str, Any], topic: str) -> list[TopicPartition]:
    """The high watermark of every partition (for a transactional backlog: once committed)."""
    consumer = clients.create(Consumer, {**config, "group.id": f"bench-probe-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False})
    try:
        meta = consumer.list_topics(topic, timeout=30).topics[topic]
        ends = []
        for partition in sorted(meta.partitions):
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30, cached=False)
            ends.append(TopicPartition(topic, partition, high))
        return ends
    finally:
        consumer.close()


class CommittedOffsets:
    """Reads a consumer group's committed offsets without joining the group."""

    def __init__(self, config: dict[str, Any], group_id: str, partitions: list[TopicPartition]) -> None:
        # read_uncommitted: do not wait for pending transactional offset commits (require_stable); we want
        # the offsets the group coordinator holds as committed right now.
        self.consumer = clients.create(
            Consumer, {**config, "group.id": group_id, "enable.auto.commit": False, "isolation.level": "read_uncommitted"}
        )
        self.partitions = [TopicPartition(p.topic, p.partition) for p in partitions]

    def total(self, starts: dict[int, int] | None = None) -> int:
        """Messages committed so far, summed over the partitions (from offset 0 or `starts`)."""
        try:
            got = self.consumer.committed(self.partitions, timeout=10)
        except KafkaException:
            return -1
        starts = starts or {}
        return sum(max(0, p.offset - starts.get(p.partition, 0)) for p in got if p.offset >= 0)

    def close(self) -> None:
        self.consumer.close()


def wait_committed(
    offsets: CommittedOffsets,
    target: int,
    timeout_s: float,
    interval_s: float = 0.02,
    advance: Callable[..., None] | None = None,
    on_sample: Callable[[float, int], None] | None = None,
    alive: Callable[[], bool] | None = None,
) -> float:
    """Poll until `target` messages are committed; returns the monotonic time it was first seen."""
    deadline = time.monotonic() + timeout_s
    seen = 0
    while True:
        total = offsets.total()
        now = time.monotonic()
        if total > seen:
            if advance:
                advance(total - seen)
            seen = total
        if on_sample and total >= 0:
            on_sample(now, total)
        if total >= target:
            return now
        if alive is not None and not alive():
            raise RuntimeError(f"the worker stopped with {seen} of {target} windows committed")
        if now > deadline:
            raise TimeoutError(f"only {seen} of {target} windows were committed within {timeout_s:.0f} s")
        time.sleep(interval_s)


def read_topic(config: dict[str, Any], topic: str, timeout_s: float = 0.5) -> Iterator[Any]:
    """Every message of `topic` as a read_committed reader sees it, until `timeout_s` of silence."""
    consumer = clients.create(Consumer, {**config, "group.id": f"bench-reader-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False,
                         "isolation.level": "read_committed", "auto.offset.reset": "earliest"})  # fmt: skip
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        while True:
            batch = consumer.consume(1000, timeout=timeout_s)
            if not batch:
                return
            yield from (m for m in batch if m.error() is None)
    finally:
        consumer.close()
