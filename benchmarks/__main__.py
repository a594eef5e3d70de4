"""`python -m anomstream.benchmarks [flags]`: the same as `anomstream bench [flags]` (one CLI, one set of env vars and exit codes)."""

from __future__ import annotations

import sys

from anomstream.cli import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    if "bench" not in argv:  # the subcommand is implied; it goes after any top-level --log-level
        at = 2 if argv[:1] == ["--log-level"] else 0
        argv = [*argv[:at], "bench", *argv[at:]]
    sys.exit(main(argv))
