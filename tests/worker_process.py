"""`python -m stream worker` as a real process, for the tests that need one (crashes, signals, restarts,
the deployment's environment): its command line, start-up, /readyz and /metrics, and a stop that never
leaves a wedged worker behind.

Imported as ``tests.worker_process``: pytest runs with ``--import-mode=importlib`` and names modules
from the repository root, so ``tests`` resolves as a namespace package from any test folder.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from stream.brokers import free_port

REPO = Path(__file__).resolve().parents[1]
WORKER = [sys.executable, "-m", "stream", "worker"]
T = TypeVar("T")


def worker_command(model: Path, bootstrap: str, topics: Mapping[str, str], group: str, *extra: str, metrics_port: int = 0) -> list[str]:
    """The worker's argv for its four topics (`topics` keys: input, scores, anomalies, dlq), then `extra`.

    The metrics server listens on 127.0.0.1 only; port 0 lets the OS pick one (for a worker nobody probes).
    """
    return [
        *WORKER, "--model", str(model), "--bootstrap-servers", bootstrap,
        "--input-topic", topics["input"], "--scores-topic", topics["scores"], "--output-topic", topics["anomalies"],
        "--dlq-topic", topics["dlq"], "--group-id", group,
        "--metrics-host", "127.0.0.1", "--metrics-port", str(metrics_port), *extra,
    ]  # fmt: skip


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> int:
    """SIGTERM, then SIGKILL after `timeout` s: a wedged process must not outlive the test. Its exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    return process.returncode


class WorkerProcess:
    """One worker process, its stderr appended to `log` (for failure messages), its metrics on `port`.

    A context manager: leaving the block stops it (:meth:`stop`), whatever happened inside.
    """

    def __init__(
        self, command: list[str], log: Path, port: int | None = None, *,
        env: Mapping[str, str] | None = None, stdout: Path | None = None,
    ) -> None:  # fmt: skip
        """Start `command`. `stdout`: None discards it; `log` itself interleaves it with stderr.

        `port` is the --metrics-port the command passes (None if 0: set it once known). Runs in the
        repository root, so `-m stream` resolves whichever folder pytest was started in.
        """
        self.log = log
        self.port = port
        with log.open("ab") as stderr:  # the child keeps its own copies of the descriptors
            if stdout is None or stdout == log:
                out = subprocess.DEVNULL if stdout is None else stderr
                self.process = subprocess.Popen(command, stdout=out, stderr=stderr, env=env, cwd=REPO)
            else:
                with stdout.open("ab") as out_file:
                    self.process = subprocess.Popen(command, stdout=out_file, stderr=stderr, env=env, cwd=REPO)

    @classmethod
    def start(
        cls, model: Path, bootstrap: str, topics: Mapping[str, str], group: str, log: Path, *extra: str,
        env: Mapping[str, str] | None = None,
    ) -> WorkerProcess:  # fmt: skip
        """A worker with :func:`worker_command`'s flags and `extra`, its metrics on a free port to probe."""
        port = free_port()
        return cls(worker_command(model, bootstrap, topics, group, *extra, metrics_port=port), log, port, env=env)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the worker's log, for an assertion message."""
        return self.log.read_text(errors="replace")[-chars:]

    def readyz(self, timeout: float = 2) -> int:
        """/readyz's status (200 ready, 503 not), or 0 while nothing answers."""
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=timeout) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return 0

    def metrics(self, timeout: float = 5) -> str:
        """The /metrics page (Prometheus text format)."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=timeout) as response:
            return response.read().decode()

    def wait_for(self, check: Callable[[], T], timeout: float, what: str) -> T:
        """Poll `check` until it returns something truthy (returned); fail with the log's tail if the
        worker exits first or `timeout` s pass."""
        deadline = time.monotonic() + timeout
        while not (value := check()):
            assert self.process.poll() is None, f"the worker exited ({self.process.returncode}) while {what}:\n{self.log_tail()}"
            assert time.monotonic() < deadline, f"timed out while {what}:\n{self.log_tail()}"
            time.sleep(0.2)
        return value

    def wait_ready(self, timeout: float = 120) -> WorkerProcess:
        """Until /readyz answers 200: the worker has loaded its model and has partitions assigned."""
        self.wait_for(lambda: self.readyz() == 200, timeout, "starting")
        return self

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (the worker finishes its batch and commits), then SIGKILL after `timeout` s. The exit code."""
        return stop_process(self.process, timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash: no batch finished, no commit, no transaction aborted."""
        self.process.kill()
        self.process.wait(30)

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.stop()
