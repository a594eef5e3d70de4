"""Micro-batches: flush on size or on time, like quix-streams' checkpoint.

`poll` returns when `max_batch` messages are in hand or `max_wait_ms` has
passed since the first one arrived (an idle topic costs one short wait, not a
busy loop). Messages still in hand when partitions are revoked are handed to
the revoke handler through `take`, so they are scored and committed before the
partitions go.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException

log = logging.getLogger("anomstream.batcher")

IDLE_POLL_S = 0.5  # how long one poll waits on an idle topic before the loop turns (and checks its stop flag)


class Batcher:
    def __init__(self, consumer: Any, max_batch: int, max_wait_ms: int) -> None:
        self.consumer = consumer
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self._pending: list[Any] = []

    def poll(self) -> list[Any]:
        """The next batch; empty when nothing arrived within IDLE_POLL_S."""
        deadline: float | None = None
        while len(self._pending) < self.max_batch:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            timeout = IDLE_POLL_S if deadline is None else deadline - now
            messages = self.consumer.consume(num_messages=self.max_batch - len(self._pending), timeout=timeout)
            for message in messages:
                self._keep(message)
            if self._pending and deadline is None:
                deadline = time.monotonic() + self.max_wait_s
            if not messages and deadline is None:
                break  # idle: let the loop turn
        return self.take()

    def take(self) -> list[Any]:
        batch, self._pending = self._pending, []
        return batch

    def _keep(self, message: Any) -> None:
        error = message.error()
        if error is None:
            self._pending.append(message)
        elif error.code() == KafkaError._PARTITION_EOF:
            return
        elif error.fatal():
            raise KafkaException(error)
        else:
            log.warning("consumer error (librdkafka will retry): %s", error)
