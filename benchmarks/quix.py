"""Quix Streams as a baseline of the throughput phase: its environment, and one drain of a backlog with it.

Quix Streams 3.28 pins confluent-kafka below 2.13 (and pydantic below 2.14), which anomstream is past, so
it cannot share the worker's environment: `environment()` makes a virtual environment of its own once,
under `$XDG_CACHE_HOME/anomstream/`, with Quix Streams, numpy and the same ai-edge-litert as this one, and
benchmarks/quix_app.py runs in it as a process. It drains the same backlog on the same broker with the same
artifact on LiteRT, clocked like the worker: from its first scored window to the group's committed offsets
at the end of the backlog (polled every 20 ms), and between 10% and 90% committed.
"""

from __future__ import annotations

import json
import logging
import select
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anomstream import console
from anomstream.benchmarks import procs
from anomstream.benchmarks.backlog import CommittedOffsets, end_offsets, wait_committed
from anomstream.benchmarks.stats import slope

if TYPE_CHECKING:
    from anomstream.benchmarks.harness import Bench

log = logging.getLogger("anomstream.bench")

QUIX_VERSION = "3.28.1"
VARIANT = "quixstreams"
APP = Path(__file__).with_name("quix_app.py")


def environment() -> Path:
    """The Python of Quix Streams' own virtual environment, made (about a minute, once) if it is not there."""
    from anomstream.models.data import cache_dir

    litert = metadata.version("ai-edge-litert")
    home = cache_dir() / f"quixstreams-{QUIX_VERSION}-litert-{litert}"
    python, done = home / "bin" / "python", home / ".complete"
    if done.is_file():
        return python
    log.info("making Quix Streams' environment in %s (quixstreams %s, ai-edge-litert %s; once)", home, QUIX_VERSION, litert)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(home)], check=True, capture_output=True)
    packages = [f"quixstreams=={QUIX_VERSION}", f"ai-edge-litert=={litert}", "numpy"]
    installed = subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], capture_output=True, text=True)
    if installed.returncode != 0:
        raise RuntimeError(f"pip could not install {' '.join(packages)} into {home}: {installed.stderr.strip()[-400:]}")
    done.write_text(" ".join(packages) + "\n")
    return python


def drain(bench: Bench, python: Path, mode: str, repeat: int) -> dict[str, Any]:
    """One Quix Streams application draining the JSON backlog; the same figures as a worker's drain where they apply."""
    topic, count = bench.backlogs["json"]["topic"], bench.windows
    outputs = bench.topics.outputs(f"{VARIANT}-json")
    group = f"bench-{bench.run_id}-{VARIANT}-{mode}-{repeat}"
    ends = end_offsets(bench.kafka, topic)
    offsets = CommittedOffsets(bench.kafka, group, ends)
    argv = [str(python), str(APP), "--broker", bench.kafka["bootstrap.servers"], "--input", topic, "--output", outputs["scores"],
            "--group", group, "--artifact", str(bench.model), "--guarantee", mode, "--count", str(count)]  # fmt: skip
    log_path = bench.tmp / f"{group}.stderr"
    with log_path.open("w") as stderr:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, text=True)  # stderr to a file: a pipe may fill
    try:
        first = _first_scored(process, log_path, timeout_s=180)
        progress: list[tuple[float, int]] = []
        with console.progress(f"{VARIANT} json {mode}", total=count, unit="windows") as advance:
            done = wait_committed(offsets, count, timeout_s=max(300.0, count / 200), advance=advance,
                                  alive=lambda: process.poll() in (None, 0),  # 0: done, its last commit is read next
                                  on_sample=lambda now, n: progress.append((now, n)))  # fmt: skip
        load = procs.loadavg()
        out, _ = process.communicate(timeout=120)
    finally:
        offsets.close()
        if process.poll() is None:
            process.kill()
            process.wait()
    if process.returncode != 0:
        raise RuntimeError(f"the Quix Streams application failed ({process.returncode}): {_tail(log_path)}")
    bench.topics.delete(list(outputs.values()))
    seconds = done - first
    result = {
        "windows_per_s": round(count / seconds, 1) if seconds > 0 else None,
        "seconds": round(seconds, 3),
        "windows_per_s_10_90": slope(progress, count),
        "verdicts": json.loads(out.strip().splitlines()[-1]).get("verdicts"),
        "loadavg": load,
    }
    log.info("%s json %s: %s windows/s (%d windows in %.2f s; load %s)", VARIANT, mode, result["windows_per_s"], count, seconds, load)
    return result


def _first_scored(process: subprocess.Popen[str], log_path: Path, timeout_s: float) -> float:
    """The monotonic time the application printed when it scored its first window (it prints nothing before)."""
    deadline = time.monotonic() + timeout_s
    assert process.stdout is not None
    while process.poll() is None and time.monotonic() < deadline:
        readable, _, _ = select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))
        line = process.stdout.readline() if readable else ""
        if line.startswith('{"first_scored"'):
            return float(json.loads(line)["first_scored"])
    process.kill()
    process.wait()
    raise RuntimeError(f"the Quix Streams application scored nothing within {timeout_s:.0f} s: {_tail(log_path)}")


def _tail(path: Path) -> str:
    return path.read_text(errors="replace").strip()[-600:]
