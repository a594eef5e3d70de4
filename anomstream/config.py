"""Where configuration comes from: flags first, then `ANOMSTREAM_*` environment variables.

Every flag of every subcommand has an environment variable named after it
(`--bootstrap-servers` -> `ANOMSTREAM_BOOTSTRAP_SERVERS`); this module is the
only place that reads them, so `--help` and the docs can list them all. It also
holds the Kafka connection flags every Kafka-facing command shares, and the
helpers that turn parsed flags into frozen settings objects.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import fields
from typing import Any, TypeVar

from anomstream.errors import ConfigError

T = TypeVar("T")
ENV_PREFIX = "ANOMSTREAM_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_name(dest: str) -> str:
    return ENV_PREFIX + dest.upper()


def env_names(parser: argparse.ArgumentParser) -> set[str]:
    """Every `ANOMSTREAM_*` variable `parser` reads: one per flag of every command (what deploy files may set)."""
    names: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                names |= env_names(child)
        elif action.option_strings and action.dest not in {"help", "version"}:
            names.add(env_name(action.dest))
    return names


ENV_PROBLEMS = "_env_problems"  # the namespace attribute (per parser) that carries what its variables got wrong


def apply_env_defaults(parser: argparse.ArgumentParser, environ: os._Environ[str] | dict[str, str] = os.environ) -> None:
    """Make each flag's default its environment variable, when set, and name the variable in --help.

    A value is checked as the flag would check it (its type and its choices): `ANOMSTREAM_DELIVERY=exactly_once`
    is an error, not at-least-once. The error belongs to the subcommand whose flag it is, and is raised only when
    that subcommand runs (`env_problems`): a variable meant for `replay` never stops `worker`.
    """
    problems: list[str] = []
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
        flag = action.option_strings[-1]
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            lowered = value.strip().lower()
            if lowered not in _TRUE | _FALSE:
                problems.append(f"{name}={value!r} is not a boolean for {flag} (use 1/0, true/false, yes/no).")
                continue
            action.default = (lowered in _TRUE) == isinstance(action, argparse._StoreTrueAction)
        elif isinstance(action, argparse._AppendAction):  # -X, the only repeatable flag: key=value items
            items = split_properties(value)
            bad = next((number for number, item in enumerate(items, start=1) if not _is_property(item)), None)
            if bad:
                problems.append(f"{name} item {bad} of {len(items)} is not key=value ({_NOT_SHOWN}).")
                continue
            action.default = items
        else:
            problem = _invalid(name, flag, action, value)
            if problem:
                problems.append(problem)
                continue
            action.default = value  # argparse applies the flag's `type` to string defaults
        action.required = False
    if problems:
        parser.set_defaults(**{f"{ENV_PROBLEMS}_{id(parser)}": problems})


# A comma followed by a librdkafka property name and `=`: where ANOMSTREAM_KAFKA_PROPERTY's next item starts.
_NEXT_PROPERTY = re.compile(r",(?=\s*[A-Za-z0-9._-]+=)")
_NOT_SHOWN = "its text is not shown: it may hold a secret"


def split_properties(value: str) -> list[str]:
    """The `key=value` items of ANOMSTREAM_KAFKA_PROPERTY, split at a comma only where the next `key=` starts.

    A value keeps its commas (`sasl.password=ab,cd` is one property): split at every comma, it left a stray
    `cd` that an error then printed. A value with `,key=` in it still needs `--kafka-config`.
    """
    return [item for item in _NEXT_PROPERTY.split(value) if item]


def _is_property(pair: str) -> bool:
    return bool(pair.partition("=")[0].strip()) and "=" in pair


def _invalid(name: str, flag: str, action: argparse.Action, value: str) -> str | None:
    """Why `value` would be refused as `flag`'s argument, or None."""
    try:
        converted = action.type(value) if callable(action.type) else value
    except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
        kind = getattr(action.type, "__name__", "value")
        return f"{name}={value!r} is not a valid {kind} for {flag} ({exc})." if isinstance(exc, argparse.ArgumentTypeError) else f"{name}={value!r} is not a valid {kind} for {flag}."
    if action.choices is not None and converted not in action.choices:
        return f"{name}={value!r} is not one of {', '.join(map(str, action.choices))} (the choices of {flag})."
    return None


def env_problems(args: argparse.Namespace) -> list[str]:
    """What the environment variables of the parsed command (and the top level) got wrong."""
    return [problem for key, found in vars(args).items() if key.startswith(ENV_PROBLEMS) for problem in found]


# Every property that librdkafka (2.16, the version confluent-kafka 2.16 bundles) redacts in its own
# configuration dumps, as its _RK_SENSITIVE flag marks them (tests/test_config.py reads that set from the
# installed librdkafka and fails if one is missing here), and one it does not redact but that names a secret.
SECRET_PROPERTIES = frozenset({
    "sasl.username", "sasl.password", "sasl.oauthbearer.config", "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.assertion.private.key.file", "sasl.oauthbearer.assertion.private.key.passphrase",
    "sasl.oauthbearer.assertion.private.key.pem", "ssl.key.location", "ssl.key.password", "ssl.key.pem", "ssl_key",
    "ssl.ca.pem", "ssl.keystore.password",
    "sasl.kerberos.keytab",  # not redacted by librdkafka: the path of a Kerberos key file
})  # fmt: skip
# And, for properties of other librdkafka versions or plugins, any name holding one of these.
SECRET_MARKERS = ("password", "secret", "passphrase", "private.key", "jaas", "token", "credential")


def redact(config: dict[str, str]) -> dict[str, str]:
    """A copy safe to log: every property that could hold a credential is masked."""
    return {
        key: "***" if key in SECRET_PROPERTIES or any(marker in key.lower() for marker in SECRET_MARKERS) else value
        for key, value in config.items()
    }


def kafka_properties(pairs: list[str] | None, config_file: str | None) -> dict[str, str]:
    """librdkafka properties from `--kafka-config FILE` (key=value lines), then `-X key=value` (which win)."""
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
    for number, pair in enumerate(pairs or [], start=1):
        if not _is_property(pair):  # never echo it: without `=`, key and secret cannot be told apart
            raise ConfigError(f"-X number {number} is not key=value (e.g. -X security.protocol=SASL_SSL; {_NOT_SHOWN}).")
        key, value = pair.split("=", 1)
        properties[key.strip()] = value
    return properties


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
    for flag, value, ok in checks:
        if not ok:
            raise ConfigError(f"{flag} {value} is out of range; see `anomstream {command} --help`.")
