"""Getting outputs out and input offsets committed, in one of two modes.

Both modes split the work in two, so that the worker can keep scoring while
Kafka confirms: `send` hands a batch's outputs to the producer, `commit` makes
everything sent so far durable and says which batches it covered.

- `exactly_once.ExactlyOnce`: one Kafka transaction per commit interval
  carries the outputs, dead letters and input offsets.
- `at_least_once.AtLeastOnce`: an idempotent producer; a batch's offsets are
  stored once all its outputs are acknowledged.

Backpressure, for both: when Kafka stops acknowledging outputs, librdkafka's
bounded queue fills and what does not fit waits in the `outbox.Outbox`; while
it does (`backlogged`) the worker takes no batch, pauses its partitions and
keeps polling, and `drain` hands the outputs over as room frees.

This module holds what both share: the output record, the error, the limits.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from anomstream.errors import AnomstreamError

T = TypeVar("T")  # what the worker counts per batch (its tally): handed back by `commit` once the batch is durable

GIVE_UP_S = 60.0  # retriable errors (or no acknowledgement) for this long in a row: stop; the successor resumes
ATTEMPTS = 5  # aborted transactions, or failed deliveries, per batch before the worker stops
STOP_GRACE_S = 10.0  # once stopping, how long to go on retrying, or waiting for Kafka to take the outputs in hand


class DeliveryError(AnomstreamError):
    """Outputs could not be delivered; the worker stops without committing them."""


class Record(msgspec.Struct, gc=False):
    """One output. Not tracked by the cyclic GC: an open transaction keeps thousands of them."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] | None = None
    shrink: Any = None  # a dead letter's cut copy, `shrink()`, to send instead if the broker refuses it as too large
