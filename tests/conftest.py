"""Shared fixtures: one Kafka broker per test session, and throwaway topics.

The tests directory has no ``__init__.py`` files: pytest runs with
``--import-mode=importlib`` (set in pyproject.toml), so test modules with the same
name in different folders do not clash; ``stream`` is imported from the
repository root.

Broker choice: ``KAFKA_BOOTSTRAP_SERVERS`` (an external broker) wins; else
``--broker apache|tansu|docker`` (or ``ANOMSTREAM_TEST_BROKER``); else Apache
Kafka when Java and Maven are there, then Docker, then Tansu.

With pytest-xdist (``-n N``, as ``make test`` runs) the controller starts that one broker before the workers
and stops it after them; every worker's ``kafka_broker`` is the same broker (tests keep apart by their own
topics, group and transactional ids), so a run pays for one broker start, not one a worker.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from anomstream.brokers import BROKER_CHOICES, Broker, BrokerError, resolve_test_broker
from anomstream.brokers.external import ExternalKafka
from tests import trained
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


# ---------------------------------------------------------------- one broker for every xdist worker
_SHARED = "anomstream_broker"  # the key of xdist's workerinput that carries the controller's broker
_SHARED_ERROR = pytest.StashKey[tuple[bool, str]]()  # (a skip?, why) when the controller has no broker to share


def _xdist_controller(config: pytest.Config) -> bool:
    return bool(getattr(config.option, "numprocesses", None)) and not hasattr(config, "workerinput")


def _start_broker(config: pytest.Config) -> Broker:
    """The session's broker, started; `unavailable` or a failure with the broker log's tail when it cannot be."""
    choice = config.getoption("--broker")
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
    return broker


class SharedBroker(ExternalKafka):
    """A worker's view of the broker its xdist controller runs (someone else's broker, as for
    KAFKA_BOOTSTRAP_SERVERS): its kind's name, its address and its log."""

    def __init__(self, name: str, bootstrap_servers: str, log: str | None) -> None:
        super().__init__(bootstrap_servers)
        self.name, self.log = name, log

    def log_tail(self, lines: int = 60) -> str:
        if self.log is None:
            return super().log_tail(lines)
        with open(self.log, encoding="utf-8", errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])


def pytest_sessionstart(session: pytest.Session) -> None:
    """The xdist controller starts the broker before its workers exist; they get its address (below). A broker
    that cannot start is the same skip (or CI failure) in every test that needs it, as without xdist."""
    if not _xdist_controller(session.config):
        return
    try:
        session.config.stash[_BROKER] = _start_broker(session.config)
    except (pytest.skip.Exception, pytest.fail.Exception) as exc:
        session.config.stash[_SHARED_ERROR] = (isinstance(exc, pytest.skip.Exception), str(exc.msg))
    except BrokerError as exc:
        session.config.stash[_SHARED_ERROR] = (False, str(exc))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: object) -> None:
    """xdist: hand each worker the controller's broker (or why there is none)."""
    config = node.config  # type: ignore[attr-defined]
    broker = config.stash.get(_BROKER, None)
    if broker is not None:
        log = getattr(broker, "log_path", None)
        shared = {"name": broker.name, "bootstrap": broker.bootstrap_servers, "log": str(log) if log else None}
    else:
        skipped, why = config.stash.get(_SHARED_ERROR, (True, "the xdist controller started no broker"))
        shared = {"error": why, "skip": skipped}
    node.workerinput[_SHARED] = json.dumps(shared)  # type: ignore[attr-defined]


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _xdist_controller(session.config) and (broker := session.config.stash.get(_BROKER, None)) is not None:
        session.config.stash[_BROKER] = None
        broker.stop()


@pytest.fixture(scope="session")
def kafka_broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    """The session's broker, started once and stopped at the end (by the xdist controller, under xdist)."""
    shared = getattr(request.config, "workerinput", {}).get(_SHARED)
    if shared is not None:
        found = json.loads(shared)
        if "error" in found:
            (unavailable if found["skip"] else pytest.fail)(found["error"])  # type: ignore[operator]
        broker: Broker = SharedBroker(found["name"], found["bootstrap"], found["log"])  # type: ignore[assignment]
    else:
        broker = _start_broker(request.config)
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

    if kafka_broker.name != ApacheKafka.name:
        unavailable(f"this test needs the session broker to be Apache Kafka (--broker apache), not {kafka_broker.name}")
    return kafka_broker


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: Broker) -> str:
    """``host:port`` of the session's broker."""
    return kafka_broker.bootstrap_servers


# The modules that take longest (a minute or more of a `make test` run, 2026-12-07). Under xdist (`--dist loadfile`:
# a module's tests, and so its module-scoped brokers, builds and models, stay on one worker) they go out first, so
# that no long module starts last and keeps one worker busy while the others idle; and they alternate between
# modules that keep the cores busy (installs, training, quality tables, the bench) and modules that mostly wait
# (on brokers, quotas, restarts), so that the two cores are neither idle nor fought over four ways at once.
# Order only: a stale list costs minutes, never a result.
LONG_POLES = (
    "tests/benchmarks/test_quality.py",  # computes
    "tests/stream/test_delivery.py",  # waits
    "tests/deploy/test_image_install.py",  # computes
    "tests/stream/test_broker_restart.py",  # waits
    "tests/benchmarks/test_bench.py",  # computes
    "tests/stream/test_chaos.py",  # waits
    "tests/test_packaging.py",  # computes
    "tests/stream/test_stalls.py",  # waits
    "tests/replay/test_demo.py",  # computes
    "tests/stream/test_worker.py",  # waits
    "tests/models/test_commands.py",  # computes
    "tests/stream/test_security.py",  # waits
    "tests/models/test_images.py",  # computes
    "tests/stream/test_worker_cli.py",  # waits
    "tests/models/test_train.py",  # computes
    "tests/replay/test_broker_command.py",  # waits
)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """The long modules first (in LONG_POLES' order), then the rest as collected; tests keep their order within a module."""
    root = Path(str(config.rootpath))
    module = {item: Path(str(item.path)).relative_to(root).as_posix() for item in items}
    position = {name: i for i, name in enumerate(LONG_POLES)}
    for item in items:
        position.setdefault(module[item], len(position) + len(LONG_POLES))
    items.sort(key=lambda item: position[module[item]])


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
    """The tutorial's dense model on the real ECG5000 (about 10 s to train, once per run)."""
    from anomstream.models import data
    from anomstream.models.train import TrainConfig

    return trained.artifact(tmp_path_factory, "ecg-dense", lambda: data.load(data.resolve()), TrainConfig())


@pytest.fixture(scope="session")
def ecg_drift_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tutorial's dense model on ECG5000 with a fifth of the normal training rows held out as the drift
    reference (about 470 windows; about 10 s to train, once per run)."""
    from anomstream.models import data
    from anomstream.models.train import TrainConfig

    config = TrainConfig(reference_holdout=0.2, name="ecg-drift")
    return trained.artifact(tmp_path_factory, "ecg-drift", lambda: data.load(data.resolve()), config)
