"""The worker's settings: one frozen object, built once from the flags and `ANOMSTREAM_*` variables."""

from __future__ import annotations

import argparse
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from anomstream.config import check_ranges, from_namespace, kafka_properties
from anomstream.errors import ConfigError
from anomstream.stream.delivery import GIVE_UP_S

# The longest the worker's loop may go without polling: a transactional call, or a delivery retried that long.
POLLS_AT_LEAST_EVERY_S = GIVE_UP_S

# librdkafka properties the worker sets itself, because its delivery guarantee rests on them: through -X or
# --kafka-config they are refused with the reason, not applied last and silently (README, "Configuration").
OWNED_PROPERTIES = {
    "group.id": "use --group-id",
    "group.instance.id": "use --instance-id, which also gives the replica its transactional id",
    "transactional.id": "use --transactional-id",
    "transaction.timeout.ms": "use --transaction-timeout-ms",
    "auto.commit.interval.ms": "use --commit-interval-ms",
    "isolation.level": "the worker reads its input read_committed, so that windows of aborted upstream transactions are never scored",
    "enable.idempotence": "the worker's producer is idempotent in both delivery modes, so that a retried send is never written twice",
    "enable.auto.commit": "--delivery decides how the input offsets are committed",
    "enable.auto.offset.store": "--delivery decides how the input offsets are committed",
    "message.max.bytes": "the worker's producer takes any record the broker accepted, so that every bad input can be dead-lettered",
}


@dataclass(frozen=True)
class WorkerSettings:
    """Everything the worker is told, checked once at start-up."""

    model: Path
    runtime: str = "auto"
    litert_threads: int = 1
    bootstrap_servers: str = "localhost:9092"
    input_topic: str = "telemetry-windows"
    scores_topic: str = "telemetry-scores"
    output_topic: str = "telemetry-anomalies"
    dlq_topic: str = "telemetry-windows-dlq"
    group_id: str = "anomstream"
    delivery: str = "exactly-once"
    transactional_id: str = ""
    instance_id: str = ""
    max_batch: int = 512
    explain: str = "range"
    max_wait_ms: int = 50
    commit_interval_ms: int = 100
    transaction_timeout_ms: int = 10_000
    drift_window: int = 1000
    drift_max_age_s: float = 600.0
    drift_min_windows: int = 200
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 9100
    reload_interval_s: float = 5.0
    startup_timeout_s: float = 60.0
    create_topics: bool = False
    kafka: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        max_poll = self.kafka.get("max.poll.interval.ms", "300000")
        if not max_poll.isdigit() or int(max_poll) < POLLS_AT_LEAST_EVERY_S * 1000:
            raise ConfigError(
                f"-X max.poll.interval.ms={max_poll} is below {POLLS_AT_LEAST_EVERY_S * 1000:.0f}: the worker may wait on Kafka that"
                f" long without polling (it retries a slow or restarting broker for {GIVE_UP_S:.0f} s), and the group would evict it"
                " mid-commit; give at least that (librdkafka's default is 300000)."
            )
        if self.exactly_once and self.transaction_timeout_ms < 2 * self.commit_interval_ms + 1000:
            raise ConfigError(
                f"--transaction-timeout-ms {self.transaction_timeout_ms} is too short for --commit-interval-ms"
                f" {self.commit_interval_ms}: the broker would abort transactions still being filled; give it at least"
                f" {2 * self.commit_interval_ms + 1000}."
            )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> WorkerSettings:
        check_ranges(
            "worker",
            ("--litert-threads", args.litert_threads, 1 <= args.litert_threads <= 256),
            ("--max-batch", args.max_batch, 1 <= args.max_batch <= 100_000),
            ("--max-wait-ms", args.max_wait_ms, 0 <= args.max_wait_ms <= 60_000),
            ("--commit-interval-ms", args.commit_interval_ms, 0 <= args.commit_interval_ms <= 60_000),
            ("--transaction-timeout-ms", args.transaction_timeout_ms, args.transaction_timeout_ms >= 1000),
            ("--metrics-port", args.metrics_port, 0 <= args.metrics_port <= 65535),
            ("--reload-interval-s", args.reload_interval_s, args.reload_interval_s >= 0),
            ("--drift-window", args.drift_window, 10 <= args.drift_window <= 1_000_000),
            ("--drift-max-age-s", args.drift_max_age_s, args.drift_max_age_s > 0),
            ("--drift-min-windows", args.drift_min_windows, 1 <= args.drift_min_windows <= args.drift_window),
            ("--startup-timeout-s", args.startup_timeout_s, args.startup_timeout_s > 0),
        )
        from anomstream.models.runtimes import check_available

        check_available(args.runtime)
        if args.input_topic in (args.scores_topic, args.output_topic, args.dlq_topic):
            raise ConfigError(f"--input-topic {args.input_topic} is also an output topic: the worker would read its own verdicts.")
        kafka = kafka_properties(args.kafka_property, args.kafka_config)
        for key in kafka:
            if key in OWNED_PROPERTIES:
                raise ConfigError(f"-X {key} (or --kafka-config) cannot be set for the worker: {OWNED_PROPERTIES[key]}.")
        return from_namespace(
            cls,
            args,
            model=Path(args.model),
            transactional_id=args.transactional_id or default_transactional_id(args.group_id, args.instance_id),
            kafka=kafka,
        )

    @property
    def exactly_once(self) -> bool:
        return self.delivery == "exactly-once"

    def consumer_identity(self) -> dict[str, str]:
        """Static membership when the replica has a stable name: a restart within the session timeout rejoins
        without a rebalance."""
        return {"group.instance.id": self.instance_id} if self.instance_id else {}

    def common_config(self) -> dict[str, str]:
        return {"bootstrap.servers": self.bootstrap_servers, "client.id": "anomstream-worker", **self.kafka}




def default_transactional_id(group: str, instance_id: str) -> str:
    """A replica's own id: its stable name when it has one, so a successor aborts a crashed predecessor's open
    transaction at once; else unique per process (the host name and a random part; a pid is 1 in every container,
    and two replicas with one host name fenced each other in a loop), and the broker aborts it after
    --transaction-timeout-ms."""
    if instance_id:
        return f"anomstream-{group}-{instance_id}"
    return f"anomstream-{group}-{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
