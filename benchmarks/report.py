"""Markdown tables from an `anomstream bench --json` result (for BENCHMARKS.md).

    python -m anomstream.benchmarks.report bench.json [more.json ...] > tables.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _n(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    if isinstance(value, (int, float)):
        return f"{value:,.{digits}f}"
    return str(value)


def _load(row: dict[str, Any]) -> str:
    loads = [r["loadavg"][0] for r in row.get("repeats", [])] or [row["loadavg"][0]]
    return " / ".join(f"{x:.1f}" for x in loads)


def markdown(result: dict[str, Any]) -> str:
    out: list[str] = []
    machine, broker = result["machine"], result["broker"]
    out.append(f"**{broker.get('title', broker['name'])}**, `{result['command']}`, {result['date']}; "
               f"{machine['nproc']} × {machine['cpu']}, {machine['ram_gib']} GiB RAM; load average (1, 5, 15 min) "
               f"{machine['loadavg']} at the start, {machine.get('loadavg_end')} at the end; {result['seconds']:.0f} s in all.\n")  # fmt: skip
    throughput = result.get("throughput")
    naive = result.get("naive", {}).get("windows_per_s")
    if throughput:
        rows = {(r["variant"], r["format"], r["delivery"]): r for r in throughput["runs"]}
        out.append(f"Throughput, windows/s: backlog of {throughput['windows']:,} windows, median of {throughput['repeats']} "
                   f"(min–max), `--max-batch {throughput['max_batch']} --max-wait-ms {throughput['max_wait_ms']}`; "
                   "“10–90%” is the steady rate between 10% and 90% committed.\n")  # fmt: skip
        out.append("| variant | input | delivery | windows/s | min–max | 10–90% | × passthrough | × naive | load (1 min) |")
        out.append("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
        for (variant, fmt, mode), row in rows.items():
            ceiling = rows.get(("passthrough", fmt, mode), {}).get("windows_per_s")
            rate = row["windows_per_s"]
            vs_pass = f"{rate / ceiling:.2f}" if rate and ceiling and variant != "passthrough" else ""
            vs_naive = f"{rate / naive:,.0f}" if rate and naive and variant != "passthrough" else ""
            out.append(f"| {variant} | {fmt} | {mode} | {_n(rate)} | {_n(row['min'])}–{_n(row['max'])} | "
                       f"{_n(row.get('windows_per_s_10_90'))} | {vs_pass} | {vs_naive} | {_load(row)} |")  # fmt: skip
        stages = [(key, r["repeats"][0].get("stage_ms_per_batch")) for key, r in rows.items() if key[0] != "passthrough"]
        if any(s for _, s in stages):
            out.append("\nWorker stages, mean ms (the worker's own `batch_duration_seconds`, first repetition): poll to score "
                       "per batch of 512; `produce` hands a batch's records to librdkafka; `commit` is per commit, not per "
                       "batch (one every `--commit-interval-ms`: exactly-once, the transaction commit; at-least-once, "
                       "storing the offsets whose delivery reports came back):\n")  # fmt: skip
            out.append("| variant | input | delivery | poll | decode | score | produce | commit |")
            out.append("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
            for (variant, fmt, mode), stage in stages:
                if stage:
                    cells = " | ".join(_n(stage.get(k), 1) if stage.get(k) is not None else "" for k in ("poll", "decode", "score", "produce", "commit"))
                    out.append(f"| {variant} | {fmt} | {mode} | {cells} |")
    if "naive" in result:
        n = result["naive"]
        out.append(f"\nNaive baseline (one `model.predict` per message): {_n(n['windows_per_s'], 2)} windows/s over "
                   f"{n['windows']} windows (load {n['loadavg'][0]:.1f}).\n")  # fmt: skip
    latency = result.get("latency")
    if latency:
        out.append("Latency, JSON input: produce `ts` → verdict at a read_committed reader (and → the verdict's Kafka "
                   "timestamp, i.e. produced by the worker, before any commit), ms:\n")  # fmt: skip
        out.append("| variant | delivery | --max-wait-ms | offered/s | achieved/s | p50 | p95 | p99 | p50 / p99 produced | load (1 min) |")
        out.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for r in latency["runs"]:
            flag = " †" if r.get("note") else ""
            out.append(f"| {r.get('variant', 'worker')} | {r['delivery']} | {r['max_wait_ms']} | {_n(r['offered_rate'])}{flag} | {_n(r['achieved_rate'])} | "
                       f"{_n(r['p50_ms'], 1)} | {_n(r['p95_ms'], 1)} | {_n(r['p99_ms'], 1)} | "
                       f"{_n(r['verdict_produced']['p50_ms'], 1)} / {_n(r['verdict_produced']['p99_ms'], 1)} | {r['loadavg'][0]:.1f} |")  # fmt: skip
        if any(r.get("note") for r in latency["runs"]):
            out.append("\n† offered above the measured maximum: the queue grows for the whole run, so these are queueing delays.")
    for runtime, memory, startup in memory_and_startup(result):
        out += _memory_and_startup(runtime, memory, startup)
    scaleout = result.get("scaleout")
    if scaleout:
        out.append(f"\nScale-out, {scaleout['windows']:,} JSON windows on 4 partitions, exactly-once:\n")
        out.append("| workers | windows/s | 10–90% | speed-up | windows per worker | load (1 min) |")
        out.append("| ---: | ---: | ---: | ---: | --- | --- |")
        for r in scaleout["runs"]:
            out.append(f"| {r['workers']} | {_n(r['windows_per_s'])} | {_n(r['windows_per_s_10_90'])} | {_n(r['speedup'], 2)} | "
                       f"{', '.join(_n(c) for c in r['consumed_per_worker'])} | {r['loadavg'][0]:.1f} |")  # fmt: skip
    if result.get("targets"):
        out.append("\nTargets (issue 6):\n")
        out.append("| target | measured | met |")
        out.append("| --- | ---: | --- |")
        for t in result["targets"]:
            value = _n(t["value"], 0 if t["unit"] == "windows/s" else 2)
            out.append(f"| {t['target']} | {value} {t['unit']} | {'yes' if t['met'] else 'no'} |")
    for error in result.get("errors", []):
        out.append(f"\nPhase {error['phase']} failed: {error['error']}")
    return "\n".join(out) + "\n"


def memory_and_startup(result: dict[str, Any]) -> list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]]:
    """(runtime, memory, start-up) per runtime measured: the first on the plain keys, then "memory_litert" and the like
    (benchmarks/memory.py). Results from before --runtimes have no "runtime": TensorFlow was the only one."""
    found = []
    for key in [key for key in result if key == "memory" or key.startswith("memory_")]:
        memory, startup = result[key], result.get("startup" + key[len("memory"):])
        found.append(((memory or startup or {}).get("runtime", "tensorflow"), memory, startup))
    return found


def _memory_and_startup(runtime: str, memory: dict[str, Any] | None, startup: dict[str, Any] | None) -> list[str]:
    out = []
    if memory:
        out.append(f"\nMemory (worker process on {runtime}, exactly-once, {memory['windows']:,} JSON windows drained at "
                   f"{_n(memory.get('drain_windows_per_s_10_90'))} windows/s): peak RSS (VmHWM) {memory['peak_rss_mib']} MiB, "
                   f"steady (median over the second half) {memory['steady_rss_mib']} MiB, growth over the second half "
                   f"{memory['second_half_growth_mib']} MiB; RSS at ready {memory['rss_at_ready_mib']} MiB; by progress "
                   + ", ".join(f"{k} {v}" for k, v in memory["rss_at_progress_mib"].items()) + " MiB.")  # fmt: skip
    if startup:
        tf = startup.get("tensorflow_import", {})
        out.append(f"\nStart-up on {runtime} to /readyz 200: {startup['seconds_to_ready']} s (steps, s since start: "
                   + ", ".join(f"{k} {v}" for k, v in startup["steps_s"].items())
                   + f"); `import tensorflow, keras` alone: {tf.get('import_seconds')} s, {tf.get('rss_mib')} MiB.")  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    paths = argv if argv is not None else sys.argv[1:]
    if not paths:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    for path in paths:
        sys.stdout.write(markdown(json.loads(Path(path).read_text())) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
