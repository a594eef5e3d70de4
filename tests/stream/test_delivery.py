"""Delivery on a real broker: transactions that span batches, and backpressure when Kafka refuses outputs."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client import REGISTRY

from anomstream.benchmarks.procs import http_get
from anomstream.stream import codec
from anomstream.stream.delivery import Record
from anomstream.stream.exactly_once import ExactlyOnce, MembershipLost
from tests.needs import unavailable

pytestmark = pytest.mark.integration


def ecg_messages(split, count: int, prefix: str = "w") -> list[tuple[bytes, bytes, None]]:
    test = split.test
    return [(b"k%d" % (i % 5), codec.encode_window(f"{prefix}-{i}", test.windows[i % len(test)]), None) for i in range(count)]


def committed_offset(bootstrap: str, group: str, topic: str) -> int:
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "isolation.level": "read_uncommitted"})
    try:
        (position,) = reader.committed([TopicPartition(topic, 0)], timeout=10)
        return position.offset
    finally:
        reader.close()


def test_one_transaction_spans_the_batches_of_a_commit_interval(ecg_split, worker_settings, topics, send, read, start_worker, kafka_bootstrap):
    """Scored batches stay invisible to read_committed readers until the interval's one commit (here: at stop)."""
    worker = start_worker(worker_settings, max_batch=16, commit_interval_ms=60_000, transaction_timeout_ms=130_000)
    send(topics["input"], ecg_messages(ecg_split, 100))
    uncommitted = read(topics["scores"], 100, committed_only=False, timeout=60)
    assert len(uncommitted) == 100  # 7 batches of at most 16, all produced...
    assert worker.worker.batches >= 7
    assert read(topics["scores"], 1, timeout=3) == []  # ...inside one open transaction
    assert committed_offset(kafka_bootstrap, worker_settings.group_id, topics["input"]) < 0
    worker.stop()  # stopping commits it
    ids = [json.loads(m.value())["id"] for m in read(topics["scores"], 100)]
    assert sorted(ids) == sorted(f"w-{i}" for i in range(100))
    assert committed_offset(kafka_bootstrap, worker_settings.group_id, topics["input"]) == 100


def set_producer_quota(bootstrap: str, client_id: str, bytes_per_s: int | None) -> None:
    """A broker-side quota on the worker's produce rate: Kafka slows the outputs down, for real."""
    from anomstream.brokers.apache_kafka import java_binary, kafka_libs

    java = java_binary()
    if java is None:
        unavailable("needs Java (the Apache Kafka test broker needs it too)")
    program = Path(__file__).with_name("kafka_quota.java")
    rate = "none" if bytes_per_s is None else str(bytes_per_s)
    subprocess.run([java, "-cp", f"{kafka_libs()}/*", str(program), bootstrap, client_id, rate], check=True, capture_output=True, timeout=120)


