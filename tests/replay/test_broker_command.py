"""`anomstream broker` and `anomstream demo --keep-running` as processes: they serve, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

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
    process = subprocess.Popen(
        [sys.executable, "-m", "anomstream", "demo", "--model", str(ecg_artifact), "--report", str(tmp_path / "r"), "--keep-running"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ},
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C stops" in line:
                break
        output = "".join(lines)
        assert "Ctrl-C stops" in output, output[-3000:]
        broker_port = int(output.split("embedded broker (Tansu) on 127.0.0.1:")[1].split()[0])
        assert port_open(broker_port)
        process.send_signal(signal.SIGINT)
        process.wait(60)
    finally:
        if process.poll() is None:
            process.kill()
    assert not port_open(broker_port), "Tansu outlived the demo"
