"""Shared fixtures: one Kafka broker per test session, and throwaway topics.

The tests directory has no ``__init__.py`` files: pytest runs with
``--import-mode=importlib`` (set in pyproject.toml), so test modules with the same
name in different folders do not clash; ``stream`` is imported from the
repository root.

Broker choice: ``KAFKA_BOOTSTRAP_SERVERS`` (an external broker) wins; else
``--broker apache|tansu|docker`` (or ``ANOMSTREAM_TEST_BROKER``); else Apache
Kafka when Java and Maven are there, then Docker, then Tansu.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from anomstream.brokers import BROKER_CHOICES, Broker, BrokerError, resolve_test_broker
from tests.needs import unavailable

_BROKER = pytest.StashKey["Broker | None"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--broker",
        choices=BROKER_CHOICES,
        default=os.environ.get("ANOMSTREAM_TEST_BROKER") or None,
        help="Kafka broker for integration tests (default: apache if Java+Maven, else docker, else tansu; "
        "KAFKA_BOOTSTRAP_SERVERS overrides all).",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: needs a real Kafka broker (the session fixture starts one)")
    config.addinivalue_line("markers", "chaos: crash, restart and rebalance tests on a real broker")
    config.stash[_BROKER] = None


@pytest.fixture(scope="session")
def kafka_broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    """The session's broker, started once and stopped at the end."""
    choice = request.config.getoption("--broker")
    try:
        broker = resolve_test_broker(choice)
    except BrokerError as exc:
        if choice is None:  # nothing usable and nothing asked for: integration tests cannot run here
            unavailable(str(exc))
        raise
    try:
        broker.start()
    except BrokerError as exc:
        # The message already carries the broker log's tail.
        pytest.fail(f"Could not start the {broker.name} test broker: {exc}", pytrace=False)
    request.config.stash[_BROKER] = broker
    try:
        yield broker
    finally:
        request.config.stash[_BROKER] = None
        broker.stop()


@pytest.fixture(scope="session")
def apache_kafka(kafka_broker: Broker) -> Broker:
    """The session broker, when it is Apache Kafka: for behaviour Tansu does not have (broker-side limits,
    aborted transactions hidden from read_committed readers)."""
    from anomstream.brokers import ApacheKafka

    if not isinstance(kafka_broker, ApacheKafka):
        unavailable(f"this test needs the session broker to be Apache Kafka (--broker apache), not {kafka_broker.name}")
    return kafka_broker


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: Broker) -> str:
    """``host:port`` of the session's broker."""
    return kafka_broker.bootstrap_servers


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the broker log's tail to the report of every failed test that used the broker."""
    outcome = yield
    report = outcome.get_result()
    broker = item.config.stash.get(_BROKER, None)
    if report.failed and broker is not None and "kafka_broker" in getattr(item, "fixturenames", ()):
        report.sections.append((f"{broker.name} broker log (tail)", broker.log_tail(80)))


def _wait_for_topic(admin: object, topic: str, partitions: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        md = admin.list_topics(topic=topic, timeout=5)  # type: ignore[attr-defined]
        meta = md.topics.get(topic)
        if (
            meta is not None
            and meta.error is None
            and len(meta.partitions) == partitions
            and all(p.leader >= 0 for p in meta.partitions.values())
        ):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {topic} has no leaders for its {partitions} partitions after {timeout} s")
        time.sleep(0.1)


@pytest.fixture
def new_topic(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Iterator[Callable[..., str]]:
    """Create uniquely named topics (``new_topic(partitions=1, config=None)``), ready to use.

    The topics are deleted after the test (best effort: a broker may not support it).
    """
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    created: list[str] = []
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name)[:40]

    def make(partitions: int = 1, config: dict[str, str] | None = None) -> str:
        name = f"t-{stem}-{uuid.uuid4().hex[:8]}"
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
            operation_timeout=30,
            request_timeout=30,
        )
        futures[name].result(timeout=60)
        created.append(name)
        _wait_for_topic(admin, name, partitions, timeout=30)
        return name

    yield make
    if created:
        try:
            for future in admin.delete_topics(created, operation_timeout=10).values():
                future.result(timeout=15)
        except Exception:  # cleanup only
            pass


@pytest.fixture
def topic_factory(new_topic: Callable[..., str]) -> Callable[..., str]:
    """Alias of :func:`new_topic`."""
    return new_topic


@pytest.fixture(scope="session")
def ecg_split():
    from anomstream.models import data

    return data.split(data.load(data.resolve()))


@pytest.fixture(scope="session")
def ecg_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tutorial's dense model on the real ECG5000 (about 10 s to train)."""
    from anomstream.models import artifact, data
    from anomstream.models.train import TrainConfig, train

    result = train(data.load(data.resolve()), TrainConfig())
    out = tmp_path_factory.mktemp("ecg") / "ecg-dense"
    artifact.save(out, result.model, result.metadata_fields, result.fitted)
    return out


@pytest.fixture(scope="session")
def ecg_drift_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tutorial's dense model on ECG5000 with a fifth of the normal training rows held out as the drift
    reference (about 470 windows; about 10 s to train)."""
    from anomstream.models import artifact, data
    from anomstream.models.train import TrainConfig, train

    result = train(data.load(data.resolve()), TrainConfig(reference_holdout=0.2, name="ecg-drift"))
    out = tmp_path_factory.mktemp("ecg") / "ecg-drift"
    artifact.save(out, result.model, result.metadata_fields, result.fitted)
    return out