class Probes:
    """/healthz and /readyz over HTTP every half second, on a thread, as a kubelet would ask them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen: list[tuple[int, int, str]] = []  # (healthz status, readyz status, readyz body)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._done.wait(0.5):
            (alive, _), (ready, why) = http_get(self.url + "/healthz", 5), http_get(self.url + "/readyz", 5)
            self.seen.append((alive, ready, why))

    def stop(self) -> list[tuple[int, int, str]]:
        self._done.set()
        self._thread.join(10)
        return self.seen


def _replacements() -> float:
    return REGISTRY.get_sample_value("anomstream_producer_replacements_total") or 0.0


# The floor the worker puts under max.poll.interval.ms is its longest wait on Kafka without polling (60 s, the
# delivery's give-up time). The test lowers the floor, not the give-up time, so that the quota can outlast the poll
# interval in seconds rather than minutes: a worker that blocked inside produce would still be evicted, sooner.
# Not below 30 s: one transactional call may run its 10 s timeout plus a 20 s margin before it counts as wedged.
POLL_INTERVAL_S = 35
QUOTA_HELD_S = 45  # past the poll interval and past the 10 s transaction timeout


@pytest.mark.chaos
@pytest.mark.parametrize("delivery", ["exactly-once", "at-least-once"])
def test_a_slow_output_pauses_consumption_keeps_the_membership_and_loses_nothing(
    delivery, ecg_split, worker_settings, topics, send, read, start_worker, kafka_bootstrap, caplog, monkeypatch
):
    """A 2 kB/s produce quota (about 5 verdicts/s) for 45 s, past max.poll.interval.ms (35 s here) and past the
    10 s transaction timeout. The worker used to block inside produce: it stopped polling, so the group evicted
    it, and the broker aborted its transaction and fenced its producer, which stopped the worker. Now it pauses
    its partitions and keeps polling (alive, not ready), a fresh producer redoes a transaction the broker aborted,
    and once the quota goes every window is scored, exactly once where promised."""
    from anomstream.stream import settings

    monkeypatch.setattr(settings, "POLLS_AT_LEAST_EVERY_S", POLL_INTERVAL_S)
    windows = 4000  # more than the quota lets through in 45 s (measured: 1,700 at least once in 70 s), so most still waits
    queue_bound = 300  # librdkafka's producer queue, made small so that the pause comes quickly
    client_id = f"slow-{uuid.uuid4().hex[:8]}"
    replaced_before = _replacements()
    set_producer_quota(kafka_bootstrap, client_id, 2000)
    try:
        worker = start_worker(
            worker_settings,
            delivery=delivery,
            max_batch=100,
            kafka={"client.id": client_id, "queue.buffering.max.messages": str(queue_bound), "max.poll.interval.ms": str(POLL_INTERVAL_S * 1000)},
        )
        worker.worker.health.busy_after_s = 2.0
        probes = Probes(worker.url)
        send(topics["input"], ecg_messages(ecg_split, windows))
        time.sleep(5)  # the worker fills the producer queue, then waits for room
        batches_then = worker.worker.batches
        queued = []
        held_until = time.monotonic() + QUOTA_HELD_S - 5
        while time.monotonic() < held_until:
            time.sleep(0.5)
            queued.append(len(worker.worker.delivery.producer))
        seen = probes.stop()
        # Input follows the outputs Kafka takes (about 5/s: a few batches of 100 in 45 s, plus what fills the queue):
        # after 45 s most of the backlog is still in Kafka, where a worker that did not wait would have taken it all.
        assert worker.worker.batches * 100 < windows / 2, worker.worker.batches
        assert max(queued) <= queue_bound + 10  # bounded: what is in hand never exceeds the queue (plus reports in flight)
        assert worker.thread.is_alive(), worker.error
        assert {alive for alive, _, _ in seen} == {200}, f"/healthz said 503 in {sum(a != 200 for a, _, _ in seen)} of {len(seen)} probes"
        assert any(ready == 503 and "waiting on Kafka" in why for _, ready, why in seen), seen[-3:]
        evicted = [r.getMessage() for r in caplog.records if "MAXPOLL" in r.getMessage() or r.getMessage().startswith("lost ")]
        assert worker.worker.owned and not evicted, evicted
    finally:
        set_producer_quota(kafka_bootstrap, client_id, None)
    ids = [json.loads(m.value())["id"] for m in read(topics["scores"], windows, timeout=180, distinct=lambda m: json.loads(m.value())["id"])]
    assert worker.error is None, worker.error
    worker.stop()
    assert set(ids) == {f"w-{i}" for i in range(windows)}  # 0 lost
    replaced = _replacements() - replaced_before
    redone = sum("a timeout: redone" in r.getMessage() for r in caplog.records)
    if delivery == "exactly-once":
        assert len(ids) == windows  # 0 duplicated
        # The 45 s wait outlived the 10 s transaction timeout: librdkafka timed the outputs out, or the broker aborted
        # the transaction and fenced the producer (whichever came first); either way it was redone, not the end.
        assert redone + replaced >= 1
    assert committed_offset(kafka_bootstrap, worker_settings.group_id, topics["input"]) == windows
    print(f"\nRELIABILITY slow output {delivery}: windows={windows} batches_while_paused={batches_then} "
          f"queued_max={max(queued)} healthz_200={len(seen)}/{len(seen)} timeouts_redone={redone} producers_replaced={replaced:.0f} lost=0 duplicated={len(ids) - windows}")


def delivery_on(bootstrap: str, transactional_id: str, consumer: Consumer, commit_interval_s: float = 60.0, **kwargs) -> ExactlyOnce:
    """An exactly-once delivery on a real transactional producer (a 60 s transaction timeout unless told)."""
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id})
    kwargs.setdefault("transaction_timeout_s", 60.0)
    return ExactlyOnce(producer, consumer, commit_interval_s, threading.Event(), **kwargs)


def group_consumer(bootstrap: str, name: str) -> tuple[Consumer, str]:
    """A read_committed consumer in a group of its own, subscribed to nothing (its group's offsets are what count)."""
    group = f"{name}-{uuid.uuid4().hex[:8]}"
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group, "isolation.level": "read_committed"}), group


