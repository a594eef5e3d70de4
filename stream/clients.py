"""Kafka clients for the worker: configuration, waiting for the broker, checking topics.

Every client the product builds goes through :func:`create`, which routes librdkafka's own log lines
(``%3|...|FAIL|...``) through Python logging, so they never print raw on stderr after our last sentence.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from anomstream.config import redact
from anomstream.errors import AnomstreamError, ConfigError
from anomstream.stream.settings import WorkerSettings

log = logging.getLogger("anomstream.kafka")
LIBRDKAFKA_LOG = logging.getLogger("anomstream.librdkafka")  # librdkafka's own lines, via `create`

PRODUCER_MAX_BYTES = 8 * 1024 * 1024  # the worker's producer message.max.bytes (see producer_config)
AUTH_ERRORS = {KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED, KafkaError.TOPIC_AUTHORIZATION_FAILED}


class BrokerUnavailable(AnomstreamError):
    """Kafka did not answer within the start-up timeout."""


class ErrorWatch:
    """librdkafka's `error_cb`: remembers credential failures so start-up can stop at once,
    and reports when every broker is down (a restart, an outage) so /readyz can say so."""

    def __init__(self, on_all_down: Callable[[], None] | None = None) -> None:
        self.auth_failure: str | None = None
        self.tls_failure: str | None = None  # a TLS handshake that failed (an untrusted certificate, not TLS at all)
        self.on_all_down = on_all_down

    def __call__(self, error: KafkaError) -> None:
        self._remember(error)
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            log.warning("all Kafka brokers are down; librdkafka keeps reconnecting")
            if self.on_all_down:
                self.on_all_down()
        else:
            log.debug("librdkafka: %s", error)

    def record_auth(self, error: KafkaError) -> None:
        """`error_cb` during start-up: only credential and TLS failures matter; the retry loop reports the rest."""
        if not self._remember(error):
            log.debug("librdkafka: %s", error)

    def _remember(self, error: KafkaError) -> bool:
        if error.code() in AUTH_ERRORS:
            self.auth_failure = error.str()
        elif error.code() == KafkaError._SSL:
            self.tls_failure = error.str()
        else:
            return False
        return True


FETCH_QUEUE_BACKOFF_MS = 20  # -X fetch.queue.backoff.ms=... to change


def consumer_config(
    settings: WorkerSettings,
    errors: ErrorWatch,
    on_brokers: Callable[[bool], None] | None = None,
    on_partitions: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "group.id": settings.group_id,
        "auto.offset.reset": "earliest",
        # Upstream producers may be transactional too: never score aborted windows.
        "isolation.level": "read_committed",
        # A crashed replica's partitions move after this long (librdkafka's default, 45 s, is all of a crash's cost
        # without --instance-id; Kafka's own default was 10 s until 3.0). Heartbeats come from librdkafka's thread,
        # so a long batch never counts against it. -X session.timeout.ms=... to change.
        "session.timeout.ms": 10_000,
        # Incremental rebalancing: a replica joining or leaving moves only the partitions that must move, and
        # the others keep scoring (the eager default stopped every member on each scale event or restart).
        "partition.assignment.strategy": "cooperative-sticky",
        # Once librdkafka's fetch queue holds queued.max.messages.kbytes (64 MB), it waits this long before fetching
        # again (default 1,000 ms). A worker drains 64 MB of 2.8 KB JSON windows in about a second, then sat idle:
        # its JSON rate was pinned near 23k windows/s whatever decoding cost (the bench's strict-json and happy-path
        # workers alike; py-spy: a third of the loop waiting for a first message). 20 ms: 24.0k -> 26.7k
        # windows/s, the wait per batch 6.4 -> 1.6 ms (profile_worker, JSON at-least-once, 200k windows, here).
        "fetch.queue.backoff.ms": FETCH_QUEUE_BACKOFF_MS,
        "statistics.interval.ms": 5000,
        "stats_cb": on_statistics(settings.input_topic, on_brokers, on_partitions),
        "error_cb": errors,
        **settings.consumer_identity(),
        **settings.common_config(),
    }
    if settings.exactly_once:
        config["enable.auto.commit"] = False  # offsets travel inside the producer's transaction
    else:
        # Commit in the background, but only offsets stored after delivery was confirmed.
        config["enable.auto.commit"] = True
        config["enable.auto.offset.store"] = False
        # Bounds what a crash makes us redo (librdkafka's default, 5 s, made every short-lived worker redo its backlog).
        config["auto.commit.interval.ms"] = max(settings.commit_interval_ms, 10)
    return config


def producer_config(settings: WorkerSettings, errors: ErrorWatch) -> dict[str, Any]:
    config: dict[str, Any] = {
        "enable.idempotence": True,
        "linger.ms": 5,
        # librdkafka's default (1,000,000) is below the broker's (1,048,588): without this, an input the broker
        # accepted could not be dead-lettered, and the worker would stop on it again after every restart.
        # The topics' max.message.bytes stay the real limit, with a clear error from the broker.
        "message.max.bytes": PRODUCER_MAX_BYTES,
        # Cheap, and what lets a dead letter of an input the upstream producer compressed fit the DLQ whole
        # (stream/dead_letters.py). librdkafka sends a batch uncompressed when compressing would not shrink it.
        "compression.type": "lz4",
        "error_cb": errors,
        **settings.common_config(),
    }
    if settings.exactly_once:
        config["transactional.id"] = settings.transactional_id
        config["transaction.timeout.ms"] = settings.transaction_timeout_ms
    return config


def on_statistics(
    topic: str, on_brokers: Callable[[bool], None] | None = None, on_partitions: Callable[[dict[str, Any]], None] | None = None
) -> Callable[[str], None]:
    """librdkafka statistics -> the input topic's per-partition figures (for the lag, stream/lag.py), and whether
    any broker is up (for /readyz)."""

    def handle(raw: str) -> None:
        stats = json.loads(raw)
        if on_partitions is not None:
            on_partitions(stats.get("topics", {}).get(topic, {}).get("partitions", {}))
        if on_brokers is not None:
            brokers = [b for b in stats.get("brokers", {}).values() if b.get("nodeid", -1) >= 0]
            on_brokers(any(b.get("state") == "UP" for b in brokers))

    return handle


class LibrdkafkaLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """confluent-kafka's `logger`: it maps librdkafka's syslog levels to logging's (3 FAIL -> ERROR,
    4 CONFWARN -> WARNING, 5-6 -> INFO, 7 -> DEBUG) and calls `.log` only when the client is polled.

    Capped at `ceiling`: librdkafka retries what it reports (a refused connection is an ERROR to it),
    and our own code decides, and says in one sentence, what is fatal. A line repeated within
    `REPEAT_S` goes at DEBUG: a refused connection is retried dozens of times a second.
    """

    REPEAT_S = 10.0

    def __init__(self, ceiling: int) -> None:
        super().__init__(LIBRDKAFKA_LOG, {})
        self.ceiling = ceiling
        self._shown: dict[tuple[Any, ...], float] = {}  # (facility, client, text) -> when last logged above DEBUG
        self._lock = threading.Lock()  # clients may be polled from several threads (the demo, tests)

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        level = min(level, self.ceiling)
        if level > logging.DEBUG and self._repeated(args):
            level = logging.DEBUG
        super().log(level, msg, *args, **kwargs)

    def _repeated(self, line: tuple[Any, ...]) -> bool:
        now = time.monotonic()
        with self._lock:
            shown = self._shown.get(line)
            if shown is not None and now - shown < self.REPEAT_S:
                return True
            if len(self._shown) >= 1000:  # bounded: lines carry addresses and durations
                self._shown.clear()
            self._shown[line] = now
            return False


# librdkafka 2.16's CONFIGURATION.md, column C/P: the properties only a consumer reads, and only a producer reads.
# `create` hands each client only what applies to it, so one set of -X properties serves every client, and no
# client warns (CONFWARN) about a property meant for another.
CONSUMER_ONLY = frozenset({
    "auto.commit.enable", "auto.commit.interval.ms", "auto.offset.reset", "check.crcs", "consume.callback.max.messages",
    "consume_cb", "coordinator.query.interval.ms", "enable.auto.commit", "enable.auto.offset.store", "enable.partition.eof",
    "fetch.error.backoff.ms", "fetch.max.bytes", "fetch.message.max.bytes", "fetch.min.bytes", "fetch.queue.backoff.ms",
    "fetch.wait.max.ms", "group.id", "group.instance.id", "group.protocol", "group.protocol.type", "group.remote.assignor",
    "heartbeat.interval.ms", "isolation.level", "max.partition.fetch.bytes", "max.poll.interval.ms", "max.poll.records",
    "offset.store.method", "offset.store.path", "offset.store.sync.interval.ms", "offset_commit_cb",
    "partition.assignment.strategy", "queued.max.messages.kbytes", "queued.min.messages", "rebalance_cb",
    "session.timeout.ms", "share.acknowledgement.mode",
})  # fmt: skip
PRODUCER_ONLY = frozenset({
    "acks", "batch.num.messages", "batch.size", "compression.codec", "compression.level", "compression.type",
    "delivery.report.only.error", "delivery.timeout.ms", "dr_cb", "dr_msg_cb", "enable.gapless.guarantee",
    "enable.idempotence", "linger.ms", "message.send.max.retries", "message.timeout.ms", "msg_order_cmp", "on_delivery",
    "partitioner", "partitioner_cb", "produce.offset.report", "queue.buffering.backpressure.threshold",
    "queue.buffering.max.kbytes", "queue.buffering.max.messages", "queue.buffering.max.ms", "queuing.strategy",
    "request.required.acks", "request.timeout.ms", "retries", "sticky.partitioning.linger.ms", "transaction.timeout.ms",
    "transactional.id",
})  # fmt: skip


def scoped(kind: Callable[..., Any], config: dict[str, Any]) -> dict[str, Any]:
    """`config` without the properties that do not apply to a client of `kind` (an admin client takes neither side's)."""
    other = (
        CONSUMER_ONLY if isinstance(kind, type) and issubclass(kind, Producer)
        else PRODUCER_ONLY if isinstance(kind, type) and issubclass(kind, Consumer)
        else CONSUMER_ONLY | PRODUCER_ONLY
    )  # fmt: skip
    dropped = sorted(key for key in config if key in other)
    if dropped:
        log.debug("not given to the %s (they apply to other clients): %s", getattr(kind, "__name__", kind), ", ".join(dropped))
    return {key: value for key, value in config.items() if key not in other}


ROUTED = LibrdkafkaLog(logging.WARNING)
QUIET = LibrdkafkaLog(logging.DEBUG)  # readiness probes: refused connections are expected there


def create(kind: Callable[[dict[str, Any]], Any], config: dict[str, Any], *, quiet: bool = False) -> Any:
    """Build a client whose librdkafka log goes through `anomstream.librdkafka` (at DEBUG if `quiet`), given only
    the properties that apply to its kind; a property librdkafka rejects (a typo in -X) is a configuration error.

    The logger is added here, never to a config dict, which may be logged or serialised."""
    try:
        return kind({**scoped(kind, config), "logger": QUIET if quiet else ROUTED})
    except (KafkaException, ValueError, TypeError) as exc:
        reason = exc.args[0].str() if exc.args and isinstance(exc.args[0], KafkaError) else str(exc)
        raise ConfigError(f"Kafka client configuration rejected: {reason} (check -X and --kafka-config).") from None


def wait_for_broker(config: dict[str, Any], timeout_s: float, errors: ErrorWatch | None = None) -> AdminClient:
    """Retry with backoff until the cluster answers; wrong credentials fail at once."""
    errors = errors or ErrorWatch()
    where = config["bootstrap.servers"]
    extra = {key: value for key, value in config.items() if key not in ("bootstrap.servers", "client.id") and isinstance(value, str)}
    admin = create(AdminClient, {**config, "error_cb": errors.record_auth})
    started = time.monotonic()
    delay = 0.5
    attempt = 0
    log.info("connecting to Kafka at %s with %s", where, redact(extra) or "no extra properties")
    while True:
        attempt += 1
        try:
            admin.list_topics(timeout=min(2.0, timeout_s))
            log.info("Kafka at %s answered (attempt %d)", where, attempt)
            return admin
        except KafkaException as exc:
            reason = exc.args[0].str() if exc.args else str(exc)
        admin.poll(0)  # error_cb runs only when the client is polled: list_topics alone never serves it
        if errors.auth_failure:
            raise ConfigError(
                f"Kafka at {where} refused the credentials ({errors.auth_failure}): "
                "check sasl.mechanism, sasl.username and sasl.password."
            )
        if errors.tls_failure:
            raise ConfigError(
                f"the TLS handshake with Kafka at {where} failed ({errors.tls_failure}): check ssl.ca.location"
                " (the CA that signed the broker's certificate) and that this address speaks TLS."
            )
        waited = time.monotonic() - started
        if waited + delay > timeout_s:
            raise BrokerUnavailable(
                f"Kafka at {where} did not answer within {timeout_s:.0f} s"
                f" ({reason}): check --bootstrap-servers and that the broker is up."
            )
        log.warning("waiting for Kafka at %s (attempt %d, %.0f s): %s", where, attempt, waited, reason)
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def ensure_topics(admin: AdminClient, topics: list[str], where: str, create_missing: bool = False, partitions: int = 1) -> None:
    """The topics must exist, or be created when asked to."""
    existing = admin.list_topics(timeout=10).topics
    missing = [topic for topic in topics if topic not in existing]
    if not missing:
        return
    if not create_missing:
        raise ConfigError(f"topic {', '.join(missing)} does not exist on {where}: create it or pass --create-topics.")
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=-1) for topic in missing])
    for topic, future in futures.items():
        try:
            future.result(timeout=30)
            log.info("created topic %s", topic)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise ConfigError(f"topic {topic} could not be created: {exc.args[0].str()}.") from None
