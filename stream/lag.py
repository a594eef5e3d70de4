"""`anomstream_consumer_lag{partition}`: how far the worker's commits are behind its input.

Lag is the end of the partition a read_committed reader can reach (librdkafka's
`ls_offset`, the last stable offset) minus the offset the worker last committed
there. librdkafka's own figures do not say that here: in exactly-once mode the
producer's transaction commits the offsets, which the consumer never sees, and
its stored offset follows the consume position (lag read about 0 while every
transaction aborted). So the worker tells `Lag` what it committed, and what it
owns: a partition that moved to another worker loses its series here at once
(librdkafka keeps reporting it for a while, and `sum()` counted it twice).

Everything runs on the worker's thread: the statistics callback and the
rebalance callbacks run inside the consumer's poll.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import TopicPartition

from anomstream.stream.metrics import CONSUMER_LAG


class Lag:
    def __init__(self, topic: str) -> None:
        self.topic = topic
        self._committed: dict[int, int] = {}  # partition -> the next offset to read, as last committed
        self._owned: set[int] = set()

    def assigned(self, partitions: Iterable[TopicPartition]) -> None:
        self._owned |= {p.partition for p in partitions if p.topic == self.topic}

    def started(self, messages: list[Any]) -> None:
        """The first window read from a partition since it was assigned sits at the group's committed offset
        (or the earliest one): the base until this worker commits there itself."""
        if len(self._committed) >= len(self._owned):
            return
        for message in messages:
            partition = message.partition()
            if partition in self._owned and partition not in self._committed:
                self._committed[partition] = message.offset()

    def released(self, partitions: Iterable[TopicPartition]) -> None:
        """Revoked or lost: another worker reports these now; a stale series here would double-count."""
        for p in partitions:
            if p.topic != self.topic:
                continue
            self._owned.discard(p.partition)
            self._committed.pop(p.partition, None)
            try:
                CONSUMER_LAG.remove(str(p.partition))
            except KeyError:
                pass  # never reported yet

    def committed(self, offsets: Iterable[TopicPartition]) -> None:
        for p in offsets:
            if p.topic == self.topic and p.partition in self._owned:
                self._committed[p.partition] = max(p.offset, self._committed.get(p.partition, -1))

    def on_statistics(self, partitions: Mapping[str, Mapping[str, int]]) -> None:
        """librdkafka's per-partition statistics of the input topic (every `statistics.interval.ms`)."""
        for partition in self._owned:
            numbers = partitions.get(str(partition))
            if not numbers:
                continue
            end = numbers.get("ls_offset", -1)
            if end < 0:
                end = numbers.get("hi_offset", -1)
            # Nothing read since the assignment: librdkafka's committed offset, if it knows one.
            done = self._committed.get(partition, numbers.get("committed_offset", -1))
            if end >= 0 and done >= 0:
                CONSUMER_LAG.labels(str(partition)).set(max(0, end - done))
