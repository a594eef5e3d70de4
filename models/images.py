"""The named image data sets `--data` takes besides files: scikit-learn's digits and Fashion-MNIST.

- `digits`: scikit-learn's bundled 8 x 8 handwritten digits (1,797 images, values 0 to 16), offline.
- `fashion-mnist`: read by Keras' own loader (`keras.datasets.fashion_mnist.load_data`), which downloads
  60,000 + 10,000 images of 28 x 28 into `$KERAS_HOME/datasets/fashion-mnist` (default `~/.keras`) on first
  use and reads that cache after. It ships split: its 10,000 test images are the test rows.

Each part is a `layouts.Table` of windows (n, 1, height, width) with the class as the label; which classes are
normal is `--normal-label`'s, as for any labelled file (models/data.py).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anomstream.errors import DataError
from anomstream.models import layouts

NAMED = ("digits", "fashion-mnist")
FASHION_FILES = ("train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz")


@dataclass(frozen=True)
class Part:
    """One part of a named data set: its table, and what identifies it (`sha256` of its arrays)."""

    table: layouts.Table
    sha256: str


def read(name: str) -> tuple[Part, Part | None]:
    """The data set's rows and, when it ships split, its test rows."""
    if name == "digits":
        return _digits(), None
    if name == "fashion-mnist":
        return _fashion_mnist()
    raise DataError(f"{name} is not a named data set: choose one of {', '.join(NAMED)}, or give a file.")


def _digits() -> Part:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return _part(digits.images, digits.target)


def _fashion_mnist() -> tuple[Part, Part]:
    from anomstream.models.backend import keras

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    except Exception as exc:  # Keras' download raises several types (URL, HTTP, OS errors); each means the same here
        cache = keras_cache() / "fashion-mnist"
        raise DataError(
            f"fashion-mnist could not be loaded by Keras ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}):"
            f" it downloads on first use; without a network put {', '.join(FASHION_FILES)} in {cache}."
        ) from None
    return _part(x_train, y_train), _part(x_test, y_test)


def keras_cache() -> Path:
    """Where Keras' dataset loaders keep their downloads: `$KERAS_HOME/datasets`, as Keras reads it."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "datasets"


def _part(images: np.ndarray, classes: np.ndarray) -> Part:
    windows = np.asarray(images, dtype=np.float32)[:, None, :, :]
    digest = hashlib.sha256(repr(windows.shape).encode())
    digest.update(np.ascontiguousarray(windows, dtype="<f4").tobytes())
    digest.update(np.ascontiguousarray(classes, dtype="<i8").tobytes())
    table = layouts.Table(
        windows=windows,
        labels=np.array([layouts.label_text(c) for c in classes.tolist()], dtype=object),
        rows=np.arange(len(windows), dtype=np.int64),
        total_rows=len(windows),
    )
    return Part(table, digest.hexdigest())
