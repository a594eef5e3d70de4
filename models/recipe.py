"""What a training run is asked to do (`TrainConfig`), and the named recipes (`PRESETS`).

Apart from models/train.py so that the CLI can check flags against a preset
before TensorFlow loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a training run; the defaults are the tutorial's."""

    arch: str = "dense"
    epochs: int = 20
    batch_size: int = 512
    seed: int = 21  # weights, shuffling, noise
    split_seed: int = 21  # the train/test split, kept apart so seeds can vary on one split
    test_size: float = 0.2
    noise_factor: float = 0.0  # a GaussianNoise layer: fresh noise every batch, training only
    # The tutorial's image denoising: each training input gets fixed noise of this factor once, clipped to [0, 1],
    # and the model learns to give back the clean window. 0: inputs are their own targets.
    input_noise: float = 0.0
    loss: str = "mae"  # or "mse", the tutorial's image examples' loss
    learning_rate: float = 1e-3
    # Gradient updates at least: a small training set gets more passes (a class of 30 windows at batch 32 is one
    # update per epoch, so 50 epochs would be 50 updates). 0: exactly `epochs` passes, as the tutorial.
    min_steps: int = 0
    threshold: str = "mean-std"
    threshold_params: dict[str, float] = field(default_factory=dict)
    # Fraction of normal training windows held out to fit the threshold on; None: 0.2 for fpr, else 0.
    holdout: float | None = None
    # Fraction of normal training windows held out of both fits: their errors are the drift reference
    # (models/drift.py). 0 (the tutorial's): no reference, the worker measures no drift.
    reference_holdout: float = 0.0
    name: str | None = None

    def steps_per_epoch(self, windows: int) -> int:
        """Updates per epoch for `windows` fit windows: one pass, or more when `min_steps` asks for them."""
        one_pass = max(1, -(-windows // self.batch_size))
        return max(one_pass, -(-self.min_steps // self.epochs))

    @property
    def holdout_fraction(self) -> float:
        if self.holdout is not None:
            return self.holdout
        return 0.2 if self.threshold == "fpr" else 0.0


PRESETS: dict[str, TrainConfig] = {
    # TensorFlow's "Intro to Autoencoders", exactly: tests/models/test_parity.py holds it to the tutorial's figures.
    "tutorial": TrainConfig(),
    # `python -m anomstream.benchmarks.quality --select` (validation splits of TRAIN rows, ten data sets) ranks it
    # first of the candidates: 0.823 against the mae-loss recipe's 0.809 and PCA's 0.798
    # (benchmarks/results/2026-12-03-quality-select-mse.md); it meets the ECG5000 targets (models/MODEL_CARD.md).
    # The loss is squared, as PCA fits its residuals; the score is still a window's mean absolute error.
    # On ECG5000's normal training rows 50 epochs are 1,650 updates already; a class of 30 windows gets 30 per
    # epoch instead of one. `conv` is conv1d for series, conv2d for images (models/architectures.py).
    "default": TrainConfig(
        arch="conv", epochs=50, batch_size=64, min_steps=1500, noise_factor=0.1, loss="mse", threshold="mean-std",
        threshold_params={"k": 2.0}, reference_holdout=0.1,
    ),
    # The tutorial's two Fashion-MNIST examples, layer for layer (models/architectures.py): MSE, Adam, 10 epochs of
    # Keras' default batch of 32; the denoiser on inputs with fixed noise of factor 0.2, clipped to [0, 1]. The
    # threshold, which the tutorial's image examples have none of, is its ECG rule: mean + 1 std.
    "tutorial-basic": TrainConfig(arch="basic", epochs=10, batch_size=32, loss="mse"),
    "tutorial-denoise": TrainConfig(arch="denoise", epochs=10, batch_size=32, loss="mse", input_noise=0.2),
}
LOSSES = ("mae", "mse")
