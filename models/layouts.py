"""The file layouts a data set can come in, each read into windows (n, channels, length) and raw labels.

- `tutorial`: the samples, then the label, comma-separated (the TensorFlow tutorial's ECG5000).
- `ucr`: the UCR archive's: the label, then the samples, tab- or comma-separated (`*_TRAIN.tsv`).
- `npz`: numpy's archive with `windows` (n, length) or (n, channels, length), or images
  (n, channels, height, width), and `labels` (n,).
- `series`: a long CSV with a header, one column per channel and optionally `label` per sample,
  cut into windows by `--window` and `--stride` (models/data.py).

Readers return labels as text (`label_text`), so that "1", "1.0" and 1 are one label; which labels are
normal is decided once, in models/data.py. Rows are numbered from 0 in the file's order, blank lines not
counted, the same in the fast and the lenient path; every problem is one sentence naming the file and row.
"""

from __future__ import annotations

import gzip
import io
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anomstream.errors import DataError

LAYOUTS = ("tutorial", "ucr", "npz", "series")


@dataclass(frozen=True)
class Table:
    """What a reader found: windows, their raw labels and row numbers, and the rows it left out."""

    windows: np.ndarray  # float32 (n, channels, length)
    labels: np.ndarray  # str (n,); "" where the layout has none
    rows: np.ndarray  # int64 (n,)
    total_rows: int  # rows in the file, bad ones included: a split by row number survives dropping some
    skipped: tuple[str, ...] = field(default=())  # "row N ...: why"
    dropped_nan: int = 0  # rows left out for NaN padding (drop_nan)


