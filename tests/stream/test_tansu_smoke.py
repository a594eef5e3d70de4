"""End-to-end smoke test on Tansu, the embedded broker `anomstream demo` runs on.

Tansu is started here (not by the session fixture) so that CI covers it next to
Apache Kafka. Known gap (see the broker notes): Tansu shows *aborted*
transactional records to read_committed readers, so exactly-once failure paths
are proven on Apache Kafka only; the happy path works on both.
"""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest

from anomstream.stream import codec

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("delivery", ["exactly-once", "at-least-once"])
def test_worker_scores_windows_on_tansu(delivery, ecg_split, tansu_bootstrap, kafka_io, start_worker, worker_settings):
    from confluent_kafka.admin import AdminClient, NewTopic

    names = {role: f"tansu-{role}-{uuid.uuid4().hex[:6]}" for role in ("input", "scores", "anomalies", "dlq")}
    admin = AdminClient({"bootstrap.servers": tansu_bootstrap})
    for future in admin.create_topics([NewTopic(n, num_partitions=1, replication_factor=1) for n in names.values()]).values():
        future.result(timeout=30)
    test = ecg_split.test
    messages = [(None, codec.encode_window(f"ecg5000-{r}", w, label=int(l)), None) for r, w, l in zip(test.rows[:200], test.windows, test.labels)]
    messages += [(None, np.asarray(test.windows[0], dtype="<f4").tobytes(), [("content-type", codec.F32), ("id", b"binary-0")])]
    messages += [(b"bad", b"not json", None)]
    kafka_io.produce(tansu_bootstrap, names["input"], messages)
    worker = start_worker(
        worker_settings,
        bootstrap_servers=tansu_bootstrap,
        input_topic=names["input"],
        scores_topic=names["scores"],
        output_topic=names["anomalies"],
        dlq_topic=names["dlq"],
        delivery=delivery,
        kafka={"session.timeout.ms": "6000"},  # Tansu's first join waits half of it
    )
    verdicts = [json.loads(m.value()) for m in kafka_io.consume(tansu_bootstrap, names["scores"], 201)]
    letters = kafka_io.consume(tansu_bootstrap, names["dlq"], 1)
    worker.stop()
    ids = [v["id"] for v in verdicts]
    assert len(ids) == len(set(ids)) == 201
    assert "binary-0" in ids
    by_id = {v["id"]: v["error"] for v in verdicts}
    assert by_id["binary-0"] == pytest.approx(by_id[f"ecg5000-{test.rows[0]}"], rel=1e-6)  # same window, either format
    assert [m.value() for m in letters] == [b"not json"]
