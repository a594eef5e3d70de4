"""Profile one worker process while it drains a backlog, with py-spy (a sampling profiler).

    pip install py-spy      # not a project dependency: a profiling tool
    python -m anomstream.benchmarks.profile_worker --format json --delivery exactly-once --windows 100000 --out reports/profile

The backlog is produced inside one open transaction, the worker (`python -m anomstream
worker`, unchanged) starts and gets ready, the transaction is committed and py-spy
attaches; it is stopped when the worker's `windows_consumed_total` reaches the backlog:
the profile holds the busy drain, and neither the start-up nor idle waits. The worker's
own `batch_duration_seconds` stage means over the same span are reported beside it.
py-spy samples every thread with `--idle` (so blocking waits count: percentages are of
wall time) and writes collapsed stacks; this script sums the worker's main thread by
stage and lists the hottest functions. Writes `<out>/<format>-<delivery>.txt` (raw
collapsed stacks, for flamegraph tools or speedscope) and prints one JSON summary.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

log = logging.getLogger("anomstream.bench")

# Where a main-thread sample is spent, by the innermost matching frame on its stack (first match wins,
# innermost first). Patterns match py-spy's "function (path:line)" frames: the steps `Worker.process` and
# `Worker.run` call (tests/benchmarks/test_profile_stages.py holds them to the code's names).
STAGES = [
    ("metrics: observe/inc loops", re.compile(r"prometheus_client|\b_count \(|\b_timed \(|\bBatchTally\.")),
    ("decode (codec.decode_batch)", re.compile(r"\bdecode_batch \(")),
    ("score (model call, explanations)", re.compile(r"\bDetector\.score \(")),
    ("encode verdicts (msgspec)", re.compile(r"\bencode_json \(|\bencode_batch \(")),
    ("build verdicts (dicts, Record)", re.compile(r"\bWorker\.verdicts \(|\bDeadLetters\.letter \(")),
    ("delivery-report closures (at-least-once)", re.compile(r"\b_report \(|\bon_delivery \(|\bon_letter \(|\b_on_letter \(")),
    ("produce() calls", re.compile(r"\b(AtLeastOnce|ExactlyOnce)\.send \(")),
    ("commit: transaction / flush / store", re.compile(r"\bWorker\.commit \(")),
    ("consume (wait for a batch)", re.compile(r"\bWorker\.poll_batch \(")),
    ("next_offsets", re.compile(r"\bWorker\.next_offsets \(")),
    # Self time of the loop's own lines: dropping the last batch (512 messages, windows, records) frees its
    # objects; the lag clock and the tally's arrays.
    ("loop itself (freeing the last batch, bookkeeping)", re.compile(r"\bWorker\.(run|process) \(")),
]


# Without --native, time inside a C call (librdkafka, TensorFlow) is charged to the Python line that made it:
# the innermost project frame's source line tells which call that was.
CALLS = [
    ("commit: transaction / flush / store", re.compile(r"\.(flush|commit_transaction|send_offsets_to_transaction|begin_transaction|store_offsets|commit)\(")),
    ("consume (wait for a batch)", re.compile(r"\.consume\(")),
    ("produce() calls", re.compile(r"\.produce\(")),
]
_ROOT = Path(__file__).resolve().parent.parent


def _source_line(frame: str) -> str:
    match = re.search(r"\(((?:stream|models)/[^:()]+\.py):(\d+)\)$", frame)
    if not match:
        return ""
    try:
        return (_ROOT / match.group(1)).read_text().splitlines()[int(match.group(2)) - 1]
    except (OSError, IndexError):
        return ""


def classify(stack: list[str]) -> str:
    innermost = stack[-1] if stack else ""
    line = _source_line(innermost)
    for name, pattern in CALLS:
        if line and pattern.search(line):
            return name
    for frame in reversed(stack):
        for name, pattern in STAGES:
            if pattern.search(frame):
                return name
    return "other"


def summarise(raw: Path, top: int = 15) -> dict[str, Any]:
    """Stage shares and hottest functions of the main thread, from py-spy's collapsed stacks."""
    stages: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack_text.split(";")
        thread = frames[0] if frames and frames[0].startswith(("thread", "process")) else "?"
        if frames and frames[0].startswith("process"):
            frames = frames[1:]
            thread = frames[0] if frames and frames[0].startswith("thread") else thread
        threads[thread] += count
        if not _is_main(thread, frames):
            continue
        frames = [f for f in frames if not f.startswith(("thread", "process"))]
        total += count
        stages[classify(frames)] += count
        if frames:
            own[_short(frames[-1])] += count
        for frame in set(_short(f) for f in frames):
            inclusive[frame] += count

    def share(counter: collections.Counter[str], n: int | None = None) -> list[dict[str, Any]]:
        return [{"what": k, "percent": round(100 * v / total, 1)} for k, v in counter.most_common(n)] if total else []

    return {"main_thread_samples": total, "stages": share(stages), "self": share(own, top), "inclusive": share(inclusive, top),
            "threads": dict(threads.most_common(8))}  # fmt: skip


def _is_main(thread: str, frames: list[str]) -> bool:
    """The worker's poll loop runs on the main thread (`python -m anomstream worker`)."""
    if "MainThread" in thread:
        return True
    return thread == "?" and any("Worker.run (" in f for f in frames)


def _short(frame: str) -> str:
    match = re.match(r"(.*?) \((.*?)(?::(\d+))?\)$", frame)
    if not match:
        return frame
    function, path = match.group(1), match.group(2)
    parts = Path(path).parts
    for anchor in ("site-packages", "stream", "models", "benchmarks", "lib"):
        if anchor in parts:
            index = len(parts) - 1 - parts[::-1].index(anchor)
            path = "/".join(parts[index + (1 if anchor in ("site-packages", "lib") else 0):])
            break
    return f"{function} ({path})"


