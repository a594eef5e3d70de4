"""Outputs waiting for room in librdkafka's producer queue.

When Kafka takes outputs slower than the worker makes them (a quota, a slow
or unreachable broker), librdkafka's bounded queue fills and `produce` raises
BufferError. Blocking there would stop the poll loop: the consumer would not
poll, and after `max.poll.interval.ms` the group would evict the worker. So
the outbox keeps what did not fit, in order, and says so (`full`); the worker
then pauses its partitions and keeps polling while `drain` hands the kept
outputs over as room frees. Memory stays bounded: only outputs already made
wait here, and no new batch is taken while any do.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from anomstream.stream.delivery import Record

log = logging.getLogger("anomstream.delivery")

Report = Callable[[Any, Any], None] | None  # librdkafka's on_delivery(error, message), or the producer's default


class Outbox:
    def __init__(self, producer: Any, stopping: threading.Event) -> None:
        self.producer = producer
        self.stopping = stopping
        self._waiting: deque[tuple[Record, Report]] = deque()
        self.full_since: float | None = None  # when the queue last filled; None while outputs flow

    @property
    def full(self) -> bool:
        """Outputs wait for room: take no new batch until `drain` says they are all handed over."""
        return bool(self._waiting)

    def produce(self, record: Record, on_delivery: Report = None) -> None:
        """Hand `record` to librdkafka, or keep it, behind any already kept, while the queue is full."""
        if not self._waiting and self._hand_over(record, on_delivery):
            return
        self._waiting.append((record, on_delivery))
        if self.full_since is None:
            self.full_since = time.monotonic()
            log.warning("%d outputs await acknowledgement (the queue is full): consumption paused", len(self.producer))

    def drain(self, timeout: float) -> bool:
        """Serve delivery reports (they free room) for up to `timeout`, hand over what fits; True once none wait."""
        self.producer.poll(timeout if len(self.producer) else 0)  # nothing in flight: nothing to wait for
        while self._waiting and self._hand_over(*self._waiting[0]):
            self._waiting.popleft()
        if self._waiting:
            return False
        if self.full_since is not None:
            log.info("Kafka is taking outputs again after %.1f s: consuming again", time.monotonic() - self.full_since)
            self.full_since = None
        return True

    def push(self, give_up_s: float, stop_grace_s: float) -> bool:
        """Wait until every kept output is handed over (a commit needs them all); False past the time allowed."""
        started = time.monotonic()
        stop_seen: float | None = None
        while not self.drain(0.1):
            now = time.monotonic()
            if self.stopping.is_set() and stop_seen is None:
                stop_seen = now
            if now - started > give_up_s or (stop_seen is not None and now - stop_seen > stop_grace_s):
                return False
        return True

    def clear(self) -> None:
        """The transaction these outputs belonged to is aborted (its redo produces them again) or dropped."""
        self._waiting.clear()
        self.full_since = None

    def _hand_over(self, record: Record, on_delivery: Report) -> bool:
        kwargs = {} if on_delivery is None else {"on_delivery": on_delivery}
        try:
            self.producer.produce(record.topic, record.value, record.key, headers=record.headers, **kwargs)
        except BufferError:
            return False
        return True
