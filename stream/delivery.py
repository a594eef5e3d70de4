"""Getting a batch's outputs out and its input offsets committed, in one of two modes.

Exactly-once: outputs, dead letters and the input offsets go into one Kafka
transaction per batch (`send_offsets_to_transaction`); readers of the outputs
use `read_committed`. Errors are handled as librdkafka documents it:
retriable -> retry the call, abortable -> abort and redo the batch, fatal ->
raise (the worker exits and its successor resumes from the last commit).

At-least-once: an idempotent producer; offsets are stored only after every
delivery report of the batch came back successful, and the consumer commits
stored offsets in the background and on shutdown or revoke.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from stream.errors import AnomstreamError

log = logging.getLogger("anomstream.delivery")

TIMEOUT_S = 30.0
ATTEMPTS = 5


class DeliveryError(AnomstreamError):
    """Outputs could not be delivered; the worker stops without committing the batch."""


@dataclass(slots=True)
class Record:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] | None = None


def _produce(producer: Any, record: Record, **kwargs: Any) -> None:
    while True:
        try:
            producer.produce(record.topic, record.value, record.key, headers=record.headers, **kwargs)
            return
        except BufferError:
            producer.poll(0.1)  # local queue full: let delivery reports drain, then try again


class ExactlyOnce:
    def __init__(self, producer: Any, consumer: Any) -> None:
        self.producer = producer
        self.consumer = consumer
        producer.init_transactions(TIMEOUT_S)

    def deliver(self, records: list[Record], offsets: list[TopicPartition]) -> None:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                self.producer.begin_transaction()
                for record in records:
                    _produce(self.producer, record)
                self._retrying(
                    lambda: self.producer.send_offsets_to_transaction(
                        offsets, self.consumer.consumer_group_metadata(), TIMEOUT_S
                    )
                )
                self._retrying(lambda: self.producer.commit_transaction(TIMEOUT_S))
                return
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if not error.txn_requires_abort():
                    raise DeliveryError(f"the transaction failed and cannot be retried: {error.str()}.") from None
                log.warning("transaction aborted (attempt %d of %d): %s", attempt, ATTEMPTS, error.str())
                self._retrying(lambda: self.producer.abort_transaction(TIMEOUT_S))
        raise DeliveryError(f"the batch could not be committed in {ATTEMPTS} transactions; stopping.")

    @staticmethod
    def _retrying(call: Any) -> None:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                call()
                return
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if not error.retriable() or attempt == ATTEMPTS:
                    raise
                log.warning("retrying after a retriable error: %s", error.str())
                time.sleep(0.1 * attempt)

    def abort_open(self) -> None:
        """Shutdown after a failure: leave nothing half-open (readers would stall until the timeout)."""
        try:
            self.producer.abort_transaction(5.0)
        except KafkaException:
            pass  # no transaction open, or the producer is already fatal: both fine on the way out


class AtLeastOnce:
    def __init__(self, producer: Any, consumer: Any) -> None:
        self.producer = producer
        self.consumer = consumer

    def deliver(self, records: list[Record], offsets: list[TopicPartition]) -> None:
        pending = records
        for attempt in range(1, ATTEMPTS + 1):
            failed: list[tuple[Record, KafkaError]] = []
            for record in pending:
                _produce(self.producer, record, on_delivery=self._report(record, failed))
            left = self.producer.flush(TIMEOUT_S)
            if left:
                raise DeliveryError(f"{left} outputs were not acknowledged within {TIMEOUT_S:.0f} s; not committing.")
            if not failed:
                self.consumer.store_offsets(offsets=offsets)
                return
            log.warning("%d deliveries failed (attempt %d of %d): %s", len(failed), attempt, ATTEMPTS, failed[0][1].str())
            pending = [record for record, _ in failed]
        raise DeliveryError(f"{len(pending)} outputs could not be delivered after {ATTEMPTS} attempts; not committing.")

    @staticmethod
    def _report(record: Record, failed: list[tuple[Record, KafkaError]]) -> Any:
        def on_delivery(error: KafkaError | None, _message: Any) -> None:
            if error is not None:
                failed.append((record, error))

        return on_delivery

    def abort_open(self) -> None:
        pass
