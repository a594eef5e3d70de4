"""What the throughput phase runs: the worker itself and the baselines, all in this process.

- `TimedWorker`: the real `stream.worker.Worker`, unchanged, plus two timestamps: when
  its consumer first handed over a message, and when its last batch was delivered.
- `PassthroughWorker`: the same `Worker.run` (same client configs, Batcher, ExactlyOnce /
  AtLeastOnce, commit), but `process` neither decodes nor scores: one fixed,
  verdict-sized record per input message. The ceiling the broker and client allow.
- `json_decoder(variant)`: swaps `stream.codec._decode_json` while the block runs, for
  an equivalent built on the standard library's `json` (same checks, same reasons:
  `worker-stdlib-json`) or for the strict msgspec decoder alone, a Python float per
  sample, as the worker decoded before its happy path (`worker-strict-json`). It
  patches the module attribute that `codec._decode` looks up on every message, so the
  worker's own `decode_batch` uses it; only one worker may run in the process then.
- `EchoPassthroughWorker`: the passthrough the latency phase runs as a process (`passthrough_process`), whose
  records carry each input's id and ts, so a reader can time it as it times the worker.
- `naive()`: the tutorial's way, one `model.predict` per message in a plain
  consume -> predict -> produce loop (auto-commit), on a few hundred messages.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from anomstream.stream import clients, codec, metrics, wire_shapes
from anomstream.stream.delivery import Record
from anomstream.stream.worker import Worker

log = logging.getLogger("anomstream.bench")
_encoder = msgspec.json.Encoder()


class _FirstConsume:
    """Stands in for the worker's consumer until the first message arrives, to time it; then steps aside."""

    def __init__(self, worker: TimedWorker, consumer: Any) -> None:
        self._worker = worker
        self._consumer = consumer

    def consume(self, *args: Any, **kwargs: Any) -> list[Any]:
        messages = self._consumer.consume(*args, **kwargs)
        if any(m.error() is None for m in messages):
            self._worker.first_consumed = time.monotonic()
            self._worker.batcher.consumer = self._consumer  # out of the way for the rest of the run
        return messages

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)


class TimedWorker(Worker):
    """The worker, unchanged, with the timestamps the benchmark needs (monotonic clock)."""

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.first_consumed: float | None = None
        self.last_delivered: float | None = None
        self.consumed = 0

    def poll_batch(self) -> list[Any]:
        if self.first_consumed is None and not isinstance(self.batcher.consumer, _FirstConsume):
            self.batcher.consumer = _FirstConsume(self, self.batcher.consumer)
        return super().poll_batch()

    def process(self, messages: list[Any]) -> None:
        super().process(messages)
        self.consumed += len(messages)

    def commit(self, final: bool = False) -> None:
        before = self.batches_committed
        super().commit(final)
        if self.batches_committed != before:
            self.last_delivered = time.monotonic()


class PassthroughWorker(TimedWorker):
    """Consume -> produce -> commit with the worker's own loop and clients; no decode, no model."""

    VERDICT = {"id": "bench-000000", "source": "bench-s0", "ts": 1764200000.125, "label": 1, "error": 0.0412,
               "threshold": 0.0324, "score": 1.27, "anomaly": True,
               "model": {"name": "ecg-dense", "version": "20261127T064727Z-d4bbde3a", "sha256": "0" * 64},
               "input": {"topic": "bench-json-input", "partition": 0, "offset": 123456}, "scored_at": 1764200000.140}  # fmt: skip
    PAYLOAD = codec.encode_json(VERDICT)

    def process(self, messages: list[Any]) -> None:
        if not messages:
            return
        topic = self.settings.scores_topic
        records = [Record(topic, message.key(), self.PAYLOAD) for message in messages]
        nothing = np.empty(0)
        self.delivery.send(records, self.next_offsets(messages), metrics.BatchTally(len(messages), 0, 0, nothing, nothing))
        self.batches += 1
        self.consumed += len(messages)


class _IdTs(msgspec.Struct):
    id: str
    ts: float | None = None


_id_ts = msgspec.json.Decoder(_IdTs)


class EchoPassthroughWorker(PassthroughWorker):
    """The passthrough for the latency phase, which reads each verdict's `id` and `ts`: a verdict-sized record that
    carries the input's (msgspec skips `values` without making a float of them, ~1 us a window), nothing else."""

    def process(self, messages: list[Any]) -> None:
        if not messages:
            return
        topic = self.settings.scores_topic
        records = []
        for message in messages:
            window = _id_ts.decode(message.value())
            records.append(Record(topic, message.key(), _encoder.encode({**self.VERDICT, "id": window.id, "ts": window.ts})))
        nothing = np.empty(0)
        self.delivery.send(records, self.next_offsets(messages), metrics.BatchTally(len(messages), 0, 0, nothing, nothing))
        self.batches += 1
        self.consumed += len(messages)


