"""Where configuration comes from: flags first, then `ANOMSTREAM_*` environment variables.

Every flag of every subcommand has an environment variable named after it
(`--bootstrap-servers` -> `ANOMSTREAM_BOOTSTRAP_SERVERS`); this module is the
only place that reads them, so `--help` and the docs can list them all.
"""

from __future__ import annotations

import argparse
import os

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
