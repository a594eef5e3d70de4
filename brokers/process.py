"""A broker that runs as a child process: Apache Kafka and Tansu both start this way."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from anomstream.brokers.base import BrokerError, free_port, wait_until_ready

log = logging.getLogger("anomstream.brokers")


_LIVE: set[ProcessBroker] = set()  # started and not yet stopped


@atexit.register
def _stop_leftovers() -> None:
    """Never leave a broker process behind when the interpreter exits without ``stop()``."""
    for broker in list(_LIVE):
        broker.kill()


class ProcessBroker:
    """A broker that runs as a child process in its own process group, logging to one file.

    Subclasses provide :meth:`_command` and may override :meth:`_prepare`.
    """

    name = "broker"
    host = "127.0.0.1"
    slow_stop_level = logging.WARNING  # how loudly to report a SIGKILL after the grace period

    def __init__(self, *, port: int | None = None, startup_timeout: float = 90.0, stop_timeout: float = 20.0):
        self.port = port or free_port(self.host)
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._work_dir: Path | None = None

    # -- hooks ---------------------------------------------------------------------------
    def _command(self) -> tuple[list[str], dict[str, str] | None]:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Runs before every launch (write configs; format storage the first time)."""

    def _new_work_dir(self, given: Path | None = None) -> Path:
        if given is not None:
            given.mkdir(parents=True, exist_ok=True)
            return given
        self._tmp = tempfile.TemporaryDirectory(prefix=f"anomstream-{self.name}-")
        return Path(self._tmp.name)

    @property
    def work_dir(self) -> Path:
        if self._work_dir is None:
            self._work_dir = self._new_work_dir()
        return self._work_dir

    @property
    def log_path(self) -> Path:
        return self.work_dir / f"{self.name}.log"

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> ProcessBroker:
        """Start the broker and wait until it serves metadata and transactions."""
        if self.running:
            return self
        return self._boot("ready")

    def restart(self) -> ProcessBroker:
        """Stop gracefully and start again on the same ports and data (a rolling-restart stand-in)."""
        self._terminate()
        return self._boot("restarted")

    def _boot(self, done: str) -> ProcessBroker:
        started = time.monotonic()
        self._prepare()
        self._launch()
        log.info("%s %s on %s in %.1f s", self.title, done, self.bootstrap_servers, time.monotonic() - started)
        return self

    def kill(self) -> None:
        """SIGKILL the whole process group at once: a crash, for chaos tests and exit cleanup."""
        self._terminate(grace=0.0)

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """SIGSTOP the broker for the block, then SIGCONT: a broker that holds its connections open and answers
        nothing (a GC pause, a hung disk), which is what makes a client's calls time out rather than fail."""
        if self._proc is None:
            raise BrokerError(f"{self.title} is not running: nothing to freeze.")
        os.killpg(self._proc.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Terminate (SIGTERM, then SIGKILL after ``stop_timeout``) and delete temporary data."""
        self._terminate()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self._work_dir = None

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of the broker's log, for error messages and failed tests."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                return "".join(deque(fh, maxlen=lines))
        except OSError:
            return f"(no log at {self.log_path})"

    @property
    def title(self) -> str:
        return self.name

    def _launch(self) -> None:
        cmd, env = self._command()
        with open(self.log_path, "ab") as logfile:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                cwd=self.work_dir,
                env=env,
                start_new_session=True,
            )
        _LIVE.add(self)
        try:
            wait_until_ready(self.bootstrap_servers, self.startup_timeout, alive=lambda: self.running)
        except BrokerError as exc:
            self._terminate(grace=5.0)
            raise BrokerError(f"{exc}\n--- {self.log_path} (tail) ---\n{self.log_tail(40)}") from None

    def _terminate(self, grace: float | None = None) -> None:
        proc, self._proc = self._proc, None
        _LIVE.discard(self)
        if proc is None:
            return
        grace = self.stop_timeout if grace is None else grace
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
            if wait <= 0 or proc.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                log.log(self.slow_stop_level, "%s still running %.1f s after %s", self.title, wait, sig.name)
        proc.poll()

    def __enter__(self) -> ProcessBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.bootstrap_servers} running={self.running}>"
