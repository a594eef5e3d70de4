"""`anomstream worker` as a process: signals, restarts, exit codes and messages."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import numpy as np
import pytest

from anomstream.stream import codec
from tests.worker_process import WorkerProcess, worker_command

pytestmark = pytest.mark.integration


def run_to_exit(command: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env={**os.environ, "ANOMSTREAM_LOG_LEVEL": "INFO"})


def test_sigterm_mid_stream_loses_and_duplicates_nothing(ecg_artifact, ecg_split, kafka_bootstrap, topics, send, read, tmp_path):
    rows = np.resize(np.arange(len(ecg_split.test)), 6000)
    test = ecg_split.test
    send(topics["input"], [(None, codec.encode_window(f"w-{i}", test.windows[r]), None) for i, r in enumerate(rows)])
    total = len(rows)
    command = worker_command(ecg_artifact, kafka_bootstrap, topics, "sigterm-group", "--max-batch", "8", "--max-wait-ms", "5", "--commit-interval-ms", "0")
    with WorkerProcess(command, tmp_path / "first.log") as first:
        partial = read(topics["scores"], 200, timeout=120)
        first.process.send_signal(signal.SIGHUP)  # reload the (unchanged) artifact on demand, mid-stream
        deadline = time.monotonic() + 60
        while "model reloaded" not in first.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        first.process.send_signal(signal.SIGUSR1)  # where is every thread? written to the log; the worker goes on
        while "Current thread" not in first.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert first.stop(60) == 0, first.log_tail()
    stopped_after = len(read(topics["scores"], total, timeout=5))
    assert 200 <= len(partial) and stopped_after < total, "the signal should land mid-stream"
    first_log = (tmp_path / "first.log").read_text()
    assert "last batch committed" in first_log
    assert "model reloaded" in first_log
    # faulthandler's dump: "Thread 0x..." for each other thread (the metrics server, the model's watcher), then
    # "Current thread 0x..." for the main thread, down to the poll loop.
    stacks = first_log[min(first_log.index("Thread 0x"), first_log.index("Current thread 0x")):]
    main = stacks[stacks.index("Current thread 0x"):]
    assert stacks.count("Thread 0x") >= 2, stacks[:3000]
    assert "stream/worker.py" in main and "anomstream/cli.py" in main, main[:3000]

    with WorkerProcess(command, tmp_path / "second.log"):
        verdicts = [json.loads(m.value())["id"] for m in read(topics["scores"], total, timeout=180)]
    assert len(verdicts) == total
    assert len(set(verdicts)) == total  # exactly once across the restart


def test_usr1_again_and_again_mid_stream_never_crashes_the_worker(ecg_artifact, ecg_split, kafka_bootstrap, topics, send, read, tmp_path):
    """`kill -USR1` asks a worker where it is; it must never kill it. faulthandler.register dumped every thread's
    stack from inside the C signal handler, walking other threads' frames while they ran (exactly-once starts a
    thread per transactional call): under load the worker died with SIGSEGV mid-dump (clean-clone CI, 2026-12-08,
    in the SIGTERM test above). The dump now runs in the main thread, with the GIL held."""
    test = ecg_split.test
    total = 4000
    send(topics["input"], [(None, codec.encode_window(f"u-{i}", test.windows[i % len(test)]), None) for i in range(total)])
    command = worker_command(ecg_artifact, kafka_bootstrap, topics, "usr1-group", "--max-batch", "8", "--max-wait-ms", "5", "--commit-interval-ms", "0")
    with WorkerProcess(command, tmp_path / "worker.log") as worker:
        read(topics["scores"], 100, timeout=120)  # mid-stream: batches and transactions in flight
        sent = 0
        while sent < 300 and worker.process.poll() is None:
            worker.process.send_signal(signal.SIGUSR1)
            sent += 1
            time.sleep(0.01)
        assert worker.process.poll() is None, f"the worker died ({worker.process.returncode}) after {sent} SIGUSR1:\n{worker.log_tail()}"
        verdicts = [json.loads(m.value())["id"] for m in read(topics["scores"], total, timeout=180)]
        assert worker.stop(60) == 0, worker.log_tail()
    assert sorted(set(verdicts)) == sorted(f"u-{i}" for i in range(total)) and len(verdicts) == total
    assert (tmp_path / "worker.log").read_text().count("Current thread 0x") >= 1


def test_missing_topic_is_one_sentence_and_exit_2(ecg_artifact, kafka_bootstrap, topics):
    missing = dict(topics, scores="no-such-topic-here")
    done = run_to_exit(worker_command(ecg_artifact, kafka_bootstrap, missing, "g-missing"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"anomstream worker: topic no-such-topic-here does not exist on {kafka_bootstrap}: create it or pass --create-topics."
    )


def test_unreachable_broker_waits_then_fails_clearly(ecg_artifact, topics):
    from anomstream.brokers import free_port

    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    done = run_to_exit(worker_command(ecg_artifact, address, topics, "g-down", "--startup-timeout-s", "4"))
    assert done.returncode == 1
    assert "waiting for Kafka at" in done.stderr  # it retried with backoff before giving up
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"anomstream worker: Kafka at {address} did not answer within 4 s")
    assert last.endswith("check --bootstrap-servers and that the broker is up.")
    # librdkafka's own lines go through our logging (at WARNING: it retries), never raw (`%3|<ts>|FAIL|...`).
    assert re.search(r" WARNING anomstream\.librdkafka: FAIL \[anomstream-worker#producer-\d+\] .*Connection refused", done.stderr)
    assert not re.search(r"^%\d\|", done.stderr, re.MULTILINE), done.stderr[-3000:]
    assert time.monotonic() - started < 60


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-X", "no.such.property=1"], "Kafka client configuration rejected: No such configuration property"),
        (["-X", "novalue"], "-X number 1 is not key=value (e.g. -X security.protocol=SASL_SSL; its text is not shown: it may hold a secret)"),
        (["--max-batch", "0"], "--max-batch 0 is out of range"),
        (["--delivery", "twice"], "argument --delivery: invalid choice: 'twice'"),
        # Properties the guarantee rests on are the worker's: once, -X applied them last and silently.
        (["-X", "isolation.level=read_uncommitted"], "-X isolation.level (or --kafka-config) cannot be set for the worker: the worker reads its input read_committed"),
        (["-X", "enable.idempotence=false"], "-X enable.idempotence (or --kafka-config) cannot be set for the worker: the worker's producer is idempotent"),
        (["-X", "group.id=other"], "-X group.id (or --kafka-config) cannot be set for the worker: use --group-id."),
        (["-X", "transaction.timeout.ms=5000"], "-X transaction.timeout.ms (or --kafka-config) cannot be set for the worker: use --transaction-timeout-ms."),
        (["-X", "message.max.bytes=1000"], "-X message.max.bytes (or --kafka-config) cannot be set for the worker: the worker's producer takes any record"),
        (["--transaction-timeout-ms", "10"], "--transaction-timeout-ms 10 is out of range"),
        (["--commit-interval-ms", "5000"], "--transaction-timeout-ms 10000 is too short for --commit-interval-ms 5000: the broker would abort transactions still being filled; give it at least 11000."),
        (["-X", "group.instance.id=pod-0"], "-X group.instance.id (or --kafka-config) cannot be set for the worker: use --instance-id"),
    ],
)
def test_bad_configuration_exits_2_with_one_sentence(ecg_artifact, kafka_bootstrap, topics, extra, message):
    done = run_to_exit(worker_command(ecg_artifact, kafka_bootstrap, topics, "g-bad", *extra))
    assert done.returncode == 2
    assert message in done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr


def test_a_transaction_timeout_the_broker_refuses_is_one_sentence_and_exit_1(ecg_artifact, apache_kafka, topics):
    """A non-retriable init_transactions failure (above the broker's transaction.max.timeout.ms, 900000 by default)
    once ended in a traceback."""
    done = run_to_exit(worker_command(ecg_artifact, apache_kafka.bootstrap_servers, topics, "g-txn", "--transaction-timeout-ms", "1000000"))
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("anomstream worker: init_transactions failed and cannot be retried: ") and last.endswith("(INVALID_TRANSACTION_TIMEOUT)."), last
    assert "Traceback" not in done.stderr


def test_a_fatal_consumer_error_is_one_sentence_and_exit_1(ecg_artifact, apache_kafka, topics, tmp_path):
    """A static member fenced by a newer one with its instance id gets a fatal error: once a traceback."""
    from confluent_kafka import Consumer

    with WorkerProcess.start(ecg_artifact, apache_kafka.bootstrap_servers, topics, "g-fenced", tmp_path / "fenced.log", "--instance-id", "replica-0") as worker:
        worker.wait_ready(120)
        usurper = Consumer({"bootstrap.servers": apache_kafka.bootstrap_servers, "group.id": "g-fenced", "group.instance.id": "replica-0",
                             "partition.assignment.strategy": "cooperative-sticky"})  # as a second replica would
        usurper.subscribe([topics["input"]])
        try:
            deadline = time.monotonic() + 90
            while worker.process.poll() is None and time.monotonic() < deadline:
                usurper.poll(0.2)  # the newer member with the same instance id joins; the worker is fenced
            code = worker.process.poll()
        finally:
            usurper.close()
    log = worker.log.read_text()
    last = log.strip().splitlines()[-1]
    assert code == 1 and last.startswith("anomstream worker: the consumer failed and cannot recover: ") and "Static consumer fenced" in last, log[-2000:]
    assert "Traceback" not in log


@pytest.mark.parametrize("name", sorted(__import__("anomstream.config", fromlist=["SECRET_PROPERTIES"]).SECRET_PROPERTIES - {"ssl_key"}))
def test_no_secret_property_reaches_the_log(ecg_artifact, kafka_bootstrap, topics, tmp_path, name):
    """Each documented secret, given by -X to a worker that connects, logs its configuration and stops (a topic
    is missing): its value is nowhere in the output, and the property is named, masked."""
    value = f"leak-me-{name}-7f3a9"
    done = run_to_exit(worker_command(ecg_artifact, kafka_bootstrap, dict(topics, input="absent-topic-x"), "g-leak", "--runtime", "litert", "-X", f"{name}={value}"))
    assert done.returncode == 2, done.stderr[-2000:]
    assert value not in done.stderr + done.stdout
    assert f"'{name}': '***'" in done.stderr


def test_secrets_from_kafka_config_are_not_logged(ecg_artifact, kafka_bootstrap, topics, tmp_path):
    config = tmp_path / "client.properties"
    config.write_text("# test\nsasl.password=hunter2-secret\nclient.id=anomstream-test\n")
    done = run_to_exit(worker_command(ecg_artifact, kafka_bootstrap, dict(topics, input="absent-topic-x"), "g-secret", "--kafka-config", str(config)))
    assert done.returncode == 2  # the missing topic stops it after connecting and logging its config
    assert "sasl.password" in done.stderr and "***" in done.stderr
    assert "hunter2" not in done.stderr


# The worker's import path with the training stack made unimportable: what the slim image (Dockerfile, target
# `slim`) holds. Setting a module to None in sys.modules makes any import of it raise ImportError.
WITHOUT_TENSORFLOW = (
    "import runpy, sys; sys.modules.update(dict.fromkeys(['tensorflow', 'keras', 'sklearn', 'pandas', 'scipy'], None)); "
    "runpy.run_module('anomstream', run_name='__main__', alter_sys=True)"
)


def without_tensorflow(command: list[str]) -> list[str]:
    assert command[1:3] == ["-m", "anomstream"]
    return [command[0], "-c", WITHOUT_TENSORFLOW, *command[3:]]


def test_on_litert_the_worker_runs_without_tensorflow(ecg_artifact, ecg_split, kafka_bootstrap, topics, send, read, tmp_path):
    test = ecg_split.test
    send(topics["input"], [(None, codec.encode_window(f"w-{i}", test.windows[i]), None) for i in range(300)])
    command = without_tensorflow(worker_command(ecg_artifact, kafka_bootstrap, topics, "litert-group", "--runtime", "litert"))
    with WorkerProcess(command, tmp_path / "litert.log") as worker:
        verdicts = [json.loads(m.value()) for m in read(topics["scores"], 300, timeout=120)]
        assert worker.stop(60) == 0, worker.log_tail()
    assert sorted(v["id"] for v in verdicts) == sorted(f"w-{i}" for i in range(300))
    log = worker.log.read_text()
    assert f"loaded from {ecg_artifact} on litert" in log
    assert "XNNPACK" not in log  # LiteRT announces its delegate on stderr by itself: at DEBUG in our log only


def test_litert_on_an_artifact_without_model_tflite_is_one_sentence_and_exit_2(ecg_artifact, topics, tmp_path):
    import shutil

    old = tmp_path / "schema-1"
    shutil.copytree(ecg_artifact, old)
    meta = json.loads((old / "model.json").read_text())
    meta.update(schema_version=1)
    del meta["litert_file"]
    (old / "model.json").write_text(json.dumps(meta))
    done = run_to_exit(without_tensorflow(worker_command(old, "127.0.0.1:1", topics, "g-old", "--runtime", "litert")))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"anomstream worker: {old} has no model.tflite (schema_version 1): retrain it with this anomstream, or use --runtime tensorflow."
    )
