"""The phases of `anomstream bench` by name, and the whole run (`run`)."""

from __future__ import annotations

from typing import Any

from anomstream.benchmarks import latency, memory, scaleout, throughput
from anomstream.benchmarks.config import BenchConfig
from anomstream.benchmarks.harness import Bench, Runners

RUNNERS: Runners = {
    "throughput": throughput.run,
    "naive": throughput.run_naive,
    "latency": latency.run,
    "memory": memory.run,
    "scaleout": scaleout.run,
}


def run(config: BenchConfig) -> dict[str, Any]:
    """One bench: the broker, the data and the model set up once, then every phase `config.phases` names."""
    return Bench(config).run(RUNNERS)
