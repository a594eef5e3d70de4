"""SASL/SCRAM on a real Apache Kafka broker of this module's own: the worker, `replay` and `validate`
authenticate through `-X` or `--kafka-config`; a wrong password stops them at once with one sentence; and
the password never shows in their output, in the error, or in the worker's /metrics."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from anomstream.brokers import BrokerError
from anomstream.brokers.apache_kafka import ApacheKafka, scram_format_args
from anomstream.stream import codec
from tests.worker_process import WorkerProcess, worker_command

MECHANISM = "SCRAM-SHA-256"
USER = "anomstream-svc"
# Random and long, so that finding either string anywhere can only mean it leaked.
PASSWORD = f"scram-right-{uuid.uuid4().hex}"
WRONG = f"scram-wrong-{uuid.uuid4().hex}"
WINDOWS = 300  # ECG5000 test-split windows per end-to-end run
STARTUP_TIMEOUT_S = 120
FAIL_FAST_S = 30  # a wrong password must stop start-up well inside the start-up timeout


class SaslKafka:
    """The broker and how a client reaches its SASL_PLAINTEXT listener."""

    def __init__(self, broker: ApacheKafka) -> None:
        self.broker = broker
        self.bootstrap = broker.listener_bootstrap("SASL")

    def config(self, password: str = PASSWORD) -> dict[str, str]:
        return {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": MECHANISM,
            "sasl.username": USER,
            "sasl.password": password,
        }


@pytest.fixture(scope="module")
def sasl_kafka() -> Iterator[SaslKafka]:
    """Apache Kafka with a SCRAM listener and one user created at format time (its PLAINTEXT listener is
    only for the readiness probe: every client in these tests goes through SASL)."""
    from tests.needs import unavailable

    missing = ApacheKafka.missing_tools()
    if missing:
        unavailable(missing)
    broker = ApacheKafka(scram_users={USER: PASSWORD}, scram_mechanism=MECHANISM)
    try:
        broker.start()
    except BrokerError as exc:
        pytest.fail(f"Could not start the SASL test broker: {exc}", pytrace=False)
    try:
        yield SaslKafka(broker)
    finally:
        broker.stop()


def create_topics(sasl: SaslKafka, *roles: str) -> dict[str, str]:
    """Fresh one-partition topics, created by an authenticated admin client."""
    admin = AdminClient(sasl.config())
    names = {role: f"sec-{role}-{uuid.uuid4().hex[:8]}" for role in roles}
    futures = admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1) for name in names.values()])
    for future in futures.values():
        future.result(timeout=60)
    return names


@pytest.fixture
def sasl_topics(sasl_kafka: SaslKafka) -> dict[str, str]:
    return create_topics(sasl_kafka, "input", "scores", "anomalies", "dlq")


@pytest.fixture(scope="module")
def ecg_csv() -> str:
    from anomstream.models import data

    return str(data.resolve())


def produce(sasl: SaslKafka, topic: str, values: list[bytes]) -> None:
    producer = Producer({**sasl.config(), "enable.idempotence": True, "linger.ms": 5})
    for value in values:
        producer.produce(topic, value)
    assert producer.flush(60) == 0


def read(sasl: SaslKafka, topic: str, expected: int, timeout: float = 60.0) -> list[bytes]:
    """Everything in `topic` (read_committed) once `expected` values arrived, or at the timeout."""
    consumer = Consumer({**sasl.config(), "group.id": f"reader-{uuid.uuid4().hex[:8]}", "isolation.level": "read_committed"})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expected and time.monotonic() < deadline:
            out += [m.value() for m in consumer.consume(500, timeout=0.5) if m.error() is None]
    finally:
        consumer.close()
    return out


def records_written(sasl: SaslKafka, topic: str) -> int:
    """The topic's high watermark: every record ever written, aborted transactions and markers included."""
    consumer = Consumer({**sasl.config(), "group.id": f"wm-{uuid.uuid4().hex[:8]}"})
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)[1]
    finally:
        consumer.close()


