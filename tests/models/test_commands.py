"""`anomstream train` / `evaluate` as a user runs them: flags, --json, reports, exit codes."""

import json
import os
import re
import subprocess
import sys

import pytest

from anomstream.cli import main

SAMPLE = ["--preset", "tutorial", "--epochs", "30", "--batch-size", "32", "--learning-rate", "0.01"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "anomstream", *args],
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
        "confusion.png", "error_histogram.png", "examples.png", "report.json", "report.md", "roc_pr.png", "scores.csv", "training_curve.png",
    ]
    lines = (tmp_path / "r" / "scores.csv").read_text().splitlines()
    assert lines[0] == "row,label,error,anomalous" and len(lines) == 1 + summary["test"]["windows"]
    flagged = sum(line.endswith(",1") for line in lines[1:])
    assert flagged == summary["test"]["confusion"]["normal_as_anomaly"] + summary["test"]["confusion"]["anomaly_as_anomaly"]
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
    assert "holds other windows (parsed content" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--out", "x", "--epochs", "0"], "anomstream train: --epochs 0 is out of range"),
        (["train", "--out", "x", "--min-steps", "-1"], "anomstream train: --min-steps -1 is out of range"),
        (["train", "--out", "x", "--threshold", "fpr", "--k", "2"], "--k belongs to --threshold mean-std or mad, but the threshold is fpr."),
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
    assert "has windows of 1 x 4 (channels x samples); model" in capsys.readouterr().err


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


# TensorFlow's C++ lines (absl's format: I0000 00:00:1796125179.137123   4242 reader.cc:83] ...) and the words a newcomer
# reads as failures, e.g. "Could not find cuda drivers", "failed call to cuInit", "NodeDef mentions attribute".
TF_NATIVE = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ \S+:\d+\]", re.MULTILINE)
ALARMING = ("cuda", "cuInit", "NodeDef", "absl::InitializeLog", "XNNPACK", "CONFWARN", "Assets written to")


def test_training_starts_quietly_and_debug_shows_tensorflows_own_lines(tmp_path, synthetic_csv):
    """A first run prints our lines only; --log-level DEBUG hands TensorFlow's C++ chatter back."""
    quiet = run_cli("train", "--data", str(synthetic_csv), "--out", str(tmp_path / "q"), "--arch", "dense", "--epochs", "1", "--min-steps", "0", "--json")
    assert quiet.returncode == 0, quiet.stderr
    assert not TF_NATIVE.search(quiet.stderr), quiet.stderr
    assert [word for word in ALARMING if word.lower() in quiet.stderr.lower()] == [], quiet.stderr
    assert all(" INFO anomstream" in line or " WARNING anomstream" in line or line.startswith("  ") for line in quiet.stderr.splitlines()), quiet.stderr

    loud = run_cli("--log-level", "DEBUG", "train", "--data", str(synthetic_csv), "--out", str(tmp_path / "l"), "--arch", "dense", "--epochs", "1", "--min-steps", "0", "--json")
    assert loud.returncode == 0, loud.stderr
    assert TF_NATIVE.search(loud.stderr), loud.stderr[-2000:]


def test_a_users_own_tf_cpp_min_log_level_wins(tmp_path, synthetic_csv):
    done = run_cli("train", "--data", str(synthetic_csv), "--out", str(tmp_path / "m"), "--arch", "dense", "--epochs", "1", "--min-steps", "0", "--json", env={"TF_CPP_MIN_LOG_LEVEL": "0"})
    assert done.returncode == 0, done.stderr
    assert TF_NATIVE.search(done.stderr), done.stderr  # e.g. the SavedModel reader's INFO lines during the LiteRT export


