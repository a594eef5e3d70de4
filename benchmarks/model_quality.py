"""Model quality over several training seeds on one split: the numbers in models/MODEL_CARD.md.

    python benchmarks/model_quality.py [--seeds 1 2 3 4 5] [--data PATH] [--out FILE.json]

Each configuration is trained once per seed through `models.train.train`, the
same code `anomstream train` runs; thresholds are fitted on normal training
windows only, so no test label is used until the evaluation.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time

from anomstream.models import data
from anomstream.models.train import PRESETS, TrainConfig, train


def _described(config: TrainConfig) -> str:
    """A preset's recipe in the label, read from it: a label typed by hand went stale when the default changed."""
    k = config.threshold_params.get("k", 1.0)
    return (f"{config.arch}, {config.epochs} ep, batch {config.batch_size}, {config.min_steps} steps, noise {config.noise_factor:g},"
            f" {config.loss}, mean+{k:g}std")


CONFIGS = {
    "tutorial preset: dense, 20 ep, batch 512, mean+1std": PRESETS["tutorial"],
    f"default preset: {_described(PRESETS['default'])}": PRESETS["default"],
    "default preset, mae loss (the default before 2026-12-03)": dataclasses.replace(PRESETS["default"], loss="mae"),
    "first default: conv1d, 50 ep, batch 64, noise 0.1, mean+2std": TrainConfig(
        arch="conv1d", epochs=50, batch_size=64, noise_factor=0.1, threshold_params={"k": 2.0}
    ),
    "dense, 100 ep, batch 64, mean+2std": TrainConfig(epochs=100, batch_size=64, threshold_params={"k": 2.0}),
}
FIELDS = {
    "accuracy": lambda e: e.accuracy,
    "precision (normal+)": lambda e: e.precision,
    "recall (normal+)": lambda e: e.recall,
    "anomaly precision": lambda e: e.anomaly.precision,
    "anomaly recall": lambda e: e.anomaly.recall,
    "anomaly F1": lambda e: e.anomaly.f1,
    "ROC-AUC": lambda e: e.roc_auc,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--data")
    parser.add_argument("--out", help="also write the raw results as JSON")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), help="a subset of the configurations (default: all)")
    args = parser.parse_args()
    dataset = data.load(data.resolve(args.data))
    results: dict[str, list[dict[str, float]]] = {}
    for name, base in CONFIGS.items():
        if args.configs and name not in args.configs:
            continue
        for seed in args.seeds:
            started = time.monotonic()
            evaluation = train(dataset, dataclasses.replace(base, seed=seed)).evaluation
            row = {field: get(evaluation) for field, get in FIELDS.items()}
            row["seconds"] = time.monotonic() - started
            results.setdefault(name, []).append(row)
            print(f"{name} seed {seed}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items()), file=sys.stderr, flush=True)
    print(f"| configuration | {' | '.join(FIELDS)} | train s |")
    print("|" + " --- |" * (len(FIELDS) + 2))
    for name, rows in results.items():
        cells = [f"{statistics.mean(r[f] for r in rows):.3f} ± {statistics.stdev(r[f] for r in rows) if len(rows) > 1 else 0:.3f}" for f in [*FIELDS, "seconds"]]
        print(f"| {name} | {' | '.join(cells)} |")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({"seeds": args.seeds, "data_sha256": dataset.sha256, "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()
