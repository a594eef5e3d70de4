"""The worker against a real broker: verdicts, dead letters, transactions, reload, health and metrics."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
import weakref
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from confluent_kafka import Consumer

import anomstream
from anomstream.models import artifact
from anomstream.stream import codec

pytestmark = pytest.mark.integration


def windows_as_json(split, rows=None):
    test = split.test if rows is None else split.test.subset(rows)
    return [
        (b"patient-%d" % (row % 7), codec.encode_window(f"ecg5000-{row}", values, source=f"patient-{row % 7}", ts=1.0, label=int(label)), None)
        for row, values, label in zip(test.rows.tolist(), test.windows, test.labels)
    ]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exported")


def test_verdicts_for_the_whole_test_split_equal_offline_evaluate(ecg_artifact, ecg_split, worker_settings, topics, send, read, start_worker):
    messages = windows_as_json(ecg_split)
    send(topics["input"], messages)
    worker = start_worker(worker_settings)
    verdicts = [json.loads(m.value()) for m in read(topics["scores"], len(messages))]
    anomalies = read(topics["anomalies"], 1)
    worker.stop()

    ids = [v["id"] for v in verdicts]
    assert len(ids) == len(set(ids)) == len(messages) == 1000
    detector = anomstream.load(ecg_artifact, runtime="tensorflow")
    metadata, api = detector.metadata, detector.score(ecg_split.test.windows)
    offline = dict(zip((f"ecg5000-{r}" for r in ecg_split.test.rows), api.errors.tolist()))
    live = {v["id"]: v["error"] for v in verdicts}
    assert live.keys() == offline.keys()
    # The API's errors, to TensorFlow's batch-size-dependent rounding: the worker's batches are at most 512 windows,
    # the API's one call takes all 1,000 (measured: at most one float32 step, ~1.5e-8; LiteRT's are bit-identical).
    np.testing.assert_allclose([live[k] for k in offline], list(offline.values()), rtol=0, atol=5e-8)
    flags = dict(zip(offline, api.anomalous.tolist()))
    near = {k for k in offline if abs(offline[k] - metadata.threshold.value) < 5e-8}  # where that rounding may flip a verdict
    assert {v["id"]: v["anomaly"] for v in verdicts if v["id"] not in near} == {k: f for k, f in flags.items() if k not in near}

    first = verdicts[0]
    assert first["threshold"] == pytest.approx(metadata.threshold.value)
    assert first["score"] == pytest.approx(first["error"] / first["threshold"])
    assert first["anomaly"] == (first["error"] > first["threshold"])
    assert first["model"] == {"name": metadata.name, "version": metadata.version, "sha256": metadata.model_file.sha256}
    assert first["input"]["topic"] == topics["input"] and isinstance(first["input"]["offset"], int)
    assert {"label", "source", "ts", "scored_at"} <= first.keys()
    # The anomalies topic holds exactly the anomalous verdicts.
    expected_anomalies = sorted(v["id"] for v in verdicts if v["anomaly"])
    assert sorted(json.loads(m.value())["id"] for m in read(topics["anomalies"], len(expected_anomalies))) == expected_anomalies
    assert anomalies and len(expected_anomalies) > 300
    # Keys travel with the verdicts.
    assert read(topics["scores"], 1)[0].key().startswith(b"patient-")


def test_on_litert_the_worker_publishes_tensorflows_verdicts(ecg_artifact, ecg_split, worker_settings, topics, send, read, start_worker):
    """`--runtime litert` scores the artifact's model.tflite: the errors are TensorFlow's to float32 rounding."""
    messages = windows_as_json(ecg_split)
    send(topics["input"], messages)
    worker = start_worker(replace(worker_settings, runtime="litert"))
    verdicts = [json.loads(m.value()) for m in read(topics["scores"], len(messages))]
    worker.stop()

    assert worker.worker.model.current.runtime == "litert"
    # On LiteRT the worker's errors are the API's, bit for bit: its kernels give the same result at any batch size.
    litert = anomstream.load(ecg_artifact, runtime="litert").score(ecg_split.test.windows)
    api = {f"ecg5000-{r}": (error, flag) for r, error, flag in zip(ecg_split.test.rows, litert.errors.tolist(), litert.anomalous.tolist())}
    assert {v["id"]: (v["error"], v["anomaly"]) for v in verdicts} == api
    detector = anomstream.load(ecg_artifact, runtime="tensorflow")
    metadata, tensorflow = detector.metadata, detector.score(ecg_split.test.windows)
    offline = dict(zip((f"ecg5000-{r}" for r in ecg_split.test.rows), tensorflow.errors.tolist()))
    live = {v["id"]: v for v in verdicts}
    assert len(verdicts) == len(live) == 1000 and live.keys() == offline.keys()
    np.testing.assert_allclose([live[k]["error"] for k in offline], list(offline.values()), atol=1e-5)
    threshold = metadata.threshold.value
    differing = [k for k in offline if live[k]["anomaly"] != (offline[k] > threshold)]
    assert all(abs(offline[k] - threshold) < 1e-5 for k in differing), differing
    assert {v["model"]["sha256"] for v in verdicts} == {metadata.model_file.sha256}  # the model's identity, whatever runs it


def _metrics_text() -> str:
    """This process's metrics, as a worker in it would serve them."""
    from prometheus_client import REGISTRY, generate_latest

    return generate_latest(REGISTRY).decode()


