"""A broker that stops answering (SIGSTOP: connections open, nothing said) under a transactional worker.

What librdkafka really does here, measured on 2.16 with Apache Kafka: a transactional call that times out can be
retried; repeating a call while the same one is still running on another thread is refused with
`_PREV_IN_PROGRESS` ("Simultaneous ... API calls not allowed"), any other call with `_CONFLICT`. A wedged
librdkafka (confluentinc/librdkafka#5456) answers every retry like that, forever. These tests hold a real call
open on the worker's producer from another thread, which is how librdkafka sees a wedge, and check what the
worker makes of it (issue 14, defects 2 and 7).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from anomstream.brokers.apache_kafka import ApacheKafka
from anomstream.stream import metrics
from anomstream.stream.delivery import DeliveryError, ExactlyOnce, ProducerWedged, Record
from anomstream.stream.settings import WorkerSettings
from anomstream.stream.worker import WorkerThread
from tests.needs import unavailable
from tests.stream.conftest import consume, produce
from tests.stream.test_delivery import committed_offset, ecg_messages

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


@pytest.fixture(scope="module")
def broker() -> Iterator[ApacheKafka]:
    """A broker of this module's own: freezing it must not disturb the session's."""
    if ApacheKafka.missing_tools():
        unavailable(ApacheKafka.missing_tools())
    with ApacheKafka() as kafka:
        yield kafka


class Lines(logging.Handler):
    """The worker's log lines, to wait on."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.seen = threading.Event()
        self.wanted = ""

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage()
        self.lines.append(line)
        if self.wanted and self.wanted in line:
            self.seen.set()


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    logging.getLogger("anomstream").addHandler(handler)
    yield handler
    logging.getLogger("anomstream").removeHandler(handler)


def settings(broker: ApacheKafka, ecg_artifact, **changes) -> WorkerSettings:
    from confluent_kafka.admin import AdminClient, NewTopic

    run = uuid.uuid4().hex[:8]
    topics = {role: f"stall-{role}-{run}" for role in ("input", "scores", "anomalies", "dlq")}
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    for future in admin.create_topics([NewTopic(name, 1, 1) for name in topics.values()]).values():
        future.result(timeout=60)
    return WorkerSettings(
        model=ecg_artifact, bootstrap_servers=broker.bootstrap_servers, input_topic=topics["input"],
        scores_topic=topics["scores"], output_topic=topics["anomalies"], dlq_topic=topics["dlq"],
        group_id=f"stall-{run}", transactional_id=f"stall-{run}", metrics_host="127.0.0.1", metrics_port=0,
        max_wait_ms=20, reload_interval_s=0, transaction_timeout_ms=60_000, **changes,
    )  # fmt: skip


def test_a_commit_the_broker_never_answers_gets_the_producer_replaced(broker, ecg_artifact, ecg_split, lines):
    """The broker freezes while a transaction is open; at the commit, librdkafka 2.16's
    `send_offsets_to_transaction` blocks far past its 10 s timeout (librdkafka#5511). The watchdog must notice
    (30 s), replace the producer (the fresh one fences the stuck one) and commit the open transaction once."""
    s = settings(broker, ecg_artifact, commit_interval_ms=10_000)
    worker = WorkerThread(s).wait_ready(90)
    replaced = metrics.PRODUCER_REPLACEMENTS._value.get()
    try:
        produce(s.bootstrap_servers, s.input_topic, ecg_messages(ecg_split, 100))
        deadline = time.monotonic() + 30
        while worker.worker.batches == 0 and time.monotonic() < deadline:  # a transaction is open
            time.sleep(0.05)
        lines.wanted = "Replacing the producer"
        with broker.frozen():
            assert lines.seen.wait(90), "no replacement within 90 s:\n" + "\n".join(lines.lines[-15:])
        said = "\n".join(lines.lines)
        assert "librdkafka has not returned from send_offsets_to_transaction in 30 s" in said, said[-3000:]
        deadline = time.monotonic() + 60
        while committed_offset(s.bootstrap_servers, s.group_id, s.input_topic) != 100 and time.monotonic() < deadline:
            assert worker.error is None, worker.error
            time.sleep(0.5)
        assert worker.error is None, worker.error
        assert metrics.PRODUCER_REPLACEMENTS._value.get() - replaced == 1
    finally:
        worker.stop(90)
    verdicts = consume(s.bootstrap_servers, s.scores_topic, 100, timeout=30)
    assert sorted(json.loads(m.value())["id"] for m in verdicts) == sorted(f"w-{i}" for i in range(100))
    assert committed_offset(s.bootstrap_servers, s.group_id, s.input_topic) == 100


