"""Scaling test: the group goes 1 -> 3 -> 1 worker processes on 6 partitions mid-stream, one of them
killed with `kill -9` while it owns partitions; exactly-once must still hold (RELIABILITY.md)."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from anomstream.stream import codec
from tests.worker_process import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

WINDOWS = 20_000
PARTITIONS = 6
TAIL = 2_000  # at least this many held back until the group is down to one worker: the last step lands mid-stream too
RATE = 200  # windows/s while scaling: a worker scores ~13k/s, so only a paced feed keeps every step mid-stream
WAIT_S = 300  # a guard against hanging, not a timing check: other test sessions may share this machine's 2 cores
T = TypeVar("T")


@dataclass
class Replica:
    """One `anomstream worker` process with a stable identity, as a StatefulSet pod would have."""

    name: str
    client_id: str
    worker: WorkerProcess


def start(
    name: str, model: Path, bootstrap: str, topics: dict[str, str], group: str, logs: Path,
    transaction_timeout_ms: int | None = None,
) -> Replica:
    """A real `anomstream worker` process (as deployed), its stderr kept in `logs` for a failure report."""
    client_id = f"{group}-{name}"
    extra = [
        "--delivery", "exactly-once", "--transactional-id", client_id,  # stable, one per replica
        "--max-batch", "64", "--max-wait-ms", "5",
        # Quick rebalances: a dead member is noticed after 6 s (the broker's minimum), not 45 s.
        "-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=1000", "-X", f"client.id={client_id}",
    ]
    if transaction_timeout_ms is not None:
        extra += ["--transaction-timeout-ms", str(transaction_timeout_ms)]
    return Replica(name, client_id, WorkerProcess.start(model, bootstrap, topics, group, logs / f"worker-{name}.log", *extra))


def wait_until(check: Callable[[], T], what: str, replicas: list[Replica], timeout: float = WAIT_S) -> T:
    """Poll `check` until it returns something truthy; fail (with the workers' logs) if a worker dies or time runs out.

    A probe that fails (the broker stalled for seconds under load, a worker's HTTP server not up yet) counts as
    "not yet": the workers ride through such stalls, and so should the test.
    """
    deadline = time.monotonic() + timeout
    while True:
        for replica in replicas:
            code = replica.worker.process.poll()
            assert code is None, f"worker {replica.name} exited ({code}) waiting for {what}"
        try:
            value = check()
        except (OSError, KafkaException):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def scored(replica: Replica) -> int:
    """Windows this worker scored and committed (the counter moves at commit)."""
    match = re.search(r"^anomstream_windows_scored_total (\S+)$", replica.worker.metrics(timeout=2), re.M)
    return int(float(match.group(1))) if match else 0


def members(bootstrap: str, group: str) -> dict[str, list[int]]:
    """client.id -> the input partitions the group coordinator gave that member."""
    admin = AdminClient({"bootstrap.servers": bootstrap})  # one per call, like the other probes: none outlives the test
    (future,) = admin.describe_consumer_groups([group], request_timeout=10).values()
    description = future.result()
    return {m.client_id: sorted(p.partition for p in m.assignment.topic_partitions) for m in description.members}


def watermark(bootstrap: str, topic: str, isolation: str) -> int:
    """The scores partition's end as a reader with this isolation sees it: the last stable offset for read_committed."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks", "isolation.level": isolation})
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)[1]
    finally:
        consumer.close()


def committed(bootstrap: str, group: str, topic: str) -> list[int]:
    """The group's committed input offset per partition: how many windows of each are durably done."""
    # read_uncommitted: do not wait for the killed worker's open transaction to time out (KIP-447 stable offsets).
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "isolation.level": "read_uncommitted"})
    try:
        partitions = consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
    finally:
        consumer.close()
    return [max(p.offset, 0) for p in partitions]


class Feed(threading.Thread):
    """Produces the windows round-robin over the partitions at RATE, all but the TAIL; once `release` is set,
    everything not yet sent (so the test waits on its own steps, never on the pace)."""

    def __init__(self, bootstrap: str, topic: str, values: list[bytes]) -> None:
        super().__init__(name="feed", daemon=True)
        self.bootstrap = bootstrap
        self.topic = topic
        self.values = values
        self.sent = 0
        self.head_done = threading.Event()  # all but the tail produced
        self.release = threading.Event()
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5, "enable.idempotence": True})
            head = len(self.values) - TAIL
            started = time.monotonic()
            while self.sent < head and not (self.halt.is_set() or self.release.is_set()):
                self._produce_up_to(producer, min(head, int((time.monotonic() - started) * RATE) + 1))
                time.sleep(0.05)
            self.head_done.set()
            while not (self.release.wait(0.5) or self.halt.is_set()):
                producer.poll(0)
            if not self.halt.is_set():
                self._produce_up_to(producer, len(self.values))
            assert producer.flush(60) == 0, "the feed's windows were not all acknowledged"
        except BaseException as exc:  # handed to the test's thread
            self.error = exc

    def _produce_up_to(self, producer: Producer, target: int) -> None:
        while self.sent < target:
            try:
                producer.produce(self.topic, self.values[self.sent], partition=self.sent % PARTITIONS)
                self.sent += 1
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)


def window_id(message) -> str:
    return json.loads(message.value())["id"]


