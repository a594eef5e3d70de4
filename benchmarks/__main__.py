"""`python -m benchmarks [bench] ...`: the `anomstream bench` command on its own.

Same flags, environment variables, exit codes and `--json` contract as `anomstream bench`.
"""

from __future__ import annotations

import argparse
import json
import sys

from stream import console, settings
from stream.errors import AnomstreamError


def main(argv: list[str] | None = None) -> int:
    from benchmarks import command

    argv = list(sys.argv[1:] if argv is None else argv)
    if "bench" not in argv:  # the subcommand is optional here; it follows any --log-level
        at = 2 if argv[:1] == ["--log-level"] else 0
        argv = [*argv[:at], "bench", *argv[at:]]
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="stderr log level")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    command.register(commands)
    settings.apply_env_defaults(parser)
    args = parser.parse_args(argv)
    console.setup_logging(args.log_level)
    try:
        summary = args.run(args)
    except AnomstreamError as exc:
        print(f"anomstream bench: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("anomstream bench: interrupted.", file=sys.stderr)
        return 130
    if args.json:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        args.render(summary)
    return getattr(args, "exit_code", 0)


if __name__ == "__main__":
    sys.exit(main())
