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
