"""Worker processes (`python -m stream worker`), their memory and readiness, and the machine.

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
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stream.brokers import free_port

log = logging.getLogger("anomstream.bench")

REPO = Path(__file__).resolve().parent.parent


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


@dataclass
class WorkerProcess:
    """`python -m stream worker` as a child process, with its log in a temporary file."""

    args: list[str]
    port: int = field(default_factory=lambda: free_port())
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    log_file: Any = None

    def start(self) -> WorkerProcess:
        self.log_file = tempfile.NamedTemporaryFile(prefix="bench-worker-", suffix=".log", delete=False)
        command = [sys.executable, "-m", "stream", "worker", *self.args, "--metrics-host", "127.0.0.1", "--metrics-port", str(self.port)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
        self.started = time.monotonic()
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self.log_file, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout_s: float = 180.0, interval_s: float = 0.05) -> dict[str, float]:
        """Poll /readyz until 200; returns when each start-up step was first seen (seconds since start)."""
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
                raise RuntimeError(f"the worker exited with code {self.proc.returncode} before it was ready:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the worker was not ready within {timeout_s:.0f} s:\n{self.log_tail()}")
            time.sleep(interval_s)

    def metrics(self) -> str:
        return http_get(self.url + "/metrics", timeout=5.0)[1]

    def stop(self, timeout_s: float = 60.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("worker %d did not stop within %.0f s: killing it", self.pid, timeout_s)
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def log_tail(self, lines: int = 30) -> str:
        if self.log_file is None:
            return ""
        with contextlib.suppress(OSError):
            return "\n".join(Path(self.log_file.name).read_text(errors="replace").splitlines()[-lines:])
        return ""

    def cleanup(self) -> None:
        self.stop()
        if self.log_file is not None:
            self.log_file.close()
            with contextlib.suppress(OSError):
                os.unlink(self.log_file.name)


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
