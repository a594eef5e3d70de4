"""`anomstream bench`: one worker process against its baselines, in one run, on one broker.

This module is the run itself: it starts (or joins) the broker, loads the data set and
the model, runs the chosen phases in order and adds the targets and ratios. `Bench` is
also what every phase is handed: the config, the Kafka settings, the topics, the
backlogs produced so far, and the one way to describe a worker (`worker_args`,
`worker_settings`). Each phase lives in its own module and can be run alone with
`--phases`:

The phases are named in `benchmarks.phases`:

- `benchmarks.throughput`: **throughput** (worker, passthrough, strict-json and stdlib-json workers,
  in this process) and **naive** (one `model.predict` per message);
- `benchmarks.latency`: **latency**, a worker process under a fixed offered rate;
- `benchmarks.memory`: **memory** and start-up of a worker process draining a backlog;
- `benchmarks.scaleout`: **scaleout**, 1 and 2 worker processes in one group.

Every result carries `os.getloadavg()`. The machine this was written on had 2 cores
shared with other jobs, so single numbers are noisy: read the load averages.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from anomstream import console
from anomstream.benchmarks import procs, targets
from anomstream.benchmarks.backlog import Templates, Topics, produce_backlog
from anomstream.benchmarks.config import PHASES, TANSU_SESSION, BenchConfig
from anomstream.benchmarks.stats import whole
from anomstream.stream.settings import WorkerSettings

log = logging.getLogger("anomstream.bench")

Runners = Mapping[str, Callable[["Bench"], None]]


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
        self.windows = whole(config.windows, config.max_batch)
        self.scaleout_windows = whole(config.scaleout_windows, config.max_batch * 4)

    # -- the run ---------------------------------------------------------------------------------
    def run(self, runners: Runners) -> dict[str, Any]:
        """Each chosen phase of `runners` (benchmarks/phases.py) in order, then the targets and ratios."""
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
                    runners[phase](self)
                except KeyboardInterrupt:
                    raise
                except Exception as exc:
                    log.exception("phase %s failed", phase)
                    self.result["errors"].append({"phase": phase, "error": f"{type(exc).__name__}: {exc}"})
        self.result["targets"] = targets.targets(self.result)
        self.result["ratios"] = targets.ratios(self.result)
        self.result["machine"]["loadavg_end"] = procs.loadavg()
        self.result["seconds"] = round(time.monotonic() - started, 1)
        for key in ("notes", "errors"):  # last, after the numbers
            self.result[key] = self.result.pop(key)
        return self.result

    def _setup(self, stack: ExitStack) -> None:
        from anomstream.models import data
        from anomstream.replay.demo import cached_model

        c = self.config
        if c.bootstrap_servers:
            bootstrap, kind = c.bootstrap_servers, c.broker_kind or "external"
            self.result["broker"] = {"name": kind, "bootstrap_servers": bootstrap, "started_by_bench": False}
        else:
            from anomstream.brokers import ApacheKafka, Tansu

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
        self.model = c.model or cached_model(self.dataset, "tutorial")
        from anomstream.models import artifact

        meta = artifact.read_metadata(self.model)
        self.result["model"] = {"path": str(self.model), "name": meta.name, "version": meta.version,
                                "architecture": meta.architecture.name, "threshold": meta.threshold.value}  # fmt: skip
        self._drop_unusable_runtimes(meta)
        self.templates = Templates(self.dataset.windows, self.dataset.labels)
        self.tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="anomstream-bench-")))

    def _drop_unusable_runtimes(self, meta: Any) -> None:
        """LiteRT needs its package and the artifact's model.tflite; without either, the run goes on without it, noted."""
        from anomstream.errors import ConfigError
        from anomstream.models.runtimes import check_available

        usable = []
        for runtime in self.config.runtimes:
            try:
                check_available(runtime)
                if runtime == "litert" and meta.litert_file is None:
                    raise ConfigError(f"{self.model} has no model.tflite (retrain it with this anomstream).")
                usable.append(runtime)
            except ConfigError as exc:
                self.result["notes"].append(f"runtime {runtime} not measured: {exc}")
                log.warning("runtime %s not measured: %s", runtime, exc)
        if not usable:
            raise ConfigError(f"none of --runtimes {','.join(self.config.runtimes)} can run here: {self.result['notes'][-1]}")
        self.config = replace(self.config, runtimes=tuple(usable))

    # -- what the phases share ---------------------------------------------------------------------
    @property
    def broker_pid(self) -> int | None:
        proc = getattr(self.broker, "_proc", None)
        return proc.pid if proc is not None else None

    def new_backlog(self, fmt: str, count: int, partitions: int = 1, transactional: bool = False, stem: str = "") -> tuple[str, Any, dict[str, Any]]:
        topic = self.topics.create(stem or f"{fmt}-input", partitions)
        with console.progress(f"backlog {fmt}", total=count, unit="windows") as advance:
            produced, producer = produce_backlog(self.kafka, topic, self.templates, fmt, count, partitions,
                                                 advance=advance, transactional=transactional)  # fmt: skip
        return topic, producer, {**produced.summary(), "topic": topic, "partitions": partitions, "loadavg": procs.loadavg()}

    def worker_args(self, topic: str, outputs: dict[str, str], group: str, mode: str, max_wait_ms: int,
                    extra: dict[str, str] | None = None, runtime: str | None = None) -> list[str]:  # fmt: skip
        """`anomstream worker` flags for one run (`runtime`: the first of --runtimes by default); every other flag keeps
        the worker's default."""
        args = ["--model", str(self.model), "--runtime", runtime or self.config.runtimes[0],
                "--bootstrap-servers", self.kafka["bootstrap.servers"], "--input-topic", topic,
                "--scores-topic", outputs["scores"], "--output-topic", outputs["anomalies"], "--dlq-topic", outputs["dlq"],
                "--group-id", group, "--delivery", mode, "--max-batch", str(self.config.max_batch),
                "--max-wait-ms", str(max_wait_ms)]  # fmt: skip
        for key, value in {**self.worker_kafka, **(extra or {})}.items():
            args += ["-X", f"{key}={value}"]
        return args

    def worker_settings(self, topic: str, outputs: dict[str, str], group: str, mode: str, extra: dict[str, str] | None = None,
                        runtime: str | None = None) -> WorkerSettings:  # fmt: skip
        """An in-process worker's settings: the flags a worker process would get, read the way `anomstream worker` reads
        them (its parser, `WorkerSettings.from_args`), so a worker setting added later comes with its default."""
        args = [*self.worker_args(topic, outputs, group, mode, self.config.max_wait_ms, extra, runtime),
                "--transactional-id", f"bench-tx-{uuid.uuid4().hex[:8]}", "--metrics-host", "127.0.0.1", "--metrics-port", "0"]  # fmt: skip
        return WorkerSettings.from_args(_worker_parser().parse_args(["worker", *args]))


def _worker_parser() -> argparse.ArgumentParser:
    """`anomstream worker`'s flags as declared in stream/commands.py, without the ANOMSTREAM_* environment defaults."""
    from anomstream.stream import commands

    parser = argparse.ArgumentParser(prog="anomstream")
    commands.register(parser.add_subparsers())
    return parser
