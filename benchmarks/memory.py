"""The memory phase, and start-up: a worker process's resident memory over a long drain, and its time to ready.

A worker process drains a large JSON backlog, once per runtime (--runtimes); RSS and its peak (VmHWM)
come from /proc every 100 ms. Start-up is the time from process start to the first
/readyz 200, by step. Memory is flat when the second half of the drain adds nothing.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from typing import TYPE_CHECKING, Any

from anomstream import console
from anomstream.benchmarks import procs
from anomstream.benchmarks.backlog import CommittedOffsets, end_offsets, produce_backlog, wait_committed
from anomstream.benchmarks.stats import slope

if TYPE_CHECKING:
    from anomstream.benchmarks.harness import Bench
log = logging.getLogger("anomstream.bench")


def run(bench: Bench) -> None:
    c = bench.config
    log.info("memory: `import tensorflow` alone, in a fresh interpreter")
    tf_import = procs.tensorflow_import()
    if "json" in bench.backlogs and bench.backlogs["json"]["windows"] <= c.memory_windows:
        topic = bench.backlogs["json"]["topic"]  # extend the throughput backlog rather than producing it again
        have = bench.backlogs["json"]["windows"]
        if c.memory_windows > have:
            with console.progress("backlog json (memory)", total=c.memory_windows - have, unit="windows") as advance:
                produce_backlog(bench.kafka, topic, bench.templates, "json", c.memory_windows - have, advance=advance,
                                prefix="bench-mem-")  # fmt: skip
        total = max(have, c.memory_windows)
    else:
        topic, _, _ = bench.new_backlog("json", c.memory_windows, stem="memory-input")
        total = c.memory_windows
    # The count produced, not the high watermark: Tansu can report a stale one right after a produce.
    ends = end_offsets(bench.kafka, topic)
    for index, runtime in enumerate(c.runtimes):
        memory, steps = _drain(bench, topic, total, ends, runtime)
        suffix = "" if index == 0 else f"_{runtime}"  # the first runtime keeps the plain keys (and the RSS target)
        bench.result["memory" + suffix] = {**memory, "tensorflow_import": tf_import, "loadavg": procs.loadavg()}
        bench.result["startup" + suffix] = {"runtime": runtime, "seconds_to_ready": steps.get("ready"), "steps_s": steps,
                                           "tensorflow_import": tf_import,
                                           "note": "from Popen to the first /readyz 200 (polled every 50 ms); steps are "
                                           "when /readyz first answered past each stage"}  # fmt: skip


def _drain(bench: Bench, topic: str, total: int, ends: Any, runtime: str) -> tuple[dict[str, Any], dict[str, float]]:
    """One worker process on `runtime` drains the whole backlog with a fresh group: its memory summary and start-up steps."""
    outputs = bench.topics.outputs(f"memory-{runtime}")
    group = f"bench-{bench.run_id}-memory-{runtime}"
    worker = procs.WorkerProcess.with_flags(bench.worker_args(topic, outputs, group, "exactly-once", bench.config.max_wait_ms, runtime=runtime))
    samples: list[tuple[float, int, int]] = []  # (seconds since start, rss, hwm)
    progress: list[tuple[float, int]] = []  # (seconds since start, committed)
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            got = procs.memory(worker.pid)
            if got is None:
                return
            samples.append((time.monotonic() - worker.started, *got))
            stop.wait(0.1)

    sampler = threading.Thread(target=sample, name="rss-sampler", daemon=True)
    sampler.start()
    offsets = CommittedOffsets(bench.kafka, group, ends)
    try:
        log.info("memory: worker process on %s draining %d JSON windows (exactly-once)", runtime, total)
        steps = worker.ready_steps()
        with console.progress(f"memory drain ({runtime})", total=total, unit="windows") as advance:
            wait_committed(offsets, total, timeout_s=max(600.0, total / 100), interval_s=0.05, advance=advance,
                           on_sample=lambda now, n: progress.append((now - worker.started, n)),
                           alive=lambda: worker.alive)  # fmt: skip
        consumed = procs.metric(worker.metrics(), "anomstream_windows_consumed_total")
    finally:
        stop.set()
        sampler.join(5)
        offsets.close()
        worker.cleanup()
        bench.topics.delete(list(outputs.values()))
    summary = {**_memory_summary(samples, progress, total, steps), "consumed": int(consumed), "windows": total,
               "format": "json", "delivery": "exactly-once", "runtime": runtime}  # fmt: skip
    return summary, steps


def _memory_summary(samples: list[tuple[float, int, int]], progress: list[tuple[float, int]], total: int,
                    steps: dict[str, float]) -> dict[str, Any]:  # fmt: skip
    mib = 1 / 2**20

    def at_fraction(fraction: float) -> float | None:
        when = next((t for t, n in progress if n >= fraction * total), None)
        if when is None:
            return None
        rss = [r for t, r, _ in samples if t <= when]
        return round(rss[-1] * mib, 1) if rss else None

    start = next((t for t, n in progress if n > 0), None)
    half = next((t for t, n in progress if n >= total / 2), None)
    end = next((t for t, n in progress if n >= total), None)
    second_half = [r for t, r, _ in samples if half is not None and end is not None and half <= t <= end]
    if not second_half and end is not None:
        # A short drain can fall between two 100 ms samples: then the sample nearest its end stands for it.
        nearest = min(samples, key=lambda s: abs(s[0] - end), default=None)
        second_half = [nearest[1]] if nearest is not None else []
    ready = steps.get("ready", 0.0)
    at_ready = [r for t, r, _ in samples if t <= ready]
    return {
        "peak_rss_mib": round(max(h for _, _, h in samples) * mib, 1) if samples else None,
        "steady_rss_mib": round(statistics.median(second_half) * mib, 1) if second_half else None,
        "second_half_growth_mib": round((second_half[-1] - second_half[0]) * mib, 1) if len(second_half) > 1 else None,
        "rss_at_ready_mib": round(at_ready[-1] * mib, 1) if at_ready else None,
        "rss_at_progress_mib": {f"{int(f * 100)}%": at_fraction(f) for f in (0.1, 0.25, 0.5, 0.75, 1.0)},
        "drain_seconds": round(end - start, 2) if start is not None and end is not None else None,
        "drain_windows_per_s_10_90": slope([(t, n) for t, n in progress], total),
        "samples": len(samples),
    }
