"""`anomstream replay` against a real broker: ids, formats, rate, bad rows, clear failures."""

from __future__ import annotations

import json
import time
import uuid

import numpy as np
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from anomstream.cli import main

pytestmark = pytest.mark.integration


def read_all(bootstrap: str, topic: str, expected: int, timeout: float = 60) -> list:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"r-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out: list = []
    deadline = time.monotonic() + timeout
    while len(out) < expected and time.monotonic() < deadline:
        out += [m for m in consumer.consume(1000, timeout=0.2) if m.error() is None]
    consumer.close()
    return out


@pytest.fixture
def small_csv(tmp_path):
    rng = np.random.default_rng(3)
    rows = [",".join(f"{v:.6f}" for v in rng.normal(size=140)) + f",{i % 2}.0" for i in range(50)]
    path = tmp_path / "small.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_json_replay_has_deterministic_ids_and_labels(small_csv, kafka_bootstrap, new_topic, capsys):
    topic = new_topic()
    assert main(["replay", "--data", str(small_csv), "--split", "all", "--topic", topic, "--bootstrap-servers", kafka_bootstrap, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["acknowledged"] == summary["sent"] == 50 and summary["failed"] == 0
    messages = read_all(kafka_bootstrap, topic, 50)
    payloads = [json.loads(m.value()) for m in messages]
    assert [p["id"] for p in payloads] == [f"ecg5000-{i}" for i in range(50)]
    assert [p["label"] for p in payloads] == [i % 2 for i in range(50)]
    assert all(len(p["values"]) == 140 for p in payloads)


def test_f32_replay_with_loops_and_limit(small_csv, kafka_bootstrap, new_topic):
    topic = new_topic()
    argv = ["replay", "--data", str(small_csv), "--split", "all", "--limit", "5", "--loop", "2", "--format", "f32"]
    assert main([*argv, "--topic", topic, "--bootstrap-servers", kafka_bootstrap]) == 0
    messages = read_all(kafka_bootstrap, topic, 10)
    ids = [dict(m.headers())["id"].decode() for m in messages]
    assert ids == [f"ecg5000-{i}" for i in range(5)] + [f"ecg5000-{i}-1" for i in range(5)]
    assert all(dict(m.headers())["content-type"] == b"application/x-float32" and len(m.value()) == 560 for m in messages)


@pytest.mark.parametrize("fmt", ["json", "f32"])
def test_only_one_class_with_a_gain_and_an_offset(small_csv, kafka_bootstrap, new_topic, capsys, fmt):
    from anomstream.models import data

    topic = new_topic()
    argv = ["replay", "--data", str(small_csv), "--split", "all", "--only", "anomalous", "--gain", "2", "--offset", "-0.5", "--format", fmt]
    assert main([*argv, "--topic", topic, "--bootstrap-servers", kafka_bootstrap, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["acknowledged"] == 25 and (summary["gain"], summary["offset"]) == (2.0, -0.5)
    messages = read_all(kafka_bootstrap, topic, 25)
    original = data.load(small_csv)
    if fmt == "json":
        ids = [json.loads(m.value())["id"] for m in messages]
        sent = np.array([json.loads(m.value())["values"] for m in messages])
    else:
        ids = [dict(m.headers())["id"].decode() for m in messages]
        sent = np.array([np.frombuffer(m.value(), "<f4") for m in messages])
    assert ids == [f"ecg5000-{i}" for i in range(0, 50, 2)]  # label 0.0 is anomalous in the tutorial layout
    np.testing.assert_allclose(sent, original.windows[0::2, 0] * 2 - 0.5, rtol=1e-6, atol=1e-6)


def test_rate_holds_within_ten_percent(small_csv, kafka_bootstrap, new_topic, capsys):
    topic = new_topic()
    argv = ["replay", "--data", str(small_csv), "--split", "all", "--loop", "200", "--rate", "2000", "--json"]
    assert main([*argv, "--topic", topic, "--bootstrap-servers", kafka_bootstrap]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["acknowledged"] == 10_000  # five seconds' worth at 2,000/s
    assert 1800 <= summary["rate"] <= 2200, summary


def test_bad_rows_refuse_the_file_before_sending_by_default(tmp_path, kafka_bootstrap, new_topic, capsys):
    topic = new_topic()
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3,1\n4,oops,6,1\n7,8,9,0\n")
    assert main(["replay", "--data", str(bad), "--split", "all", "--topic", topic, "--bootstrap-servers", kafka_bootstrap]) == 2
    assert "row 2 column 2: 'oops' is not a number" in capsys.readouterr().err
    assert read_all(kafka_bootstrap, topic, 1, timeout=3) == []
    assert main(["replay", "--data", str(bad), "--split", "all", "--skip-bad-rows", "--topic", topic, "--bootstrap-servers", kafka_bootstrap, "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["skipped_rows"] == 1 and json.loads(out)["acknowledged"] == 2
    assert "skipped row 2 column 2: 'oops' is not a number" in err
    assert [json.loads(m.value())["id"] for m in read_all(kafka_bootstrap, topic, 2)] == ["ecg5000-0", "ecg5000-2"]


@pytest.mark.parametrize("flag", ["--gain", "--offset"])
def test_a_gain_or_offset_that_is_no_number_is_one_sentence(small_csv, capsys, flag):
    assert main(["replay", "--data", str(small_csv), flag, "nan"]) == 2
    assert f"{flag} nan is out of range; see `anomstream replay --help`." in capsys.readouterr().err


def test_missing_topic_and_unreachable_broker_are_clear(small_csv, kafka_bootstrap, capsys):
    from anomstream.brokers import free_port

    assert main(["replay", "--data", str(small_csv), "--topic", "no-such-topic-x", "--bootstrap-servers", kafka_bootstrap]) == 2
    assert f"topic no-such-topic-x does not exist on {kafka_bootstrap}" in capsys.readouterr().err
    address = f"127.0.0.1:{free_port()}"
    assert main(["replay", "--data", str(small_csv), "--topic", "t", "--bootstrap-servers", address]) == 1
    assert f"Kafka at {address} did not answer within 10 s" in capsys.readouterr().err