def auth_args(how: str, password: str, tmp_path: Path) -> list[str]:
    """The same four librdkafka properties as `-X` flags or in a `--kafka-config` file."""
    pairs = [f"sasl.mechanism={MECHANISM}", "security.protocol=SASL_PLAINTEXT", f"sasl.username={USER}", f"sasl.password={password}"]
    if how == "-X":
        return [arg for pair in pairs for arg in ("-X", pair)]
    path = tmp_path / f"client-{uuid.uuid4().hex[:6]}.properties"
    path.write_text("# SASL/SCRAM for the test broker\n" + "\n".join(pairs) + "\n")
    return ["--kafka-config", str(path)]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "anomstream", *args]


def sasl_worker_command(model: Path, sasl: SaslKafka, topics: dict[str, str], auth: list[str]) -> list[str]:
    return worker_command(
        model, sasl.bootstrap, topics, f"g-{uuid.uuid4().hex[:8]}", "--startup-timeout-s", str(STARTUP_TIMEOUT_S), *auth,
    )


def run(command: list[str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANOMSTREAM_LOG_LEVEL": "INFO"}
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def sample(body: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", body, re.MULTILINE)
    assert found, f"{name} is not in /metrics"
    return float(found.group(1))


@pytest.mark.integration
@pytest.mark.parametrize("how", ["-X", "--kafka-config"])
def test_replay_worker_and_validate_score_end_to_end_over_scram(
    how: str, sasl_kafka: SaslKafka, sasl_topics: dict[str, str], ecg_artifact: Path, ecg_csv: str, tmp_path: Path
) -> None:
    """Right credentials: every replayed window gets exactly one verdict, read back through SASL."""
    auth = auth_args(how, PASSWORD, tmp_path)
    out, err = tmp_path / "worker.out", tmp_path / "worker.err"
    command = sasl_worker_command(ecg_artifact, sasl_kafka, sasl_topics, auth)
    with WorkerProcess(command, err, stdout=out, env={**os.environ, "ANOMSTREAM_LOG_LEVEL": "INFO"}) as worker:
        # --metrics-port 0: the port it bound is in its log (written before it loads the model).
        bound = worker.wait_for(lambda: re.search(r"/readyz on http://127\.0\.0\.1:(\d+)", err.read_text()), 120, "starting")
        worker.port = int(bound.group(1))
        selection = ["--data", ecg_csv, "--limit", str(WINDOWS), "--bootstrap-servers", sasl_kafka.bootstrap, *auth, "--json"]
        replayed = run(cli("replay", "--topic", sasl_topics["input"], *selection))
        assert replayed.returncode == 0, replayed.stderr[-3000:]
        assert json.loads(replayed.stdout)["acknowledged"] == WINDOWS
        validated = run(cli("validate", "--scores-topic", sasl_topics["scores"], "--timeout-s", "150", *selection))
        assert validated.returncode == 0, validated.stderr[-3000:] + err.read_text()[-3000:]
        summary = json.loads(validated.stdout)
        assert (summary["received"], summary["missing"], summary["duplicates"]) == (WINDOWS, 0, 0)
        confusion = summary["test"]["confusion"]
        flagged = confusion["normal_as_anomaly"] + confusion["anomaly_as_anomaly"]
        assert flagged > 0, "the ECG test split has anomalies: the anomaly topic must get some"
        anomalies = [json.loads(value) for value in read(sasl_kafka, sasl_topics["anomalies"], flagged)]
        assert len(anomalies) == flagged and all(verdict["anomaly"] for verdict in anomalies)
        body = worker.metrics(timeout=10)
        assert sample(body, "anomstream_windows_scored_total") == WINDOWS
        code = worker.stop(60)
    assert code == 0, err.read_text()[-3000:]
    logs = err.read_text()
    assert "'sasl.password': '***'" in logs, "the worker logs its Kafka properties, the password masked"
    texts = {"worker stdout": out.read_text(), "worker stderr": logs, "/metrics": body, "replay": replayed.stdout + replayed.stderr,
             "validate": validated.stdout + validated.stderr}  # fmt: skip
    assert [where for where, text in texts.items() if PASSWORD in text] == []
    assert [where for where, text in texts.items() if re.search(r"^%\d\|", text, re.MULTILINE)] == [], "raw librdkafka lines"


def stderr_lines(stderr: str) -> list[str]:
    """stderr's lines, none of them librdkafka's own raw log lines (`%3|<ts>|FAIL|...`): those go through
    our logging (stream.clients.create), so none can print after our final sentence as a client is torn down."""
    lines = stderr.strip().splitlines()
    assert [line for line in lines if re.match(r"%\d\|", line)] == [], stderr[-3000:]
    return lines


def refused(command: str, sasl: SaslKafka) -> re.Pattern[str]:
    """The one sentence a refused login ends with: what happened, librdkafka's reason, what to check."""
    return re.compile(
        rf"anomstream {command}: Kafka at {re.escape(sasl.bootstrap)} refused the credentials \(.*SASL authentication error: "
        rf"Authentication failed during authentication due to invalid credentials with SASL mechanism {MECHANISM}.*\): "
        r"check sasl\.mechanism, sasl\.username and sasl\.password\."
    )


def connecting_at(stderr: str) -> float:
    """Wall-clock time of the worker's "connecting to Kafka" log line."""
    found = re.search(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO anomstream\.kafka: connecting to Kafka", stderr, re.MULTILINE)
    assert found, stderr[-3000:]
    return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


@pytest.mark.integration
def test_worker_with_a_wrong_password_fails_fast_with_one_sentence_and_writes_nothing(
    sasl_kafka: SaslKafka, sasl_topics: dict[str, str], ecg_artifact: Path, ecg_split, tmp_path: Path
) -> None:
    """Waiting out the start-up timeout would hide a credential typo behind "broker down"."""
    produce(sasl_kafka, sasl_topics["input"], [codec.encode_window(f"w-{i}", ecg_split.test.windows[i]) for i in range(50)])
    done = run(sasl_worker_command(ecg_artifact, sasl_kafka, sasl_topics, auth_args("-X", WRONG, tmp_path)), timeout=STARTUP_TIMEOUT_S + 60)
    ended = time.time()
    assert done.returncode == 2, done.stderr[-3000:]
    lines = stderr_lines(done.stderr)
    assert refused("worker", sasl_kafka).fullmatch(lines[-1]), lines[-1]
    assert [line for line in lines if line.startswith("anomstream worker:")] == [lines[-1]]
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert ended - connecting_at(done.stderr) < FAIL_FAST_S, f"start-up timeout {STARTUP_TIMEOUT_S} s"
    assert [where for where in ("stdout", "stderr") if WRONG in getattr(done, where) or PASSWORD in getattr(done, where)] == []
    assert {role: records_written(sasl_kafka, topic) for role, topic in sasl_topics.items()} == {
        "input": 50, "scores": 0, "anomalies": 0, "dlq": 0,
    }  # fmt: skip


@pytest.mark.integration
@pytest.mark.parametrize("command", ["replay", "validate"])
def test_replay_and_validate_with_a_wrong_password_fail_fast_with_one_sentence(
    command: str, sasl_kafka: SaslKafka, ecg_csv: str, tmp_path: Path
) -> None:
    """The tools share the worker's connection flags, so they share its clear refusal too."""
    topic = create_topics(sasl_kafka, "tool")["tool"]
    where = ["--topic", topic] if command == "replay" else ["--scores-topic", topic, "--timeout-s", "60"]
    auth = auth_args("--kafka-config", WRONG, tmp_path)
    started = time.monotonic()
    done = run(cli(command, "--data", ecg_csv, "--limit", "20", "--bootstrap-servers", sasl_kafka.bootstrap, *where, *auth, "--json"))
    elapsed = time.monotonic() - started
    assert done.returncode == 2, done.stderr[-3000:]
    last = stderr_lines(done.stderr)[-1]
    assert refused(command, sasl_kafka).fullmatch(last), last
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert WRONG not in done.stderr
    assert elapsed < FAIL_FAST_S
    assert records_written(sasl_kafka, topic) == 0


def test_scram_users_that_the_storage_tool_would_misparse_are_refused() -> None:
    """`name=a,password=b` is split on , = [ ]: a password holding one would create some other user."""
    assert scram_format_args({"alice": "s3cret-pw"}, "SCRAM-SHA-512") == ["--add-scram", "SCRAM-SHA-512=[name=alice,password=s3cret-pw]"]
    for name, password in [("alice", "a,b"), ("alice", "x]y"), ("al=ice", "pw"), ("alice", "")]:
        with pytest.raises(BrokerError, match="names and passwords must be non-empty"):
            scram_format_args({name: password})
    with pytest.raises(BrokerError, match="is not one of SCRAM-SHA-256, SCRAM-SHA-512"):
        scram_format_args({"alice": "pw"}, "PLAIN")


# --- SASL_SSL with SCRAM-SHA-512, the README's own example, with certificates made here ----------------------

TLS_MECHANISM = "SCRAM-SHA-512"


def openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"openssl {' '.join(args)}: {done.stderr}"


def make_ca(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2",
            "-subj", f"/CN={name}", cwd=directory)  # fmt: skip
    return directory / f"{name}.crt"


def make_server_keystore(directory: Path, ca: str) -> Path:
    """A key and a certificate for 127.0.0.1 signed by `ca`, as the one PEM file Kafka's PEM keystore reads."""
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=directory)
    openssl("x509", "-req", "-in", "server.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial", "-out", "server.crt",
            "-days", "2", "-extfile", "san.ext", cwd=directory)  # fmt: skip
    openssl("pkcs8", "-topk8", "-nocrypt", "-in", "server.key", "-out", "server.pk8", cwd=directory)  # Kafka wants PKCS#8
    keystore = directory / "server.pem"
    keystore.write_text((directory / "server.pk8").read_text() + (directory / "server.crt").read_text())
    return keystore


class TlsKafka:
    def __init__(self, broker: ApacheKafka, ca: Path, other_ca: Path) -> None:
        self.broker, self.ca, self.other_ca = broker, ca, other_ca
        self.bootstrap = broker.listener_bootstrap("SASL_SSL")

    def properties(self, password: str = PASSWORD, ca: Path | None = None) -> list[str]:
        """The README's example, as -X flags: SASL_SSL, SCRAM-SHA-512, and the CA to trust."""
        pairs = [
            "security.protocol=SASL_SSL", f"sasl.mechanism={TLS_MECHANISM}", f"sasl.username={USER}",
            f"sasl.password={password}", f"ssl.ca.location={ca or self.ca}",
        ]  # fmt: skip
        return [arg for pair in pairs for arg in ("-X", pair)]

    def config(self) -> dict[str, str]:
        return {"bootstrap.servers": self.bootstrap, "security.protocol": "SASL_SSL", "sasl.mechanism": TLS_MECHANISM,
                "sasl.username": USER, "sasl.password": PASSWORD, "ssl.ca.location": str(self.ca)}  # fmt: skip


@pytest.fixture(scope="module")
def tls_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsKafka]:
    from tests.needs import unavailable

    missing = ApacheKafka.missing_tools()
    if missing:
        unavailable(missing)
    certs = tmp_path_factory.mktemp("tls")
    ca = make_ca(certs, "test-ca")
    other_ca = make_ca(certs / "other", "other-ca")
    keystore = make_server_keystore(certs, "test-ca")
    broker = ApacheKafka(
        extra_listeners={"SASL_SSL": "SASL_SSL"}, scram_users={USER: PASSWORD}, scram_mechanism=TLS_MECHANISM,
        server_properties={"listener.name.sasl_ssl.ssl.keystore.type": "PEM", "listener.name.sasl_ssl.ssl.keystore.location": str(keystore)},
    )  # fmt: skip
    try:
        broker.start()
    except BrokerError as exc:
        pytest.fail(f"Could not start the SASL_SSL test broker: {exc}", pytrace=False)
    try:
        yield TlsKafka(broker, ca, other_ca)
    finally:
        broker.stop()


def tls_topics(tls: TlsKafka) -> dict[str, str]:
    admin = AdminClient(tls.config())
    names = {role: f"tls-{role}-{uuid.uuid4().hex[:8]}" for role in ("input", "scores", "anomalies", "dlq")}
    for future in admin.create_topics([NewTopic(name, 1, 1) for name in names.values()]).values():
        future.result(timeout=60)
    return names


@pytest.mark.integration
def test_over_sasl_ssl_with_scram_sha_512_the_worker_scores_and_nothing_secret_is_logged(tls_kafka: TlsKafka, ecg_artifact: Path, ecg_split, tmp_path: Path) -> None:
    topics = tls_topics(tls_kafka)
    producer = Producer({**tls_kafka.config(), "enable.idempotence": True})
    for i in range(100):
        producer.produce(topics["input"], codec.encode_window(f"tls-{i}", ecg_split.test.windows[i]))
    assert producer.flush(60) == 0
    command = worker_command(ecg_artifact, tls_kafka.bootstrap, topics, f"g-{uuid.uuid4().hex[:8]}", *tls_kafka.properties())
    err = tmp_path / "worker.err"
    with WorkerProcess(command, err, env={**os.environ, "ANOMSTREAM_LOG_LEVEL": "INFO"}) as worker:
        consumer = Consumer({**tls_kafka.config(), "group.id": f"r-{uuid.uuid4().hex[:6]}", "isolation.level": "read_committed"})
        consumer.assign([TopicPartition(topics["scores"], 0, OFFSET_BEGINNING)])
        seen: set[str] = set()
        deadline = time.monotonic() + 120
        while len(seen) < 100 and time.monotonic() < deadline and worker.alive:
            seen |= {json.loads(m.value())["id"] for m in consumer.consume(200, timeout=0.5) if m.error() is None}
        consumer.close()
        code = worker.stop(60)
    logs = err.read_text()
    assert seen == {f"tls-{i}" for i in range(100)}, logs[-3000:]
    assert code == 0, logs[-3000:]
    assert PASSWORD not in logs and "'sasl.password': '***'" in logs and "'sasl.username': '***'" in logs


@pytest.mark.integration
@pytest.mark.parametrize("wrong", ["ca", "password"])
def test_over_sasl_ssl_a_wrong_ca_or_password_is_refused_at_once_with_one_sentence(
    wrong: str, tls_kafka: TlsKafka, ecg_artifact: Path, tmp_path: Path
) -> None:
    topics = tls_topics(tls_kafka)
    props = tls_kafka.properties(password=WRONG) if wrong == "password" else tls_kafka.properties(ca=tls_kafka.other_ca)
    started = time.monotonic()
    done = run(worker_command(ecg_artifact, tls_kafka.bootstrap, topics, "g-wrong", "--runtime", "litert", "--startup-timeout-s", "120", *props))
    elapsed = time.monotonic() - started
    assert done.returncode == 2, done.stderr[-3000:]
    last = stderr_lines(done.stderr)[-1]
    if wrong == "ca":
        assert last.startswith(f"anomstream worker: the TLS handshake with Kafka at {tls_kafka.bootstrap} failed (") and "certificate verify failed" in last, last
        assert last.endswith("check ssl.ca.location (the CA that signed the broker's certificate) and that this address speaks TLS."), last
    else:
        assert f"Kafka at {tls_kafka.bootstrap} refused the credentials" in last and "SCRAM-SHA-512" in last, last
    assert elapsed < FAIL_FAST_S + 10, f"waited {elapsed:.0f} s: the start-up timeout is 120 s"
    assert PASSWORD not in done.stderr and WRONG not in done.stderr and "Traceback" not in done.stderr