def label_text(value: object) -> str:
    """One spelling per label: numbers as their shortest float text (1, 1.0 and "1" are "1"), text stripped."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    if not math.isfinite(number):
        return text
    return f"{number:g}" if number == int(number) and abs(number) < 1e15 else repr(number)


def read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it is gzip; an unreadable, corrupt or empty file is one sentence."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path} cannot be read: {exc.strerror or exc}.") from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(f"{path} is not a valid gzip file ({exc}).") from exc
    if not raw.strip():
        raise DataError(f"{path} is empty: expected one window per row.")
    return raw


def detect(path: Path, raw: bytes) -> tuple[str, str]:
    """The layout `auto` reads a file as, and why (for the log)."""
    if raw[:4] == b"PK\x03\x04":
        return "npz", "a numpy archive"
    first = raw.decode("utf-8", errors="replace").lstrip().splitlines()[0]
    cells = first.split("\t") if "\t" in first else first.split(",")
    numeric = [_is_number(cell) for cell in cells]
    if not all(numeric):
        return "series", "its first row is a header"
    name = path.name.lower()
    if "\t" in first or "_train" in name or "_test" in name:
        return "ucr", "tab-separated or named like the UCR archive's files"
    return "tutorial", "comma-separated numbers"


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


# -- the delimited layouts: tutorial and ucr ------------------------------------------------------------------------


def read_delimited(path: Path, raw: bytes, layout: str, drop_nan: bool, skip_bad_rows: bool) -> Table:
    """A table of numbers with the label last (tutorial) or first (ucr). Messages count rows and columns from 1."""
    lines = [line for line in raw.decode("utf-8", errors="replace").splitlines() if line.strip()]
    separator = "\t" if layout == "ucr" and "\t" in lines[0] else ","
    width = len(lines[0].split(separator))
    if width < 2:
        raise DataError(f"{path} row 1 has {width} column: expected the samples and a label.")
    label_index = width - 1 if layout == "tutorial" else 0
    table = None if skip_bad_rows else _parse_fast(raw, separator)
    if table is None or table.shape != (len(lines), width):
        return _parse_lenient(path, lines, separator, width, label_index, drop_nan, skip_bad_rows)
    bad = ~np.isfinite(table)
    nan_rows = np.zeros(len(table), bool)
    if bad.any():
        samples_bad = np.delete(bad, label_index, axis=1)
        nan_rows = np.isnan(np.delete(table, label_index, axis=1)).any(axis=1) & ~bad[:, label_index]
        fixable = drop_nan and not (bad.any(axis=1) & ~nan_rows).any()
        if not fixable:
            row, column = np.argwhere(bad)[0]
            hint = "; NaN padding (a variable-length data set) can be left out with --drop-nan-rows" if nan_rows[row] else ""
            raise DataError(
                f"{path} row {row + 1} column {column + 1}: {table[row, column]} is not a finite number"
                f" ({int(samples_bad.any(axis=1).sum() + bad[:, label_index].sum())} such rows){hint}."
            )
    keep = ~nan_rows
    return Table(
        windows=np.delete(table[keep], label_index, axis=1).astype(np.float32)[:, None, :],
        labels=np.array([label_text(v) for v in table[keep, label_index].tolist()], dtype=object),
        rows=np.arange(len(table), dtype=np.int64)[keep],
        total_rows=len(table),
        dropped_nan=int(nan_rows.sum()),
    )


def _parse_fast(raw: bytes, separator: str) -> np.ndarray | None:
    import pandas as pd

    try:
        table = pd.read_csv(io.BytesIO(raw), header=None, sep=separator, dtype=np.float64, na_filter=False, engine="c")
    except (ValueError, pd.errors.ParserError):
        return None  # the lenient path finds out exactly what is wrong
    return table.to_numpy()


def _parse_lenient(
    path: Path, lines: list[str], separator: str, width: int, label_index: int, drop_nan: bool, skip_bad_rows: bool
) -> Table:
    kept: list[list[float]] = []
    labels: list[str] = []
    rows: list[int] = []
    skipped: list[str] = []
    dropped = 0
    for row, line in enumerate(lines):
        problem, values = _row_problem(line.split(separator), width, label_index)
        if problem is _NAN and drop_nan:
            dropped += 1
            continue
        if problem:
            if not skip_bad_rows:
                raise DataError(f"{path} row {row + 1}{problem}.")
            skipped.append(f"row {row + 1}{problem}")
            continue
        labels.append(label_text(values.pop(label_index)))
        kept.append(values)
        rows.append(row)
    if not kept:
        first = skipped[0] if skipped else "every row is NaN-padded"
        raise DataError(f"{path} has no valid rows ({len(skipped) + dropped} left out; first: {first}).")
    return Table(
        windows=np.array(kept, dtype=np.float32)[:, None, :],
        labels=np.array(labels, dtype=object),
        rows=np.array(rows, dtype=np.int64),
        total_rows=len(lines),
        skipped=tuple(skipped),
        dropped_nan=dropped,
    )


_NAN = " holds NaN samples (NaN padding of a variable-length data set: --drop-nan-rows leaves such rows out)"


def _row_problem(cells: list[str], width: int, label_index: int) -> tuple[str | None, list[float]]:
    """What is wrong with one row, as the end of a sentence that starts "row N" (`_NAN` for NaN samples), and its numbers."""
    if len(cells) != width:
        return f" has {len(cells)} columns, expected {width} like row 1", []
    values: list[float] = []
    nan = False
    for column, cell in enumerate(cells):
        try:
            value = float(cell)
        except ValueError:
            return f" column {column + 1}: {cell.strip()[:40]!r} is not a number", []
        if math.isnan(value) and column != label_index:
            nan = True
        elif not math.isfinite(value):
            return f" column {column + 1}: {cell.strip()!r} is not a finite number", []
        values.append(value)
    return (_NAN if nan else None), values


# -- npz --------------------------------------------------------------------------------------------------------------


def read_npz(path: Path, raw: bytes, drop_nan: bool) -> Table:
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            missing = [key for key in ("windows", "labels") if key not in archive.files]
            if missing:
                raise DataError(
                    f"{path} has no {' or '.join(repr(m) for m in missing)} array (it has {', '.join(archive.files) or 'none'}):"
                    " an .npz needs `windows` (n, length) or (n, channels, length) and `labels` (n,)."
                )
            windows, labels = archive["windows"], archive["labels"]
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path} is not a readable numpy archive ({exc}).") from None
    if windows.ndim == 2:
        windows = windows[:, None, :]
    if windows.ndim not in (3, 4) or windows.shape[0] == 0 or min(windows.shape[2:]) < 2:
        raise DataError(
            f"{path}: windows have shape {windows.shape}; expected (n, length), (n, channels, length) or, for images,"
            " (n, channels, height, width)."
        )
    if labels.shape != (windows.shape[0],):
        raise DataError(f"{path}: labels have shape {labels.shape}; expected ({windows.shape[0]},), one per window.")
    if windows.dtype.kind not in "biuf":
        raise DataError(f"{path}: windows of dtype {windows.dtype} are not numbers.")
    values = windows.astype(np.float32)
    axes = tuple(range(1, values.ndim))
    bad = ~np.isfinite(values).all(axis=axes)
    keep = np.ones(len(values), bool)
    if bad.any():
        nan_only = np.isnan(values).any(axis=axes) & ~np.isinf(values).any(axis=axes)
        if not (drop_nan and not (bad & ~nan_only).any()):
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{path} row {row}: the window holds non-finite samples ({int(bad.sum())} such rows)"
                + ("; pass --drop-nan-rows to leave NaN-padded rows out." if nan_only[row] else ".")
            )
        keep = ~bad
    return Table(
        windows=values[keep],
        labels=np.array([label_text(v) for v in labels[keep].tolist()], dtype=object),
        rows=np.arange(len(values), dtype=np.int64)[keep],
        total_rows=len(values),
        dropped_nan=int((~keep).sum()),
    )


# -- series -----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """A long series: samples (channels, n), per-sample labels (n,) or None, the channel names."""

    samples: np.ndarray
    labels: np.ndarray | None
    channels: tuple[str, ...]


def read_series(path: Path, raw: bytes) -> Series:
    import pandas as pd

    try:
        frame = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False, skip_blank_lines=True)
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path} is not a CSV with a header ({str(exc).splitlines()[0]}).") from None
    names = [str(c).strip() for c in frame.columns]
    label_column = names.index("label") if "label" in names else None
    channels = [name for i, name in enumerate(names) if i != label_column]
    if not channels:
        raise DataError(f"{path} has no channel column: a series needs one column per channel (and optionally `label`).")
    samples = np.empty((len(channels), len(frame)), dtype=np.float64)
    for index, name in enumerate(channels):
        column = pd.to_numeric(frame.iloc[:, names.index(name)], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(column)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{path} row {row} column {name!r}: {frame.iloc[row, names.index(name)]!r} is not a finite number"
                f" ({int(bad.sum())} such rows)."
            )
        samples[index] = column
    labels = None
    if label_column is not None:
        labels = np.array([label_text(v) for v in frame.iloc[:, label_column].tolist()], dtype=object)
    return Series(samples.astype(np.float32), labels, tuple(channels))


def cut(series: Series, window: int, stride: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Windows (n, channels, window) every `stride` samples, the window index of each sample's start, and how many
    samples at the end fill no whole window (dropped)."""
    length = series.samples.shape[1]
    if length < window:
        raise DataError(f"the series has {length} samples, fewer than one window of {window}.")
    count = (length - window) // stride + 1
    starts = np.arange(count) * stride
    view = np.lib.stride_tricks.sliding_window_view(series.samples, window, axis=1)[:, starts, :]
    left = length - (starts[-1] + window)
    return np.ascontiguousarray(view.transpose(1, 0, 2)), starts, int(left)
