"""`anomstream replay`, `validate`, `broker` and `demo`."""

from __future__ import annotations

import argparse
import logging
import math
import signal
import threading
import uuid
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from anomstream import console
from anomstream.config import add_kafka_flags, check_ranges, kafka_client_config
from anomstream.errors import ConfigError
from anomstream.models import data
from anomstream.models.data_flags import add_data_flags, data_options
from anomstream.models.drift import sentence as drift_sentence
from anomstream.replay.producer import Selection

log = logging.getLogger("anomstream.replay")


def _selection_flags(parser: argparse.ArgumentParser) -> None:
    add_data_flags(parser, skip_bad_rows=True)
    parser.add_argument(
        "--model",
        type=Path,
        help="the artifact being validated: the split (seed, test size, or the --test-data file) comes from it, and data"
        " that is not what it was trained on is refused (default: none; the split comes from --split-seed/--test-size)",
    )
    parser.add_argument("--split", choices=["test", "train", "all"], default="test", help="rows to replay (default: test, the rows the model never saw)")
    parser.add_argument("--test-size", type=float, help="test fraction of the split, as in training (default: the model's, else 0.2)")
    parser.add_argument("--split-seed", type=int, help="seed of the split, as in training (default: the model's, else 21)")
    parser.add_argument("--limit", type=int, help="replay at most this many rows")
    parser.add_argument("--loop", type=int, default=1, help="replay the rows this many times; ids get -<loop> after the first (default: 1)")
    parser.add_argument("--shuffle", action="store_true", help="shuffle the rows (with --seed)")
    parser.add_argument("--seed", type=int, default=0, help="shuffle seed (default: 0)")
    parser.add_argument("--id-prefix", default="ecg5000", help="window ids are <prefix>-<row> (default: ecg5000)")
    parser.add_argument(
        "--only", choices=["all", "normal", "anomalous"], default="all", help="replay only the rows with this label (default: all)"
    )


def _selection(args: argparse.Namespace) -> tuple[Selection, data.Dataset, data.Dataset | None]:
    """What to send (or expect): the rows, read with the data flags, split as the model was when --model is given."""
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit {args.limit} must be at least 1.")
    if args.loop < 1:
        raise ConfigError(f"--loop {args.loop} must be at least 1.")
    if args.test_data is not None and args.split == "all":
        raise ConfigError("--split all replays one file: give it as --data, without --test-data.")
    dataset, test = data_options(args).load()
    for skipped in dataset.skipped + (test.skipped if test is not None else ()):
        log.warning("skipped %s", skipped)
    test_size, seed = _split_of(args, dataset, test)
    selection = Selection(args.split, test_size, seed, args.limit, args.loop, args.shuffle, args.seed, args.id_prefix, args.only)
    return selection, dataset, test


def _split_of(args: argparse.Namespace, dataset: data.Dataset, test: data.Dataset | None) -> tuple[float, int]:
    """The split's test size and seed: the model's, checked against the flags and the data, or the flags'."""
    if args.model is None:
        if args.split != "all" and test is None:
            log.info("splitting %s with --split-seed/--test-size; pass --model to take the model's own split", dataset.path)
        return (0.2 if args.test_size is None else args.test_size), (21 if args.split_seed is None else args.split_seed)
    from anomstream.models.artifact import read_metadata

    metadata = read_metadata(args.model)
    data.check_shape(dataset, metadata.window_shape, args.model)
    recorded = metadata.split
    for flag, given, own in (("--test-size", args.test_size, recorded.test_size), ("--split-seed", args.split_seed, recorded.seed)):
        if given is not None and given != own:
            raise ConfigError(f"{flag} {given} differs from model {args.model}'s split ({own}): leave it out to use the model's.")
    if args.split == "all":
        return recorded.test_size or 0.2, recorded.seed
    if not data.is_recorded(metadata.data, dataset):
        raise ConfigError(
            f"{dataset.path} holds other windows than model {args.model} was trained on (parsed content"
            f" {dataset.content[:12]}…, the model's {str(metadata.data.content)[:12]}…), so its --split {args.split} rows"
            " would not be the model's; use --split all, or the training data with the same data flags."
        )
    if recorded.test_size is None and test is None:
        raise ConfigError(f"model {args.model} was trained with a --test-data file ({metadata.data.test_data.file}): pass it as --test-data.")
    if recorded.test_size is not None and test is not None:
        raise ConfigError(f"model {args.model} carved its test rows from {metadata.data.file}: leave out --test-data.")
    if test is not None and metadata.data.test_data is not None and test.content != metadata.data.test_data.content:
        raise ConfigError(f"{test.path} holds other windows than model {args.model}'s test file {metadata.data.test_data.file}.")
    return recorded.test_size or 0.2, recorded.seed