def passthrough_process(argv: list[str] | None = None) -> int:
    """`python -m anomstream.benchmarks.variants WORKER-FLAGS`: the echo passthrough as a process, as the latency phase
    runs the worker (the worker's flags, its /readyz and /metrics, SIGTERM to stop)."""
    import signal
    import sys

    from anomstream.benchmarks.harness import _worker_parser
    from anomstream.stream.settings import WorkerSettings

    settings = WorkerSettings.from_args(_worker_parser().parse_args(["worker", *(sys.argv[1:] if argv is None else argv)]))
    worker = EchoPassthroughWorker(settings)
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    signal.signal(signal.SIGINT, lambda *_: worker.stop())
    worker.run()
    return 0


def _decode_json_stdlib(message: Any, body: bytes, window_shape: tuple[int, int]) -> tuple[codec.Window, list[float]]:
    """`codec._decode_json` with the standard library: the same contract, checks and reasons (one-channel models)."""
    window_length = window_shape[1]
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise codec.Bad(*codec._explain_not_json(body, exc)) from None
    if not isinstance(parsed, dict):
        raise codec.Bad(codec.BAD_SCHEMA, "Expected `object`.")
    window_id = parsed.get("id")
    values = parsed.get("values")
    if not isinstance(window_id, str) or not isinstance(values, list):
        raise codec.Bad(codec.BAD_SCHEMA, "`id` must be a string and `values` an array.")
    if not all(type(v) is float or type(v) is int for v in values):  # bools and strings are not samples
        raise codec.Bad(codec.BAD_SCHEMA, "`values` must hold numbers.")
    source, ts, label = parsed.get("source"), parsed.get("ts"), parsed.get("label")
    if (source is not None and not isinstance(source, str)) or (ts is not None and type(ts) not in (int, float)):
        raise codec.Bad(codec.BAD_SCHEMA, "`source` must be a string and `ts` a number.")
    if label is not None and type(label) not in (int, float):
        raise codec.Bad(codec.BAD_SCHEMA, "`label` must be a number.")
    if not window_id:
        raise codec.Bad(codec.BAD_SCHEMA, "the id is empty.")
    if len(values) != window_length:
        raise codec.Bad(codec.WRONG_LENGTH, f"values has {len(values)} numbers; the model takes {window_length}.")
    return codec.Window(message, window_id, source, None if ts is None else float(ts), codec._label(label)), values


def _decode_json_strict(message: Any, body: bytes, window_shape: tuple[int, ...]) -> tuple[codec.Window, list[float]]:
    """`codec._decode_json` without its happy path: msgspec and a Python float per sample, for every window."""
    return codec._decode_strict(message, body, window_shape, wire_shapes.depth(window_shape))


JSON_DECODERS = {"worker-stdlib-json": _decode_json_stdlib, "worker-strict-json": _decode_json_strict}


@contextmanager
def json_decoder(variant: str) -> Iterator[None]:
    """While the block runs, the worker decodes JSON the variant's way (JSON_DECODERS) instead of its own."""
    original = codec._decode_json
    codec._decode_json = JSON_DECODERS[variant]
    try:
        yield
    finally:
        codec._decode_json = original


def naive(config: dict[str, Any], topic: str, output_topic: str, model_dir: Path, count: int, timeout_s: float = 600.0) -> dict[str, Any]:
    """The tutorial's way: one message, one `model.predict`, one verdict; commit in the background."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    from anomstream.models import artifact

    metadata, scorer = artifact.scorer(model_dir)
    model, normalisation, threshold = scorer.runtime.model, scorer.normalisation, metadata.threshold.value
    model.predict(np.zeros((1, *metadata.window_shape), dtype=np.float32), verbose=0)  # warm, as the worker warms up
    consumer = clients.create(Consumer, {**config, "group.id": f"bench-naive-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    producer = clients.create(Producer, config)
    done = 0
    first: float | None = None
    deadline = time.monotonic() + timeout_s
    try:
        while done < count and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None or message.error() is not None:
                continue
            if first is None:
                first = time.monotonic()
            window = json.loads(message.value())
            x = normalisation.apply(np.array(window["values"], dtype=np.float32).reshape(1, *metadata.window_shape))
            error = float(np.mean(np.abs(model.predict(x, verbose=0) - x)))
            verdict = {"id": window["id"], "source": window.get("source"), "ts": window.get("ts"), "error": error,
                       "threshold": threshold, "score": error / threshold, "anomaly": error > threshold,
                       "scored_at": time.time()}  # fmt: skip
            producer.produce(output_topic, json.dumps(verdict).encode(), message.key())
            producer.poll(0)
            done += 1
        producer.flush(30)
        consumer.commit(asynchronous=False)
        finished = time.monotonic()
    finally:
        consumer.close()
    seconds = finished - (first or finished)
    return {"windows": done, "seconds": round(seconds, 3), "windows_per_s": round(done / seconds, 2) if seconds > 0 else None}


if __name__ == "__main__":
    raise SystemExit(passthrough_process())
