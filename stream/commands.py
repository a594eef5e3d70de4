"""`anomstream worker`."""

from __future__ import annotations

import argparse
import faulthandler
import logging
import signal
from pathlib import Path
from typing import Any

from anomstream.config import add_kafka_flags
from anomstream.models.runtimes import CHOICES as RUNTIME_CHOICES
from anomstream.stream.settings import WorkerSettings

log = logging.getLogger("anomstream.worker")


def register(commands: argparse._SubParsersAction) -> None:
    worker = commands.add_parser("worker", help="score telemetry windows from Kafka and publish verdicts")
    worker.add_argument("--model", required=True, type=Path, help="model artifact directory (hot-reloaded when it changes)")
    worker.add_argument(
        "--runtime",
        choices=RUNTIME_CHOICES,
        default="auto",
        help="what runs the model: auto, litert when the artifact has model.tflite and ai-edge-litert is installed"
        " (it is a dependency), else tensorflow, re-decided for each artifact a reload loads; litert, the artifact's"
        " model.tflite on ai-edge-litert: no TensorFlow import, <1 s start-up, 5-9x less memory, the same verdicts;"
        " tensorflow, the reference the model was trained and evaluated with (default: auto; the log and"
        " anomstream_model_info{runtime} say which runs)",
    )
    worker.add_argument("--litert-threads", type=int, default=1, help="threads of one LiteRT model call (default: 1)")
    add_kafka_flags(worker)
    worker.add_argument("--input-topic", default="telemetry-windows", help="topic of telemetry windows (default: telemetry-windows)")
    worker.add_argument("--scores-topic", default="telemetry-scores", help="topic for every verdict (default: telemetry-scores)")
    worker.add_argument("--output-topic", default="telemetry-anomalies", help="topic for anomalous verdicts only (default: telemetry-anomalies)")
    worker.add_argument("--dlq-topic", default="telemetry-windows-dlq", help="dead-letter topic for bad input (default: telemetry-windows-dlq)")
    worker.add_argument("--group-id", default="anomstream", help="consumer group; workers with the same id share partitions (default: anomstream)")
    worker.add_argument("--delivery", choices=["exactly-once", "at-least-once"], default="exactly-once", help="delivery guarantee (default: exactly-once)")
    worker.add_argument(
        "--instance-id",
        default="",
        help="this replica's stable name (a StatefulSet pod's, a host's): static group membership (a restart rejoins"
        " without a rebalance) and the transactional id anomstream-<group>-<instance-id>, so a successor aborts a"
        " crashed predecessor's open transaction at once (default: none)",
    )
    worker.add_argument(
        "--transactional-id",
        default="",
        help="exactly-once producer id, if not the one --instance-id gives (default: anomstream-<group>-<instance-id>,"
        " or without --instance-id anomstream-<group>-<host>-<random>, unique per process)",
    )
    worker.add_argument("--max-batch", type=int, default=512, help="most messages per micro-batch (default: 512)")
    worker.add_argument("--max-wait-ms", type=int, default=50, help="longest wait for a batch to fill after its first message (default: 50)")
    worker.add_argument(
        "--commit-interval-ms",
        type=int,
        default=100,
        help="how often to commit: the length of one exactly-once transaction, or the at-least-once offset commit"
        " interval; shorter cuts latency and redone work after a crash, longer raises throughput (default: 100)",
    )
    worker.add_argument(
        "--transaction-timeout-ms",
        type=int,
        default=10_000,
        help="exactly-once: how long the broker keeps a dead worker's open transaction before aborting it (it blocks"
        " read_committed readers of the outputs meanwhile, unless a successor with the same transactional id aborts"
        " it first); at least twice --commit-interval-ms + 1 s, at most the broker's transaction.max.timeout.ms"
        " (default: 10000, as Kafka Streams)",
    )
    worker.add_argument(
        "--explain",
        choices=["off", "range", "full"],
        default="range",
        help="what an anomalous verdict's `explanation` holds: range (the samples where the error sits, their share of"
        " it, and for several channels the channel), full (also every sample's error: the verdict grows by the window's"
        " size), or off (no explanation, no second model call on anomalies) (default: range)",
    )
    worker.add_argument(
        "--drift-window", type=int, default=1000,
        help="anomstream_error_drift compares the latest this many live errors with the model's reference (default: 1000)",
    )
    worker.add_argument(
        "--drift-max-age-s", type=float, default=600.0,
        help="... of those, only errors younger than this many seconds, so a quiet spell does not keep old ones (default: 600)",
    )
    worker.add_argument(
        "--drift-min-windows", type=int, default=200,
        help="fewer live errors than this (at most --drift-window) leave anomstream_error_drift NaN: too few to judge (default: 200)",
    )
    worker.add_argument("--metrics-host", default="0.0.0.0", help="address of the /metrics, /healthz, /readyz server (default: 0.0.0.0)")
    worker.add_argument("--metrics-port", type=int, default=9100, help="port of that server; 0 picks a free one (default: 9100)")
    worker.add_argument("--reload-interval-s", type=float, default=5.0, help="how often to look for a new artifact; 0: only on SIGHUP (default: 5)")
    worker.add_argument("--startup-timeout-s", type=float, default=60.0, help="how long to wait for Kafka at start-up (default: 60)")
    worker.add_argument("--create-topics", action="store_true", help="create missing topics (one partition each) instead of failing")
    worker.set_defaults(run=run_worker)


def run_worker(args: argparse.Namespace) -> Any:
    settings = WorkerSettings.from_args(args)
    from anomstream.stream.worker import Worker  # the model's runtime loads in Worker.run, after the flags were checked

    worker = Worker(settings)
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    signal.signal(signal.SIGINT, lambda *_: worker.stop())
    signal.signal(signal.SIGHUP, lambda *_: worker.reload_model())
    # A worker that seems stuck tells where: `kill -USR1 PID` writes every thread's stack to stderr (the log). From the
    # main thread with the GIL held, not from the C signal handler (faulthandler.register): that one walked other
    # threads' frames while they ran, and a worker that starts a thread per transactional call died of it (SIGSEGV).
    signal.signal(signal.SIGUSR1, lambda *_: faulthandler.dump_traceback(all_threads=True))
    worker.run()
    return None
