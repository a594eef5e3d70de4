"""A real Apache Kafka 4.x broker (single node, KRaft) without Docker.

The broker's jars come from Maven Central through ``mvn dependency:copy-dependencies``
on a small generated pom and are cached per version under
``$XDG_CACHE_HOME/anomstream/kafka-<version>/libs`` (``~/.cache`` by default), so
only the first start downloads anything. The broker then runs as
``java -cp 'libs/*' kafka.Kafka server.properties`` with a generated config on
free loopback ports. CI runs the integration suite on it.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path

from anomstream.brokers.base import BrokerError, free_port
from anomstream.brokers.process import ProcessBroker

log = logging.getLogger(__name__)

KAFKA_VERSION = "4.4.0"
# Kafka 4 logs through SLF4J 1.7 and ships log4j2 without a binding: add the bridge.
LOG4J_SLF4J_VERSION = "2.25.5"
MIN_JAVA = 17
_NO_JAVA = f"Java not found on PATH: install OpenJDK {MIN_JAVA}+ to run the Apache Kafka test broker."

_POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.anomstream</groupId>
  <artifactId>kafka-broker-libs</artifactId>
  <version>{kafka}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""

_LOG4J2 = """status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.target = SYSTEM_OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
# Full config dumps (hundreds of lines each) would bury the useful tail: server.properties has them.
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
"""


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/anomstream``, else ``~/.cache/anomstream``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "anomstream"


def maven_command(pom: Path, out_dir: Path) -> list[str]:
    """The Maven call that copies Kafka's runtime jars into ``out_dir``."""
    return [
        "mvn", "-q", "-B", "-Dstyle.color=never", "-f", str(pom), "dependency:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={out_dir}",
    ]  # fmt: skip


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def kafka_libs(version: str = KAFKA_VERSION, cache_dir: Path | None = None) -> Path:
    """Return the directory of Kafka ``version``'s jars, downloading them with Maven once.

    Concurrent callers (parallel test sessions) wait on a file lock instead of racing.
    """
    home = (cache_dir or cache_root()) / f"kafka-{version}"
    libs = home / "libs"
    if (libs / ".complete").exists():
        return libs
    with _locked(home / ".lock"):
        if (libs / ".complete").exists():
            return libs
        if shutil.which("mvn") is None:
            raise BrokerError(
                f"Maven (mvn) not found on PATH: install Maven (apt-get install maven) so the Kafka {version} "
                f"jars can be fetched into {libs}."
            )
        log.info("downloading Kafka %s jars with Maven (first run only) into %s", version, libs)
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="pom-", dir=home) as tmp:
            pom = Path(tmp) / "pom.xml"
            pom.write_text(_POM.format(kafka=version, log4j=LOG4J_SLF4J_VERSION), encoding="utf-8")
            staging = Path(tmp) / "libs"
            try:
                done = subprocess.run(
                    maven_command(pom, staging), capture_output=True, text=True, timeout=900, cwd=tmp
                )
            except subprocess.TimeoutExpired:
                raise BrokerError(f"Maven did not fetch the Kafka {version} jars within 15 minutes: retry.") from None
            if done.returncode != 0 or not (staging / f"kafka_2.13-{version}.jar").exists():
                tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
                raise BrokerError(
                    f"Maven could not fetch the Kafka {version} jars (exit {done.returncode}): check that Maven "
                    f"Central is reachable and the version exists.\n{tail}"
                )
            (staging / ".complete").write_text(version + "\n")
            if libs.exists():
                shutil.rmtree(libs)
            staging.rename(libs)
        log.info("Kafka %s jars cached in %s (%.1f s)", version, libs, time.monotonic() - started)
        return libs


