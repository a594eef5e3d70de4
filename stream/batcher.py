"""Micro-batches: flush on size or on time, like quix-streams' checkpoint.

`poll` returns when `max_batch` messages are in hand or `max_wait_ms` has
passed since the first one arrived (an idle topic costs one short wait, not a
busy loop). The wait for the first message is not counted against
`max_wait_ms`, and never delays a message that has already arrived. Messages still in hand when partitions are revoked are handed to
the revoke handler through `take`, so they are scored and committed before the
partitions go.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaError

from anomstream.errors import AnomstreamError

log = logging.getLogger("anomstream.batcher")

class ConsumerFailed(AnomstreamError):
    """librdkafka reported a fatal consumer error (e.g. a fenced static member): the worker stops, exit 1."""


IDLE_POLL_S = 0.5  # how long one poll waits on an idle topic before the loop turns (and checks its stop flag)


class Batcher:
    def __init__(self, consumer: Any, max_batch: int, max_wait_ms: int) -> None:
        self.consumer = consumer
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self._pending: list[Any] = []

    def poll(self) -> list[Any]:
        """The next batch; empty when nothing arrived within IDLE_POLL_S."""
        if not self._pending:
            self._consume(self.max_batch, 0)  # whatever is already fetched, without waiting
        if not self._pending:
            self._consume(1, IDLE_POLL_S)  # wait for the first message only: it starts the clock
        if not self._pending:
            return []  # idle: let the loop turn (and check its stop flag)
        deadline = time.monotonic() + self.max_wait_s
        while len(self._pending) < self.max_batch:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._consume(self.max_batch - len(self._pending), left)
        return self.take()

    def _consume(self, most: int, timeout: float) -> None:
        for message in self.consumer.consume(num_messages=most, timeout=timeout):
            self._keep(message)

    def keep_alive(self) -> bool:
        """A poll that takes nothing new from paused partitions: it counts for `max.poll.interval.ms` and serves
        rebalances. Whether a window came anyway (kept for the next batch)."""
        before = len(self._pending)
        self._consume(1, 0)
        return len(self._pending) > before

    def take(self) -> list[Any]:
        batch, self._pending = self._pending, []
        return batch

    def _keep(self, message: Any) -> None:
        error = message.error()
        if error is None:
            self._pending.append(message)
        elif error.code() == KafkaError._PARTITION_EOF:
            return
        elif error.fatal() or error.code() == KafkaError._FATAL:  # a consumer's fatal error arrives as _FATAL, with fatal() False
            raise ConsumerFailed(
                f"the consumer failed and cannot recover: {error.str()} ({error.name()}); a restarted worker resumes from the last commit."
            )
        else:
            log.warning("consumer error (librdkafka will retry): %s", error)
