"""`anomstream broker` and `anomstream demo --keep-running` as processes: they serve, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from anomstream.brokers import free_port

pytestmark = pytest.mark.integration


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for(check, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def test_broker_command_serves_kafka_until_interrupted():
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "anomstream", "broker", "--port", str(port)], stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: port_open(port), 30), "the broker never listened"
        bootstrap = f"127.0.0.1:{port}"
        topic = f"b-{uuid.uuid4().hex[:6]}"
        admin = AdminClient({"bootstrap.servers": bootstrap})  # keep a reference: the futures need the handle alive
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
        producer = Producer({"bootstrap.servers": bootstrap})
        producer.produce(topic, b"hello")
        assert producer.flush(30) == 0
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "b"})
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        got = []
        assert wait_for(lambda: got.extend(m.value() for m in consumer.consume(10, 0.2) if m.error() is None) or got, 20)
        consumer.close()
        assert got == [b"hello"]
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert not port_open(port), "the broker child outlived the command"


def test_demo_keep_running_stops_the_broker_and_worker_on_ctrl_c(tmp_path, ecg_artifact):
    """With --json the summary is the one object on stdout, printed once serving starts; Ctrl-C then ends it all, exit 0."""
    stderr = tmp_path / "stderr.log"
    with stderr.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "anomstream", "demo", "--model", str(ecg_artifact), "--report", str(tmp_path / "r"), "--keep-running", "--json"],
            stdout=subprocess.PIPE, stderr=sink, text=True, env={**os.environ},
        )  # fmt: skip
    try:
        line = process.stdout.readline()  # blocks until the summary is out (or the demo died)
        summary = json.loads(line)
        assert summary["healthy"] is True and summary["scored"] == 1000
        deadline = time.monotonic() + 60
        while "Ctrl-C stops" not in stderr.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        log = stderr.read_text()
        assert "Ctrl-C stops" in log, log[-3000:]
        broker_port = int(log.split("embedded broker (Tansu) on 127.0.0.1:")[1].split()[0])
        assert port_open(broker_port)
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr.read_text()[-3000:]
    assert rest == "", "nothing but the one JSON object on stdout"
    assert not port_open(broker_port), "Tansu outlived the demo"


# --- which clients reach `anomstream broker`: the interop matrix README.md publishes -------------------------

WORKS, FAILS = "works", "fails"
MATRIX = {  # (broker kind, client) -> what README.md says; this test holds it to the truth
    ("tansu", "confluent-kafka"): WORKS, ("tansu", "kafka-python"): WORKS, ("tansu", "aiokafka"): WORKS, ("tansu", "kcat"): FAILS,
    ("apache", "confluent-kafka"): WORKS, ("apache", "kafka-python"): WORKS, ("apache", "aiokafka"): WORKS, ("apache", "kcat"): WORKS,
}  # fmt: skip


@pytest.fixture(scope="module", params=["tansu", "apache"])
def served(request):
    """`anomstream broker --kind KIND` as a user starts it, on a free port."""
    from anomstream.brokers import ApacheKafka

    kind = request.param
    if kind == "apache" and ApacheKafka.missing_tools():
        from tests.needs import unavailable

        unavailable(ApacheKafka.missing_tools())
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "anomstream", "broker", "--kind", kind, "--port", str(port)],
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert wait_for(lambda: port_open(port), 120), f"anomstream broker --kind {kind} never listened"
        yield kind, f"127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()


def round_trip(client: str, bootstrap: str, topic: str) -> tuple[bytes | None, str]:
    """Produce one message with `client`, read it back with the same client: (what came back, what it said)."""
    import asyncio
    import itertools
    import shutil

    message = f"via-{client}".encode()
    if client == "confluent-kafka":
        producer = Producer({"bootstrap.servers": bootstrap})
        producer.produce(topic, message)
        producer.flush(30)
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"m-{uuid.uuid4().hex[:6]}"})
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        got: list[bytes] = []
        wait_for(lambda: got.extend(m.value() for m in consumer.consume(10, 0.2) if m.error() is None) or got, 30)
        consumer.close()
        return (got[0] if got else None), ""
    if client == "kafka-python":
        from kafka import KafkaConsumer, KafkaProducer

        producer = KafkaProducer(bootstrap_servers=bootstrap)
        producer.send(topic, message).get(timeout=30)
        producer.close()
        # The first record back ends the read; consumer_timeout_ms only bounds a read that gets nothing (iterating to
        # the end waited out all 20 s of it after the one record came).
        consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=30000)
        got = [record.value for record in itertools.islice(consumer, 1)]
        consumer.close()
        return (got[0] if got else None), ""
    if client == "aiokafka":
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        async def run() -> bytes:
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
            await producer.start()
            try:
                await producer.send_and_wait(topic, message)
            finally:
                await producer.stop()
            consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
            await consumer.start()
            try:
                return (await asyncio.wait_for(consumer.getone(), 30)).value
            finally:
                await consumer.stop()

        return asyncio.run(run()), ""
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    if kcat is None:
        from tests.needs import unavailable

        unavailable("kcat is missing: apt-get install kcat (.ci/run does)")
    produced = subprocess.run([kcat, "-P", "-b", bootstrap, "-t", topic], input=message, capture_output=True, timeout=60)
    consumed = subprocess.run([kcat, "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-c", "1", "-e", "-q"], capture_output=True, timeout=60)
    said = (produced.stderr + consumed.stderr).decode(errors="replace")
    return (consumed.stdout.strip() or None) if produced.returncode == consumed.returncode == 0 else None, said


@pytest.mark.parametrize("client", ["confluent-kafka", "kafka-python", "aiokafka", "kcat"])
def test_the_interop_matrix_holds(served, client):
    kind, bootstrap = served
    topic = f"interop-{client}-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    got, said = round_trip(client, bootstrap, topic)
    if MATRIX[(kind, client)] == WORKS:
        assert got == f"via-{client}".encode(), said[-2000:]
    else:
        assert got is None, "README says this client fails against this broker, and it works now: update the matrix"
        assert "Read underflow" in said, said[-2000:]  # Debian's kcat 1.7.1 (librdkafka 2.0.2) on Tansu's ApiVersions v3 answer