def test_a_replaced_producer_fences_the_stuck_one_and_redoes_its_transaction(new_topic, read, kafka_bootstrap):
    """What the worker does when librdkafka wedges (stream/delivery.py, ProducerWedged), the wedge stood in for
    here by simply never ending the stuck producer's transaction: a fresh producer with the same transactional id
    writes the open transaction's outputs again and commits them; the stuck one's copy is aborted.
    (On the delivery, not through a running worker: its consumer may be used from the worker's thread only.)"""
    source, output = new_topic(), new_topic()
    consumer, group = group_consumer(kafka_bootstrap, "replaced")
    try:
        stuck: ExactlyOnce[str] = delivery_on(kafka_bootstrap, group, consumer)
        stuck.send([Record(output, b"k", b"v%d" % i) for i in range(100)], [TopicPartition(source, 0, 100)], "the batch")
        assert stuck.producer.flush(30) == 0
        fresh: ExactlyOnce[str] = delivery_on(kafka_bootstrap, group, consumer)
        fresh.adopt(stuck)
        assert fresh.producer.flush(30) == 0
        assert len(read(output, 200, committed_only=False, timeout=30)) == 200  # written twice, uncommitted
        assert fresh.commit() == ["the batch"]
        values = sorted(m.value() for m in read(output, 200, timeout=10))
        assert values == sorted(b"v%d" % i for i in range(100))  # once each: the stuck producer's copy was aborted
        assert committed_offset(kafka_bootstrap, group, source) == 100
    finally:
        consumer.close()


def test_a_commit_after_the_group_evicted_the_worker_drops_the_transaction_instead_of_five_redos(new_topic, send, read, kafka_bootstrap):
    """A member that stops polling past max.poll.interval.ms is evicted; the offsets of its open transaction can
    no longer be committed (UNKNOWN_MEMBER_ID / ILLEGAL_GENERATION). Those were redone like any abortable error,
    5 times, and the worker exited 1; now the transaction is aborted and dropped at once (`MembershipLost`), and
    the consumer rejoins and resumes from the last commit."""
    source, output = new_topic(), new_topic()
    send(source, [(b"k", b"v%d" % i, None) for i in range(3)])
    run = uuid.uuid4().hex[:8]
    consumer = Consumer({
        "bootstrap.servers": kafka_bootstrap, "group.id": f"evicted-{run}", "auto.offset.reset": "earliest",
        "enable.auto.commit": False, "isolation.level": "read_committed", "session.timeout.ms": 6000, "max.poll.interval.ms": 6000,
    })
    try:
        consumer.subscribe([source])
        taken = []
        deadline = time.monotonic() + 60
        while len(taken) < 3 and time.monotonic() < deadline:
            taken += [m for m in consumer.consume(3, timeout=1) if m.error() is None]
        assert len(taken) == 3
        delivery: ExactlyOnce[int] = delivery_on(kafka_bootstrap, f"evicted-{run}", consumer, commit_interval_s=0.0)
        delivery.send([Record(output, b"k", b"verdict")], [TopicPartition(source, 0, 3)], 1)
        assert delivery.producer.flush(30) == 0
        time.sleep(9)  # no poll for longer than max.poll.interval.ms: the group evicts the member
        started = time.monotonic()
        with pytest.raises(MembershipLost, match="no longer counts this worker a member"):
            delivery.commit()
        assert time.monotonic() - started < 30  # at once, not after 5 redos
        assert not delivery.due() and delivery.commit() == []  # nothing left open
        assert read(output, 1, timeout=3) == []  # the aborted verdict is invisible to read_committed readers
        assert committed_offset(kafka_bootstrap, f"evicted-{run}", source) < 0  # and no offset was committed
        again = []
        deadline = time.monotonic() + 60
        while len(again) < 3 and time.monotonic() < deadline:  # the consumer rejoins and resumes from the last commit
            again += [m for m in consumer.consume(3, timeout=1) if m.error() is None]
        assert [m.value() for m in again] == [b"v0", b"v1", b"v2"]
    finally:
        consumer.close()


