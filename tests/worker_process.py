"""`python -m anomstream worker` as a real process, for the tests that need one (crashes, signals, restarts,
the deployment's environment): its command line, and waits that fail with the worker's log. The process
itself (start, /readyz, /metrics, a stop that never leaves a wedged worker behind) is the bench's
`benchmarks.procs.WorkerProcess`.

Imported as ``tests.worker_process``: pytest runs with ``--import-mode=importlib`` and names modules
from the repository root, so ``tests`` resolves as a namespace package from any test folder.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from anomstream.benchmarks import procs
from anomstream.benchmarks.procs import stop_process
from anomstream.brokers import free_port

__all__ = ["WORKER", "WorkerProcess", "stop_process", "worker_command"]

WORKER = [sys.executable, "-m", "anomstream", "worker"]
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


class WorkerProcess(procs.WorkerProcess):
    """One worker process (see `benchmarks.procs.WorkerProcess`), with waits that assert."""

    @classmethod
    def start(
        cls, model: Path, bootstrap: str, topics: Mapping[str, str], group: str, log: Path, *extra: str,
        env: Mapping[str, str] | None = None,
    ) -> WorkerProcess:  # fmt: skip
        """A worker with :func:`worker_command`'s flags and `extra`, its metrics on a free port to probe."""
        port = free_port()
        return cls(worker_command(model, bootstrap, topics, group, *extra, metrics_port=port), log, port, env=env)

    def wait_for(self, check: Callable[[], T], timeout: float, what: str) -> T:
        """Poll `check` until it returns something truthy (returned); fail with the log's tail if the
        worker exits first or `timeout` s pass."""
        deadline = time.monotonic() + timeout
        while not (value := check()):
            assert self.process.poll() is None, f"the worker exited ({self.process.returncode}) while {what}:\n{self.log_tail()}"
            assert time.monotonic() < deadline, f"timed out while {what}:\n{self.diagnosis()}"
            time.sleep(0.2)
        return value

    def diagnosis(self) -> str:
        """What a stuck worker says of itself: /readyz's and /healthz's reasons, then its log, ending with every
        thread's stack (SIGUSR1: the worker's faulthandler writes them to its log)."""
        ready, healthy = procs.http_get(self.url + "/readyz"), procs.http_get(self.url + "/healthz")
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGUSR1)
            time.sleep(1.0)
        return f"/readyz {ready[0]} {ready[1].strip()!r}; /healthz {healthy[0]} {healthy[1].strip()!r}\n{self.log_tail(12000)}"

    def wait_ready(self, timeout: float = 120) -> WorkerProcess:
        """Until /readyz answers 200: the worker has loaded its model and has partitions assigned."""
        self.wait_for(lambda: self.readyz() == 200, timeout, "starting")
        return self
