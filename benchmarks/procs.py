"""Worker processes (`python -m anomstream worker`), their memory and readiness, and the machine.

Memory comes from `/proc/<pid>/status`: `VmRSS` (resident now) and `VmHWM` (the
peak resident size the kernel recorded). CPU time from `/proc/<pid>/stat`
(user + system, all threads).
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from anomstream.brokers import free_port

log = logging.getLogger("anomstream.bench")


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        cpu = match.group(1).strip() if match else cpu
    ram_kb = 0
    with contextlib.suppress(OSError, AttributeError):
        ram_kb = int(re.search(r"^MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text(), re.MULTILINE).group(1))
    import confluent_kafka

    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(ram_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "confluent_kafka": confluent_kafka.__version__,
        "librdkafka": confluent_kafka.libversion()[0],
        "loadavg": loadavg(),
    }


def memory(pid: int) -> tuple[int, int] | None:
    """(VmRSS, VmHWM) in bytes, or None once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    values = dict(re.findall(r"^(VmRSS|VmHWM):\s*(\d+) kB", text, re.MULTILINE))
    if "VmRSS" not in values:
        return None
    return int(values["VmRSS"]) * 1024, int(values.get("VmHWM", values["VmRSS"])) * 1024


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of a process (all its threads), or None."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError):
        return 0, ""


def metric(text: str, name: str) -> float:
    """Sum of a metric's samples in a Prometheus text exposition."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (len(line) == len(name) or line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> int:
    """SIGTERM, then SIGKILL after `timeout` s: a wedged process must not outlive its caller. Its exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("process %d did not stop within %.0f s: killing it", process.pid, timeout)
            process.kill()
            process.wait(10)
    return process.returncode


class WorkerProcess:
    """A worker process (`python -m anomstream worker ...`): its log, /readyz and /metrics, and a stop that never leaves
    it running. The bench's phases use it, and so do the tests that need the worker as a process
    (tests/worker_process.py adds their assertions). Started on construction; a context manager that stops it.
    """

    def __init__(
        self, command: list[str], log: Path, port: int | None = None, *,
        env: Mapping[str, str] | None = None, stdout: Path | None = None, cwd: Path | None = None,
    ) -> None:  # fmt: skip
        """Start `command` with its stderr appended to `log`. `stdout`: None discards it; `log` itself interleaves it.

        `port` is the --metrics-port the command passes (None if 0: set it once known).
        """
        self.log = log
        self.port = port
        self.started = time.monotonic()
        with log.open("ab") as stderr:  # the child keeps its own copies of the descriptors
            if stdout is None or stdout == log:
                out = subprocess.DEVNULL if stdout is None else stderr
                self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=stderr, env=env, cwd=cwd)
            else:
                with stdout.open("ab") as out_file:
                    self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out_file, stderr=stderr, env=env, cwd=cwd)
        self._temporary_log = False

    @classmethod
    def with_flags(cls, flags: list[str], program: tuple[str, ...] = ("anomstream", "worker")) -> WorkerProcess:
        """`python -m anomstream worker FLAGS` (or another `program` taking the worker's flags: the latency phase's
        passthrough) with its metrics on 127.0.0.1 and a free port, its output in a temporary file that
        :meth:`cleanup` removes (the bench's workers)."""
        port = free_port()
        handle, name = tempfile.mkstemp(prefix="bench-worker-", suffix=".log")
        os.close(handle)
        command = [sys.executable, "-m", *program, *flags, "--metrics-host", "127.0.0.1", "--metrics-port", str(port)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        worker = cls(command, Path(name), port, env=env, stdout=Path(name))
        worker._temporary_log = True
        return worker

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the worker's log, for an error or assertion message."""
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-chars:]
        return ""

    def readyz(self, timeout: float = 2.0) -> int:
        """/readyz's status (200 ready, 503 not), or 0 while nothing answers."""
        return http_get(self.url + "/readyz", timeout)[0]

    def metrics(self, timeout: float = 5.0) -> str:
        """The /metrics page (Prometheus text format); OSError while nothing answers, never an empty page."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=timeout) as response:
            return response.read().decode("utf-8", "replace")

    def ready_steps(self, timeout_s: float = 180.0, interval_s: float = 0.05) -> dict[str, float]:
        """Poll /readyz until 200; when each start-up step was first seen, in seconds since the process started."""
        steps: dict[str, float] = {}
        deadline = time.monotonic() + timeout_s
        while True:
            status, body = http_get(self.url + "/readyz", timeout=1.0)
            now = time.monotonic() - self.started
            if status:
                steps.setdefault("http_up", now)
                reason = body.strip()
                if reason != "model not loaded":
                    steps.setdefault("model_warm", now)
                if reason not in ("model not loaded", "broker unreachable"):
                    steps.setdefault("broker_up", now)
                if status == 200:
                    steps.setdefault("ready", now)
                    return {k: round(v, 3) for k, v in steps.items()}
            if not self.alive:
                raise RuntimeError(f"the worker exited with code {self.process.returncode} before it was ready:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the worker was not ready within {timeout_s:.0f} s:\n{self.log_tail()}")
            time.sleep(interval_s)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (the worker finishes its batch and commits), then SIGKILL after `timeout` s. The exit code."""
        return stop_process(self.process, timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash: no batch finished, no commit, no transaction aborted."""
        self.process.kill()
        self.process.wait(30)

    def cleanup(self) -> None:
        """Stop it, and remove its log if it was a temporary one."""
        self.stop()
        if self._temporary_log:
            with contextlib.suppress(OSError):
                self.log.unlink()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.stop()


def tensorflow_import() -> dict[str, float]:
    """Seconds and resident memory of `import tensorflow` alone, in a fresh interpreter."""
    code = (
        "import time, re; t = time.perf_counter(); import tensorflow, keras; s = time.perf_counter() - t; "
        "rss = int(re.search(r'VmRSS:\\s*(\\d+)', open('/proc/self/status').read()).group(1)); print(s, rss)"
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})  # fmt: skip
    try:
        seconds, rss_kb = done.stdout.split()
    except ValueError:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no output"}  # type: ignore[dict-item]
    return {
        "import_seconds": round(float(seconds), 2),
        "process_seconds": round(time.monotonic() - started, 2),
        "rss_mib": round(int(rss_kb) / 1024, 1),
    }