def java_binary() -> str | None:
    """``$JAVA_HOME/bin/java`` when set, else ``java`` on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and os.access(Path(home) / "bin" / "java", os.X_OK):
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


@lru_cache(maxsize=4)
def java_major(java: str) -> int:
    """The Java feature version (8, 11, 17, ...) of ``java``, or 0 when it cannot be told."""
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return 0
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return 0
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def _properties(values: Mapping[str, str]) -> str:
    def esc(text: str) -> str:
        return text.replace("\\", "\\\\").replace("\n", "\\n")

    return "".join(f"{esc(k)}={esc(str(v))}\n" for k, v in values.items())


SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")


def scram_format_args(users: Mapping[str, str], mechanism: str = "SCRAM-SHA-256") -> list[str]:
    """``kafka-storage format`` arguments that create SCRAM credentials (name -> password)."""
    if users and mechanism not in SCRAM_MECHANISMS:
        raise BrokerError(f"SCRAM mechanism {mechanism!r} is not one of {', '.join(SCRAM_MECHANISMS)}.")
    args: list[str] = []
    for name, password in users.items():
        # StorageTool splits the value on these characters; refuse them rather than create another user.
        if not name or not password or re.search(r'[\s,=\[\]"]', name + password):
            raise BrokerError(f"SCRAM user {name!r}: names and passwords must be non-empty, without spaces , = [ ] \".")
        args += ["--add-scram", f"{mechanism}=[name={name},password={password}]"]
    return args


def new_cluster_id() -> str:
    """A KRaft cluster id: a random UUID in Kafka's URL-safe base64 form (22 chars)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")