def test_every_reason_reaches_the_dead_letter_topic_with_the_original_bytes(ecg_split, worker_settings, topics, send, read, start_worker):
    good = windows_as_json(ecg_split, np.arange(6))
    bad = [
        (b"k-empty", b"", None),
        (b"k-json", b"{not json", [("trace", b"abc")]),
        (None, b'{"values": []}', None),
        (b"k-len", codec.encode_window("short", [1.0, 2.0]), None),
        (b"k-nan", b'{"id": "n", "values": [' + b", ".join([b"NaN"] * 140) + b"]}", None),
        (b"k-bin", b"\x00" * 7, [("content-type", codec.F32), ("id", b"b")]),
        (b"k-big", b" " * (codec.MAX_BYTES + 10), None),
    ]
    reasons = ["not_json", "not_json", "bad_schema", "wrong_length", "non_finite", "bad_binary", "too_large"]
    interleaved = [m for pair in itertools.zip_longest(good, bad) for m in pair if m is not None]
    assert len(interleaved) == len(good) + len(bad)
    counted = {reason: metric(_metrics_text(), f'anomstream_invalid_messages_total{{reason="{reason}"}}') for reason in set(reasons)}
    send(topics["input"], interleaved)
    worker = start_worker(worker_settings)
    letters = read(topics["dlq"], len(bad))
    scored = read(topics["scores"], len(good))
    status, text = get(worker.url + "/metrics")
    assert worker.error is None, worker.error
    worker.stop()

    assert sorted(json.loads(m.value())["id"] for m in scored) == sorted(f"ecg5000-{r}" for r in ecg_split.test.rows[:6])
    assert sorted(m.key() or b"" for m in letters) == sorted(key or b"" for key, _, _ in bad)
    by_key = {m.key(): m for m in letters}
    for (key, value, headers), reason in zip(bad, reasons):
        letter = by_key[key]
        assert letter.value() == value  # byte for byte (None and b"" both arrive as an empty value)
        got = dict(letter.headers())
        assert got["error.reason"].decode() == reason
        assert got["error.detail"].decode().endswith(".")
        assert got["source.topic"].decode() == topics["input"]
        assert int(got["source.offset"]) == interleaved.index((key, value, headers))
        for name, original in headers or []:
            assert got[name] == original
    assert status == 200
    for reason in set(reasons):
        # The counters are the process's (other workers of this session counted too): compare the change.
        assert metric(text, f'anomstream_invalid_messages_total{{reason="{reason}"}}') - counted[reason] == reasons.count(reason)


