"""Dead letters that are hard to copy: bigger than the DLQ takes, or with headers confluent-kafka cannot read.

The README promises that a bad message never stops the worker; these are the inputs that did (issue 14, 1 and 9).
They run on Apache Kafka, whose topics enforce `max.message.bytes` as a user's cluster does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request

import numpy as np
import pytest
from confluent_kafka import Producer

from anomstream.stream import codec
from tests.needs import unavailable

DEFAULT_LIMIT = 1_048_588  # a topic's max.message.bytes when nobody set it (Apache Kafka 4)


def _zeros_json(window_id: str, size: int) -> bytes:
    """A JSON window of about `size` bytes: compressible to almost nothing, so it fits any topic compressed."""
    head, tail = b'{"id": "%s", "values": [' % window_id.encode(), b"0]}"
    return head + b"0," * ((size - len(head) - len(tail)) // 2) + tail


def _metric(url: str, name: str) -> float:
    page = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in page.splitlines() if line.startswith(name))


@pytest.mark.integration
@pytest.mark.parametrize("delivery", ["exactly-once", "at-least-once"])
def test_an_input_too_big_for_the_dlq_is_dead_lettered_and_the_windows_after_it_are_scored(
    apache_kafka, worker_settings, start_worker, read, ecg_split, delivery
):
    """With default topic limits: inputs that fit the input topic only compressed (3 MB, and 9 MB, above the
    producer's own 8 MiB limit), and one incompressible input within ~200 bytes of the limit, which our
    headers push over it. Each reaches the DLQ (whole when compression makes it fit, else cut to fit with
    `error.truncated` giving the original size), and the five windows after them are scored."""
    bootstrap = apache_kafka.bootstrap_servers
    worker = start_worker(worker_settings, delivery=delivery)
    truncated = _metric(worker.url, "anomstream_dead_letters_truncated_total")  # the counters are the process's
    upstream = Producer({"bootstrap.servers": bootstrap, "compression.type": "zstd", "message.max.bytes": 16 * 1024 * 1024})
    near = np.random.default_rng(14).bytes(DEFAULT_LIMIT - 200)
    big = {b"zeros-3mb": _zeros_json("zeros-3mb", 3_000_000), b"zeros-9mb": _zeros_json("zeros-9mb", 9_000_000)}
    for key, value in big.items():
        upstream.produce(worker_settings.input_topic, value, key, headers=[("trace", b"t-" + key)])
    assert upstream.flush(30) == 0
    plain = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": DEFAULT_LIMIT + 1000})
    plain.produce(worker_settings.input_topic, near, b"near-limit")
    for i in range(5):
        plain.produce(worker_settings.input_topic, codec.encode_window(f"after-{i}", ecg_split.test.windows[i]), b"w")
    assert plain.flush(30) == 0

    verdicts = read(worker_settings.scores_topic, 5, timeout=90)
    assert worker.error is None, worker.error
    assert sorted(json.loads(m.value())["id"] for m in verdicts) == [f"after-{i}" for i in range(5)]
    letters = {m.key(): m for m in read(worker_settings.dlq_topic, 3, timeout=30)}
    assert sorted(letters) == [b"near-limit", b"zeros-3mb", b"zeros-9mb"]
    headers = {key: dict(m.headers()) for key, m in letters.items()}
    assert all(h["error.reason"] == codec.TOO_LARGE.encode() for h in headers.values())
    # Compressed by the worker's producer, the 3 MB window fits the DLQ whole, byte for byte, headers too.
    assert letters[b"zeros-3mb"].value() == big[b"zeros-3mb"] and "error.truncated" not in headers[b"zeros-3mb"]
    assert headers[b"zeros-3mb"]["trace"] == b"t-zeros-3mb"
    # The other two cannot fit whole: a prefix, and the original size.
    for key, original in ((b"zeros-9mb", big[b"zeros-9mb"]), (b"near-limit", near)):
        value = letters[key].value()
        assert headers[key]["error.truncated"] == str(len(original)).encode()
        assert 0 < len(value) < len(original) and original.startswith(value)
    assert headers[b"zeros-9mb"]["trace"] == b"t-zeros-9mb"
    assert _metric(worker.url, "anomstream_dead_letters_truncated_total") - truncated == 2


@pytest.mark.integration
def test_a_header_key_that_is_not_utf8_gets_its_own_reason_and_a_copy_of_what_can_be_read(
    apache_kafka, worker_settings, start_worker, read
):
    """confluent-kafka 2.16 cannot read such a header (`headers()` raises SystemError) nor write one (a bytes key
    is produced as its repr), so no client of ours can copy it byte for byte: the letter keeps the key and value
    byte for byte, says the headers are lost and why, and never claims "the decoder failed"."""
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    if kcat is None:
        unavailable("kcat is missing: apt-get install kcat (.ci/run does)")
    worker = start_worker(worker_settings)
    body = codec.encode_window("w-bad-header", [0.0] * 140)
    sent = subprocess.run(
        [kcat, "-P", "-b", apache_kafka.bootstrap_servers, "-t", worker_settings.input_topic, "-k", "patient-1",
         "-H", os.fsdecode(b"\xff\xfe=x"), "-H", "ok=y"],
        input=body, capture_output=True, timeout=60,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    (letter,) = read(worker_settings.dlq_topic, 1, timeout=60)
    assert worker.error is None, worker.error
    assert (letter.key(), letter.value()) == (b"patient-1", body)
    headers = dict(letter.headers())
    assert headers["error.reason"] == codec.BAD_SCHEMA.encode()
    assert headers["error.detail"] == b"a header key is not UTF-8, so the headers cannot be read or copied; the source offset points to the original."
    assert codec.DECODER_FAILED.encode() not in headers["error.detail"]
