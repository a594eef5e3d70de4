"""testcontainers' ``KafkaContainer``, for machines where a Docker engine answers."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from anomstream.brokers.base import BrokerError, wait_until_ready

log = logging.getLogger(__name__)


def docker_available(timeout: float = 2.0) -> bool:
    """True when a Docker engine answers a ping; cheap (no ``docker info`` subprocess)."""
    try:
        import docker

        client = docker.from_env(timeout=int(max(1, timeout)))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


class DockerKafka:
    """testcontainers' ``KafkaContainer`` (Confluent image, KRaft) where a Docker engine answers."""

    name = "docker"

    def __init__(self, image: str = "confluentinc/cp-kafka:7.6.0", startup_timeout: float = 120.0):
        self.image = image
        self.startup_timeout = startup_timeout
        self._container: Any = None
        self._bootstrap: str | None = None

    @property
    def bootstrap_servers(self) -> str:
        if self._bootstrap is None:
            raise BrokerError("The Docker Kafka container is not started: call start() first.")
        return self._bootstrap

    def start(self) -> DockerKafka:
        """Pull/start the container, then wait for metadata and transactions like the others."""
        if self._container is not None:
            return self
        if not docker_available():
            raise BrokerError("No Docker engine answers: start Docker, or use --broker apache or --broker tansu.")
        try:
            from testcontainers.community.kafka import KafkaContainer
        except ImportError:
            try:
                from testcontainers.kafka import KafkaContainer
            except ImportError:
                raise BrokerError("testcontainers is not installed: pip install 'anomstream[test]'.") from None
        started = time.monotonic()
        container = KafkaContainer(self.image).with_kraft()
        # The container leaves these at 3, which a single broker cannot satisfy.
        container.with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        container.with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        try:
            self._container = container.start(timeout=int(self.startup_timeout))
            self._bootstrap = container.get_bootstrap_server()
        except Exception as exc:  # image pull, engine or wait-strategy failure
            with contextlib.suppress(Exception):
                container.stop()
            raise BrokerError(f"The Kafka container {self.image} did not start ({exc}): check the Docker engine.") from exc
        try:
            wait_until_ready(self.bootstrap_servers, self.startup_timeout)
        except BrokerError as exc:
            tail = self.log_tail(40)
            self.stop()
            raise BrokerError(f"{exc}\n--- container log (tail) ---\n{tail}") from None
        log.info("Kafka container ready on %s in %.1f s", self._bootstrap, time.monotonic() - started)
        return self

    def stop(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            container.stop()

    def log_tail(self, lines: int = 60) -> str:
        if self._container is None:
            return "(container not running)"
        out, err = self._container.get_logs()
        text = (out or b"").decode(errors="replace") + (err or b"").decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> DockerKafka:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
