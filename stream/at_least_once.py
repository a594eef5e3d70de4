"""At-least-once: an idempotent producer and no flush per batch.

Each batch counts its delivery reports; once every output of a batch (and of
every batch before it) is acknowledged, its offsets are stored, and the
consumer commits stored offsets in the background and on shutdown or revoke.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic

from confluent_kafka import KafkaError, TopicPartition

from anomstream.stream.delivery import ATTEMPTS, GIVE_UP_S, STOP_GRACE_S, DeliveryError, Record, T
from anomstream.stream.outbox import Outbox

log = logging.getLogger("anomstream.delivery")


@dataclass(eq=False)
class _InFlight(Generic[T]):
    offsets: list[TopicPartition]
    tally: T
    outstanding: int
    attempts: int = 1
    failed: list[tuple[Record, KafkaError]] = field(default_factory=list)

    def on_delivery(self, error: KafkaError | None, message: Any) -> None:
        # Runs inside producer.poll/flush, on the worker's thread.
        self.outstanding -= 1
        if error is not None:
            self.failed.append((Record(message.topic(), message.key(), message.value(), message.headers()), error))

    def on_letter(self, record: Record, error: KafkaError | None, _message: Any) -> None:
        """A dead letter's report: the kept record, which knows its cut copy."""
        self.outstanding -= 1
        if error is not None:
            self.failed.append((record, error))

    def reporter(self, record: Record) -> Any:
        return self.on_delivery if record.shrink is None else partial(self.on_letter, record)


class AtLeastOnce(Generic[T]):
    """Offsets are stored batch by batch, in order, once all of a batch's outputs are acknowledged."""

    def __init__(self, producer: Any, consumer: Any, stopping: threading.Event) -> None:
        self.producer = producer
        self.consumer = consumer
        self.stopping = stopping
        self._out = Outbox(producer, stopping)
        self._in_flight: deque[_InFlight[T]] = deque()

    def send(self, records: list[Record], offsets: list[TopicPartition], tally: T) -> None:
        batch = _InFlight(offsets, tally, outstanding=len(records))
        self._in_flight.append(batch)
        for record in records:
            self._out.produce(record, batch.reporter(record))
        self.producer.poll(0)  # serve the reports that are already in

    @property
    def backlogged(self) -> bool:
        return self._out.full

    def drain(self, timeout: float) -> None:
        self._out.drain(timeout)

    def due(self) -> bool:
        return bool(self._in_flight)

    def commit(self, wait: bool = False) -> list[T]:
        """Store the offsets of the acknowledged batches at the head of the line; `wait` for all of them."""
        done: list[T] = []
        while self._in_flight:
            if wait:
                self._flush()
            else:
                self.producer.poll(0)
            while self._in_flight and self._in_flight[0].outstanding == 0:
                head = self._in_flight[0]
                if head.failed:
                    self._resend(head)
                    break
                if head.offsets:
                    self.consumer.store_offsets(offsets=head.offsets)
                done.append(self._in_flight.popleft().tally)
            if not wait or not self._in_flight:
                return done
        return done

    def _flush(self) -> None:
        if not self._out.push(GIVE_UP_S, STOP_GRACE_S):
            raise DeliveryError(f"{len(self.producer)} outputs were not acknowledged in time; not committing.")
        started = time.monotonic()
        while self.producer.flush(1.0):
            waited = time.monotonic() - started
            if waited > GIVE_UP_S or (self.stopping.is_set() and waited > STOP_GRACE_S):
                raise DeliveryError(f"{len(self.producer)} outputs were not acknowledged within {waited:.0f} s; not committing.")

    def _resend(self, batch: _InFlight[T]) -> None:
        failed, batch.failed = batch.failed, []
        if batch.attempts >= ATTEMPTS:
            raise DeliveryError(f"{len(failed)} outputs could not be delivered after {ATTEMPTS} attempts: {failed[0][1].str()}; not committing.")
        batch.attempts += 1
        batch.outstanding = len(failed)
        log.warning("%d deliveries failed (attempt %d of %d): %s", len(failed), batch.attempts, ATTEMPTS, failed[0][1].str())
        for record, error in failed:
            if record.shrink is not None and error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
                record = record.shrink()  # the broker refused the whole copy: send the cut one
            self._out.produce(record, batch.reporter(record))

    def drop(self) -> None:
        """Partitions were lost: their new owner redoes these windows; storing their offsets now would be stale."""
        self._in_flight.clear()
        self._out.clear()

    def abort_open(self) -> None:
        pass
