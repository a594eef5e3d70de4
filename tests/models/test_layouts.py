"""Every data layout reads into (n, channels, length) windows with mapped labels; bad files are one sentence."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import numpy as np
import pytest

from anomstream.errors import DataError
from anomstream.models import data
from anomstream.models.data_flags import add_data_flags, data_options


def ucr_text(labels: list[float], windows: np.ndarray, separator: str = "\t") -> str:
    return "".join(separator.join([f"{label:g}", *map(repr, row.tolist())]) + "\n" for label, row in zip(labels, windows))


def test_a_ucr_pair_reads_label_first_and_needs_the_normal_label(tmp_path, caplog):
    rng = np.random.default_rng(0)
    windows = rng.normal(size=(6, 5))
    train = tmp_path / "Thing_TRAIN.tsv"
    train.write_text(ucr_text([1, 2, 2, 1, 3, 1], windows))
    with pytest.raises(DataError) as caught:
        data.load(train)
    assert str(caught.value) == (
        f"{train} (ucr layout) has the labels 1, 2, 3: say which mean normal with --normal-label (repeatable);"
        " every other label is anomalous."
    )
    with caplog.at_level(logging.INFO, "anomstream.data"):
        loaded = data.load(train, normal_labels=["2", "3.0"])
    assert "reading" in caplog.text and "as the ucr layout" in caplog.text
    assert loaded.layout == "ucr" and loaded.window_shape == (1, 5)
    assert loaded.labels.tolist() == [0, 1, 1, 0, 1, 0]
    np.testing.assert_allclose(loaded.windows[:, 0], windows.astype(np.float32))
    with pytest.raises(DataError, match=r"has no rows labelled 7 \(--normal-label\); its labels are 1, 2, 3\."):
        data.load(train, normal_labels=["7"])


def test_test_data_is_read_alike_and_must_have_the_same_shape(tmp_path):
    train, test = tmp_path / "X_TRAIN.tsv", tmp_path / "X_TEST.tsv"
    train.write_text(ucr_text([1, 2, 1], np.ones((3, 4))))
    test.write_text(ucr_text([2, 1], np.ones((2, 4))))
    options = data.DataOptions(data=str(train), test_data=str(test), normal_labels=("1",))
    first, second = options.load()
    assert (len(first), len(second), second.ids) == (3, 2, "test-")
    split = data.parts(first, second, 0.2, 21)
    assert split.test_size is None and len(split.train) == 3 and len(split.test) == 2
    test.write_text(ucr_text([2, 1], np.ones((2, 6))))
    with pytest.raises(DataError, match=r"has windows of 1 x 6 \(channels x samples\), .* of 1 x 4 \(channels x samples\): --test-data must match --data\."):
        options.load()


def test_an_npz_with_three_channels_and_text_labels(tmp_path):
    windows = np.arange(4 * 3 * 7, dtype=np.float64).reshape(4, 3, 7)
    np.savez(tmp_path / "w.npz", windows=windows, labels=np.array(["ok", "bad", "ok", "ok"]))
    loaded = data.load(tmp_path / "w.npz", normal_labels=["ok"])
    assert loaded.layout == "npz" and loaded.window_shape == (3, 7) and loaded.windows.dtype == np.float32
    assert loaded.labels.tolist() == [1, 0, 1, 1]
    np.testing.assert_array_equal(loaded.windows, windows.astype(np.float32))
    np.savez(tmp_path / "bad.npz", windows=windows, labels=np.zeros(3))
    with pytest.raises(DataError, match=r"bad.npz: labels have shape \(3,\); expected \(4,\), one per window\."):
        data.load(tmp_path / "bad.npz", normal_labels=["0"])
    np.savez(tmp_path / "none.npz", x=windows)
    with pytest.raises(DataError, match=r"has no 'windows' or 'labels' array \(it has x\)"):
        data.load(tmp_path / "none.npz")


def series_csv(path: Path, samples: np.ndarray, labels: list[str] | None = None) -> Path:
    names = [f"axis{i}" for i in range(len(samples))] + (["label"] if labels is not None else [])
    rows = [",".join(names)]
    for index in range(samples.shape[1]):
        cells = [repr(float(v)) for v in samples[:, index]] + ([labels[index]] if labels is not None else [])
        rows.append(",".join(cells))
    path.write_text("\n".join(rows) + "\n")
    return path


def test_windows_concatenated_into_a_series_cut_back_at_stride_length_are_the_same_windows(tmp_path, caplog):
    rng = np.random.default_rng(1)
    windows = rng.normal(size=(5, 2, 8)).astype(np.float32)
    labels = ["n"] * 40
    labels[19] = "spike"  # sample 19 is in window 2 (samples 16-23)
    samples = np.concatenate(list(windows), axis=1)  # (2, 40)
    samples = np.concatenate([samples, rng.normal(size=(2, 3))], axis=1)  # a partial window at the end
    path = series_csv(tmp_path / "series.csv", samples, labels + ["n"] * 3)
    with caplog.at_level(logging.INFO, "anomstream.data"):
        cut = data.load(path, normal_labels=["n"], window=8)
    assert "as the series layout" in caplog.text and "the last 3 samples fill no whole window of 8" in caplog.text
    assert cut.window_shape == (2, 8) and len(cut) == 5
    np.testing.assert_array_equal(cut.windows, windows)
    assert cut.labels.tolist() == [1, 1, 0, 1, 1]
    overlapping = data.load(path, normal_labels=["n"], window=8, stride=4)
    assert len(overlapping) == (43 - 8) // 4 + 1
    assert overlapping.labels.tolist() == [1, 1, 1, 0, 0, 1, 1, 1, 1]  # windows 3 (12-19) and 4 (16-23) hold sample 19
    with pytest.raises(DataError, match="is a series .*: say how to cut it with --window N"):
        data.load(path, normal_labels=["n"])


def test_a_series_scores_the_same_as_its_windows(tmp_path):
    """The same windows through the series layout and the npz layout get the same errors from one model."""
    from anomstream.models.train import TrainConfig, train

    rng = np.random.default_rng(2)
    t = np.linspace(0, 2 * np.pi, 16)
    windows = (np.sin(t)[None, None, :] + 0.05 * rng.normal(size=(60, 1, 16))).astype(np.float32)
    np.savez(tmp_path / "w.npz", windows=windows, labels=np.ones(60))
    as_windows = data.load(tmp_path / "w.npz", normal_labels=["1"])
    as_series = data.load(series_csv(tmp_path / "s.csv", np.concatenate(list(windows), axis=1)), window=16, stride=16)
    np.testing.assert_array_equal(as_series.windows, as_windows.windows)
    result = train(as_windows, TrainConfig(epochs=2, batch_size=16))
    np.testing.assert_array_equal(result.scorer.errors(as_series.windows), result.scorer.errors(as_windows.windows))


def test_nan_padding_is_refused_by_default_and_dropped_on_request(tmp_path, caplog):
    path = tmp_path / "Var_TRAIN.tsv"
    path.write_text("1\t1.0\t2.0\t3.0\n2\t4.0\tNaN\tNaN\n1\t5.0\t6.0\t7.0\n")
    with pytest.raises(DataError) as caught:
        data.load(path, normal_labels=["1"])
    assert str(path) in str(caught.value) and "row 2" in str(caught.value) and "--drop-nan-rows" in str(caught.value)
    with caplog.at_level(logging.WARNING, "anomstream.data"):
        loaded = data.load(path, normal_labels=["1"], drop_nan=True)
    assert loaded.rows.tolist() == [0, 2] and loaded.total_rows == 3
    assert "left out 1 NaN-padded rows" in caplog.text


def test_blank_lines_number_rows_alike_in_the_fast_and_the_lenient_reader(tmp_path):
    """Replay's ids come from row numbers: with --skip-bad-rows they must be the fast reader's."""
    path = tmp_path / "ecg.csv"
    path.write_text("1,2,3,1\n\n4,5,6,0\n\n\n7,8,9,1\n")
    fast = data.load(path)
    lenient = data.load(path, skip_bad_rows=True)
    assert fast.rows.tolist() == lenient.rows.tolist() == [0, 1, 2]
    np.testing.assert_array_equal(fast.windows, lenient.windows)


def test_content_identifies_data_across_spellings_and_the_split_follows_row_numbers(tmp_path):
    rng = np.random.default_rng(4)
    table = np.column_stack([rng.normal(size=(50, 4)).round(4), rng.integers(0, 2, 50)])
    text = "\n".join(",".join(f"{v:g}" for v in row) for row in table) + "\n"
    plain = tmp_path / "a.csv"
    plain.write_text(text)
    crlf = tmp_path / "b.csv.gz"
    crlf.write_bytes(gzip.compress(text.replace("\n", "\r\n").encode()))
    a, b = data.load(plain), data.load(crlf)
    assert a.sha256 != b.sha256 and a.content == b.content
    # A copy with a bad row left out keeps every other row on its side of the split.
    lines = text.splitlines()
    lines[7] = "1,2,x,4,1"
    damaged = tmp_path / "c.csv"
    damaged.write_text("\n".join(lines) + "\n")
    c = data.load(damaged, skip_bad_rows=True)
    whole, partial = data.split(a), data.split(c)
    assert set(partial.test.rows.tolist()) == set(whole.test.rows.tolist()) - {7}
    assert set(partial.train.rows.tolist()) == set(whole.train.rows.tolist()) - {7}


def test_the_data_flags_make_options(tmp_path):
    import argparse

    parser = argparse.ArgumentParser()
    add_data_flags(parser, skip_bad_rows=True)
    args = parser.parse_args(["--data", "x", "--layout", "series", "--normal-label", "a", "--normal-label", "b", "--window", "9", "--drop-nan-rows"])
    options = data_options(args)
    assert options == data.DataOptions(data="x", layout="series", normal_labels=("a", "b"), window=9, drop_nan=True)
