"""The throughput phases: how fast one worker drains a backlog, against what bounds it and what it replaces.

- **throughput**: a pre-produced backlog of N windows per input format (JSON, float32),
  drained by a fresh consumer group per run, for each variant x format x delivery mode:
  the worker (on TensorFlow: `worker`; on LiteRT: `worker-litert`); the passthrough ceiling
  (same loop, no decode, no model); the worker decoding JSON without its happy path (msgspec, a Python float per
  sample: `worker-strict-json`) and with stdlib `json` (`worker-stdlib-json`); Quix Streams doing the same job
  on LiteRT (benchmarks/quix.py, a process of its own). Time runs from the first message the worker's consumer hands
  over (a wrapper around its `consume`) to the moment the group's committed offsets,
  polled every 20 ms from the group coordinator, reach the end of the backlog. Runs are
  interleaved across repetitions; the median is reported.
- **naive**: the tutorial's way, one `model.predict` per message, on a few hundred windows.

These run in this process (the variants subclass the worker), which is why the
per-stage timings can be read from its metrics here.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from anomstream import console
from anomstream.benchmarks import procs, quix
from anomstream.benchmarks.backlog import CommittedOffsets, end_offsets, wait_committed
from anomstream.benchmarks.config import FORMATS, MODES
from anomstream.benchmarks.stats import median, slope

if TYPE_CHECKING:
    from anomstream.benchmarks.harness import Bench
log = logging.getLogger("anomstream.bench")
WORKER_VARIANTS = {"tensorflow": "worker", "litert": "worker-litert"}


def run(bench: Bench) -> None:
    c = bench.config
    # Each run loads the model afresh in this process; TensorFlow then warns about "retracing" across instances.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    for fmt in FORMATS:
        topic, _, summary = bench.new_backlog(fmt, bench.windows)
        bench.backlogs[fmt] = summary
    bench.result["backlog"] = bench.backlogs
    workers = [WORKER_VARIANTS[runtime] for runtime in c.runtimes]
    plan = [(variant, fmt, mode) for variant in (*workers, "passthrough") for fmt in FORMATS for mode in MODES]
    # On the first runtime, like the latency phase: the worker decoding JSON without its happy path, then with stdlib json
    plan += [(variant, "json", mode) for variant in ("worker-strict-json", "worker-stdlib-json") for mode in MODES]
    quix_python = _quix_environment(bench)
    if quix_python is not None:
        plan += [(quix.VARIANT, "json", mode) for mode in MODES]
    runs: dict[tuple[str, str, str], list[dict[str, Any]]] = {key: [] for key in plan}
    for repeat in range(c.repeats):
        for variant, fmt, mode in plan:
            log.info("throughput %d/%d: %s, %s, %s", repeat + 1, c.repeats, variant, fmt, mode)
            if variant == quix.VARIANT:
                runs[(variant, fmt, mode)].append(quix.drain(bench, quix_python, mode, repeat))
            else:
                runs[(variant, fmt, mode)].append(_drain_in_process(bench, variant, fmt, mode, repeat))
    rows = []
    for (variant, fmt, mode), repeats in runs.items():
        rates = [r["windows_per_s"] for r in repeats]
        rows.append({"variant": variant, "format": fmt, "delivery": mode, "windows": bench.windows,
                     "windows_per_s": median(rates), "min": min(rates), "max": max(rates),
                     "windows_per_s_10_90": median([r["windows_per_s_10_90"] for r in repeats]),
                     "repeats": repeats})  # fmt: skip
    bench.result["throughput"] = {
        "windows": bench.windows,
        "windows_requested": c.windows,
        "repeats": c.repeats,
        "max_batch": c.max_batch,
        "max_wait_ms": c.max_wait_ms,
        "clock": "first message handed over by the worker's consumer -> group's committed offsets at the end "
        "(polled every 20 ms); median of the repeats. windows_per_s_10_90 is the rate between 10% and 90% "
        "committed: the steady state, without the join and the tail (a last, partial batch waits up to "
        "anomstream.stream.batcher.IDLE_POLL_S = 0.5 s for more messages before it is processed)",
        "commit_interval_ms": "the worker's --commit-interval-ms default (100) in both modes",
        "runs": rows,
    }


def _quix_environment(bench: Bench) -> Any:
    """Quix Streams' Python, or None (noted) when its environment cannot be made or the artifact has no model.tflite."""
    if "litert" not in bench.config.runtimes:
        bench.result["notes"].append("quixstreams not measured: it runs the artifact on LiteRT, which is not among --runtimes")
        return None
    try:
        return quix.environment()
    except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
        bench.result["notes"].append(f"quixstreams not measured: {exc}")
        log.warning("quixstreams not measured: %s", exc)
        return None


