"""Where configuration comes from: flags first, then `ANOMSTREAM_*` environment variables.

Every flag of every subcommand has an environment variable named after it
(`--bootstrap-servers` -> `ANOMSTREAM_BOOTSTRAP_SERVERS`); this module is the
only place that reads them, so `--help` and the docs can list them all.
"""

from __future__ import annotations

import argparse
import os
import socket
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

ENV_PREFIX = "ANOMSTREAM_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_name(dest: str) -> str:
    return ENV_PREFIX + dest.upper()


def apply_env_defaults(parser: argparse.ArgumentParser, environ: os._Environ[str] | dict[str, str] = os.environ) -> None:
    """Make each flag's default its environment variable, when set, and name the variable in --help."""
    for action in parser._actions:  # argparse has no public walk over its actions
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                apply_env_defaults(child, environ)
            continue
        if not action.option_strings or action.dest in {"help", "version"}:
            continue
        name = env_name(action.dest)
        if action.help is not argparse.SUPPRESS:
            action.help = f"{action.help or ''} [env {name}]".strip()
        if name not in environ:
            continue
        value = environ[name]
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            lowered = value.strip().lower()
            if lowered not in _TRUE | _FALSE:
                parser.error(f"{name}={value!r} is not a boolean (use 1/0, true/false, yes/no)")
            action.default = (lowered in _TRUE) == isinstance(action, argparse._StoreTrueAction)
        elif isinstance(action, argparse._AppendAction):
            action.default = [item for item in value.split(",") if item]
        else:
            action.default = value  # argparse applies the flag's `type` to string defaults
        action.required = False


SECRET_MARKERS = ("password", "secret", "sasl.jaas", "oauthbearer.config", "ssl.key.pem", "ssl_key", "token")


def redact(config: dict[str, str]) -> dict[str, str]:
    """A copy safe to log: any property that could hold a credential is masked."""
    return {key: "***" if any(marker in key.lower() for marker in SECRET_MARKERS) else value for key, value in config.items()}


def kafka_properties(pairs: list[str] | None, config_file: str | None) -> dict[str, str]:
    """librdkafka properties from `--kafka-config FILE` (key=value lines), then `-X key=value` (which win)."""
    from stream.errors import ConfigError

    properties: dict[str, str] = {}
    if config_file:
        try:
            lines = open(config_file, encoding="utf-8").read().splitlines()
        except OSError as exc:
            raise ConfigError(f"--kafka-config {config_file} cannot be read: {exc.strerror or exc}.") from None
        for number, line in enumerate(lines, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if "=" not in line:
                raise ConfigError(f"--kafka-config {config_file} line {number} is not key=value.")
            key, value = line.split("=", 1)
            properties[key.strip()] = value.strip()
    for pair in pairs or []:
        if "=" not in pair or not pair.split("=", 1)[0].strip():
            raise ConfigError(f"-X {pair.split('=', 1)[0]!r} is not key=value (e.g. -X security.protocol=SASL_SSL).")
        key, value = pair.split("=", 1)
        properties[key.strip()] = value
    return properties


@dataclass(frozen=True)
class WorkerSettings:
    """Everything the worker is told, checked once at start-up."""

    model: Path
    runtime: str = "tensorflow"
    litert_threads: int = 1
    bootstrap_servers: str = "localhost:9092"
    input_topic: str = "telemetry-windows"
    scores_topic: str = "telemetry-scores"
    output_topic: str = "telemetry-anomalies"
    dlq_topic: str = "telemetry-windows-dlq"
    group_id: str = "anomstream"
    delivery: str = "exactly-once"
    transactional_id: str = ""
    max_batch: int = 512
    max_wait_ms: int = 50
    commit_interval_ms: int = 100
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 9100
    reload_interval_s: float = 5.0
    startup_timeout_s: float = 60.0
    create_topics: bool = False
    kafka: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> WorkerSettings:
        from stream.errors import ConfigError

        check_ranges(
            "worker",
            ("--litert-threads", args.litert_threads, 1 <= args.litert_threads <= 256),
            ("--max-batch", args.max_batch, 1 <= args.max_batch <= 100_000),
            ("--max-wait-ms", args.max_wait_ms, 0 <= args.max_wait_ms <= 60_000),
            ("--commit-interval-ms", args.commit_interval_ms, 0 <= args.commit_interval_ms <= 60_000),
            ("--metrics-port", args.metrics_port, 0 <= args.metrics_port <= 65535),
            ("--reload-interval-s", args.reload_interval_s, args.reload_interval_s >= 0),
            ("--startup-timeout-s", args.startup_timeout_s, args.startup_timeout_s > 0),
        )
        from models.runtimes import check_available

        check_available(args.runtime)
        if args.input_topic in (args.scores_topic, args.output_topic, args.dlq_topic):
            raise ConfigError(f"--input-topic {args.input_topic} is also an output topic: the worker would read its own verdicts.")
        return from_namespace(
            cls,
            args,
            model=Path(args.model),
            transactional_id=args.transactional_id or f"anomstream-{args.group_id}-{socket.gethostname()}-{os.getpid()}",
            kafka=kafka_properties(args.kafka_property, args.kafka_config),
        )

    @property
    def exactly_once(self) -> bool:
        return self.delivery == "exactly-once"

    def common_config(self) -> dict[str, str]:
        return {"bootstrap.servers": self.bootstrap_servers, "client.id": "anomstream-worker", **self.kafka}


def add_kafka_flags(parser: argparse.ArgumentParser, default_servers: str | None = "localhost:9092") -> None:
    """The connection flags every Kafka-facing command shares (one env var each, as everywhere)."""
    parser.add_argument(
        "--bootstrap-servers",
        default=default_servers,
        help=f"Kafka bootstrap servers (default: {default_servers or 'start the embedded broker'})",
    )
    parser.add_argument(
        "-X",
        dest="kafka_property",
        action="append",
        metavar="KEY=VALUE",
        help="any librdkafka property, e.g. -X security.protocol=SASL_SSL (repeatable)",
    )
    parser.add_argument("--kafka-config", metavar="FILE", help="librdkafka properties file (key=value lines); -X wins")


def kafka_client_config(args: argparse.Namespace, client_id: str) -> dict[str, str]:
    """bootstrap.servers, client.id and the pass-through properties, from the shared flags."""
    return {
        "bootstrap.servers": args.bootstrap_servers,
        "client.id": client_id,
        **kafka_properties(args.kafka_property, args.kafka_config),
    }


def from_namespace(cls: type[T], args: argparse.Namespace, **overrides: Any) -> T:
    """A frozen settings dataclass from the parsed flags: every field named like a flag's dest, plus overrides."""
    values = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}  # type: ignore[arg-type]
    return cls(**{**values, **overrides})


def check_ranges(command: str, *checks: tuple[str, object, bool]) -> None:
    """(flag, value, ok) triples; the first not ok is one sentence pointing at --help."""
    from stream.errors import ConfigError

    for flag, value, ok in checks:
        if not ok:
            raise ConfigError(f"{flag} {value} is out of range; see `anomstream {command} --help`.")
