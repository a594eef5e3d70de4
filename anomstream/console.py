"""Logs and progress on stderr, so stdout stays free for `--json`.

On a terminal a long task shows a rich progress bar; elsewhere (CI, a
container's log) it writes a log line every tenth of the way instead of
control characters, at most one a second (and the last one always): a task
that takes a second says so once, not ten times in the same millisecond.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

stderr = Console(stderr=True)
log = logging.getLogger("anomstream")

Advance = Callable[..., None]
PROGRESS_EVERY_S = 1.0  # without a terminal: the least time between two progress lines (the last one always shows)


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is when a record is emitted, never to a stream that was closed since
    (a test runner, or a caller of `cli.main`, swaps it), as `logging.lastResort` does."""

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def setup_logging(level: str = "INFO") -> None:
    """Route every logger to stderr: rich on a terminal, plain timestamped lines otherwise."""
    if stderr.is_terminal:
        handler: logging.Handler = RichHandler(console=stderr, show_path=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = _CurrentStderr()
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
    started = last = time.monotonic()
    every = max(1, total // 10)

    def advance(steps: int = 1, **fields: object) -> None:
        nonlocal done, last
        before, done = done, done + steps
        now = time.monotonic()
        finished = done >= total > before
        if finished or (done // every != before // every and now - last >= PROGRESS_EVERY_S):
            last = now
            log.info("%s: %d/%d %s (%.1f s) %s", description, done, total, unit, now - started, _format(fields))

    yield advance


def _format(fields: dict[str, object]) -> str:
    return " ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}" for key, value in fields.items())


@contextmanager
def native_stderr_to_debug(logger: logging.Logger) -> Iterator[None]:
    """What C code writes to file descriptor 2 meanwhile goes to `logger` at DEBUG, not to the terminal.

    For native libraries that print on their own while they load (TensorFlow's CUDA probes, LiteRT's
    "Created TensorFlow Lite XNNPACK delegate"): no setting of theirs reaches those lines. Caught in a
    temporary file, not by a thread reading a pipe: logging writes to stderr too, and a reader that
    logs would feed its own pipe. Anything else written to stderr meanwhile is logged at DEBUG as well.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            for line in sink.read().decode(errors="replace").splitlines():
                if line.strip():
                    logger.debug("%s", line)
