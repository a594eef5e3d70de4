"""Which broker the tests (and the bench) run on."""

from __future__ import annotations

import logging
import os

from anomstream.brokers.apache_kafka import ApacheKafka
from anomstream.brokers.base import Broker, BrokerError
from anomstream.brokers.docker_kafka import DockerKafka, docker_available
from anomstream.brokers.external import ExternalKafka
from anomstream.brokers.tansu import Tansu, tansu_available

log = logging.getLogger("anomstream.brokers")

BROKER_CHOICES = ("apache", "tansu", "docker")
BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"


def resolve_test_broker(choice: str | None = None, env: dict[str, str] | None = None) -> Broker:
    """Pick the broker for tests (not started yet).

    Order: ``KAFKA_BOOTSTRAP_SERVERS`` if set; else ``choice`` ("apache", "tansu",
    "docker"); else Apache Kafka when Java (and Maven or cached jars) is there, then
    Docker when an engine answers, then Tansu.
    """
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
