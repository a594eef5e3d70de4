"""The tutorial's image figures for a report: originals over reconstructions, and noisy inputs over denoised ones.

TensorFlow's "Intro to Autoencoders" shows its Fashion-MNIST models this way; a
report of an image model (train or evaluate with --report) draws the same rows
from its test windows, with the figures of merit beside them: the reconstruction
MSE in the normalised scale and, for a model trained to denoise, the MSE of its
output against the clean images next to that of the noisy input itself (the
identity: what doing nothing scores).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

SHOWN = 10  # the tutorial's: ten images a row


def image_rows(path: Path, rows: list[tuple[str, np.ndarray]], title: str) -> None:
    """A grid: one labelled row per entry, each of (n, channels, height, width) images (the first channel drawn)."""
    from anomstream.models.report import _pyplot, _save

    plt = _pyplot()
    count = max(len(images) for _, images in rows)
    fig, axes = plt.subplots(len(rows), count, figsize=(1.6 * count, 2.2 * len(rows)), squeeze=False)
    for row, (label, images) in enumerate(rows):
        for column in range(count):
            ax = axes[row, column]
            ax.set_axis_off()
            if column < len(images):
                ax.imshow(np.asarray(images[column])[0], cmap="gray", vmin=0, vmax=1)
            if column == 0:
                ax.set_title(label, loc="left", fontsize=9)
    fig.suptitle(title)
    _save(fig, path)


def figures(
    directory: Path, detector: Any, windows: np.ndarray, input_noise: float, seed: int, plot: bool
) -> tuple[dict[str, float], list[tuple[str, str]]]:
    """The figures of merit of an image model on `windows` (raw), and the pictures written to `directory`."""
    from anomstream.models.train import noisy

    clean = detector.normalise(windows)
    rebuilt = detector.reconstruct(windows)
    merit = {"reconstruction_mse": float(((rebuilt - clean) ** 2).mean())}
    drawn: list[tuple[str, str]] = []
    if plot:
        rows = [("original", clean[:SHOWN]), ("reconstructed", rebuilt[:SHOWN])]
        image_rows(directory / "reconstructions.png", rows, "Originals over reconstructions")
        drawn.append(("Originals over reconstructions", "reconstructions.png"))
    if input_noise > 0:
        corrupted = noisy(clean, input_noise, seed)
        denoised = detector.reconstruct(corrupted, scaled=True)
        merit["noisy_input_mse"] = float(((corrupted - clean) ** 2).mean())
        merit["denoised_mse"] = float(((denoised - clean) ** 2).mean())
        if plot:
            rows = [("noisy", corrupted[:SHOWN]), ("denoised", denoised[:SHOWN])]
            image_rows(directory / "denoised.png", rows, f"Noisy inputs (noise {input_noise:g}) over denoised outputs")
            drawn.append(("Noisy inputs over denoised outputs", "denoised.png"))
    return merit, drawn


def notes(merit: dict[str, float]) -> list[str]:
    """The figures of merit as report sentences."""
    lines = [f"Reconstruction MSE on these windows (normalised scale): {merit['reconstruction_mse']:.5f}."]
    if "denoised_mse" in merit:
        better = merit["denoised_mse"] < merit["noisy_input_mse"]
        lines.append(
            f"Denoising: the output's MSE against the clean images is {merit['denoised_mse']:.5f}, the noisy input's own"
            f" (the identity) {merit['noisy_input_mse']:.5f}: {'better than' if better else 'no better than'} doing nothing."
        )
    return lines