def test_a_broker_silent_for_longer_than_the_give_up_time_stops_delivery_with_one_sentence(broker):
    """Retriable errors (here: every `init_transactions` of a fresh producer times out against a frozen broker,
    as after a replacement) for 60 s in a row: one sentence, and the worker exits for its successor."""
    topic, producer, consumer = transactional(broker)
    try:
        with broker.frozen():
            started = time.monotonic()
            with pytest.raises(DeliveryError, match=r"init_transactions kept failing for 6\d s \(.*\); stopping without committing"):
                ExactlyOnce(producer, consumer, 60.0, threading.Event())
            gave_up_after = time.monotonic() - started
        assert 60 <= gave_up_after <= 80, gave_up_after
    finally:
        consumer.close()


def transactional(broker: ApacheKafka) -> tuple[str, Producer, Consumer]:
    run = uuid.uuid4().hex[:8]
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "transactional.id": f"stall-{run}", "linger.ms": 5})
    return f"stall-{run}", producer, Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": f"stall-{run}"})


def test_a_call_refused_as_simultaneous_for_20_s_is_a_wedge(broker):
    """While a transactional call runs (held open here on another thread, as a wedged librdkafka holds it),
    repeating it is refused at once with `_PREV_IN_PROGRESS`. For 20 s of that the worker must call it a wedge
    (and replace the producer); it used to count only `_CONFLICT`, retry for 60 s and exit 1."""
    topic, producer, consumer = transactional(broker)
    delivery: ExactlyOnce[int] = ExactlyOnce(producer, consumer, 60.0, threading.Event())
    delivery.send([Record(topic, b"k", b"v")], [TopicPartition(topic, 0, 1)], 1)
    assert producer.flush(30) == 0
    metadata = consumer.consumer_group_metadata()
    try:
        with broker.frozen():
            held = threading.Thread(target=lambda: _quietly(producer.send_offsets_to_transaction, [TopicPartition(topic, 0, 1)], metadata, 60))
            held.start()
            time.sleep(1)
            started = time.monotonic()
            with pytest.raises(ProducerWedged, match="keeps refusing to repeat send_offsets_to_transaction"):
                delivery.commit()
            refused_for = time.monotonic() - started
        assert 19 <= refused_for <= 35, refused_for
        held.join(90)
    finally:
        consumer.close()


def _quietly(call, *args) -> None:
    try:
        call(*args)
    except KafkaException:
        pass  # the stand-in for a wedged call: how it ends does not matter here


def test_an_abort_that_times_out_is_retried_so_the_next_transaction_can_begin(broker):
    """`drop` (partitions lost) aborts the open transaction; a timed-out abort used to be swallowed, and the next
    `begin_transaction` then failed for good."""
    topic, producer, consumer = transactional(broker)
    stopping = threading.Event()
    delivery: ExactlyOnce[int] = ExactlyOnce(producer, consumer, 60.0, stopping)
    try:
        delivery.send([Record(topic, b"k", b"dropped")], [], 1)
        assert producer.flush(30) == 0
        with broker.frozen():
            dropping = threading.Thread(target=delivery.drop)
            dropping.start()
            time.sleep(8)  # past the 5 s an abort used to get
        dropping.join(60)
        assert not dropping.is_alive()
        delivery.send([Record(topic, b"k", b"kept")], [], 2)
        assert delivery.commit() == [2]
    finally:
        stopping.set()
        consumer.close()
    values = [m.value() for m in consume(broker.bootstrap_servers, topic, 1, timeout=30)]
    assert values == [b"kept"]