def _stage_sums(text: str) -> dict[str, tuple[float, float]]:
    """(seconds, batches) per stage of the worker's own anomstream_batch_duration_seconds histogram."""
    sums: dict[str, list[float]] = {}
    for line in text.splitlines():
        match = re.match(r'anomstream_batch_duration_seconds_(sum|count)\{stage="(\w+)"\} (\S+)', line)
        if match:
            slot = sums.setdefault(match.group(2), [0.0, 0.0])
            slot[0 if match.group(1) == "sum" else 1] = float(match.group(3))
    return {stage: (total, count) for stage, (total, count) in sums.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", choices=["json", "f32"], default="json")
    parser.add_argument("--delivery", choices=["exactly-once", "at-least-once"], default="exactly-once")
    parser.add_argument("--windows", type=int, default=100_000)
    parser.add_argument("--max-batch", type=int, default=512)
    parser.add_argument("--max-wait-ms", type=int, default=50)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--native", action="store_true", help="py-spy --native: C/C++ frames too (TensorFlow, librdkafka)")
    parser.add_argument("--bootstrap-servers", help="a running broker (default: start Apache Kafka)")
    parser.add_argument("--broker", choices=["apache", "tansu"], default="apache")
    parser.add_argument("--model", type=Path)
    parser.add_argument("--worker-arg", action="append", default=[], help="extra `anomstream worker` argument (repeatable), e.g. -X=linger.ms=20")
    parser.add_argument("--out", type=Path, default=Path("reports/profile"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)

    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        print("py-spy is not installed: pip install py-spy", file=sys.stderr)
        return 2
    from anomstream.benchmarks import procs
    from anomstream.benchmarks.backlog import CommittedOffsets, Templates, Topics, end_offsets, produce_backlog, wait_committed
    from anomstream.models import data
    from anomstream.replay.demo import cached_model

    args.out.mkdir(parents=True, exist_ok=True)
    raw = args.out / f"{args.format}-{args.delivery}.txt"
    with ExitStack() as stack:
        if args.bootstrap_servers:
            bootstrap = args.bootstrap_servers
        else:
            from anomstream.brokers import ApacheKafka, Tansu

            bootstrap = stack.enter_context(ApacheKafka() if args.broker == "apache" else Tansu()).bootstrap_servers
        kafka = {"bootstrap.servers": bootstrap}
        dataset = data.load(data.resolve())
        model = args.model or cached_model(dataset, "tutorial")
        topics = Topics(kafka, "profile")
        stack.callback(topics.delete_all)
        topic = topics.create("input")
        outputs = topics.outputs("profile")
        _, producer = produce_backlog(kafka, topic, Templates(dataset.windows, dataset.labels), args.format, args.windows, transactional=True)
        group = f"profile-{uuid.uuid4().hex[:6]}"
        worker = procs.WorkerProcess.with_flags(
            ["--model", str(model), "--bootstrap-servers", bootstrap, "--input-topic", topic, "--scores-topic", outputs["scores"],
             "--output-topic", outputs["anomalies"], "--dlq-topic", outputs["dlq"], "--group-id", group, "--delivery", args.delivery,
             "--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms), *args.worker_arg]
        )  # fmt: skip
        stack.callback(worker.cleanup)
        worker.ready_steps()
        command = [py_spy, "record", "--pid", str(worker.pid), "--format", "raw", "--output", str(raw), "--rate", str(args.rate),
                   "--idle", "--threads", *(["--native"] if args.native else ["--nonblocking"])]  # fmt: skip
        stages0 = _stage_sums(worker.metrics())
        load0 = procs.loadavg()
        # Release the backlog, then attach: the profile starts busy (py-spy takes a moment to attach, so the first
        # batches are not in it) and stops when the worker has delivered the last window, so no idle wait is in it.
        producer.commit_transaction(60)
        released = time.monotonic()
        spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while procs.metric(worker.metrics(), "anomstream_windows_consumed_total") < args.windows:
            if not worker.alive:
                raise RuntimeError(f"the worker exited:\n{worker.log_tail()}")
            time.sleep(0.05)
        spy.send_signal(signal.SIGINT)
        delivered = time.monotonic()
        stages1 = _stage_sums(worker.metrics())
        offsets = CommittedOffsets(kafka, group, end_offsets(kafka, topic))
        done = wait_committed(offsets, args.windows, timeout_s=1800, alive=lambda: worker.alive)
        offsets.close()
        _, err = spy.communicate(timeout=120)
        seconds = done - released
    if not raw.exists():
        print(f"py-spy wrote nothing: {err.decode(errors='replace')[-2000:]}", file=sys.stderr)
        return 1
    summary = {
        "format": args.format, "delivery": args.delivery, "windows": args.windows, "seconds": round(seconds, 2),
        "seconds_to_last_delivery": round(delivered - released, 2),
        "windows_per_s": round(args.windows / seconds, 1), "max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms,
        "worker_args": args.worker_arg, "loadavg": [load0, procs.loadavg()], "raw": str(raw),
        "stage_ms_per_batch": {stage: round((stages1[stage][0] - stages0.get(stage, (0, 0))[0])
                                            / (stages1[stage][1] - stages0.get(stage, (0, 0))[1]) * 1000, 2)
                               for stage in stages1 if stages1[stage][1] > stages0.get(stage, (0, 0))[1]},
        **summarise(raw),
    }  # fmt: skip
    (args.out / f"{args.format}-{args.delivery}.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
