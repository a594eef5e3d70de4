"""Logs and progress on stderr, so stdout stays free for `--json`.

On a terminal a long task shows a rich progress bar; elsewhere (CI, a
container's log) it writes a log line every tenth of the way instead of
control characters.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

stderr = Console(stderr=True)
log = logging.getLogger("anomstream")

Advance = Callable[..., None]


def setup_logging(level: str = "INFO") -> None:
    """Route every logger to stderr: rich on a terminal, plain timestamped lines otherwise."""
    if stderr.is_terminal:
        handler: logging.Handler = RichHandler(console=stderr, show_path=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


@contextmanager
def progress(description: str, total: int, unit: str = "") -> Iterator[Advance]:
    """Yield `advance(steps=1, **fields)`; `fields` (e.g. loss=0.02) are shown next to the bar."""
    if stderr.is_terminal:
        bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(unit),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
            console=stderr,
            transient=False,
        )
        with bar:
            task = bar.add_task(description, total=total, info="")

            def advance(steps: int = 1, **fields: object) -> None:
                bar.update(task, advance=steps, info=_format(fields))

            yield advance
        return

    done = 0
    started = time.monotonic()
    every = max(1, total // 10)

    def advance(steps: int = 1, **fields: object) -> None:
        nonlocal done
        before, done = done, done + steps
        if done // every != before // every or done >= total:
            log.info(
                "%s: %d/%d %s (%.1f s) %s", description, done, total, unit, time.monotonic() - started, _format(fields)
            )

    yield advance


def _format(fields: dict[str, object]) -> str:
    return " ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}" for key, value in fields.items())
