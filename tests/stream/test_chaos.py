"""Crash tests: `kill -9` of the worker mid-stream, then a restart (RELIABILITY.md).

The input is paced (windows keep arriving while workers are killed and restarted), and each kill waits for
proof that it lands mid-stream: the group's committed input offset advanced since the previous kill and is
behind what was produced, and (exactly-once) a transaction holding verdicts is open at that moment (the scores
partition's last stable offset, what read_committed readers may see, is below its high watermark). A kill that
would land after the work is done, or between two transactions, cannot pass for one that tested recovery.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from anomstream.stream import codec
from tests.worker_process import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

WINDOWS = 20_000
RATE = 500  # windows/s offered: 40 s of input, long enough for every kill and restart to land inside it
KILLS = 5
COMMIT_INTERVAL_MS = 1000  # long transactions: the kill lands inside one, as the check before it found


def start(model: Path, bootstrap: str, topics: dict[str, str], group: str, delivery: str, log: Path) -> WorkerProcess:
    return WorkerProcess.start(
        model, bootstrap, topics, group, log, "--delivery", delivery, "--runtime", "litert",
        # A stable id per replica: the restarted worker fences its crashed predecessor at once.
        "--transactional-id", f"{group}-replica-0", "--commit-interval-ms", str(COMMIT_INTERVAL_MS),
        "--max-batch", "64", "--max-wait-ms", "5", "-X", "session.timeout.ms=6000",
    )  # fmt: skip


class Paced(threading.Thread):
    """Produces `count` windows at `rate` per second, as a live source would; `produced` counts the acknowledged."""

    def __init__(self, bootstrap: str, topic: str, windows, count: int, rate: float) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.windows, self.count, self.rate = bootstrap, topic, windows, count, rate
        self.produced = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            producer = Producer({"bootstrap.servers": self.bootstrap, "enable.idempotence": True, "linger.ms": 5})
            started = time.monotonic()
            for i in range(self.count):
                time.sleep(max(0.0, started + i / self.rate - time.monotonic()))
                producer.produce(self.topic, codec.encode_window(f"w-{i}", self.windows[i % len(self.windows)]),
                                 on_delivery=lambda error, _m: error is None and self._acknowledged())  # fmt: skip
                producer.poll(0)
            assert producer.flush(60) == 0
        except BaseException as exc:  # handed to the test's thread
            self.error = exc

    def _acknowledged(self) -> None:
        self.produced += 1


def offsets(bootstrap: str, group: str, topics: dict[str, str]) -> tuple[int, int, int]:
    """(the group's committed input offset, the scores partition's last stable offset, its high watermark)."""
    # read_uncommitted for the committed offset: do not wait for the killed worker's open transaction (KIP-447).
    plain = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "isolation.level": "read_uncommitted"})
    stable = Consumer({"bootstrap.servers": bootstrap, "group.id": f"lso-{uuid.uuid4().hex[:6]}", "isolation.level": "read_committed"})
    try:
        (partition,) = plain.committed([TopicPartition(topics["input"], 0)], timeout=10)
        scores = TopicPartition(topics["scores"], 0)
        _, high = plain.get_watermark_offsets(scores, timeout=10, cached=False)
        _, last_stable = stable.get_watermark_offsets(scores, timeout=10, cached=False)  # read_committed: the LSO
    finally:
        plain.close()
        stable.close()
    return max(partition.offset, 0), last_stable, high


def window_id(message) -> str:
    return json.loads(message.value())["id"]


@pytest.mark.parametrize("delivery", ["exactly-once", "at-least-once"])
def test_kill_9_mid_stream_loses_nothing(delivery, ecg_artifact, ecg_split, kafka_bootstrap, topics, read, tmp_path):
    source = Paced(kafka_bootstrap, topics["input"], ecg_split.test.windows, WINDOWS, RATE)
    source.start()
    log = tmp_path / "worker.log"
    group = f"chaos-{delivery}-{uuid.uuid4().hex[:6]}"
    landed: list[tuple[int, int, int]] = []  # (committed input offset, LSO, high watermark) at each kill
    previous = 0
    for kill in range(KILLS):
        worker = start(ecg_artifact, kafka_bootstrap, topics, group, delivery, log)
        try:
            worker.wait_ready()
            deadline = time.monotonic() + 60
            while True:
                committed, last_stable, high = offsets(kafka_bootstrap, group, topics)
                progressed = previous < committed < WINDOWS and committed < source.produced
                in_transaction = delivery == "at-least-once" or last_stable < high
                if progressed and in_transaction:
                    break
                assert time.monotonic() < deadline, (
                    f"kill {kill + 1}: no proof it would land mid-stream within 60 s (committed {committed}, previous"
                    f" {previous}, produced {source.produced}, scores LSO {last_stable} / high watermark {high})\n{worker.log_tail()}"
                )
                time.sleep(0.05)
        finally:
            worker.kill()
        landed.append((committed, last_stable, high))
        previous = committed
    assert len(landed) == KILLS and source.is_alive(), "the input must still be arriving after the last kill"

    with start(ecg_artifact, kafka_bootstrap, topics, group, delivery, log) as worker:
        worker.wait_ready()
        source.join(120)
        assert source.error is None and source.produced == WINDOWS
        verdicts = read(topics["scores"], WINDOWS, timeout=300, distinct=window_id)
    counts = Counter(window_id(m) for m in verdicts)
    lost = WINDOWS - len(counts)
    duplicated = sum(n - 1 for n in counts.values())
    open_at_kill = f", open transactions holding {[h - s for _, s, h in landed]} records" if delivery == "exactly-once" else ""
    print(f"\nRELIABILITY crash {delivery}: kills={KILLS} at committed offsets {[c for c, _, _ in landed]} of {WINDOWS}"
          f"{open_at_kill}; lost={lost} duplicated={duplicated}")  # fmt: skip
    assert lost == 0
    if delivery == "exactly-once":
        assert duplicated == 0
        assert all(high > last_stable for _, last_stable, high in landed)  # each kill left a transaction open
