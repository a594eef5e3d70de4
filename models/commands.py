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
from anomstream.config import check_ranges
from anomstream.errors import ConfigError
from anomstream.models import data
from anomstream.models.architectures import CHOICES as ARCHITECTURES
from anomstream.models.data_flags import add_data_flags, data_options
from anomstream.models.recipe import LOSSES, PRESETS, TrainConfig
from anomstream.models.runtimes import CHOICES as RUNTIME_CHOICES
from anomstream.models.shape import text as shape_text
from anomstream.models.threshold import METHODS

log = logging.getLogger("anomstream.models")

# Which flag sets each threshold method's parameter.
THRESHOLD_PARAMS = {"mean-std": "k", "mad": "k", "percentile": "q", "fpr": "fpr"}


def register(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train",
        help="train an autoencoder and write a model artifact",
        description="Train an autoencoder on the normal windows of the training rows and write a model artifact. With no"
        " recipe flag it trains the default recipe (chosen on a validation split of ECG5000's training rows:"
        " models/MODEL_CARD.md); --preset tutorial is TensorFlow's tutorial exactly; a recipe flag changes one knob"
        " of the preset.",
    )
    add_data_flags(train)
    train.add_argument("--out", required=True, type=Path, help="artifact directory to write")
    train.add_argument(
        "--preset",
        choices=list(PRESETS),
        default="default",
        help="the recipe: default (conv: conv1d for series, conv2d for images; 50 epochs of batch 64 and at least 1500 updates,"
        " noise 0.1, mean + 2 std, a tenth held out for drift); tutorial (dense, 20 epochs, batch 512, mean + 1 std); and"
        " the tutorial's image examples, tutorial-basic (Dense(64) code, MSE, 10 epochs) and tutorial-denoise (its"
        " Conv2D denoiser on inputs with noise 0.2, MSE, 10 epochs) (default: default)",
    )
    recipe = train.add_argument_group("recipe (each overrides the preset's)")
    recipe.add_argument(
        "--arch", choices=ARCHITECTURES,
        help="autoencoder architecture: conv (conv1d or conv2d, by the window), dense (any window), conv1d (series),"
        " conv2d, basic or denoise (images)",
    )
    recipe.add_argument("--epochs", type=int, help="training epochs")
    recipe.add_argument("--batch-size", type=int, help="training batch size")
    recipe.add_argument(
        "--min-steps", type=int, help="gradient updates at least: small data sets get more passes per epoch (tutorial 0)"
    )
    recipe.add_argument("--learning-rate", type=float, help="Adam learning rate (presets: 0.001)")
    recipe.add_argument("--noise-factor", type=float, help="Gaussian input noise for denoising training, fresh every batch")
    recipe.add_argument(
        "--input-noise", type=float,
        help="the tutorial's denoising: fixed noise of this factor on each training input, clipped to [0, 1], the clean"
        " window the target (tutorial-denoise 0.2; others 0)",
    )
    recipe.add_argument("--loss", choices=LOSSES, help="training loss (tutorial-basic and tutorial-denoise: mse; others mae)")
    recipe.add_argument("--threshold", choices=list(METHODS), help="threshold method (presets: mean-std)")
    recipe.add_argument("--k", type=float, help="mean-std: mean + k*std (tutorial 1, default 2); mad: median + k*MAD (3)")
    recipe.add_argument("--q", type=float, help="percentile: the q-th percentile of normal errors (default: 99)")
    recipe.add_argument("--fpr", type=float, help="fpr: target false-positive rate on held-out normal windows (default: 0.01)")
    recipe.add_argument("--holdout", type=float, help="fraction of normal training windows held out to fit the threshold (default: 0.2 for fpr, else 0)")
    recipe.add_argument(
        "--reference-holdout", type=float,
        help="fraction of normal training windows held out of both fits; their errors are the drift reference (preset's: 0.1; tutorial 0 = none)",
    )
    train.add_argument("--seed", type=int, default=21, help="seed for weights, shuffling and noise (default: 21)")
    train.add_argument("--split-seed", type=int, default=21, help="seed of the 80/20 train/test split (default: 21)")
    train.add_argument("--test-size", type=float, default=0.2, help="test fraction of the split, without --test-data (default: 0.2)")
    train.add_argument("--name", help="model name recorded in the artifact (default: <data file>-<arch>)")
    train.add_argument("--report", type=Path, help="also write a report (markdown, JSON, PNG plots) to this directory")
    train.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    train.set_defaults(run=run_train, render=render)

    evaluate = commands.add_parser("evaluate", help="score an artifact offline on labelled data")
    evaluate.add_argument("--model", required=True, type=Path, help="artifact directory")
    add_data_flags(evaluate)
    evaluate.add_argument(
        "--split",
        choices=["auto", "test", "all"],
        default="auto",
        help="rows to score: the artifact's test rows, all rows, or auto (the test rows when the data is the training"
        " data, recognised by its parsed content; with --test-data, that file)",
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


def _recipe(args: argparse.Namespace) -> dict[str, Any]:
    """The recipe flags given, checked before anything slow (reading data, importing TensorFlow) happens."""
    check_ranges(
        "train",
        ("--epochs", args.epochs, args.epochs is None or args.epochs >= 1),
        ("--batch-size", args.batch_size, args.batch_size is None or args.batch_size >= 1),
        ("--min-steps", args.min_steps, args.min_steps is None or args.min_steps >= 0),
        ("--learning-rate", args.learning_rate, args.learning_rate is None or args.learning_rate > 0),
        ("--noise-factor", args.noise_factor, args.noise_factor is None or args.noise_factor >= 0),
        ("--input-noise", args.input_noise, args.input_noise is None or args.input_noise >= 0),
        ("--test-size", args.test_size, 0 < args.test_size < 1),
        ("--holdout", args.holdout, args.holdout is None or 0 <= args.holdout < 1),
        ("--reference-holdout", args.reference_holdout, args.reference_holdout is None or 0 <= args.reference_holdout < 1),
    )
    preset = PRESETS[args.preset]
    method = args.threshold or preset.threshold
    changes: dict[str, Any] = {
        name: getattr(args, name) for name in (
            "arch", "epochs", "batch_size", "min_steps", "learning_rate", "noise_factor", "input_noise", "loss", "holdout",
            "reference_holdout",
        )
        if getattr(args, name) is not None
    }
    params = {} if args.threshold and args.threshold != preset.threshold else dict(preset.threshold_params)
    for name in sorted(set(THRESHOLD_PARAMS.values())):
        value = getattr(args, name)
        if value is None:
            continue
        if THRESHOLD_PARAMS[method] != name:
            owners = " or ".join(m for m, flag in THRESHOLD_PARAMS.items() if flag == name)
            raise ConfigError(f"--{name} belongs to --threshold {owners}, but the threshold is {method}.")
        params[name] = value
    changes.update(threshold=method, threshold_params=params)
    return changes


def _train_config(args: argparse.Namespace, changes: dict[str, Any]) -> TrainConfig:
    from dataclasses import replace

    run = {"seed": args.seed, "split_seed": args.split_seed, "test_size": args.test_size, "name": args.name}
    return replace(PRESETS[args.preset], **changes, **run)


def run_train(args: argparse.Namespace) -> dict[str, Any]:
    changes = _recipe(args)
    dataset, test = data_options(args).load()
    config = _train_config(args, changes)
    metadata, result = train_and_save(dataset, config, args.out, test)
    summary = _summary(metadata, args.out, dataset, "test", result.evaluation.model_dump())
    if args.report:
        from anomstream.models.detector import Detector

        trained = Detector(args.out, metadata, result.scorer, "tensorflow")
        _report(args.report, summary, metadata, trained, result.split.test, result.test_errors)
        summary["report"] = str(args.report / "report.md")
    return summary


def train_and_save(dataset: data.Dataset, config: Any, out: Path, test: data.Dataset | None = None) -> tuple[Any, Any]:
    """Train with a progress bar and write the artifact; `demo` trains through here too."""
    from anomstream.models import artifact
    from anomstream.models.train import train

    log.info(
        "training %s (%d epochs) on %s (%d windows of %s, content %s)", config.arch, config.epochs, dataset.path,
        len(dataset), shape_text(dataset.window_shape), dataset.content[:12],
    )
    with console.progress("training", total=config.epochs, unit="epochs") as advance:
        result = train(dataset, config, on_epoch=lambda epoch, logs: advance(1, **logs), test=test)
    metadata = artifact.save(out, result.model, result.metadata_fields, result.fitted)
    log.info("wrote %s (version %s)", out, metadata.version)
    return metadata, result


def run_evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from anomstream.models import detector
    from anomstream.models.evaluate import evaluate

    loaded = detector.load(args.model, args.runtime)
    metadata = loaded.metadata
    dataset, test = data_options(args).load()
    data.check_shape(dataset, metadata.window_shape, args.model)
    split, rows = evaluated_rows(metadata, dataset, test, args.split, args.model)
    log.info("scoring %d windows (%s) with %s %s on %s", len(rows), split, metadata.name, metadata.version, loaded.runtime)
    errors = loaded.score(rows.windows).errors  # the worker's scoring path (models/detector.py)
    evaluation = evaluate(errors, rows.labels, loaded.threshold)
    summary = {**_summary(metadata, args.model, rows if test is not None else dataset, split, evaluation.model_dump()), "runtime": loaded.runtime}
    if args.report:
        _report(args.report, summary, metadata, loaded, rows, errors)
        summary["report"] = str(args.report / "report.md")
    return summary


def evaluated_rows(metadata: Any, dataset: data.Dataset, test: data.Dataset | None, choice: str, model: Path) -> tuple[str, data.Dataset]:
    """Which rows `evaluate --split` scores: never a training row as a test row, and one sentence when asked to."""
    if test is not None:
        if choice == "all":
            raise ConfigError("--split all scores one file: give it as --data, without --test-data.")
        return "test", test
    same = data.is_recorded(metadata.data, dataset)
    split = choice if choice != "auto" else ("test" if same else "all")
    if split == "all":
        return split, dataset
    if not same:
        raise ConfigError(
            f"--split test needs the data model {model} was trained on, but {dataset.path} holds other windows"
            f" (parsed content {dataset.content[:12]}…, the model's {str(metadata.data.content)[:12]}…); use --split all."
        )
    if metadata.split.test_size is None:
        test_file = metadata.data.test_data.file if metadata.data.test_data else "its --test-data file"
        raise ConfigError(f"{dataset.path} is all training rows of model {model}: its test rows are {test_file}; pass it as --test-data.")
    return split, data.split(dataset, metadata.split.test_size, metadata.split.seed).test


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
        "data": {"path": str(dataset.path), "sha256": dataset.sha256, "content": dataset.content, "rows": len(dataset),
                 "layout": dataset.layout, "window_shape": list(dataset.window_shape)},
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


def _example(model: Any, rows: data.Dataset, errors: np.ndarray, i: int, title: str) -> Any:
    from anomstream.models import report

    window = rows.windows[i : i + 1]
    explained = model.score(window, explain="range").explanations
    return report.Example(
        f"{title} (row {rows.rows[i]}, error {errors[i]:.4f})",
        model.normalise(window)[0],
        model.reconstruct(window)[0],
        explained[0] if explained else None,
    )


def _report(directory: Path, summary: dict[str, Any], metadata: Any, model: Any, rows: data.Dataset, errors: np.ndarray) -> None:
    from anomstream.models import pictures, report
    from anomstream.models.evaluate import Evaluation
    from anomstream.models.shape import is_image

    shown, drawn, merit_notes = [], [], []
    if is_image(metadata.window_shape):  # the tutorial's pictures instead of the series plots
        directory.mkdir(parents=True, exist_ok=True)
        training = metadata.training
        merit, drawn = pictures.figures(directory, model, rows.windows, training.input_noise, training.seed, report.can_plot())
        summary["images"] = merit
        merit_notes = pictures.notes(merit)
    else:
        normal = np.flatnonzero(rows.labels == 1)
        if normal.size:
            shown.append(_example(model, rows, errors, int(normal[0]), "A normal window"))
        # A few windows the model flags, anomalies first, each with the range its explanation names shaded.
        flagged = np.flatnonzero(errors > metadata.threshold.value)
        for i in sorted(flagged.tolist(), key=lambda i: (rows.labels[i] != 0, i))[:3]:
            shown.append(_example(model, rows, errors, i, "An anomalous window" if rows.labels[i] == 0 else "A flagged normal window"))
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
        pictures=drawn,
        notes=[
            f"Threshold: {metadata.threshold.method} {metadata.threshold.params}, fitted on {metadata.threshold.fitted_on} windows.",
            f"Architecture: {metadata.architecture.name} ({metadata.architecture.parameters} parameters), "
            f"noise factor {metadata.architecture.noise_factor}, {metadata.training.epochs} epochs, seed {metadata.training.seed},"
            f" loss {metadata.training.loss}" + (f", input noise {metadata.training.input_noise:g}." if metadata.training.input_noise else "."),
            *merit_notes,
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
