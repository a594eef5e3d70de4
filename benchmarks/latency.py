"""The latency phase: how long a window takes from `produce()` to a verdict a reader can see, at a fixed rate.

The worker runs as a process (`python -m anomstream worker`), and then the passthrough (the same loop, flags
and clients, no decode, no model: the broker's and the client's own latency) at the same rates; a load generator process
(`python -m anomstream.benchmarks.loadgen`) offers a fixed rate, and a read_committed reader here
takes the verdicts; latency is reader arrival (wall clock) minus the `ts` set just
before `produce()`. The verdict's Kafka timestamp (when the worker produced it, before
any commit) minus `ts` is reported beside it.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from anomstream import console
from anomstream.benchmarks import procs
from anomstream.benchmarks.stats import percentiles
from anomstream.benchmarks.targets import throughput_rate
from anomstream.stream import clients

if TYPE_CHECKING:
    from anomstream.benchmarks.harness import Bench
log = logging.getLogger("anomstream.bench")


class _Verdict(msgspec.Struct):
    id: str
    ts: float | None = None


_verdict = msgspec.json.Decoder(_Verdict)
# What runs under the offered rate: the worker, and the passthrough (the same loop and flags, no decode, no model).
VARIANTS = {"worker": ("anomstream", "worker"), "passthrough": ("anomstream.benchmarks.variants",)}


def run(bench: Bench) -> None:
    c = bench.config
    arrays = bench.tmp / "windows.npz"
    np.savez(arrays, windows=bench.dataset.windows, labels=bench.dataset.labels)
    rows = []
    for mode in c.latency_modes:
        rates = list(c.latency_rates)
        best = throughput_rate(bench.result, "worker", "json", mode)
        if c.latency_half_max and best:
            rates.append(round(best / 2, -2) or best / 2)
        elif c.latency_half_max:
            bench.result["notes"].append(f"latency {mode}: no throughput measured, so no 50%-of-max rate.")
        for max_wait in c.latency_max_wait_ms:
            for variant in VARIANTS:  # the passthrough at the same rates, right after: the broker's own latency
                rows += _latency_worker(bench, mode, max_wait, rates, arrays, best, variant)
    bench.result["latency"] = {
        "end_to_end": "arrival at a read_committed reader (wall clock after poll) minus the input's ts (time.time() "
        "just before produce; the producer's linger.ms 5 included)",
        "verdict_produced": "the verdict's Kafka CreateTime (when the worker produced it, before its commit) minus ts",
        "warmup_s": 0.5,
        "format": "json",
        "passthrough": "benchmarks/variants.py EchoPassthroughWorker as a process: the worker's loop, clients and flags, a"
        " verdict-sized record carrying each input's id and ts, no decode, no model",
        "runs": rows,
    }


def _latency_worker(
    bench: Bench, mode: str, max_wait: int, rates: list[float], arrays: Path, best: float | None, variant: str = "worker"
) -> list[dict[str, Any]]:
    from confluent_kafka import Consumer, TopicPartition

    stem = f"lat-{variant[:4]}-{mode[:2]}-{max_wait}"
    topic = bench.topics.create(f"{stem}-input")
    outputs = bench.topics.outputs(stem)
    group = f"bench-{bench.run_id}-{stem}"
    worker = procs.WorkerProcess.with_flags(bench.worker_args(topic, outputs, group, mode, max_wait), program=VARIANTS[variant])
    reader = clients.create(Consumer, {**bench.kafka, "group.id": f"bench-lat-reader-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False,
                       "isolation.level": "read_committed", "fetch.wait.max.ms": 10})  # fmt: skip
    reader.assign([TopicPartition(outputs["scores"], 0, 0)])
    rows = []
    try:
        log.info("latency %s, --max-wait-ms %d: starting the %s process", mode, max_wait, variant)
        worker.ready_steps()
        for rate in rates:
            rows.append({"variant": variant, **_latency_run(bench, worker, reader, topic, mode, max_wait, rate, arrays, best)})
    finally:
        reader.close()
        code = worker.stop()
        if code not in (0, None):
            log.warning("latency worker exited with %s:\n%s", code, worker.log_tail())
        worker.cleanup()
        bench.topics.delete([topic, *outputs.values()])
    return rows


def _latency_run(bench: Bench, worker: Any, reader: Any, topic: str, mode: str, max_wait: int, rate: float, arrays: Path,
                 best: float | None) -> dict[str, Any]:  # fmt: skip
    c = bench.config
    prefix = f"lat{int(rate)}-"
    command = [sys.executable, "-m", "anomstream.benchmarks.loadgen", "--bootstrap-servers", bench.kafka["bootstrap.servers"],
               "--topic", topic, "--rate", str(rate), "--seconds", str(c.latency_seconds), "--prefix", prefix,
               "--windows", str(arrays)]  # fmt: skip
    log.info("latency %s, --max-wait-ms %d: offering %.0f windows/s for %.0f s", mode, max_wait, rate, c.latency_seconds)
    generator = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    visible: list[tuple[float, float]] = []  # (ts, arrival - ts)
    produced: list[float] = []
    expected = int(rate * c.latency_seconds)
    finished_at: float | None = None
    load = procs.loadavg()
    with console.progress(f"latency {mode} {rate:.0f}/s", total=expected, unit="verdicts") as advance:
        while len(visible) < expected:
            message = reader.poll(0.05)
            batch = [message] if message is not None else []
            if batch:
                batch += reader.consume(1000, timeout=0)
            arrival = time.time()
            got = 0
            for m in batch:
                if m.error() is not None:
                    continue
                verdict = _verdict.decode(m.value())
                if verdict.ts is None or not verdict.id.startswith(prefix):
                    continue
                visible.append((verdict.ts, arrival - verdict.ts))
                produced.append(m.timestamp()[1] / 1000.0 - verdict.ts)
                got += 1
            if got:
                advance(got)
            if finished_at is None and generator.poll() is not None:
                finished_at = time.monotonic()
                load = procs.loadavg()
            if finished_at is not None and time.monotonic() - finished_at > 30:
                log.warning("latency: %d of %d verdicts after 30 s; giving up on the rest", len(visible), expected)
                break
            if not worker.alive:
                raise RuntimeError(f"the latency worker exited:\n{worker.log_tail()}")
    out, err = generator.communicate(timeout=120)
    try:
        sent = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeError(f"the load generator failed: {err.decode().strip()[-2000:]}") from None
    start = min((ts for ts, _ in visible), default=0.0) + 0.5
    kept = [lat for ts, lat in visible if ts >= start]
    kept_produced = [lat for (ts, _), lat in zip(visible, produced) if ts >= start]
    row = {
        "delivery": mode,
        "max_wait_ms": max_wait,
        "max_batch": c.max_batch,
        "offered_rate": rate,
        "achieved_rate": sent["rate"],
        "sent": sent["sent"],
        "verdicts": len(visible),
        "measured": len(kept),
        **percentiles(kept),
        "verdict_produced": percentiles(kept_produced),
        "loadavg": load,
    }
    if best and rate > best:
        row["note"] = f"offered more than the measured maximum ({best:.0f}/s): a queue builds up"
    log.info("latency %s %.0f/s (max-wait %d ms): p50 %s, p95 %s, p99 %s ms (load %s)", mode, rate, max_wait,
             row["p50_ms"], row["p95_ms"], row["p99_ms"], load)  # fmt: skip
    return row
