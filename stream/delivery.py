"""Getting outputs out and input offsets committed, in one of two modes.

Both modes split the work in two, so that the worker can keep scoring while
Kafka confirms: `send` hands a batch's outputs to the producer, `commit` makes
everything sent so far durable and says which batches it covered.

Exactly-once: one Kafka transaction spans the batches of one commit interval
(as in Kafka Streams, whose default is 100 ms); it carries their outputs, dead
letters and input offsets (`send_offsets_to_transaction`). Readers of the
outputs use `read_committed`. Errors are handled as librdkafka documents it:
retriable -> retry the call, abortable -> abort and redo the whole transaction
from the records kept for it, fatal -> raise (the worker exits and its
successor resumes from the last commit).

At-least-once: an idempotent producer and no flush per batch. Each batch
counts its delivery reports; once every output of a batch (and of every batch
before it) is acknowledged, its offsets are stored, and the consumer commits
stored offsets in the background and on shutdown or revoke.

Backpressure: when Kafka stops acknowledging outputs, librdkafka's bounded
queue fills and `produce` blocks here, so the worker stops consuming; the
consumer's prefetch is bounded too, so memory stays flat however long the
outage lasts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic, TypeVar

import msgspec
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from anomstream.errors import AnomstreamError

log = logging.getLogger("anomstream.delivery")

T = TypeVar("T")

CALL_TIMEOUT_S = 10.0  # one transactional call; short so that the retry loop can check the stop flag
GIVE_UP_S = 60.0  # retriable errors for this long in a row: stop; the successor resumes from the last commit
# After a broker restart librdkafka can stay stuck on a timed-out transactional call (confluentinc/librdkafka#5456),
# answering a retry of the same call with "Simultaneous ... API calls not allowed" (_PREV_IN_PROGRESS) and any
# other with "Conflicting ... API call is already in progress" (_CONFLICT), as librdkafka 2.16 does while a call
# runs on another thread (tests/stream/test_stalls.py): after this long, the producer is replaced (ProducerWedged).
WEDGED_AFTER_S = 20.0
IN_PROGRESS = (KafkaError._PREV_IN_PROGRESS, KafkaError._CONFLICT)
ATTEMPTS = 5  # aborted transactions, or failed deliveries, per batch before the worker stops
STOP_GRACE_S = 10.0  # once stopping, how long to wait for Kafka to take the outputs still in hand
HANG_MARGIN_S = 20.0  # a transactional call still running this long past its own timeout is wedged


class DeliveryError(AnomstreamError):
    """Outputs could not be delivered; the worker stops without committing them."""


class ProducerWedged(DeliveryError):
    """librdkafka stopped returning from (or kept refusing to repeat) a transactional call.

    Seen after a broker restart (confluentinc/librdkafka#5456, #5511). A fresh producer with the
    same transactional id fences the stuck one and can redo the open transaction (`adopt`).
    """


class Record(msgspec.Struct, gc=False):
    """One output. Not tracked by the cyclic GC: an open transaction keeps thousands of them."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] | None = None
    shrink: Any = None  # a dead letter's cut copy, `shrink()`, to send instead if the broker refuses it as too large


class _Producing:
    """`produce` that waits, without losing the record, while librdkafka's queue is full."""

    def __init__(self, producer: Any, stopping: threading.Event) -> None:
        self.producer = producer
        self.stopping = stopping
        self.paused_since: float | None = None
        self._stop_seen: float | None = None

    def produce(self, record: Record, **kwargs: Any) -> None:
        while True:
            try:
                self.producer.produce(record.topic, record.value, record.key, headers=record.headers, **kwargs)
                break
            except BufferError:
                self._wait_for_room()
        if self.paused_since is not None:
            log.info("Kafka is taking outputs again after %.1f s: consuming again", time.monotonic() - self.paused_since)
            self.paused_since = None

    def _wait_for_room(self) -> None:
        now = time.monotonic()
        if self.paused_since is None:
            self.paused_since = now
            log.warning("%d outputs await acknowledgement (the queue is full): consumption paused", len(self.producer))
        stopping_for = self._stopping_for(now)
        if stopping_for is not None and stopping_for > STOP_GRACE_S:
            raise DeliveryError("stopping while Kafka still refuses outputs: the uncommitted windows will be rescored.")
        self.producer.poll(0.1)  # serves delivery reports, which free room

    def _stopping_for(self, now: float) -> float | None:
        if not self.stopping.is_set():
            return None
        if self._stop_seen is None:
            self._stop_seen = now
        return now - self._stop_seen


class ExactlyOnce(Generic[T]):
    """Transactions that span a commit interval; `commit` ends the open one."""

    def __init__(self, producer: Any, consumer: Any, commit_interval_s: float, stopping: threading.Event) -> None:
        self.producer = producer
        self.consumer = consumer
        self.commit_interval_s = commit_interval_s
        self.stopping = stopping
        self._out = _Producing(producer, stopping)
        self._opened: float | None = None
        self._records: list[Record] = []  # kept until the commit, to redo the transaction if it aborts
        self._offsets: dict[tuple[str, int], int] = {}
        self._tallies: list[T] = []
        self._doomed: KafkaError | None = None  # an abortable error seen while producing
        self._refused: set[int] = set()  # id() of kept dead letters the broker refused as too large: cut on redo
        self.wedged = False  # librdkafka stopped returning from transactional calls
        self._retrying("init_transactions", producer.init_transactions)

    def send(self, records: list[Record], offsets: list[TopicPartition], tally: T) -> None:
        # Kept before anything can fail, so that a fresh producer can redo them (`adopt`).
        self._records.extend(records)
        for p in offsets:
            self._offsets[(p.topic, p.partition)] = max(p.offset, self._offsets.get((p.topic, p.partition), -1))
        self._tallies.append(tally)
        if self._opened is None:
            self._retrying("begin_transaction", lambda _timeout: self.producer.begin_transaction())
            self._opened = time.monotonic()
        if self._doomed is None:
            try:
                for record in records:
                    self._produce(record)
            except KafkaException as exc:
                self._doomed = _abortable(exc)  # redone from self._records at commit
        self.producer.poll(0)  # serve delivery reports: until served they count against the queue

    def _produce(self, record: Record) -> None:
        if record.shrink is None:
            self._out.produce(record)
        else:
            self._out.produce(record, on_delivery=partial(self._on_letter, record))

    def _on_letter(self, record: Record, error: KafkaError | None, _message: Any) -> None:
        if error is not None and error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
            self._refused.add(id(record))  # the transaction aborts at commit; the redo sends the cut copy

    def due(self) -> bool:
        return self._opened is not None and time.monotonic() - self._opened >= self.commit_interval_s

    def commit(self, wait: bool = True) -> list[T]:
        """End the open transaction: the tallies of the batches it committed (none if nothing was open).

        Always waits (a transaction commit is synchronous); `wait` is there to match `AtLeastOnce`.
        """
        if self._opened is None:
            return []
        for attempt in range(1, ATTEMPTS + 1):
            try:
                if self._doomed is not None:
                    raise KafkaException(self._doomed)
                offsets = [TopicPartition(topic, partition, offset) for (topic, partition), offset in self._offsets.items()]
                metadata = self.consumer.consumer_group_metadata()
                self._retrying("send_offsets_to_transaction", lambda timeout: self.producer.send_offsets_to_transaction(offsets, metadata, timeout))
                self._retrying("commit_transaction", self.producer.commit_transaction)
                done, self._tallies = self._tallies, []
                self._records, self._offsets, self._opened = [], {}, None
                self._refused.clear()
                return done
            except KafkaException as exc:
                error = _abortable(exc)
                log.warning("transaction aborted (attempt %d of %d): %s", attempt, ATTEMPTS, error.str())
                self._redo()
        raise DeliveryError(f"the open transaction could not be committed in {ATTEMPTS} attempts; stopping.")

    def _redo(self) -> None:
        self._retrying("abort_transaction", self.producer.abort_transaction)
        self._replay()

    def adopt(self, stuck: ExactlyOnce[T]) -> None:
        """Take over a wedged producer's open transaction: begin a new one with the same outputs and offsets."""
        self._records, self._offsets, self._tallies, self._refused = stuck._records, stuck._offsets, stuck._tallies, stuck._refused
        stuck._records, stuck._offsets, stuck._tallies, stuck._refused = [], {}, [], set()
        if self._records or self._offsets:
            self._replay()

    def _replay(self) -> None:
        """Begin a transaction and produce every record kept for the open one again."""
        self._doomed = None
        if self._refused:
            self._records = [record.shrink() if id(record) in self._refused else record for record in self._records]
            self._refused.clear()
        self._retrying("begin_transaction", lambda _timeout: self.producer.begin_transaction())
        self._opened = time.monotonic()
        try:
            for record in self._records:
                self._produce(record)
        except KafkaException as exc:
            self._doomed = _abortable(exc)

    def drop(self) -> None:
        """Partitions were lost: their new owner redoes these windows, so abort rather than commit.

        The abort is retried and watched like every transactional call: one that timed out and was let go
        left the transaction aborting, and the next `begin_transaction` failed for good. A wedge raises
        ProducerWedged, with nothing left to redo."""
        opened = self._opened is not None
        self._records, self._offsets, self._tallies, self._opened, self._doomed = [], {}, [], None, None
        self._refused.clear()
        if opened:
            self._retrying("abort_transaction", self.producer.abort_transaction)

    def _retrying(self, what: str, call: Any) -> None:
        """Retry a retriable error (a timeout, a coordinator moving) until it works, the worker stops, or GIVE_UP_S."""
        started = time.monotonic()
        delay = 0.1
        while True:
            try:
                self._watched(what, call)
                return
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if not error.retriable():
                    if error.txn_requires_abort():
                        raise  # the caller aborts and redoes the transaction
                    raise DeliveryError(f"{what} failed and cannot be retried: {error.str()} ({error.name()}).") from None
                waited = time.monotonic() - started
                if error.code() in IN_PROGRESS and waited > WEDGED_AFTER_S:
                    self.wedged = True
                    raise ProducerWedged(f"librdkafka keeps refusing to repeat {what} ({error.str()}).") from None
                if self.stopping.is_set() or waited > GIVE_UP_S:
                    raise DeliveryError(
                        f"{what} kept failing for {waited:.0f} s ({error.str()}); stopping without committing."
                    ) from None
                log.warning("%s failed, retrying in %.1f s: %s", what, delay, error.str())
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _watched(self, what: str, call: Any) -> None:
        """`call(CALL_TIMEOUT_S)` on a watchdog thread.

        librdkafka can block in a transactional call far past its timeout when a coordinator
        vanished from metadata during a broker restart (confluentinc/librdkafka#5456, #5511;
        seen here in send_offsets_to_transaction after an Apache Kafka restart). Nothing can
        unblock the call, so `ProducerWedged` tells the worker to replace the producer.
        """
        outcome: list[BaseException | None] = []

        def run() -> None:
            try:
                call(CALL_TIMEOUT_S)
                outcome.append(None)
            except BaseException as exc:  # handed to the caller's thread below
                outcome.append(exc)

        thread = threading.Thread(target=run, name=f"txn-{what}", daemon=True)
        thread.start()
        thread.join(CALL_TIMEOUT_S + HANG_MARGIN_S)
        if not outcome:
            self.wedged = True
            raise ProducerWedged(f"librdkafka has not returned from {what} in {CALL_TIMEOUT_S + HANG_MARGIN_S:.0f} s.")
        if outcome[0] is not None:
            raise outcome[0]

    def abort_open(self) -> None:
        """Shutdown after a failure: leave nothing half-open (readers would stall until the timeout)."""
        if self.wedged:
            return  # another transactional call would block behind the wedged one
        try:
            self.producer.abort_transaction(5.0)
        except KafkaException:
            pass  # no transaction open, or the producer is already fatal: both fine on the way out


def _abortable(exc: KafkaException) -> KafkaError:
    error: KafkaError = exc.args[0]
    if not error.txn_requires_abort():
        raise DeliveryError(f"the transaction failed and cannot be retried: {error.str()}.") from None
    return error


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
        self._out = _Producing(producer, stopping)
        self._in_flight: deque[_InFlight[T]] = deque()

    def send(self, records: list[Record], offsets: list[TopicPartition], tally: T) -> None:
        batch = _InFlight(offsets, tally, outstanding=len(records))
        self._in_flight.append(batch)
        for record in records:
            self._out.produce(record, on_delivery=batch.reporter(record))
        self.producer.poll(0)  # serve the reports that are already in

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
            self._out.produce(record, on_delivery=batch.reporter(record))

    def drop(self) -> None:
        """Partitions were lost: their new owner redoes these windows; storing their offsets now would be stale."""
        self._in_flight.clear()

    def abort_open(self) -> None:
        pass