def test_an_aborted_transaction_shows_nothing_and_commits_no_offset(ecg_split, worker_settings, topics, new_topic, send, read, start_worker, kafka_bootstrap):
    """The scores topic refuses every verdict (max.message.bytes below a verdict's size), so the batch's
    transaction must abort: a real broker-side failure. (A dead letter too big for its topic no longer does:
    it is cut to fit, tests/stream/test_dead_letters.py.)"""
    tiny_scores = new_topic(config={"max.message.bytes": "100"})
    send(topics["input"], windows_as_json(ecg_split, np.arange(3)) + [(b"k", b"x" * 5000, None)])
    worker = start_worker(worker_settings, scores_topic=tiny_scores, max_batch=16, max_wait_ms=500)
    worker.thread.join(120)
    assert not worker.thread.is_alive(), "worker should stop after the transaction keeps failing"
    assert "could not be committed" in str(worker.error) or "cannot be retried" in str(worker.error)
    assert read(topics["dlq"], 0, timeout=5) == []  # read_committed: nothing from the aborted batches
    assert len(read(topics["dlq"], 1, timeout=10, committed_only=False)) >= 1  # the dead letter was written, then aborted
    group = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": worker_settings.group_id})
    from confluent_kafka import TopicPartition

    (committed,) = group.committed([TopicPartition(topics["input"], 0)], timeout=10)
    group.close()
    assert committed.offset < 0  # no offset was ever committed for the group


@pytest.mark.parametrize("runtime", ["tensorflow", "litert"])
def test_hot_reload_switches_model_and_a_corrupt_artifact_keeps_the_old(ecg_artifact, ecg_split, worker_settings, topics, send, read, start_worker, tmp_path, runtime):
    live_dir = tmp_path / "live"
    shutil.copytree(ecg_artifact, live_dir)
    worker = start_worker(replace(worker_settings, runtime=runtime), model=live_dir)
    old_version = artifact.read_metadata(live_dir).version
    send(topics["input"], windows_as_json(ecg_split, np.arange(5)))
    assert {json.loads(m.value())["model"]["version"] for m in read(topics["scores"], 5)} == {old_version}

    # A new artifact: same weights, another threshold and version (as `anomstream train` would write).
    meta = json.loads((live_dir / "model.json").read_text())
    meta["version"] = "reloaded-1"
    meta["threshold"]["value"] = 0.5
    (live_dir / "model.json.partial").write_text(json.dumps(artifact.sealed(meta)))
    (live_dir / "model.json.partial").replace(live_dir / "model.json")
    old_model = weakref.ref(worker.worker.model.current)
    assert _eventually(lambda: worker.worker.model.current.metadata.version == "reloaded-1")
    send(topics["input"], windows_as_json(ecg_split, np.arange(5, 10)))
    verdicts = [json.loads(m.value()) for m in read(topics["scores"], 10)]
    assert {v["model"]["version"] for v in verdicts[5:]} == {"reloaded-1"}
    assert {v["threshold"] for v in verdicts[5:]} == {0.5}
    # The replaced model is freed (the worker freezes its start-up heap: stream.heap).
    assert _eventually(lambda: old_model() is None)

    # Now a corrupt one: the old model keeps serving and the failure is counted.
    failed = 'anomstream_model_reloads_total{result="failed"}'
    failed_before = metric(get(worker.url + "/metrics")[1], failed)
    (live_dir / (artifact.MODEL_FILE if runtime == "tensorflow" else artifact.LITERT_FILE)).write_bytes(b"garbage")
    meta["version"] = "broken-2"
    (live_dir / "model.json").write_text(json.dumps(artifact.sealed(meta)))
    assert _eventually(lambda: metric(get(worker.url + "/metrics")[1], failed) > failed_before)
    assert worker.worker.model.current.metadata.version == "reloaded-1"
    send(topics["input"], windows_as_json(ecg_split, np.arange(10, 12)))
    verdicts = [json.loads(m.value()) for m in read(topics["scores"], 12)]
    assert {v["model"]["version"] for v in verdicts[10:]} == {"reloaded-1"}
    _, text = get(worker.url + "/metrics")
    assert metric(text, 'anomstream_model_reloads_total{result="failed"}') - failed_before >= 1  # a half-written model.json can fail once more
    assert f'anomstream_model_info{{name="ecg5000-dense",runtime="{runtime}",version="reloaded-1"}} 1.0' in text
    worker.stop()


