"""The benchmark harness works: every phase runs, counts add up, numbers are positive.

No timed assertions: the numbers depend on the machine. The integration test runs a
CI-sized bench (a few thousand windows, every phase) on the session's broker.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from anomstream.benchmarks import command, phases
from anomstream.benchmarks.backlog import Templates
from anomstream.benchmarks.config import BenchConfig
from anomstream.benchmarks.variants import JSON_DECODERS, json_decoder
from anomstream.stream import codec

VARIANTS = {
    (variant, fmt, mode)
    for variant in ("worker", "worker-litert", "passthrough")
    for fmt in ("json", "f32")
    for mode in ("exactly-once", "at-least-once")
} | {
    (variant, "json", mode)
    for variant in ("worker-strict-json", "worker-stdlib-json", "quixstreams")
    for mode in ("exactly-once", "at-least-once")
}


class FakeMessage:
    def __init__(self, value: bytes, headers: list | None = None) -> None:
        self._value, self._headers = value, headers

    def value(self) -> bytes:
        return self._value

    def key(self) -> bytes:
        return b"k"

    def headers(self) -> list | None:
        return self._headers

    def topic(self) -> str:
        return "t"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 0


def test_backlog_messages_are_what_replay_sends() -> None:
    rng = np.random.default_rng(1)
    windows = rng.normal(size=(3, 140)).astype(np.float32)
    templates = Templates(windows, np.array([1, 0, 1]))
    key, value, headers = templates.message("json", 4, b"bench-", 1764200000.125)
    assert headers is None and key == b"bench-s1"
    assert value == codec.encode_window("bench-4", windows[1], source="bench-s1", ts=1764200000.125, label=0)
    key, value, headers = templates.message("f32", 2, b"x-", 1.5)
    assert value == windows[2].astype("<f4").tobytes()
    assert dict(headers)["id"] == b"x-2" and dict(headers)[codec.CONTENT_TYPE] == codec.F32


@pytest.mark.parametrize("variant", sorted(JSON_DECODERS))
def test_the_swapped_json_decoders_agree_with_the_codec(variant) -> None:
    windows = np.random.default_rng(2).normal(size=(4, 140)).astype(np.float32)
    templates = Templates(windows, np.array([1, 0, 1, 0]))
    good = [FakeMessage(templates.message("json", i, b"w-", 1.25 + i)[1]) for i in range(4)]
    bad = [FakeMessage(b"nope"), FakeMessage(b'{"id": "a", "values": [1, 2]}'), FakeMessage(b'{"values": []}'),
           FakeMessage(b'{"id": "b", "values": [' + b",".join([b"NaN"] * 140) + b"]}"),
           FakeMessage(b'{"id": "c", "values": [' + b",".join([b'"1"'] * 140) + b"]}")]  # fmt: skip
    expected = codec.decode_batch(good + bad, (1, 140))
    with json_decoder(variant):
        assert codec._decode_json is JSON_DECODERS[variant]
        got = codec.decode_batch(good + bad, (1, 140))
    assert [(w.id, w.source, w.ts, w.label) for w in got.windows] == [(w.id, w.source, w.ts, w.label) for w in expected.windows]
    np.testing.assert_array_equal(got.values, expected.values)
    reasons = lambda batch: {id(i.message): i.reason for i in batch.invalid}  # noqa: E731 (order differs: NaN is caught later)
    assert reasons(got) == reasons(expected) and len(reasons(got)) == len(bad)


def test_quick_preset_and_flags() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers())
    args = parser.parse_args(["bench", "--quick", "--windows", "1000", "--phases", "throughput,latency", "--latency-max-wait-ms", "5,20"])
    config = command.config_from_args(args)
    assert config.quick and config.windows == 1000 and config.repeats == 1
    assert config.phases == ("throughput", "latency") and config.latency_max_wait_ms == (5, 20)
    assert config.runtimes == ("tensorflow", "litert")
    assert command.config_from_args(parser.parse_args(["bench", "--runtimes", "litert,tensorflow,litert"])).runtimes == ("litert", "tensorflow")
    for bad in (["--phases", "everything"], ["--runtimes", "onnx"], ["--runtimes", ","]):
        with pytest.raises(SystemExit):
            parser.parse_args(["bench", *bad])


@pytest.mark.integration
def test_ci_sized_bench_runs_every_phase(kafka_broker, ecg_artifact: Path) -> None:
    # Enough throughput for the latency targets to apply (300/s must be under half the measured JSON capacity);
    # the memory drain only has to run and report.
    windows, memory_windows, scaleout_windows, naive_windows = 2000, 1024, 2000, 5
    config = BenchConfig.preset(
        True,
        bootstrap_servers=kafka_broker.bootstrap_servers,
        broker_kind=kafka_broker.name,
        model=ecg_artifact,
        windows=windows,
        naive_windows=naive_windows,
        latency_rates=(300.0,),
        latency_seconds=2.0,
        latency_modes=("at-least-once",),
        latency_max_wait_ms=(20,),
        # LiteRT first: the phases that run on the first runtime only (latency, scale-out: three worker processes)
        # start in under a second instead of importing TensorFlow each; both runtimes still drain, start and serve.
        runtimes=("litert", "tensorflow"),
        memory_windows=memory_windows,
        scaleout_windows=scaleout_windows,
        command="pytest",
    )
    result = phases.run(config)
    json.dumps(result)  # serialisable as the one --json object

    assert result["errors"] == []
    assert result["machine"]["nproc"] >= 1 and len(result["machine"]["loadavg"]) == 3

    windows = result["throughput"]["windows"]  # rounded up to whole batches
    assert windows >= 2000 and windows % 512 == 0
    runs = result["throughput"]["runs"]
    assert {(r["variant"], r["format"], r["delivery"]) for r in runs} == VARIANTS
    for row in runs:
        assert row["windows_per_s"] > 0
        for repeat in row["repeats"]:
            if row["variant"] == "quixstreams":  # a process of its own: it says how many verdicts it produced
                assert repeat["verdicts"] == windows and repeat["seconds"] > 0
                continue
            assert repeat["consumed"] == windows and repeat["invalid"] == 0
            assert repeat["scored"] == (0 if row["variant"] == "passthrough" else windows)
            assert repeat["seconds"] > 0 and len(repeat["loadavg"]) == 3

    assert result["naive"]["windows"] == naive_windows and result["naive"]["windows_per_s"] > 0

    latency = result["latency"]["runs"]
    # 300/s, then 50% of the maximum, by the worker and then by the passthrough at the same rates
    assert [(r["variant"], r["offered_rate"]) for r in latency][::2] == [("worker", 300.0), ("passthrough", 300.0)]
    assert len(latency) == 4 and latency[1]["offered_rate"] == latency[3]["offered_rate"]
    for row in latency:
        assert row["verdicts"] == row["sent"] > 0 and row["max_wait_ms"] == 20
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"] <= row["max_ms"]

    for suffix, runtime in (("", "litert"), ("_tensorflow", "tensorflow")):  # one drain per runtime, the first on plain keys
        memory, startup = result["memory" + suffix], result["startup" + suffix]
        assert memory["runtime"] == startup["runtime"] == runtime
        assert memory["consumed"] == memory["windows"] >= memory_windows
        assert memory["peak_rss_mib"] >= memory["steady_rss_mib"] > 0
        assert startup["seconds_to_ready"] > 0 and "ready" in startup["steps_s"]
    # Not a speed assertion: LiteRT's worker never imports TensorFlow, which alone is hundreds of MiB.
    assert result["memory"]["rss_at_ready_mib"] < result["memory_tensorflow"]["rss_at_ready_mib"]

    scaleout = result["scaleout"]["runs"]
    assert [r["workers"] for r in scaleout] == [1, 2]
    for row in scaleout:
        assert sum(row["consumed_per_worker"]) == result["scaleout"]["windows"] >= scaleout_windows
        assert len(row["consumed_per_worker"]) == row["workers"] and min(row["consumed_per_worker"]) > 0
        assert row["windows_per_s"] > 0

    assert result["ratios"] and result["targets"]
    assert "json exactly-once: worker (litert) / passthrough" in result["ratios"]
    assert {f"json {mode}: worker (litert) / quixstreams" for mode in ("exactly-once", "at-least-once")} <= set(result["ratios"])
    names = {t["target"] for t in result["targets"]}
    assert "f32 exactly-once (litert): >= 100k windows/s" in names
    assert {f"json {mode} (litert): >= 4 x Quix Streams" for mode in ("exactly-once", "at-least-once")} <= names
    assert "p99 at 300/s, at-least-once, --max-wait-ms 20: <= 1.5 x passthrough p99" in names
    assert "latency at-least-once 300/s --max-wait-ms 20: worker p99 / passthrough p99" in result["ratios"]
    # A drain this short can fit the second half in one 100 ms RSS sample: growth is then unmeasured (no target),
    # never made up. When measured, each RSS target names its runtime.
    rss = {name for name in names if name.startswith("RSS flat")}
    assert rss <= {f"RSS flat ({runtime}): growth over the second half of the drain <= 5% of steady RSS" for runtime in ("tensorflow", "litert")}

    from anomstream.benchmarks.report import markdown

    text = markdown(result)
    assert "| worker-litert | f32 | exactly-once |" in text and "Start-up on litert to /readyz 200:" in text
    assert "| quixstreams | json | exactly-once |" in text and "| passthrough | at-least-once | 20 | 300 |" in text


@pytest.mark.integration
def test_json_flag_prints_exactly_one_object(kafka_broker, ecg_artifact: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "anomstream.benchmarks", "--bootstrap-servers", kafka_broker.bootstrap_servers, "--broker-kind",
         "tansu" if kafka_broker.name == "tansu" else "apache", "--model", str(ecg_artifact), "--phases", "naive",
         "--naive-windows", "3", "--json", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    printed = json.loads(lines[0])
    assert printed["naive"]["windows"] == 3 and json.loads(out.read_text()) == printed
