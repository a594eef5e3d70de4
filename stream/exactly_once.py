"""Exactly-once: one Kafka transaction spans the batches of one commit interval.

As in Kafka Streams (whose default interval is 100 ms), the transaction carries
the batches' outputs, dead letters and input offsets
(`send_offsets_to_transaction`); readers of the outputs use `read_committed`.
Errors are handled as librdkafka documents it: retriable -> retry the call,
abortable -> abort and redo the whole transaction from the records kept for
it, fatal -> raise (the worker exits and its successor resumes from the last
commit).

Two fatal cases are cured instead: a producer librdkafka wedged
(`ProducerWedged`) and one the broker fenced because its transaction outlived
`transaction.timeout.ms` while Kafka was slow (`TransactionExpired`): a fresh
producer with the same transactional id takes the open transaction over
(`adopt`). A transaction waits, in the worker's loop, for its outputs to be
acknowledged before it commits, and takes no batch meanwhile; a group that
evicted the worker gets no commit (`MembershipLost`).
"""

from __future__ import annotations

import logging
import threading
import time
from functools import partial
from typing import Any, Generic, NoReturn

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from anomstream.stream.delivery import ATTEMPTS, GIVE_UP_S, STOP_GRACE_S, DeliveryError, Record, T
from anomstream.stream.outbox import Outbox

log = logging.getLogger("anomstream.delivery")

CALL_TIMEOUT_S = 10.0  # one transactional call; short so that the retry loop can check the stop flag
# After a broker restart librdkafka can stay stuck on a timed-out transactional call (confluentinc/librdkafka#5456),
# answering a retry of the same call with "Simultaneous ... API calls not allowed" (_PREV_IN_PROGRESS) and any
# other with "Conflicting ... API call is already in progress" (_CONFLICT), as librdkafka 2.16 does while a call
# runs on another thread (tests/stream/test_stalls.py): after this long, the producer is replaced (ProducerWedged).
WEDGED_AFTER_S = 20.0
IN_PROGRESS = (KafkaError._PREV_IN_PROGRESS, KafkaError._CONFLICT)
# An open transaction keeps its records for a redo (dead letters among them, up to 8 MiB each): past this many
# bytes it commits before taking more, so a burst of large dead letters cannot hold unbounded memory.
KEPT_BYTES_LIMIT = 64 * 1024 * 1024
HANG_MARGIN_S = 20.0  # a transactional call still running this long past its own timeout is wedged


class ProducerWedged(DeliveryError):
    """librdkafka stopped returning from (or kept refusing to repeat) a transactional call.

    Seen after a broker restart (confluentinc/librdkafka#5456, #5511). A fresh producer with the
    same transactional id fences the stuck one and can redo the open transaction (`adopt`).
    """


class TransactionExpired(ProducerWedged):
    """The broker aborted a transaction open past `transaction.timeout.ms` and fenced its producer.

    Kafka took its outputs too slowly (a quota, a slow broker). Nobody else holds the transactional id,
    so a fresh producer can redo the transaction, as for a wedge."""


class ProducerFailed(ProducerWedged):
    """librdkafka raised a fatal error on the producer (not a fence by another producer): a fresh producer
    with the same transactional id can redo the open transaction. One whose own start fails the same way
    stops the worker with that error."""


class MembershipLost(DeliveryError):
    """The group evicted this worker (its generation is stale): its offsets cannot be committed, so its
    open transaction was aborted; the consumer rejoins at the next poll and resumes from the last commit."""


FENCED = (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH, KafkaError._FATAL)
NOT_A_MEMBER = (KafkaError.UNKNOWN_MEMBER_ID, KafkaError.ILLEGAL_GENERATION, KafkaError.FENCED_INSTANCE_ID)
# Aborts that are not the outputs' fault: a slow Kafka is waited for, however many it takes. (_STATE: a produce
# refused because the transaction had failed already, for a reason its abort or redo meets.)
UNCOUNTED = (KafkaError._TIMED_OUT, KafkaError._MSG_TIMED_OUT, KafkaError.REQUEST_TIMED_OUT, KafkaError._STATE)