def test_by_default_the_worker_runs_litert_when_the_artifact_has_it_and_says_so(ecg_artifact, worker_settings, start_worker, tmp_path, caplog):
    """`--runtime auto`, the default: LiteRT for an artifact with model.tflite, TensorFlow for one without (schema 1),
    decided per artifact; the log and anomstream_model_info's `runtime` label say which. Each copy gets a version of
    its own: the metrics registry is this process's, shared with the other tests' workers."""
    import logging

    def copy(name: str, without_litert: bool) -> Path:
        directory = tmp_path / name
        shutil.copytree(ecg_artifact, directory)
        meta = json.loads((directory / "model.json").read_text())
        meta["version"] = name
        if without_litert:
            meta.pop("litert_file")
            (directory / artifact.LITERT_FILE).unlink()
        (directory / "model.json").write_text(json.dumps(artifact.sealed(meta)))
        return directory

    def info(worker: Any, version: str) -> list[str]:
        return [line for line in get(worker.url + "/metrics")[1].splitlines() if line.startswith("anomstream_model_info{") and version in line]

    worker = start_worker(worker_settings, model=copy("auto-litert", without_litert=False))  # no runtime given: the default
    assert worker.worker.model.current.runtime == "litert"
    assert info(worker, "auto-litert") == ['anomstream_model_info{name="ecg5000-dense",runtime="litert",version="auto-litert"} 1.0']
    worker.stop()

    with caplog.at_level(logging.INFO, logger="anomstream.model"):
        worker = start_worker(worker_settings, model=copy("auto-schema-1", without_litert=True))
    assert worker.worker.model.current.runtime == "tensorflow"
    assert any(" on tensorflow" in record.getMessage() for record in caplog.records if "loaded from" in record.getMessage())
    assert info(worker, "auto-schema-1") == ['anomstream_model_info{name="ecg5000-dense",runtime="tensorflow",version="auto-schema-1"} 1.0']
    worker.stop()


def test_health_readiness_and_counters(ecg_split, worker_settings, topics, send, read, start_worker):
    worker = start_worker(worker_settings)
    assert get(worker.url + "/healthz") == (200, "ok\n")
    assert get(worker.url + "/readyz") == (200, "ok\n")
    assert get(worker.url + "/nothing")[0] == 404
    _, before = get(worker.url + "/metrics")
    send(topics["input"], windows_as_json(ecg_split, np.arange(40)) + [(b"bad", b"{", None)])
    verdicts = [json.loads(m.value()) for m in read(topics["scores"], 40)]
    read(topics["dlq"], 1)
    _, after = get(worker.url + "/metrics")
    worker.stop()

    def delta(name: str) -> float:
        return metric(after, name) - metric(before, name)

    assert delta("anomstream_windows_consumed_total") == 41
    assert delta("anomstream_windows_scored_total") == 40
    assert delta("anomstream_anomalies_total") == sum(v["anomaly"] for v in verdicts)
    assert delta('anomstream_invalid_messages_total{reason="not_json"}') == 1
    assert delta("anomstream_reconstruction_error_count") == 40
    assert metric(after, "anomstream_threshold") == pytest.approx(verdicts[0]["threshold"])


def test_metrics_pass_promtool(ecg_split, worker_settings, topics, send, read, start_worker):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus (.ci/run does)"
    worker = start_worker(worker_settings)
    send(topics["input"], windows_as_json(ecg_split, np.arange(10)) + [(b"bad", b"{", None)])
    read(topics["scores"], 10)
    _, text = get(worker.url + "/metrics")
    worker.stop()
    for name in ("windows_consumed_total", "windows_scored_total", "anomalies_total", "invalid_messages_total",
                 "model_reloads_total", "reconstruction_error", "batch_size", "batch_duration_seconds",
                 "end_to_end_latency_seconds", "threshold", "consumer_lag", "model_info"):
        assert f"# TYPE anomstream_{name} " in text
    done = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "" and done.stderr.strip() == ""


