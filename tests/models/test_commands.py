"""`anomstream train` / `evaluate` as a user runs them: flags, --json, reports, exit codes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stream.cli import main

SAMPLE = ["--epochs", "30", "--batch-size", "32", "--learning-rate", "0.01"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_train_json_prints_exactly_one_object_and_writes_an_artifact(tmp_path, synthetic_csv):
    out = tmp_path / "model"
    done = run_cli("train", "--data", str(synthetic_csv), "--out", str(out), *SAMPLE, "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)  # one object and nothing else on stdout
    assert done.stdout.count("\n") == 1
    test = summary["test"]
    for key in ("accuracy", "precision", "recall", "roc_auc"):
        assert 0.0 <= test[key] <= 1.0
    assert set(test["anomaly"]) == {"precision", "recall", "f1"}
    assert summary["threshold"]["method"] == "mean-std"
    assert summary["split"]["train"] + summary["split"]["test"] == 400
    assert (out / "model.json").is_file() and (out / "model.keras").is_file() and (out / "model.tflite").is_file()
    assert "training: 30/30 epochs" in done.stderr  # progress went to stderr


def test_evaluate_reproduces_train_and_writes_a_report(tmp_path, tiny_artifact, synthetic_csv, capsys):
    assert main(["evaluate", "--model", str(tiny_artifact), "--data", str(synthetic_csv), "--report", str(tmp_path / "r"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    recorded = json.loads((tiny_artifact / "model.json").read_text())["evaluation"]
    assert summary["split"]["evaluated"] == "test"
    assert summary["test"] == recorded  # same scoring path: identical, not merely close
    files = sorted(p.name for p in (tmp_path / "r").iterdir())
    assert files == [
        "confusion.png", "error_histogram.png", "examples.png", "report.json", "report.md", "roc_pr.png", "training_curve.png",
    ]
    assert json.loads((tmp_path / "r" / "report.json").read_text())["test"] == summary["test"]
    assert "| anomaly F1 |" in (tmp_path / "r" / "report.md").read_text()
    for png in (tmp_path / "r").glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_evaluate_on_litert_reproduces_the_recorded_evaluation_with_a_report(tmp_path, tiny_artifact, synthetic_csv, capsys):
    """What a LiteRT worker would decide, checked offline: the same figures as TensorFlow's at training time."""
    argv = ["evaluate", "--model", str(tiny_artifact), "--data", str(synthetic_csv), "--runtime", "litert"]
    assert main([*argv, "--report", str(tmp_path / "r"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["runtime"] == "litert"
    assert summary["test"] == json.loads((tiny_artifact / "model.json").read_text())["evaluation"]
    assert (tmp_path / "r" / "examples.png").stat().st_size > 5000  # reconstructions plotted from LiteRT's outputs


def test_evaluate_on_other_data_scores_all_rows(tiny_artifact, make_csv, capsys):
    other = make_csv(40, 10, seed=5)
    assert main(["evaluate", "--model", str(tiny_artifact), "--data", str(other), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["split"]["evaluated"] == "all"
    assert summary["test"]["windows"] == 50
    assert main(["evaluate", "--model", str(tiny_artifact), "--data", str(other), "--split", "test"]) == 2
    assert "--split test needs the data the model was trained on" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--out", "x", "--epochs", "0"], "anomstream train: --epochs 0 is out of range"),
        (["train", "--out", "x", "--threshold", "fpr", "--k", "2"], "--k belongs to --threshold mean-std, but --threshold is fpr."),
        (["train", "--out", "x", "--data", "/nonexistent.csv"], "/nonexistent.csv (from the path given) does not exist"),
        (["evaluate", "--model", "/nonexistent"], "model artifact /nonexistent does not exist: train one with"),
    ],
)
def test_errors_are_one_sentence_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert "Traceback" not in err[0]


def test_window_length_mismatch_is_refused(tmp_path, tiny_artifact, capsys):
    other = tmp_path / "wide.csv"
    other.write_text("1,2,3,4,1\n")
    assert main(["evaluate", "--model", str(tiny_artifact), "--data", str(other)]) == 2
    assert "has windows of 4 samples; model" in capsys.readouterr().err


def test_flags_fall_back_to_environment_variables(tmp_path, tiny_artifact, synthetic_csv, monkeypatch, capsys):
    monkeypatch.setenv("ANOMSTREAM_MODEL", str(tiny_artifact))
    monkeypatch.setenv("ANOMSTREAM_DATA", str(synthetic_csv))
    monkeypatch.setenv("ANOMSTREAM_JSON", "true")
    assert main(["evaluate"]) == 0
    assert json.loads(capsys.readouterr().out)["artifact"] == str(tiny_artifact)


def test_console_script_exit_code_and_stderr(tmp_path):
    done = run_cli("evaluate", "--model", str(tmp_path / "missing"))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().endswith(f"train one with `anomstream train --out {tmp_path / 'missing'}`.")
