"""A broker that stops answering (SIGSTOP: connections open, nothing said) under a transactional worker.

What librdkafka really does here, measured on 2.16 with Apache Kafka: a transactional call that times out can be
retried; repeating a call while the same one is still running on another thread is refused with
`_PREV_IN_PROGRESS` ("Simultaneous ... API calls not allowed"), any other call with `_CONFLICT`. A wedged
librdkafka (confluentinc/librdkafka#5456) answers every retry like that, forever. These tests hold a real call
open on the worker's producer from another thread, which is how librdkafka sees a wedge, and check what the
worker makes of it (issue 14, defects 2 and 7).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from anomstream.brokers.apache_kafka import ApacheKafka
from anomstream.stream import exactly_once
from anomstream.stream.delivery import DeliveryError, Record
from anomstream.stream.exactly_once import ExactlyOnce, ProducerWedged
from tests.needs import unavailable
from tests.stream.conftest import consume

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


@pytest.fixture(scope="module")
def broker() -> Iterator[ApacheKafka]:
    """A broker of this module's own: freezing it must not disturb the session's."""
    if ApacheKafka.missing_tools():
        unavailable(ApacheKafka.missing_tools())
    with ApacheKafka() as kafka:
        yield kafka


def test_a_broker_silent_for_longer_than_the_give_up_time_stops_delivery_with_one_sentence(broker, monkeypatch):
    """Retriable errors (here: every `init_transactions` of a fresh producer times out against a frozen broker,
    as after a replacement) for the give-up time in a row: one sentence, and the worker exits for its successor.
    The give-up time is cut from its 60 s to 20 s here (CI time): the frozen broker and the retries are real."""
    monkeypatch.setattr(exactly_once, "GIVE_UP_S", 20.0)
    topic, producer, consumer = transactional(broker)
    try:
        with broker.frozen():
            started = time.monotonic()
            with pytest.raises(DeliveryError, match=r"init_transactions kept failing for 2\d s \(.*\); stopping without committing"):
                ExactlyOnce(producer, consumer, 60.0, threading.Event(), transaction_timeout_s=60.0)
            gave_up_after = time.monotonic() - started
        assert 20 <= gave_up_after <= 40, gave_up_after
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
    delivery: ExactlyOnce[int] = ExactlyOnce(producer, consumer, 60.0, threading.Event(), transaction_timeout_s=60.0)
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
    delivery: ExactlyOnce[int] = ExactlyOnce(producer, consumer, 60.0, stopping, transaction_timeout_s=60.0)
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


def test_while_stopping_a_retriable_error_is_retried_for_the_grace_time_not_given_up_at_once(broker):
    """On SIGTERM the first retriable error used to end the shutdown without committing. Now a transactional
    call that fails while stopping is retried for STOP_GRACE_S (10 s) after that failure, so a broker back within
    it still gets the commit. Shown on `init_transactions` (a retry loop shared by every transactional call; a
    frozen broker can also wedge `send_offsets_to_transaction`, librdkafka#5511): frozen 14 s, its first
    attempt times out after 10 s, the retry gets through."""
    topic, producer, consumer = transactional(broker)
    stopping = threading.Event()
    stopping.set()
    thawed = threading.Event()

    def freeze_for(seconds: float) -> None:
        with broker.frozen():
            time.sleep(seconds)
        thawed.set()

    freezer = threading.Thread(target=freeze_for, args=(14.0,))
    freezer.start()
    try:
        time.sleep(0.5)
        started = time.monotonic()
        delivery: ExactlyOnce[int] = ExactlyOnce(producer, consumer, 60.0, stopping, transaction_timeout_s=60.0)
        took = time.monotonic() - started
        assert thawed.is_set() and 10 <= took <= 40, took
        delivery.send([Record(topic, b"k", b"v")], [TopicPartition(topic, 0, 1)], 1)
        assert delivery.commit() == [1]
    finally:
        freezer.join(30)
        consumer.close()