def _eventually(check, timeout: float = 60.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except AssertionError:
            pass
        time.sleep(0.2)
    return False


def test_at_least_once_delivers_everything_and_commits_after_delivery(ecg_split, worker_settings, topics, send, read, start_worker, kafka_bootstrap):
    from confluent_kafka import TopicPartition

    send(topics["input"], windows_as_json(ecg_split, np.arange(300)))
    worker = start_worker(worker_settings, delivery="at-least-once", max_batch=64)
    verdicts = [json.loads(m.value())["id"] for m in read(topics["scores"], 300)]
    worker.stop()
    assert sorted(set(verdicts)) == sorted(f"ecg5000-{r}" for r in ecg_split.test.rows[:300])
    group = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": worker_settings.group_id})
    (committed,) = group.committed([TopicPartition(topics["input"], 0)], timeout=10)
    group.close()
    assert committed.offset == 300  # stored after delivery, committed on shutdown


def test_rebalance_between_two_workers_keeps_exactly_once(ecg_split, worker_settings, new_topic, send, read, start_worker):
    """A second worker joins mid-stream, then the first leaves: every window still gets exactly one verdict."""
    source = new_topic(partitions=4)
    settings = replace(worker_settings, input_topic=source, max_batch=32, kafka={"session.timeout.ms": "6000"})
    rows = np.resize(np.arange(len(ecg_split.test)), 3000)
    test = ecg_split.test
    batch = [(f"k{i % 8}".encode(), codec.encode_window(f"w-{i}", test.windows[r]), None) for i, r in enumerate(rows)]
    first = start_worker(settings)
    send(source, batch[:1000])
    read(settings.scores_topic, 300)
    second = start_worker(settings, transactional_id=settings.transactional_id + "-b")
    send(source, batch[1000:2000])
    first.stop()  # its partitions are revoked: it commits what it holds, the second takes over
    send(source, batch[2000:])
    ids = [json.loads(m.value())["id"] for m in read(settings.scores_topic, 3000, timeout=180)]
    second.stop()
    assert len(ids) == 3000
    assert len(set(ids)) == 3000


def test_a_worker_stays_ready_while_a_second_joins_and_only_half_the_partitions_move(ecg_split, worker_settings, new_topic, send, start_worker):
    """Cooperative rebalancing (the default now; the eager assignor stopped every member on each join): the first
    worker stays ready, over HTTP, while a second joins and takes two of four partitions. Given through -X before,
    cooperative-sticky left /readyz 503 for good, as the revoke marked the worker unassigned while it still
    owned two partitions (measured with the old callbacks: 332 of 386 probes said 503)."""
    source = new_topic(partitions=4)
    settings = replace(worker_settings, input_topic=source, max_batch=32)
    first = start_worker(settings)
    statuses: list[int] = []
    watching = threading.Event()

    def watch() -> None:
        while not watching.is_set():
            try:
                statuses.append(urllib.request.urlopen(first.url + "/readyz", timeout=5).status)
            except urllib.error.HTTPError as exc:
                statuses.append(exc.code)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    test = ecg_split.test
    send(source, [(f"k{i % 8}".encode(), codec.encode_window(f"w-{i}", test.windows[i % len(test)]), None) for i in range(200)])
    second = start_worker(settings, transactional_id=settings.transactional_id + "-b")

    def owned(worker) -> set[int]:
        return {partition for _topic, partition in set(worker.worker.owned)}

    assert _eventually(lambda: len(owned(first)) == 2 and len(owned(second)) == 2, timeout=60)
    time.sleep(2)
    watching.set()
    watcher.join(10)
    assert owned(first) | owned(second) == {0, 1, 2, 3}
    assert statuses and set(statuses) == {200}, f"{statuses.count(503)} of {len(statuses)} probes said 503"
