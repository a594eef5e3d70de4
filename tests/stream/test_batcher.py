"""Micro-batches from a real consumer: size and time bounds, and no wait for what already arrived."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from anomstream.stream.batcher import Batcher

pytestmark = pytest.mark.integration


def _consumer(bootstrap: str, topic: str) -> Consumer:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"b-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    return consumer


def _drain_to_first(batcher: Batcher) -> list:
    """The first non-empty batch (the consumer needs a moment to fetch after assign)."""
    for _ in range(40):
        batch = batcher.poll()
        if batch:
            return batch
    raise AssertionError("nothing arrived in 20 s")


def test_a_full_batch_returns_at_once_and_the_rest_follows(kafka_bootstrap, new_topic, send):
    topic = new_topic()
    send(topic, [(None, f"m{i}".encode(), None) for i in range(10)])
    consumer = _consumer(kafka_bootstrap, topic)
    try:
        batcher = Batcher(consumer, max_batch=4, max_wait_ms=60_000)
        started = time.monotonic()
        batches = [_drain_to_first(batcher), batcher.poll()]
        # A full batch never waits for max_wait (60 s here): the two polls return as soon as 4 are in hand.
        assert time.monotonic() - started < 30
        batcher.max_wait_s = 0  # 2 left: a poll now would wait max_wait for more; take what is there
        last = _drain_to_first(batcher)
    finally:
        consumer.close()
    assert [[m.value() for m in b] for b in batches] == [[b"m0", b"m1", b"m2", b"m3"], [b"m4", b"m5", b"m6", b"m7"]]
    assert [m.value() for m in last] == [b"m8", b"m9"]


def test_with_no_max_wait_a_batch_is_what_has_arrived(kafka_bootstrap, new_topic, send):
    topic = new_topic()
    send(topic, [(None, b"only", None)])
    consumer = _consumer(kafka_bootstrap, topic)
    try:
        batcher = Batcher(consumer, max_batch=512, max_wait_ms=0)
        batch = _drain_to_first(batcher)
        assert [m.value() for m in batch] == [b"only"]
        assert batcher.poll() == []  # idle topic: an empty batch, so the loop turns
    finally:
        consumer.close()


def test_take_hands_over_what_is_pending(kafka_bootstrap, new_topic, send):
    topic = new_topic()
    send(topic, [(None, b"x", None)])
    consumer = _consumer(kafka_bootstrap, topic)
    try:
        batcher = Batcher(consumer, max_batch=8, max_wait_ms=0)
        for _ in range(40):
            batcher._consume(8, 0.5)  # fill without flushing, as a rebalance interrupting a poll would find it
            if batcher._pending:
                break
        assert [m.value() for m in batcher.take()] == [b"x"]
        assert batcher.take() == []
    finally:
        consumer.close()
