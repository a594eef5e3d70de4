"""`anomstream demo --json`, end to end on the embedded broker (Tansu), as `make demo` runs it; and its cached model."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.integration
def test_demo_trains_serves_replays_and_validates(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}  # no cached model: it must train one
    done = subprocess.run(
        [sys.executable, "-m", "anomstream", "demo", "--report", str(tmp_path / "report"), "--json"],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["replayed"] == summary["scored"] == 1000
    assert summary["missing"] == 0 and summary["duplicates"] == 0
    assert summary["dead_letters"] == 3
    assert summary["healthy"] is True
    test = summary["test"]
    assert test["windows"] == 1000
    assert summary["anomalies"] == test["confusion"]["normal_as_anomaly"] + test["confusion"]["anomaly_as_anomaly"]
    # Live verdicts reproduce the offline evaluation of the same artifact.
    evaluated = subprocess.run(
        [sys.executable, "-m", "anomstream", "evaluate", "--model", summary["model"], "--json"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    offline = json.loads(evaluated.stdout)["test"]
    for key in ("accuracy", "precision", "recall", "roc_auc"):
        assert test[key] == pytest.approx(offline[key], abs=1e-9), key
    assert test["accuracy"] >= 0.935
    assert (tmp_path / "report" / "report.md").is_file()
    assert (tmp_path / "report" / "error_histogram.png").stat().st_size > 5000
    assert "embedded broker (Tansu)" in done.stderr
    # A first run is quiet: no TensorFlow C++ lines (CUDA probes) and no librdkafka configuration warnings.
    assert [word for word in ("cuda", "cuInit", "NodeDef", "absl::", "XNNPACK", "CONFWARN") if word.lower() in done.stderr.lower()] == []
    # Each figure says what it measures: the worker's own rate while it had input, and the wall time end to end.
    assert 0 < summary["worker_busy_seconds"] < summary["end_to_end_seconds"]
    assert summary["worker_windows_per_s"] == round(1000 / summary["worker_busy_seconds"])
    assert "throughput" not in summary


@pytest.fixture
def small_dataset(tmp_path, monkeypatch):
    """A small labelled file, an empty cache, and the demo's recipe cut to one epoch (its 1,500 updates took 10 s a
    model here, and these tests are about the cache, not the fit)."""
    import dataclasses

    import numpy as np

    from anomstream.models import data, recipe

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setitem(recipe.PRESETS, "default", dataclasses.replace(recipe.PRESETS["default"], epochs=1, min_steps=0))
    rng = np.random.default_rng(0)
    t = np.linspace(0, 2 * np.pi, 24)
    windows = np.vstack([np.sin(t) + 0.05 * rng.standard_normal((160, 24)), np.cos(t) + 0.05 * rng.standard_normal((40, 24))])
    labels = np.r_[np.ones(160), np.zeros(40)]
    path = tmp_path / "small.csv"
    path.write_text("\n".join(",".join(f"{v:.6g}" for v in row) for row in np.column_stack([windows, labels])) + "\n")
    return data.load(path)


def test_the_cached_model_is_reused_only_while_its_files_are_intact(small_dataset):
    from anomstream.models import artifact
    from anomstream.replay.demo import cached_model

    first = cached_model(small_dataset)
    version = artifact.read_metadata(first).version
    assert cached_model(small_dataset) == first and artifact.read_metadata(first).version == version  # reused, not retrained
    model = first / artifact.MODEL_FILE
    model.write_bytes(model.read_bytes()[:2000])  # truncated: model.json alone still reads fine
    again = cached_model(small_dataset)
    assert again == first and artifact.read_metadata(again).version != version
    artifact.verify(again)


def test_the_cache_key_follows_the_recipe_and_the_release(small_dataset, monkeypatch):
    import dataclasses
    import importlib.metadata

    from anomstream.models import recipe
    from anomstream.replay.demo import cached_model

    first = cached_model(small_dataset)
    with monkeypatch.context() as patched:
        patched.setattr(importlib.metadata, "version", lambda name: "99.0.0")
        assert cached_model(small_dataset) != first  # another release trains its own
    assert cached_model(small_dataset) == first
    changed = dataclasses.replace(recipe.PRESETS["default"], epochs=2)
    monkeypatch.setitem(recipe.PRESETS, "default", changed)  # the demo's recipe changed in code
    assert cached_model(small_dataset) != first
