"""Replay a labelled data set into Kafka at a steady rate, in either input format.

Ids are deterministic (`<prefix>-<row>`, plus `-<loop>` after the first
loop) so that `validate` can join verdicts back to labels. The final count is
the number of messages the broker acknowledged; a failure is retried by
librdkafka (idempotent producer), then reported, never dropped silently.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from confluent_kafka import KafkaError, Producer

from anomstream.errors import AnomstreamError
from anomstream.models.data import Dataset, split
from anomstream.stream import clients, codec

log = logging.getLogger("anomstream.replay")


class ReplayError(AnomstreamError):
    """Some windows were not acknowledged by the broker."""


@dataclass(frozen=True)
class Selection:
    """Which rows a replay sends; `validate` rebuilds the same selection to know what to expect."""

    split: str = "test"  # test | train | all
    test_size: float = 0.2
    split_seed: int = 21
    limit: int | None = None
    loops: int = 1
    shuffle: bool = False
    seed: int = 0
    id_prefix: str = "ecg5000"
    only: str = "all"  # all | normal | anomalous: by the mapped label

    def rows(self, dataset: Dataset, test: Dataset | None = None) -> Dataset:
        """The rows to send: of `dataset`'s split, or with a --test-data file `test`, that file or `dataset`."""
        if self.split == "all":
            chosen = dataset
        elif test is not None:
            chosen = test if self.split == "test" else dataset
        else:
            parts = split(dataset, self.test_size, self.split_seed)
            chosen = parts.test if self.split == "test" else parts.train
        if self.only != "all":
            chosen = chosen.subset(np.flatnonzero(chosen.labels == (1 if self.only == "normal" else 0)))
        if self.shuffle:
            chosen = chosen.subset(np.random.default_rng(self.seed).permutation(len(chosen)))
        if self.limit is not None:
            chosen = chosen.subset(np.arange(min(self.limit, len(chosen))))
        return chosen

    def window_id(self, row: int, loop: int, ids: str = "") -> str:
        """`ids`: the data set's own prefix ("test-" for a --test-data file), so two files never share an id."""
        return f"{self.id_prefix}-{ids}{row}" if loop == 0 else f"{self.id_prefix}-{ids}{row}-{loop}"

    def expected(self, dataset: Dataset, test: Dataset | None = None) -> dict[str, int]:
        """id -> label of every window the replay sends."""
        chosen = self.rows(dataset, test)
        return {
            self.window_id(row, loop, chosen.ids): int(label)
            for loop in range(self.loops)
            for row, label in zip(chosen.rows.tolist(), chosen.labels.tolist())
        }


class TokenBucket:
    """A steady rate on the monotonic clock, with bursts of at most a tenth of a second's worth."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate / 10)
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def take(self) -> None:
        if self.rate <= 0:
            return
        while True:
            now = time.monotonic()
            # Credit the real elapsed time, oversleeps included, so the average rate holds on a busy machine.
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            time.sleep((1 - self.tokens) / self.rate)


@dataclass
class ReplayResult:
    run: str | None = None  # the run id every window carries: `anomstream validate --run-id` takes it
    sent: int = 0
    acknowledged: int = 0
    failed: int = 0
    first_error: str | None = None
    seconds: float = 0.0  # first send to last acknowledgement
    sending_seconds: float = 0.0  # first send to last send: what --rate controls

    @property
    def rate(self) -> float:
        """The offered rate: windows sent per second while sending."""
        return self.sent / self.sending_seconds if self.sending_seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "sent": self.sent,
            "acknowledged": self.acknowledged,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "rate": round(self.rate, 1),
            "acknowledged_rate": round(self.acknowledged / self.seconds, 1) if self.seconds > 0 else 0.0,
        }


def messages(
    dataset: Dataset, selection: Selection, fmt: str, run: str | None = None, test: Dataset | None = None, gain: float = 1.0, offset: float = 0.0
) -> Iterator[tuple[bytes, bytes, list[tuple[str, bytes]] | None]]:
    """(key, value, headers) for every window of the selection, loop after loop, each stamped with `run`.
    A window is (channels, length): JSON `values` nests one list per channel when there are several, and a
    float32 body is the samples channel-major (stream/codec.py). `gain` and `offset` change every sample
    (value * gain + offset): a recalibrated sensor, rehearsed against a model's drift gauge."""
    chosen = selection.rows(dataset, test)
    windows = chosen.windows if (gain, offset) == (1.0, 0.0) else (chosen.windows * np.float32(gain) + np.float32(offset))
    for loop in range(selection.loops):
        for row, values, label in zip(chosen.rows.tolist(), windows, chosen.labels.tolist()):
            window_id = selection.window_id(row, loop, chosen.ids)
            source = f"{selection.id_prefix}-s{row % 16}"
            ts = time.time()
            if fmt == "f32":
                headers = [("content-type", codec.F32), ("id", window_id.encode()), ("source", source.encode()),
                           ("ts", repr(ts).encode()), ("label", str(label).encode())]
                if run is not None:
                    headers.append(("run", run.encode()))
                yield source.encode(), np.asarray(values, dtype="<f4").tobytes(), headers
            else:
                yield source.encode(), codec.encode_window(window_id, values, source=source, ts=ts, label=label, run=run), None


def replay(
    config: dict[str, Any],
    topic: str,
    dataset: Dataset,
    selection: Selection,
    fmt: str = "json",
    rate: float = 0.0,
    advance: Callable[..., None] | None = None,
    run: str | None = None,
    test: Dataset | None = None,
    gain: float = 1.0,
    offset: float = 0.0,
) -> ReplayResult:
    """Send the selection to `topic`, stamped with `run`; returns once every message was acknowledged or failed."""
    result = ReplayResult(run=run)

    def on_delivery(error: KafkaError | None, _message: Any) -> None:
        if error is None:
            result.acknowledged += 1
        else:
            result.failed += 1
            result.first_error = result.first_error or error.str()
        if advance:
            advance(1)

    producer = clients.create(Producer, {"enable.idempotence": True, "linger.ms": 5, "compression.type": "lz4", **config})
    bucket = TokenBucket(rate)
    started = time.monotonic()
    for key, value, headers in messages(dataset, selection, fmt, run, test, gain, offset):
        bucket.take()
        while True:
            try:
                producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)  # local queue full: wait for acknowledgements
        result.sent += 1
        producer.poll(0)
    result.sending_seconds = time.monotonic() - started
    while producer.flush(1.0):
        pass  # flush in short steps so delivery callbacks (and the progress bar) keep moving
    result.seconds = time.monotonic() - started
    log.info("replayed %d windows to %s in %.2f s (%.0f/s); %d failed", result.acknowledged, topic, result.seconds, result.rate, result.failed)
    if result.failed:
        raise ReplayError(
            f"{result.failed} of {result.sent} windows were not acknowledged by the broker (first error: {result.first_error})."
        )
    return result