def register(commands: argparse._SubParsersAction) -> None:
    replay = commands.add_parser("replay", help="stream a labelled data set into Kafka")
    add_kafka_flags(replay)
    replay.add_argument("--topic", default="telemetry-windows", help="topic to write to (default: telemetry-windows)")
    _selection_flags(replay)
    replay.add_argument("--rate", type=float, default=0.0, help="windows per second; 0: as fast as the broker takes them (default: 0)")
    replay.add_argument("--format", choices=["json", "f32"], default="json", help="message format (default: json)")
    replay.add_argument(
        "--gain", type=float, default=1.0,
        help="multiply every sample by this before sending: rehearse a recalibrated sensor against the drift alert (default: 1)",
    )
    replay.add_argument("--offset", type=float, default=0.0, help="add this to every sample (after --gain) before sending (default: 0)")
    replay.add_argument(
        "--run-id",
        default=None,
        help="the id this replay stamps on every window (and the worker on its verdict), for `validate --run-id`"
        " (default: a new random one, printed in the summary)",
    )
    replay.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    replay.set_defaults(run=run_replay, render=_render_flat)

    validate = commands.add_parser("validate", help="join the worker's verdicts to the labels and judge the threshold")
    add_kafka_flags(validate)
    validate.add_argument("--scores-topic", default="telemetry-scores", help="topic of verdicts (default: telemetry-scores)")
    _selection_flags(validate)
    validate.add_argument(
        "--run-id",
        default=None,
        help="judge the verdicts of this replay only (its summary names it; default: the newest run on the topic)",
    )
    validate.add_argument("--timeout-s", type=float, default=120.0, help="stop waiting for missing verdicts after this long (default: 120)")
    validate.add_argument("--target-recall", type=float, default=0.99, help="anomaly recall to recommend a threshold for (default: 0.99)")
    validate.add_argument("--target-fpr", type=float, default=0.01, help="false-positive rate to recommend a threshold for (default: 0.01)")
    validate.add_argument(
        "--per-source",
        action="store_true",
        help="also recommend a threshold for each source (the verdicts' `source`) with enough labelled windows (default: off)",
    )
    validate.add_argument(
        "--min-source-windows",
        type=int,
        default=50,
        help="with --per-source: fewer labelled windows than this and a source keeps the global threshold (default: 50)",
    )
    validate.add_argument(
        "--source-objective",
        choices=["best-f1", "target-recall", "target-fpr"],
        default="best-f1",
        help="with --per-source: what each source's threshold optimises; target-* take --target-recall/--target-fpr (default: best-f1)",
    )
    validate.add_argument(
        "--write-artifact",
        type=Path,
        metavar="DIR",
        help="with --per-source and --model: write a copy of the model with the per-source thresholds to DIR (the --model"
        " directory itself replaces them in place; a worker on DIR picks them up by hot reload) (default: none)",
    )
    validate.add_argument("--report", type=Path, help="write a report (markdown, JSON, PNG plots) to this directory")
    validate.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    validate.set_defaults(run=run_validate, render=_render_validation)

    broker = commands.add_parser("broker", help="run a Kafka broker for development in the foreground (Tansu, or Apache Kafka)")
    broker.add_argument("--port", type=int, default=9092, help="port on 127.0.0.1 (default: 9092)")
    broker.add_argument(
        "--kind",
        choices=["tansu", "apache"],
        default="tansu",
        help="tansu: the embedded Kafka-compatible broker, memory only, starts in a second; apache: a real Apache Kafka"
        " (needs Java 17+, and Maven the first time to fetch its jars), with full transactional semantics (Tansu"
        " shows aborted transactions to read_committed readers) and every client Tansu refuses, e.g. kcat 1.7 (default: tansu)",
    )
    broker.set_defaults(run=run_broker)

    from anomstream.replay import demo

    demo.register(commands)