def test_a_replacement_after_a_commit_that_reached_the_coordinator_does_not_commit_it_twice(new_topic, read, kafka_bootstrap):
    """A producer can wedge inside commit_transaction after the coordinator received EndTxn: the transaction is
    committed, but the call never returns. The fresh producer redid it from the records kept for it, so every
    output was committed twice; now it reads the group's committed offsets first, and redoes nothing."""
    source, output = new_topic(), new_topic()
    consumer, group = group_consumer(kafka_bootstrap, "twice")
    try:
        stuck: ExactlyOnce[str] = delivery_on(kafka_bootstrap, group, consumer)
        producer = stuck.producer
        stuck.send([Record(output, b"k", b"v%d" % i) for i in range(5)], [TopicPartition(source, 0, 5)], "the batch")
        # What the wedged call did on the coordinator, done by hand: the delivery never hears that it completed.
        producer.send_offsets_to_transaction([TopicPartition(source, 0, 5)], consumer.consumer_group_metadata(), 30)
        producer.commit_transaction(30)
        fresh: ExactlyOnce[str] = delivery_on(kafka_bootstrap, group, consumer)
        fresh.adopt(stuck)
        assert fresh.commit() == ["the batch"]  # counted once, as committed
        assert sorted(m.value() for m in read(output, 10, timeout=10)) == [b"v%d" % i for i in range(5)]
        assert committed_offset(kafka_bootstrap, group, source) == 5
    finally:
        consumer.close()


def test_a_transaction_holding_large_dead_letters_commits_early_so_memory_stays_bounded(new_topic, read, kafka_bootstrap):
    """Every record of the open transaction is kept for a redo, and a dead letter can hold 8 MiB: a burst of them
    grew the transaction without bound for its whole commit interval. Past the byte limit it takes no more
    batches and commits as soon as its outputs are acknowledged."""
    source, output = new_topic(), new_topic()
    consumer, group = group_consumer(kafka_bootstrap, "bytes")
    try:
        delivery: ExactlyOnce[int] = delivery_on(kafka_bootstrap, group, consumer, transaction_timeout_s=130.0, kept_bytes_limit=1_000_000)
        delivery.send([Record(output, b"k", b"x" * 400_000)], [TopicPartition(source, 0, 1)], 1)
        assert not delivery.backlogged and not delivery.due()  # under the limit: the 60 s interval decides
        delivery.send([Record(output, b"k", b"y" * 700_000)], [TopicPartition(source, 0, 2)], 2)
        assert delivery.backlogged  # past it: no batch joins the transaction...
        deadline = time.monotonic() + 30
        while not delivery.due() and time.monotonic() < deadline:
            delivery.drain(0.1)
        assert delivery.due()  # ...which commits once its outputs are acknowledged, long before 60 s
        assert delivery.commit(wait=False) == [1, 2]
        assert len(read(output, 2, timeout=30)) == 2
        assert committed_offset(kafka_bootstrap, group, source) == 2
    finally:
        consumer.close()
