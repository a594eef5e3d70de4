"""The run's verdict, from its numbers alone: the goals it meets or misses, and the worker against its baselines.

Computed from the result dictionary after the phases, so a partial run (`--phases`, a
failed phase) gets the targets and ratios its numbers allow, and nothing else.
"""

from __future__ import annotations

from typing import Any

from anomstream.benchmarks.config import FORMATS, MODES
from anomstream.stream.settings import WorkerSettings


def throughput_rate(result: dict[str, Any], variant: str, fmt: str, mode: str, steady: bool = False) -> float | None:
    """The median windows/s of one throughput run (`steady`: between 10% and 90% committed), or None when it was
    not measured."""
    for row in result.get("throughput", {}).get("runs", []):
        if (row["variant"], row["format"], row["delivery"]) == (variant, fmt, mode):
            return row["windows_per_s_10_90" if steady else "windows_per_s"]
    return None


def _workers(result: dict[str, Any]) -> list[tuple[str, str]]:
    """(variant, label suffix) of each worker measured: TensorFlow's plain, LiteRT's marked."""
    measured = {row["variant"] for row in result.get("throughput", {}).get("runs", [])}
    return [(variant, label) for variant, label in (("worker", ""), ("worker-litert", " (litert)")) if variant in measured]


COMMIT_INTERVAL_MS = WorkerSettings.commit_interval_ms  # the worker's --commit-interval-ms default, which the bench keeps


def latency_pairs(result: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(worker row, passthrough row) of the latency runs at the same delivery, --max-wait-ms and offered rate."""
    runs = result.get("latency", {}).get("runs", [])
    passthrough = {(r["delivery"], r["max_wait_ms"], r["offered_rate"]): r for r in runs if r.get("variant") == "passthrough"}
    pairs = []
    for row in runs:
        twin = passthrough.get((row["delivery"], row["max_wait_ms"], row["offered_rate"]))
        if row.get("variant", "worker") == "worker" and twin and row.get("p99_ms") and twin.get("p99_ms"):
            pairs.append((row, twin))
    return pairs


def ratios(result: dict[str, Any]) -> dict[str, float | None]:
    found: dict[str, float | None] = {}

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a and b else None

    naive = result.get("naive", {}).get("windows_per_s")
    for variant, label in _workers(result):
        for mode in MODES:
            for fmt in FORMATS:
                worker = throughput_rate(result, variant, fmt, mode)
                found[f"{fmt} {mode}: worker{label} / passthrough"] = ratio(worker, throughput_rate(result, "passthrough", fmt, mode))
                found[f"{fmt} {mode}: worker{label} / naive"] = ratio(worker, naive)
    for mode in MODES:
        found[f"json {mode}: worker / strict-json worker (the happy path's gain)"] = ratio(
            throughput_rate(result, "worker", "json", mode), throughput_rate(result, "worker-strict-json", "json", mode)
        )
        found[f"json {mode}: worker / stdlib-json worker"] = ratio(
            throughput_rate(result, "worker", "json", mode), throughput_rate(result, "worker-stdlib-json", "json", mode)
        )
        # Quix Streams runs on LiteRT: against the worker on LiteRT, on the same clock (and the steady 10-90% rates)
        found[f"json {mode}: worker (litert) / quixstreams"] = ratio(
            throughput_rate(result, "worker-litert", "json", mode), throughput_rate(result, "quixstreams", "json", mode)
        )
        found[f"json {mode}: worker (litert) / quixstreams, 10-90%"] = ratio(
            throughput_rate(result, "worker-litert", "json", mode, steady=True), throughput_rate(result, "quixstreams", "json", mode, steady=True)
        )
    for row, passthrough in latency_pairs(result):
        key = f"latency {row['delivery']} {row['offered_rate']:,.0f}/s --max-wait-ms {row['max_wait_ms']}: worker p99 / passthrough p99"
        found[key] = ratio(row["p99_ms"], passthrough["p99_ms"])
    return {k: v for k, v in found.items() if v is not None}


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def add(name: str, value: float | None, goal: float, higher: bool = True, unit: str = "") -> None:
        if value is None:
            return
        found.append({"target": name, "value": value, "goal": goal, "unit": unit,
                        "met": value >= goal if higher else value <= goal})  # fmt: skip

    naive = result.get("naive", {}).get("windows_per_s")
    for variant, label in _workers(result):
        for mode in MODES:
            f32, ceiling = throughput_rate(result, variant, "f32", mode), throughput_rate(result, "passthrough", "f32", mode)
            add(f"f32 {mode}{label}: >= 100k windows/s", f32, 100_000, unit="windows/s")
            add(f"f32 {mode}{label}: >= 0.7 x passthrough", round(f32 / ceiling, 3) if f32 and ceiling else None, 0.7, unit="x")
            json_rate = throughput_rate(result, variant, "json", mode)
            add(f"json {mode}{label}: >= 40k windows/s", json_rate, 40_000, unit="windows/s")
            add(f"json {mode}{label}: >= 1000 x naive", round(json_rate / naive, 1) if json_rate and naive else None, 1000, unit="x")
    for mode in MODES:
        worker, peer = throughput_rate(result, "worker-litert", "json", mode), throughput_rate(result, "quixstreams", "json", mode)
        add(f"json {mode} (litert): >= 4 x Quix Streams", round(worker / peer, 2) if worker and peer else None, 4, unit="x")
    latency = [row for row in result.get("latency", {}).get("runs", []) if row.get("variant", "worker") == "worker"]
    for row in latency:
        if row["offered_rate"] == 10_000:
            goal = 25 if row["delivery"] == "at-least-once" else 100
            add(f"p99 at 10k/s, {row['delivery']}, --max-wait-ms {row['max_wait_ms']}: <= {goal} ms", row["p99_ms"], goal, higher=False, unit="ms")
    for row, passthrough in latency_pairs(result):
        # Up to half the worker's measured capacity: beyond it the worker's own queue, not the broker, sets the tail.
        capacity = throughput_rate(result, "worker", "json", row["delivery"])
        if capacity and row["offered_rate"] > capacity / 2:
            continue
        where = f"p99 at {row['offered_rate']:,.0f}/s, {row['delivery']}, --max-wait-ms {row['max_wait_ms']}"
        if row["delivery"] == "at-least-once":
            add(f"{where}: <= 1.5 x passthrough p99", round(row["p99_ms"] / passthrough["p99_ms"], 2), 1.5, higher=False, unit="x")
        else:
            over = round(row["p99_ms"] - passthrough["p99_ms"], 1)
            add(f"{where}: <= passthrough p99 + --commit-interval-ms ({COMMIT_INTERVAL_MS} ms)", over, COMMIT_INTERVAL_MS, higher=False, unit="ms over")
    for key in [key for key in result if key == "memory" or key.startswith("memory_")]:
        memory = result[key]
        if memory.get("steady_rss_mib") and memory.get("second_half_growth_mib") is not None:
            add(f"RSS flat ({memory.get('runtime', 'tensorflow')}): growth over the second half of the drain <= 5% of steady RSS",
                round(memory["second_half_growth_mib"] / memory["steady_rss_mib"] * 100, 2), 5, higher=False, unit="%")
    return found