def test_without_matplotlib_a_report_keeps_its_numbers_and_says_why_it_has_no_figures(tmp_path, tiny_artifact, synthetic_csv):
    """A plain `pip install anomstream` lacks the plot extra: the demo and --report must still finish."""
    blocked = "import runpy, sys; sys.modules['matplotlib'] = None; runpy.run_module('anomstream', run_name='__main__', alter_sys=True)"
    done = subprocess.run(
        [sys.executable, "-c", blocked, "evaluate", "--model", str(tiny_artifact), "--data", str(synthetic_csv), "--report", str(tmp_path / "r"), "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["report.json", "report.md", "scores.csv"]
    assert "Figures are left out: matplotlib is not installed" in (tmp_path / "r" / "report.md").read_text()
    assert "matplotlib is not installed" in done.stderr


def test_ctrl_c_is_exit_130_and_one_sentence(tmp_path, synthetic_csv):
    """README: 130 interrupted (Ctrl-C); no traceback, and no half-written artifact."""
    import signal
    import time

    out = tmp_path / "model"
    process = subprocess.Popen(
        [sys.executable, "-m", "anomstream", "train", "--data", str(synthetic_csv), "--out", str(out), "--arch", "dense", "--epochs", "100000", "--batch-size", "8"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines = []
    while not lines or ("epochs) on" not in lines[-1] and lines[-1]):  # logged as the epochs begin
        lines.append(process.stderr.readline())
    time.sleep(2.0)  # well into the epochs
    process.send_signal(signal.SIGINT)
    rest = process.stderr.read()
    assert process.wait(60) == 130, "".join(lines) + rest
    assert rest.strip().splitlines()[-1] == "anomstream train: interrupted."
    assert "Traceback" not in rest and not (out / "model.json").exists()


def test_a_crlf_copy_of_the_training_data_is_recognised_and_only_its_test_rows_scored(tmp_path, tiny_artifact, synthetic_csv, capsys):
    """The data is identified by its parsed content: a CRLF, gzipped copy scored whole would have judged training rows."""
    import gzip

    copy = tmp_path / "copy.csv.gz"
    copy.write_bytes(gzip.compress(synthetic_csv.read_bytes().replace(b"\n", b"\r\n")))
    assert main(["evaluate", "--model", str(tiny_artifact), "--data", str(copy), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    recorded = json.loads((tiny_artifact / "model.json").read_text())
    assert summary["split"]["evaluated"] == "test"
    assert summary["test"]["windows"] == recorded["split"]["test"] == 80
    assert summary["test"] == recorded["evaluation"]


def test_a_model_trained_with_a_test_file_evaluates_that_file(tmp_path, synthetic, capsys):
    """A data set that ships split: --test-data is the test rows, nothing is carved, and the train file alone is refused."""
    windows, labels = synthetic(120, 30, seed=8)
    rows = [
        "\t".join([("2" if label == 1 else "5"), *map(repr, window.tolist())]) for window, label in zip(windows, labels)
    ]
    train_file, test_file = tmp_path / "Made_TRAIN.tsv", tmp_path / "Made_TEST.tsv"
    train_file.write_text("\n".join(rows[::2]) + "\n")
    test_file.write_text("\n".join(rows[1::2]) + "\n")
    flags = ["--data", str(train_file), "--test-data", str(test_file), "--normal-label", "2"]
    out = tmp_path / "model"
    assert main(["train", *flags, "--out", str(out), "--preset", "tutorial", "--epochs", "5", "--batch-size", "16", "--json"]) == 0
    trained = json.loads(capsys.readouterr().out)
    meta = json.loads((out / "model.json").read_text())
    assert meta["split"]["test_size"] is None and meta["split"]["train"] == 75 and meta["split"]["test"] == 75
    assert meta["data"]["layout"] == "ucr" and meta["data"]["normal_labels"] == ["2"] and meta["data"]["test_data"]["file"] == "Made_TEST.tsv"
    assert main(["evaluate", "--model", str(out), *flags, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test"] == trained["test"]
    assert main(["evaluate", "--model", str(out), "--data", str(train_file), "--normal-label", "2", "--split", "test"]) == 2
    assert f"is all training rows of model {out}: its test rows are Made_TEST.tsv; pass it as --test-data." in capsys.readouterr().err