def run_replay(args: argparse.Namespace) -> dict[str, Any]:
    from anomstream.replay.producer import replay

    check_ranges(
        "replay",
        ("--rate", args.rate, args.rate >= 0),
        ("--gain", args.gain, math.isfinite(args.gain)),
        ("--offset", args.offset, math.isfinite(args.offset)),
    )
    selection, dataset, test = _selection(args)
    args.run_id = args.run_id or uuid.uuid4().hex[:8]
    config = kafka_client_config(args, "anomstream-replay")
    _check_topic(config, args.topic)
    total = len(selection.rows(dataset, test)) * selection.loops
    with console.progress(f"replay to {args.topic}", total=total, unit="windows") as advance:
        result = replay(
            config, args.topic, dataset, selection, args.format, args.rate, advance, run=args.run_id, test=test, gain=args.gain, offset=args.offset
        )
    changed = {"gain": args.gain, "offset": args.offset} if (args.gain, args.offset) != (1.0, 0.0) else {}
    return {"topic": args.topic, "format": args.format, "skipped_rows": len(dataset.skipped), **changed, **result.summary()}


def _check_topic(config: dict[str, Any], topic: str) -> None:
    from anomstream.stream import clients

    clients.ensure_topics(_check_broker(config), [topic], config["bootstrap.servers"])


def _check_broker(config: dict[str, Any]) -> Any:
    """Wait briefly for Kafka, as the worker does: wrong credentials are one sentence at once, not a timeout."""
    from anomstream.stream import clients

    return clients.wait_for_broker(config, timeout_s=10.0)


def run_validate(args: argparse.Namespace) -> dict[str, Any]:
    from anomstream.replay import report
    from anomstream.replay.validate import collect, judge

    check_ranges(
        "validate",
        ("--target-recall", args.target_recall, 0 <= args.target_recall <= 1),
        ("--target-fpr", args.target_fpr, 0 <= args.target_fpr <= 1),
        ("--min-source-windows", args.min_source_windows, args.min_source_windows >= 2),
    )
    if args.write_artifact is not None and not (args.per_source and args.model is not None):
        raise ConfigError("--write-artifact needs --per-source and --model (the artifact to copy the thresholds into).")
    selection, dataset, test = _selection(args)
    expected = selection.expected(dataset, test)
    config = kafka_client_config(args, "anomstream-validate")
    _check_broker(config)
    with console.progress(f"verdicts from {args.scores_topic}", total=len(expected), unit="windows") as advance:
        collected = collect(config, args.scores_topic, set(expected), args.timeout_s, advance, run=args.run_id)
    validation = judge(expected, collected, args.target_recall, args.target_fpr)
    summary = {"scores_topic": args.scores_topic, **validation.summary}
    if validation.evaluation is not None:
        summary["drift"] = _drift(args, validation)
    if args.per_source and validation.evaluation is not None:
        summary["per_source"] = _per_source(args, validation)
    if args.report and validation.evaluation is not None:
        report.write_validation(args.report, summary, validation)
        summary["report"] = str(args.report / "report.md")
    if not validation.healthy:
        log.error("%d verdicts missing and %d duplicated", summary["missing"], summary["duplicates"])
        args.exit_code = 1
    return summary