class ExactlyOnce(Generic[T]):
    """Transactions that span a commit interval; `commit` ends the open one."""

    def __init__(
        self,
        producer: Any,
        consumer: Any,
        commit_interval_s: float,
        stopping: threading.Event,
        transaction_timeout_s: float,
        kept_bytes_limit: int = KEPT_BYTES_LIMIT,
    ) -> None:
        self.producer = producer
        self.consumer = consumer
        self.commit_interval_s = commit_interval_s
        self.transaction_timeout_s = transaction_timeout_s
        self.stopping = stopping
        self._out = Outbox(producer, stopping)
        self._opened: float | None = None
        self._records: list[Record] = []  # kept until the commit, to redo the transaction if it aborts
        self._offsets: dict[tuple[str, int], int] = {}
        self._tallies: list[T] = []
        self._doomed: KafkaError | None = None  # an abortable error seen while producing
        self._refused: set[int] = set()  # id() of kept dead letters the broker refused as too large: cut on redo
        self._attempts = 0  # aborts of the open transaction that count towards ATTEMPTS
        self._redone = False  # the open transaction redoes an aborted one: no batch joins it, it commits at once
        self.kept_bytes_limit = kept_bytes_limit
        self._kept_bytes = 0  # of the records kept for a redo: past kept_bytes_limit the transaction commits early
        self._settled: list[T] = []  # tallies of a transaction a predecessor committed (`adopt`): the next commit returns them
        self.wedged = False  # librdkafka stopped returning from transactional calls
        self._retrying("init_transactions", producer.init_transactions)

    def send(self, records: list[Record], offsets: list[TopicPartition], tally: T) -> None:
        # Kept before anything can fail, so that a fresh producer can redo them (`adopt`).
        self._records.extend(records)
        self._kept_bytes += sum(len(r.value or b"") + len(r.key or b"") for r in records)
        for p in offsets:
            self._offsets[(p.topic, p.partition)] = max(p.offset, self._offsets.get((p.topic, p.partition), -1))
        self._tallies.append(tally)
        if self._opened is None:
            self._retrying("begin_transaction", lambda _timeout: self.producer.begin_transaction())
            self._opened = time.monotonic()
        self._produce(records)

    def _produce(self, records: list[Record]) -> None:
        """Into the open transaction, unless it is doomed already (its redo produces them all again)."""
        try:
            if self._doomed is None:
                for record in records:
                    self._out.produce(record, None if record.shrink is None else partial(self._on_letter, record))
            self.producer.poll(0)  # serve delivery reports: until served they count against the queue
        except KafkaException as exc:  # abortable, or fatal (fenced): the commit tells which
            self._doom(exc)

    def _doom(self, exc: KafkaException) -> None:
        self._doomed = exc.args[0]
        self._out.clear()  # nothing more goes into a doomed transaction

    @property
    def backlogged(self) -> bool:
        """Take no batch: outputs wait for room, or the open transaction is to be committed (its interval is up,
        or it is a redo) and waits for its outputs' acknowledgements, in the loop, which keeps polling, rather
        than blocked inside commit_transaction. A transaction that grew while Kafka was slow would be aborted."""
        return self._opened is not None and (self._out.full or self._closing())

    def drain(self, timeout: float) -> None:
        """While backlogged: serve delivery reports and hand kept outputs over as room frees."""
        try:
            self._out.drain(timeout)
        except KafkaException as exc:  # fenced: the commit, now due, tells why
            self._doom(exc)

    def _closing(self) -> bool:
        if self._doomed is not None or self._redone or self._kept_bytes >= self.kept_bytes_limit:
            return True
        return time.monotonic() - self._opened >= self.commit_interval_s

    def _on_letter(self, record: Record, error: KafkaError | None, _message: Any) -> None:
        if error is not None and error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
            self._refused.add(id(record))  # the transaction aborts at commit; the redo sends the cut copy

    def due(self) -> bool:
        if self._settled:
            return True
        if self._opened is None or not self._closing():
            return False
        return self._doomed is not None or (not self._out.full and len(self.producer) == 0)

    def commit(self, wait: bool = True) -> list[T]:
        """End the open transaction: the tallies of the batches it committed (none if nothing was open).

        An aborted transaction is redone; `wait` (a stop, a revoke) commits the redo at once, else the loop
        does when it is due, waiting for room meanwhile. Aborts for a timeout do not count as attempts: a slow
        Kafka is waited for; the same outputs refused ATTEMPTS times stop the worker. A group that no longer
        counts this worker a member (it stopped polling too long) gets no commit: the transaction is dropped
        (`MembershipLost`), and its windows go to the partitions' next owner.
        """
        settled, self._settled = self._settled, []
        while self._opened is not None:
            try:
                self._push()
                if self._doomed is not None:
                    raise KafkaException(self._doomed)
                offsets = [TopicPartition(topic, partition, offset) for (topic, partition), offset in self._offsets.items()]
                metadata = self.consumer.consumer_group_metadata()
                self._retrying("send_offsets_to_transaction", lambda timeout: self.producer.send_offsets_to_transaction(offsets, metadata, timeout))
                self._retrying("commit_transaction", self.producer.commit_transaction)
                done, self._tallies = self._tallies, []
                self._records, self._offsets, self._opened, self._kept_bytes = [], {}, None, 0
                self._refused.clear()
                self._attempts, self._redone = 0, False
                return settled + done
            except KafkaException as exc:
                error = self._abortable(exc)
                if error.code() in NOT_A_MEMBER:
                    self.drop()
                    raise MembershipLost(f"the group no longer counts this worker a member ({error.str()}): transaction aborted.") from None
                counted = error.code() not in UNCOUNTED
                self._attempts += counted
                if self._attempts >= ATTEMPTS:
                    raise DeliveryError(f"the open transaction could not be committed in {ATTEMPTS} attempts; stopping.") from None
                log.warning("transaction aborted (%s): %s", f"attempt {self._attempts} of {ATTEMPTS}" if counted else "a timeout: redone", error.str())
                self._redo()
                if not wait:
                    return settled
        return settled

    def _push(self) -> None:
        """Every output of the transaction into librdkafka's queue before it ends (a revoke or a stop commits now)."""
        if self._doomed is not None or not self.backlogged:
            return
        try:
            pushed = self._out.push(GIVE_UP_S, STOP_GRACE_S)
        except KafkaException as exc:
            self._doom(exc)
            return
        if not pushed:
            raise DeliveryError("Kafka took no outputs in time to commit them; stopping without committing (the windows will be rescored).")

    def _abortable(self, exc: KafkaException) -> KafkaError:
        """The error, if aborting and redoing the transaction can cure it; else why the worker must stop (or replace the producer)."""
        error: KafkaError = exc.args[0]
        if error.txn_requires_abort() or error.code() == KafkaError._STATE:
            return error  # _STATE: produce refused, as the transaction had failed already; the abort says why
        self._fatal("the transaction", error)

    def _fatal(self, what: str, error: KafkaError) -> NoReturn:
        age = 0.0 if self._opened is None else time.monotonic() - self._opened
        fenced = error.code() in FENCED
        if fenced and age >= self.transaction_timeout_s:
            self.wedged = True  # fatal: no call on this producer works any more
            raise TransactionExpired(
                f"the broker aborted a transaction open for {age:.0f} s, past transaction.timeout.ms "
                f"({self.transaction_timeout_s:.0f} s), because Kafka took its outputs too slowly ({error.str()})."
            )
        if fenced and error.code() != KafkaError._FATAL:
            raise DeliveryError(
                f"{what} failed: another producer took over this transactional id ({error.str()}); "
                "give every replica its own --instance-id."
            )
        if self._opened is not None and (error.fatal() or error.code() == KafkaError._FATAL):
            # E.g. the idempotent sequence desynchronised after outputs timed out under a quota
            # (OUT_OF_ORDER_SEQUENCE_NUMBER, seen in CI): this producer is done, the open transaction can be redone.
            # A fresh producer whose own start fails (nothing open yet) stops the worker with the error below.
            self.wedged = True
            raise ProducerFailed(f"librdkafka declared the producer failed ({error.str()}).")
        raise DeliveryError(f"{what} failed and cannot be retried: {error.str()} ({error.name()}).")

    def _redo(self) -> None:
        self._retrying("abort_transaction", self.producer.abort_transaction)
        self._replay()

    def adopt(self, stuck: ExactlyOnce[T]) -> None:
        """Take over a wedged producer's open transaction: begin a new one with the same outputs and offsets.

        Unless the stuck producer wedged inside commit_transaction after the coordinator had its EndTxn: this
        producer's init_transactions then completed that commit, and redoing it would commit every output twice.
        The group's committed offsets tell (they move with the commit, atomically): its batches count as committed."""
        self._records, self._offsets, self._tallies, self._refused = stuck._records, stuck._offsets, stuck._tallies, stuck._refused
        self._attempts, self._kept_bytes = stuck._attempts, stuck._kept_bytes
        stuck._records, stuck._offsets, stuck._tallies, stuck._refused = [], {}, [], set()
        if self._offsets and self._committed_already():
            log.warning("the stuck producer's transaction was committed after all (%d outputs): not redoing it", len(self._records))
            self._settled, self._tallies = self._tallies, []
            self._records, self._offsets, self._refused, self._kept_bytes = [], {}, set(), 0
        elif self._records or self._offsets:
            self._replay()

    def _committed_already(self) -> bool:
        wanted = [TopicPartition(topic, partition) for topic, partition in self._offsets]
        found: list[TopicPartition] = []
        # A read_committed consumer asks for stable offsets: a commit still completing is waited for, not missed.
        self._retrying("committed offsets", lambda timeout: found.extend(self.consumer.committed(wanted, timeout=timeout)))
        return all(p.offset >= self._offsets[(p.topic, p.partition)] for p in found)

    def _replay(self) -> None:
        """Begin a transaction and produce every record kept for the open one again."""
        self._doomed = None
        self._out.clear()  # the aborted transaction's: produced again below
        if self._refused:
            self._records = [record.shrink() if id(record) in self._refused else record for record in self._records]
            self._refused.clear()
        self._retrying("begin_transaction", lambda _timeout: self.producer.begin_transaction())
        self._opened = time.monotonic()
        self._redone = True
        self._produce(self._records)

    def drop(self) -> None:
        """Partitions were lost: their new owner redoes these windows, so abort rather than commit.

        The abort is retried and watched like every transactional call: one that timed out and was let go
        left the transaction aborting, and the next `begin_transaction` failed for good. A wedge raises
        ProducerWedged, with nothing left to redo."""
        opened = self._opened is not None
        self._records, self._offsets, self._tallies, self._opened, self._doomed = [], {}, [], None, None
        self._refused.clear()
        self._out.clear()
        self._attempts, self._redone, self._kept_bytes = 0, False, 0
        if opened:
            self._retrying("abort_transaction", self.producer.abort_transaction)

    def _retrying(self, what: str, call: Any) -> None:
        """Retry a retriable error (a timeout, a coordinator moving) until it works, the worker stops, or GIVE_UP_S."""
        started = time.monotonic()
        stop_seen: float | None = None  # on stop, retries go on for STOP_GRACE_S after the first failure seen stopping
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
                    self._fatal(what, error)
                waited = time.monotonic() - started
                if error.code() in IN_PROGRESS and waited > WEDGED_AFTER_S:
                    self.wedged = True
                    raise ProducerWedged(f"librdkafka keeps refusing to repeat {what} ({error.str()}).") from None
                if self.stopping.is_set() and stop_seen is None:
                    stop_seen = time.monotonic()
                if waited > GIVE_UP_S or (stop_seen is not None and time.monotonic() - stop_seen > STOP_GRACE_S):
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