class ApacheKafka(ProcessBroker):
    """Apache Kafka ``version`` as one combined broker+controller node on loopback.

    ``data_dir`` keeps configs, logs and data across :meth:`restart` and across
    instances (without it, a temporary directory is removed by :meth:`stop`).
    ``server_properties`` override or add any broker setting; ``extra_listeners``
    maps listener names to security protocols (e.g. ``{"SASL": "SASL_PLAINTEXT"}``),
    each on its own free port (see :meth:`listener_bootstrap`); ``format_args`` go
    to ``kafka-storage format`` (e.g. ``--add-scram``) the first time a directory is
    formatted. ``scram_users`` (name -> password) creates those SCRAM credentials at
    format time and enables ``scram_mechanism`` on every ``SASL_PLAINTEXT`` and ``SASL_SSL`` listener,
    adding one named ``SASL`` when there is none.
    """

    name = "kafka"

    def __init__(
        self,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        port: int | None = None,
        controller_port: int | None = None,
        version: str = KAFKA_VERSION,
        server_properties: Mapping[str, str] | None = None,
        extra_listeners: Mapping[str, str] | None = None,
        format_args: Sequence[str] = (),
        scram_users: Mapping[str, str] | None = None,
        scram_mechanism: str = "SCRAM-SHA-256",
        heap: str = "512m",
        java_opts: Sequence[str] = (),
        cache_dir: str | os.PathLike[str] | None = None,
        startup_timeout: float = 90.0,
        stop_timeout: float = 30.0,
    ):
        super().__init__(port=port, startup_timeout=startup_timeout, stop_timeout=stop_timeout)
        self.version = version
        self.controller_port = controller_port or free_port(self.host, avoid=[self.port])
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.server_properties = dict(server_properties or {})
        self.extra_listeners = dict(extra_listeners or {})
        self.scram_users = dict(scram_users or {})
        self.scram_mechanism = scram_mechanism
        if self.scram_users and not any(protocol.startswith("SASL_") for protocol in self.extra_listeners.values()):
            self.extra_listeners["SASL"] = "SASL_PLAINTEXT"
        self.listener_ports: dict[str, int] = {}
        for name in self.extra_listeners:
            self.listener_ports[name] = free_port(self.host, avoid=[self.port, self.controller_port, *self.listener_ports.values()])
        self.format_args = list(format_args) + scram_format_args(self.scram_users, scram_mechanism)
        self.heap = heap
        self.java_opts = list(java_opts)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._java: str | None = None
        self._libs: Path | None = None

    @property
    def title(self) -> str:
        return f"Apache Kafka {self.version}"

    def _new_work_dir(self, given: Path | None = None) -> Path:
        return super()._new_work_dir(self.data_dir)

    @property
    def config_path(self) -> Path:
        return self.work_dir / "server.properties"

    @property
    def log_dir(self) -> Path:
        return self.work_dir / "data"

    def listener_bootstrap(self, listener: str) -> str:
        """``host:port`` of an extra listener given in ``extra_listeners``."""
        return f"{self.host}:{self.listener_ports[listener]}"

    @classmethod
    def missing_tools(cls, version: str = KAFKA_VERSION) -> str | None:
        """None when this machine can run the broker, else a sentence saying what to install."""
        if java_binary() is None:
            return _NO_JAVA
        if not (cache_root() / f"kafka-{version}" / "libs" / ".complete").exists() and shutil.which("mvn") is None:
            return "Maven (mvn) not found on PATH: install Maven to fetch the Apache Kafka jars (first run only)."
        return None

    def broker_properties(self) -> dict[str, str]:
        """The generated ``server.properties`` (before ``server_properties`` overrides)."""
        ports = {"PLAINTEXT": self.port, "CONTROLLER": self.controller_port, **self.listener_ports}
        protocols = {"PLAINTEXT": "PLAINTEXT", "CONTROLLER": "PLAINTEXT", **self.extra_listeners}
        listeners = ",".join(f"{name}://{self.host}:{port}" for name, port in ports.items())
        sasl: dict[str, str] = {}
        if self.scram_users:
            # The credentials live in the cluster metadata (written at format time); the login module only
            # tells the listener to check SCRAM against them.
            sasl["sasl.enabled.mechanisms"] = self.scram_mechanism
            for name, protocol in self.extra_listeners.items():
                if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
                    key = f"listener.name.{name.lower()}.{self.scram_mechanism.lower()}.sasl.jaas.config"
                    sasl[key] = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        return {
            **sasl,
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{self.host}:{self.controller_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listeners": listeners,
            "advertised.listeners": listeners,
            "listener.security.protocol.map": ",".join(f"{n}:{p}" for n, p in protocols.items()),
            "log.dirs": str(self.log_dir),
            "num.partitions": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
        }

    def _prepare(self) -> None:
        java = java_binary()
        if java is None:
            raise BrokerError(_NO_JAVA)
        major = java_major(java)
        if 0 < major < MIN_JAVA:
            raise BrokerError(
                f"{java} is Java {major}: Kafka {self.version} needs Java {MIN_JAVA}+, so install it or set JAVA_HOME."
            )
        self._java = java
        self._libs = kafka_libs(self.version, self.cache_dir)
        (self.work_dir / "log4j2.properties").write_text(_LOG4J2, encoding="utf-8")
        props = {**self.broker_properties(), **self.server_properties}
        self.config_path.write_text(_properties(props), encoding="utf-8")
        if not (self.log_dir / "meta.properties").exists():
            self._format()

    def _java_cmd(self, main: str, *args: str, tool: bool = False) -> list[str]:
        assert self._java is not None and self._libs is not None
        if tool:  # a short-lived command: start fast
            jvm = ["-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]
        else:
            jvm = [f"-Xmx{self.heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", *self.java_opts]
        return [
            self._java, *jvm, "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.work_dir / 'log4j2.properties'}",
            "-cp", f"{self._libs}/*", main, *args,
        ]  # fmt: skip

    def _format(self) -> None:
        """``kafka-storage format`` with a static quorum, so later starts may use other ports."""
        # `--cluster-id=` in one word: an id may start with "-", which argparse would take for a flag.
        args = ["format", f"--cluster-id={new_cluster_id()}", "-c", str(self.config_path), *self.format_args]
        cmd = self._java_cmd("kafka.tools.StorageTool", *args, tool=True)
        with open(self.log_path, "ab") as logfile:
            try:
                done = subprocess.run(cmd, stdout=logfile, stderr=subprocess.STDOUT, timeout=120, cwd=self.work_dir)
                rc = done.returncode
            except subprocess.TimeoutExpired:
                rc = -1
        if rc != 0:
            raise BrokerError(
                f"Formatting the Kafka storage in {self.log_dir} failed (exit {rc}): see the log below.\n"
                f"{self.log_tail(30)}"
            )

    def _command(self) -> tuple[list[str], dict[str, str] | None]:
        return self._java_cmd("kafka.Kafka", str(self.config_path)), None