def _drift(args: argparse.Namespace, validation: Any) -> dict[str, Any]:
    """The worker's drift statistic on the replayed errors, against the artifact's reference."""
    from anomstream.models import drift
    from anomstream.models.artifact import read_metadata

    if args.model is None:
        return {"measured": False, "reason": "pass --model: the reference errors are in the artifact"}
    metadata = read_metadata(args.model)
    return drift.summary(metadata.drift, metadata.threshold.value, validation.errors, validation.labels == 1)


def _per_source(args: argparse.Namespace, validation: Any) -> dict[str, Any]:
    from anomstream.models.artifact import read_metadata
    from anomstream.replay.per_source import judge_sources

    global_threshold = read_metadata(args.model).threshold.value if args.model is not None else validation.global_threshold
    if global_threshold is None:
        raise ConfigError("--per-source: every verdict was judged by a source's threshold, so the global one is unknown: pass --model.")
    found = judge_sources(validation.errors, validation.labels, validation.sources, global_threshold, args.source_objective,
                          args.min_source_windows, args.target_recall, args.target_fpr)  # fmt: skip
    if args.write_artifact is not None:
        from anomstream.models.source_thresholds import write_copy

        written = write_copy(args.model, args.write_artifact, found["thresholds"])
        found["artifact"] = {"path": str(args.write_artifact), "version": written.version}
    return found


def run_broker(args: argparse.Namespace) -> None:
    from anomstream.brokers import ApacheKafka, Tansu

    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} is out of range; see `anomstream broker --help`.")
    if args.kind == "apache":
        missing = ApacheKafka.missing_tools()
        if missing:
            raise ConfigError(f"--kind apache: {missing}")
        broker, what = ApacheKafka(port=args.port), "Apache Kafka, data in a temporary directory"
    else:
        broker, what = Tansu(port=args.port), "Tansu, memory only"
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with broker:
        log.info("embedded broker (%s) on %s; Ctrl-C stops it", what, broker.bootstrap_servers)
        stop.wait()
    return None


def _render_flat(summary: dict[str, Any]) -> None:
    Console().print(", ".join(f"{key} {value}" for key, value in summary.items()))


def _render_validation(summary: dict[str, Any]) -> None:
    out = Console()
    out.print(
        f"{summary['received']}/{summary['expected']} verdicts, {summary['missing']} missing, "
        f"{summary['duplicates']} duplicated ({'healthy' if summary['healthy'] else 'NOT healthy'})"
    )
    if "test" not in summary:
        return
    test = summary["test"]
    table = Table(title=f"live threshold {summary['threshold']:.5f}")
    for column in ("threshold", "accuracy", "anomaly precision", "anomaly recall", "anomaly F1", "normal flagged", "anomalies missed"):
        table.add_column(column, justify="right")
    table.add_row("live", f"{test['accuracy']:.4f}", f"{test['anomaly']['precision']:.4f}", f"{test['anomaly']['recall']:.4f}",
                  f"{test['anomaly']['f1']:.4f}", "", "")
    for r in summary["recommendations"]:
        table.add_row(f"{r['objective']} ({r['threshold']:.5f})", f"{r['accuracy']:.4f}", f"{r['anomaly']['precision']:.4f}",
                      f"{r['anomaly']['recall']:.4f}", f"{r['anomaly']['f1']:.4f}", f"{r['change']['normal_flagged']:+d}",
                      f"{r['change']['anomalies_missed']:+d}")
    out.print(table)
    for note in summary.get("notes", []):
        out.print(note)
    if "drift" in summary:
        out.print(drift_sentence(summary["drift"]))
    if "per_source" in summary:
        _render_per_source(out, summary["per_source"])
    if "report" in summary:
        out.print(f"report: {summary['report']}")


def _render_per_source(out: Console, found: dict[str, Any]) -> None:
    from anomstream.replay import per_source

    table = Table(title=per_source.title(found))
    for column in per_source.COLUMNS:
        table.add_column(column, justify="left" if column in ("source", "why not") else "right")
    for row in per_source.table_rows(found):
        table.add_row(*row)
    out.print(table)
    for line in per_source.footer(found):
        out.print(line)
