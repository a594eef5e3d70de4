"""The Python API, `anomstream.load(path).score(windows)`: shapes, bad input, runtimes, and the one scoring path."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import anomstream
from anomstream.models import artifact, runtimes

WINDOW = 32  # tiny_artifact's (tests/models/conftest.py)


@pytest.fixture(scope="module")
def windows(synthetic) -> np.ndarray:
    return synthetic(40, 10, seed=3)[0].astype(np.float32)


@pytest.fixture(scope="module", params=["tensorflow", "litert"])
def detector(request: pytest.FixtureRequest, tiny_artifact: Path) -> anomstream.Detector:
    return anomstream.load(tiny_artifact, runtime=request.param)


def test_score_gives_one_float32_error_and_one_verdict_per_window(detector: anomstream.Detector, windows: np.ndarray) -> None:
    result = detector.score(windows)
    assert result.errors.dtype == np.float32 and result.errors.shape == (len(windows),)
    assert result.anomalous.dtype == bool and len(result) == len(windows)
    np.testing.assert_array_equal(result.anomalous, result.errors.astype(np.float64) > detector.threshold)
    assert 0 < result.anomalous.sum() < len(windows)  # the synthetic anomalies are flagged, the normal windows are not all
    assert result.threshold == detector.threshold == detector.metadata.threshold.value
    assert detector.window_length == WINDOW and detector.window_shape == (1, WINDOW)
    assert result.channel_errors.shape == (len(windows), 1)
    np.testing.assert_array_equal(result.channel_errors[:, 0], result.errors)  # one channel: its error is the window's


def test_the_channel_axis_lists_of_floats_and_float64_score_alike(detector: anomstream.Detector, windows: np.ndarray) -> None:
    reference = detector.score(windows).errors
    np.testing.assert_array_equal(detector.score(windows[:, None, :]).errors, reference)
    np.testing.assert_array_equal(detector.score(windows.astype(np.float64)).errors, reference)
    np.testing.assert_array_equal(detector.score(windows.tolist()).errors, reference)


def test_an_empty_batch_has_no_verdicts(detector: anomstream.Detector) -> None:
    result = detector.score(np.empty((0, WINDOW), dtype=np.float32))
    assert len(result) == 0 and result.errors.dtype == np.float32 and result.anomalous.dtype == bool


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda w: w[0], r"^windows have shape \(32,\); this model takes \(n, 32\) or \(n, 1, 32\) \(one window\? pass windows\[None\]\)\.$"),
        (lambda w: w[:, :31], r"^windows have shape \(50, 31\); this model takes \(n, 32\) or \(n, 1, 32\)\.$"),
        (lambda w: np.stack([w, w], axis=1), r"^windows have shape \(50, 2, 32\); this model takes \(n, 32\) or \(n, 1, 32\)\.$"),
        (lambda w: [list(w[0]), list(w[1][:5])], r"^windows are not a rectangular array \(.*\): this model takes \(n, 32\) or \(n, 1, 32\)\.$"),
        (lambda w: np.full((2, 32), "x"), r"^windows of dtype <U1 cannot be read as float32 samples: give numbers\.$"),
        (lambda w: w.astype(np.complex64), r"^windows of dtype complex64 are not real numbers\.$"),
        (lambda w: np.where(np.arange(50)[:, None] == 7, np.nan, w), r"^1 of 50 windows hold NaN or infinite samples \(first: row 7\): every sample must be finite\.$"),
        (lambda w: np.where(np.arange(50)[:, None] >= 48, np.inf, w), r"^2 of 50 windows hold NaN or infinite samples \(first: row 48\)"),
    ],
    ids=["one-window", "wrong-length", "two-channels", "ragged", "strings", "complex", "nan", "inf"],
)
def test_bad_windows_raise_one_sentence(detector: anomstream.Detector, windows: np.ndarray, make, message: str) -> None:
    with pytest.raises(anomstream.WindowError, match=message) as raised:
        detector.score(make(windows))
    assert isinstance(raised.value, ValueError) and isinstance(raised.value, anomstream.AnomstreamError)


def test_auto_runs_litert_when_the_artifact_has_it_and_tensorflow_when_not(tiny_artifact: Path, tmp_path: Path, windows: np.ndarray) -> None:
    assert runtimes.litert_installed()  # the test extra installs it: auto must then pick it
    assert anomstream.load(tiny_artifact).runtime == "litert"
    # A schema-1 artifact has no model.tflite: auto falls back to the reference runtime instead of failing.
    old = tmp_path / "schema-1"
    shutil.copytree(tiny_artifact, old)
    meta = json.loads((old / artifact.META_FILE).read_text())
    meta.update(schema_version=1)
    del meta["litert_file"]
    (old / artifact.META_FILE).write_text(json.dumps(meta))
    (old / artifact.LITERT_FILE).unlink()
    fallback = anomstream.load(old)
    assert fallback.runtime == "tensorflow"
    np.testing.assert_allclose(fallback.score(windows).errors, anomstream.load(tiny_artifact).score(windows).errors, atol=1e-5)


def test_an_unknown_runtime_or_a_missing_artifact_is_one_sentence(tiny_artifact: Path, tmp_path: Path) -> None:
    with pytest.raises(anomstream.ConfigError, match=r"^--runtime onnx is not one of auto, tensorflow, litert\.$"):
        anomstream.load(tiny_artifact, runtime="onnx")
    with pytest.raises(anomstream.ArtifactError, match=r"does not exist: train one with `anomstream train --out"):
        anomstream.load(tmp_path / "nothing-here")


def test_importing_the_api_loads_no_model_runtime() -> None:
    """`import anomstream` is cheap: TensorFlow, Keras and LiteRT load when an artifact does, not before."""
    probe = "import sys, anomstream; print(sorted(m for m in ('tensorflow', 'keras', 'ai_edge_litert', 'sklearn', 'pandas') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["tensorflow", "litert"])
def test_the_api_gives_evaluates_errors_window_for_window(ecg_artifact: Path, ecg_split, runtime: str, tmp_path: Path) -> None:
    """`anomstream evaluate --report` writes each window's error; the API's are the same numbers, bit for bit."""
    done = subprocess.run(
        [sys.executable, "-m", "anomstream", "evaluate", "--model", str(ecg_artifact), "--runtime", runtime, "--report", str(tmp_path), "--json"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    with open(tmp_path / "scores.csv", newline="") as handle:
        offline = {int(row["row"]): (float(row["error"]), row["anomalous"] == "1") for row in csv.DictReader(handle)}

    test = ecg_split.test
    result = anomstream.load(ecg_artifact, runtime=runtime).score(test.windows)
    assert summary["runtime"] == runtime and sorted(offline) == sorted(test.rows.tolist())
    assert [offline[row][0] for row in test.rows.tolist()] == result.errors.astype(np.float64).tolist()
    assert [offline[row][1] for row in test.rows.tolist()] == result.anomalous.tolist()
    assert summary["test"]["windows"] == len(test) == 1000
    assert summary["test"]["confusion"]["normal_as_anomaly"] + summary["test"]["confusion"]["anomaly_as_anomaly"] == int(result.anomalous.sum())


def test_the_readmes_example_runs_as_written(tiny_artifact: Path, tmp_path: Path) -> None:
    """README.md, "Python API": the example, with the artifact path pointed at a real one, in a fresh interpreter."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Python API", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert '"artifacts/ecg-dense"' in code
    script = tmp_path / "example.py"
    script.write_text(code.replace('"artifacts/ecg-dense"', repr(str(tiny_artifact))))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    errors, anomalous, *channel_errors, facts = done.stdout.strip().splitlines()
    assert errors.startswith("[") and anomalous.startswith("[") and len(anomalous.strip("[]").split()) == 4
    assert len(channel_errors) == 4 and channel_errors[0].startswith("[[")  # (4, 1): one channel
    assert facts.split()[1:3] == ["32", "(1,"] and facts.split()[-1] == artifact.read_metadata(tiny_artifact).version
