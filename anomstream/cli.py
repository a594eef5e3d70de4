"""`anomstream`: one console script, one subcommand per job.

Exit codes: 0 success, 2 usage or configuration error, 1 runtime failure. An
expected failure prints one sentence, never a traceback. With `--json` a
command prints exactly one JSON object on stdout; everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence

from anomstream import config, console
from anomstream.errors import AnomstreamError

log = logging.getLogger("anomstream")

# Each room registers its own subcommands. They are named here, not imported at the top, so that
# this dispatcher sits below every room it serves: `anomstream worker` never imports the bench.
COMMANDS = (
    "anomstream.models.commands",  # train, evaluate
    "anomstream.stream.commands",  # worker
    "anomstream.replay.commands",  # replay, validate, broker, demo
    "anomstream.benchmarks.command",  # bench
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anomstream",
        description="Streaming anomaly detection for telemetry windows with a Keras autoencoder over Kafka.",
    )
    parser.add_argument("--log-level", default="INFO", type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="stderr log level")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(commands)
    config.apply_env_defaults(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    problems = config.env_problems(args)
    if problems:
        print(f"anomstream {args.command}: {problems[0]}", file=sys.stderr)
        return 2
    console.setup_logging(args.log_level)
    try:
        summary = args.run(args)
    except AnomstreamError as exc:
        print(f"anomstream {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"anomstream {args.command}: interrupted.", file=sys.stderr)
        return 130
    if summary is not None:
        if getattr(args, "json", False):
            sys.stdout.write(json.dumps(summary) + "\n")
        else:
            args.render(summary)
    return getattr(args, "exit_code", 0)


def run() -> None:
    sys.exit(main())
