"""What a bench run is asked to do: the phases, formats and delivery modes, and `BenchConfig` with its `--quick` preset.

Apart from the rest of the harness so that `anomstream bench --help` and flag parsing
need neither numpy nor Kafka clients.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

PHASES = ("throughput", "naive", "latency", "memory", "scaleout")
MODES = ("exactly-once", "at-least-once")
FORMATS = ("json", "f32")
RUNTIMES = ("tensorflow", "litert")  # models/runtimes.py; the worker variant on litert is "worker-litert"
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
    runtimes: tuple[str, ...] = RUNTIMES  # the worker's in throughput, memory and start-up; latency and scale-out: the first
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
        """The defaults (smaller with `quick`), then `changes`; a change that is None keeps the preset's value.

        `anomstream bench` passes every field here (its flags default to None), so a field `quick` shrinks
        has to be a flag: a field without one arrives with its plain default and would undo the preset.
        """
        base = cls(quick=quick)
        if quick:
            base = replace(base, windows=20_000, repeats=1, naive_windows=50, latency_seconds=4.0,
                           latency_max_wait_ms=(50,), memory_windows=100_000, scaleout_windows=20_000)  # fmt: skip
        return replace(base, **{k: v for k, v in changes.items() if v is not None})