def _drain_in_process(bench: Bench, variant: str, fmt: str, mode: str, repeat: int) -> dict[str, Any]:
    from anomstream.benchmarks.variants import JSON_DECODERS, PassthroughWorker, TimedWorker, json_decoder
    from anomstream.stream import metrics

    topic, count = bench.backlogs[fmt]["topic"], bench.windows
    outputs = bench.topics.outputs(f"{variant}-{fmt}")
    group = f"bench-{bench.run_id}-{variant}-{fmt}-{mode}-{repeat}"
    runtime = "litert" if variant == "worker-litert" else None  # None: the first of --runtimes
    settings = bench.worker_settings(topic, outputs, group, mode, runtime=runtime)
    worker = (PassthroughWorker if variant == "passthrough" else TimedWorker)(settings)
    scored0, invalid0 = metrics.WINDOWS_SCORED._value.get(), sum(
        s.value for s in next(iter(metrics.INVALID.collect())).samples if s.name.endswith("_total")
    )
    stages0 = _stage_totals()
    failure: list[BaseException] = []

    def target() -> None:
        try:
            worker.run()
        except BaseException as exc:  # reported below, on this thread
            failure.append(exc)

    ends = end_offsets(bench.kafka, topic)
    offsets = CommittedOffsets(bench.kafka, group, ends)
    with ExitStack() as stack:
        if variant in JSON_DECODERS:
            stack.enter_context(json_decoder(variant))
        thread = threading.Thread(target=target, name=f"bench-{variant}", daemon=True)
        thread.start()
        stack.callback(thread.join, 60)
        stack.callback(worker.stop)
        stack.callback(offsets.close)
        deadline = time.monotonic() + 180
        while not worker.health.ready()[0] and worker.first_consumed is None:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the {variant} worker did not become ready: {failure[0] if failure else 'timeout'}")
            time.sleep(0.02)
        cpu0, broker0, wall0 = time.process_time(), procs.cpu_seconds(bench.broker_pid), time.monotonic()
        progress: list[tuple[float, int]] = []
        with console.progress(f"{variant} {fmt} {mode}", total=count, unit="windows") as advance:
            done = wait_committed(offsets, count, timeout_s=max(300.0, count / 200), advance=advance, alive=thread.is_alive,
                                  on_sample=lambda now, n: progress.append((now, n)))  # fmt: skip
        cpu1, broker1, wall1 = time.process_time(), procs.cpu_seconds(bench.broker_pid), time.monotonic()
        load = procs.loadavg()
    if failure:
        raise RuntimeError(f"the {variant} worker failed: {failure[0]}")
    bench.topics.delete(list(outputs.values()))
    seconds = done - (worker.first_consumed or done)
    result = {
        "windows_per_s": round(count / seconds, 1) if seconds > 0 else None,
        "seconds": round(seconds, 3),
        "windows_per_s_10_90": slope(progress, count),
        "worker_seconds": round((worker.last_delivered or done) - (worker.first_consumed or done), 3),
        "consumed": worker.consumed,
        "scored": int(metrics.WINDOWS_SCORED._value.get() - scored0),
        "invalid": int(sum(s.value for s in next(iter(metrics.INVALID.collect())).samples if s.name.endswith("_total")) - invalid0),
        "batches": worker.batches,
        "stage_ms_per_batch": _stage_means(stages0, _stage_totals()),
        "cpu_cores": {"bench_process": round((cpu1 - cpu0) / (wall1 - wall0), 2)},
        "loadavg": load,
    }
    if broker0 is not None and broker1 is not None:
        result["cpu_cores"]["broker"] = round((broker1 - broker0) / (wall1 - wall0), 2)
    log.info("%s %s %s: %s windows/s (%d windows in %.2f s; load %s)", variant, fmt, mode, result["windows_per_s"], count, seconds, load)
    return result


def _stage_totals() -> dict[str, tuple[float, float]]:
    """(sum of seconds, count) per stage of the worker's `batch_duration_seconds` histogram, in this process."""
    from anomstream.stream import metrics

    totals: dict[str, list[float]] = {}
    for family in metrics.BATCH_DURATION.collect():
        for sample in family.samples:
            if sample.name.endswith(("_sum", "_count")):
                slot = totals.setdefault(sample.labels["stage"], [0.0, 0.0])
                slot[0 if sample.name.endswith("_sum") else 1] += sample.value
    return {stage: (total, count) for stage, (total, count) in totals.items()}


def _stage_means(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]) -> dict[str, float]:
    """Mean milliseconds per batch of each stage between two snapshots."""
    means = {}
    for stage, (total, count) in after.items():
        total0, count0 = before.get(stage, (0.0, 0.0))
        if count > count0:
            means[stage] = round((total - total0) / (count - count0) * 1000, 2)
    return means


def run_naive(bench: Bench) -> None:
    from anomstream.benchmarks.variants import naive

    c = bench.config
    if "json" in bench.backlogs:
        topic = bench.backlogs["json"]["topic"]
    else:
        topic, _, summary = bench.new_backlog("json", c.naive_windows, stem="naive-input")
    output = bench.topics.create("naive-scores")
    log.info("naive: one model.predict per message, %d windows", c.naive_windows)
    result = naive(bench.kafka, topic, output, bench.model, c.naive_windows)
    result.update(format="json", delivery="auto-commit (at-least-once at best)", loadavg=procs.loadavg())
    log.info("naive: %s windows/s (load %s)", result["windows_per_s"], result["loadavg"])
    bench.result["naive"] = result