def test_scale_1_to_3_to_1_with_a_kill_9_keeps_exactly_once(ecg_artifact, ecg_split, kafka_bootstrap, new_topic, topics, read, tmp_path):
    """1 worker -> 3 (two join) -> 1 (one killed with -9 while it owns partitions, one stopped with SIGTERM)
    while windows keep arriving: every input id still gets exactly one committed verdict."""
    topics = {**topics, "input": new_topic(partitions=PARTITIONS)}
    group = f"scale-{uuid.uuid4().hex[:8]}"
    test = ecg_split.test
    rows = np.resize(np.arange(len(test)), WINDOWS)
    feed = Feed(kafka_bootstrap, topics["input"], [codec.encode_window(f"w-{i}", test.windows[r]) for i, r in enumerate(rows)])
    offsets = lambda: committed(kafka_bootstrap, group, topics["input"])  # noqa: E731
    done = lambda: sum(offsets())  # noqa: E731
    launch = lambda name, **kw: start(name, ecg_artifact, kafka_bootstrap, topics, group, tmp_path, **kw)  # noqa: E731
    steps: dict[str, int] = {}  # committed windows when each step began
    replicas: list[Replica] = []
    started = time.monotonic()
    try:
        a = launch("a")
        replicas.append(a)
        wait_until(lambda: a.worker.readyz(timeout=1) == 200, "worker a to be ready", replicas)
        feed.start()
        wait_until(lambda: done() >= 1_000, "worker a to commit 1,000 windows", replicas)

        steps["scale out (1 -> 3)"] = wait_until(done, "the committed offsets", replicas)
        # b is the replica that will crash, and it never comes back (the group is scaling in), so nothing
        # fences its open transaction: read_committed readers of the outputs cannot see past it (nor, if the
        # kill lands between send_offsets_to_transaction and the commit, can the survivor fetch stable
        # offsets for b's partitions) until the broker aborts it after b's transaction.timeout.ms. That is
        # what a Deployment (per-process transactional ids) always gets; restarting the replica with the
        # same id would fence it at once, as test_chaos shows. The default is 60 s: b alone gets 10 s (the
        # broker looks for expired transactions every 10 s, so readers wait 10-20 s) to keep the test short
        # on the same path. a and c keep the default, because a transaction that outlives its timeout fences
        # its producer (exit 1), and a broker starved by other tests on this machine has stalled for 20 s.
        b, c = launch("b", transaction_timeout_ms=10_000), launch("c")
        replicas += [b, c]
        three = {a.client_id, b.client_id, c.client_id}
        owners = wait_until(
            lambda: (m := members(kafka_bootstrap, group)).keys() == three and all(len(p) == 2 for p in m.values()) and m,
            "three members with two partitions each", replicas,
        )
        wait_until(lambda: all(scored(r) >= 500 for r in (b, c)), "each new worker to commit 500 verdicts", replicas)
        by_worker = {r.name: scored(r) for r in replicas}

        # b holds two partitions and (at RATE) almost surely an open transaction.
        steps["kill -9 b, SIGTERM c (3 -> 1)"] = wait_until(done, "the committed offsets", replicas)
        owned = wait_until(lambda: members(kafka_bootstrap, group), "the group's members", replicas).get(b.client_id)
        assert owned, f"b should own partitions when killed (group before: {owners})"
        assert not feed.head_done.is_set(), "the kill should land while windows are still arriving"
        at_kill = wait_until(offsets, "the committed offsets", replicas)
        written = wait_until(lambda: watermark(kafka_bootstrap, topics["scores"], "read_uncommitted"), "the verdicts' end", replicas)
        b.worker.kill()
        killed = time.monotonic()
        assert c.worker.stop(WAIT_S) == 0, "c should finish its batch, commit and exit 0 on SIGTERM"
        replicas = [a]
        wait_until(lambda: members(kafka_bootstrap, group) == {a.client_id: list(range(PARTITIONS))}, "a alone with all six partitions", replicas)

        steps["scaled in, rest released"] = wait_until(done, "the committed offsets", replicas)
        feed.release.set()
        wait_until(
            lambda: all(now > before for now, before in zip(offsets(), at_kill)),
            "a to commit progress on every partition, b's included", replicas,
        )
        takeover_s = time.monotonic() - killed
        # Readers see past the verdicts written before the kill once b's open transaction is aborted (see above).
        wait_until(
            lambda: watermark(kafka_bootstrap, topics["scores"], "read_committed") >= written,
            "read_committed readers to see past the kill", replicas,
        )
        visible_s = time.monotonic() - killed
        verdicts = read(topics["scores"], WINDOWS, timeout=WAIT_S, distinct=window_id)
        every_write = read(topics["scores"], WINDOWS, timeout=60, distinct=window_id, committed_only=False)
        by_worker["a"] = scored(a)
        assert a.worker.stop(WAIT_S) == 0, "a should exit 0 on SIGTERM"
    except BaseException:
        for log in sorted(tmp_path.glob("worker-*.log")):
            print(f"--- {log.name} (tail)\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:]))
        raise
    finally:
        feed.halt.set()
        for replica in replicas:
            replica.worker.kill()
    feed.join(60)
    assert feed.error is None, f"the feed failed: {feed.error!r}"

    counts = Counter(window_id(m) for m in verdicts)
    lost = WINDOWS - len(counts)
    duplicated = sum(n - 1 for n in counts.values())
    aborted = len(every_write) - len(verdicts)  # written inside transactions that never committed (the kill's among them)
    print(
        f"\nRELIABILITY scaling: windows={WINDOWS} partitions={PARTITIONS} workers=1->3->1 kills=1 (b, owning partitions {owned}) "
        f"sigterms=2 lost={lost} duplicated={duplicated} aborted_writes={aborted} "
        f"committed_at_steps={steps} scored_by_worker={by_worker} takeover_after_kill_s={takeover_s:.0f} "
        f"readers_unblocked_after_kill_s={visible_s:.0f} seconds={time.monotonic() - started:.0f}"
    )
    assert all(0 < n < WINDOWS for n in steps.values()), f"every step should land mid-stream: {steps}"
    assert lost == 0
    assert duplicated == 0
