"""Dead letters: the input byte for byte, plus why and where from, in a record the DLQ always takes.

A copy can be bigger than the DLQ accepts: the input topic may have taken it only because the upstream
producer compressed it, or our headers push it over the limit. The worker's producer compresses too, so
most such copies still fit whole; the rest (the broker refuses them, or they exceed the producer's own
`message.max.bytes` and could not even be sent) go as a prefix of the value, cut to fit, with the header
`error.truncated` giving the original size. The source headers point to the original, still on the input
topic. Without this one bad input stopped its partition for good (issue 14).
"""

from __future__ import annotations

import logging
from functools import cache, partial

from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from anomstream.stream import codec, metrics
from anomstream.stream.clients import PRODUCER_MAX_BYTES
from anomstream.stream.delivery import Record

log = logging.getLogger("anomstream.dead_letters")

BROKER_DEFAULT_LIMIT = 1_048_588  # Kafka's max.message.bytes when a topic and its broker leave it unset
# A record batch's own header (61 bytes) and a record's varints, with room to spare: what a record costs beyond
# its key, value and headers, plus per header.
OVERHEAD = 256
PER_HEADER = 10


def topic_limit(admin: AdminClient, topic: str) -> int:
    """The DLQ's max.message.bytes, read once at start-up; Kafka's default when the broker does not say."""
    resource = ConfigResource(ResourceType.TOPIC, topic)
    try:
        entry = admin.describe_configs([resource], request_timeout=10)[resource].result(timeout=15).get("max.message.bytes")
        limit = int(entry.value) if entry is not None and entry.value is not None else None
    except Exception as exc:  # an old or partial broker (Tansu answers without it): the documented default
        log.debug("describing %s failed: %s", topic, exc)
        limit = None
    if limit is None:
        log.info("the broker does not report %s's max.message.bytes: dead letters are cut to Kafka's default, %d bytes", topic, BROKER_DEFAULT_LIMIT)
        return BROKER_DEFAULT_LIMIT
    return limit


class DeadLetters:
    """Builds the DLQ record for each bad input."""

    def __init__(self, topic: str, limit: int) -> None:
        self.topic = topic
        self.limit = min(limit, PRODUCER_MAX_BYTES)

    def letter(self, bad: codec.Invalid) -> Record:
        message = bad.message
        kept = list((bad.headers if bad.headers is not None else codec.read_headers(message)) or [])
        headers = kept + [
            ("error.reason", bad.reason.encode()),
            ("error.detail", bad.detail.encode()),
            ("source.topic", message.topic().encode()),
            ("source.partition", str(message.partition()).encode()),
            ("source.offset", str(message.offset()).encode()),
        ]
        whole = Record(self.topic, message.key(), message.value(), headers)
        source = f"{message.topic()}[{message.partition()}]@{message.offset()}"
        if _size(whole) > PRODUCER_MAX_BYTES:  # produce() itself would refuse it
            return self._cut(whole, source)
        # The cut copy, made once, if the broker refuses the whole one.
        return Record(whole.topic, whole.key, whole.value, whole.headers, shrink=cache(partial(self._cut, whole, source)))

    def _cut(self, whole: Record, source: str) -> Record:
        value = whole.value or b""
        headers = [*(whole.headers or []), ("error.truncated", str(len(value)).encode())]
        room = self.limit - _size(Record(whole.topic, whole.key, b"", headers))
        metrics.DEAD_LETTERS_TRUNCATED.inc()
        log.warning(
            "the dead letter for %s is %d bytes, more than %s takes: sending its first %d bytes",
            source, len(value), self.topic, max(room, 0),
        )  # fmt: skip
        return Record(whole.topic, whole.key, value[: max(room, 0)], headers)


def _size(record: Record) -> int:
    headers = record.headers or []
    return (
        OVERHEAD + len(record.key or b"") + len(record.value or b"")
        + sum(len(name.encode()) + len(value or b"") + PER_HEADER for name, value in headers)
    )  # fmt: skip

