"""The autoencoders: the tutorial's dense one and a 1-D convolutional one.

Built from stock Keras layers only, so that artifacts load with
`safe_mode=True` and need no custom objects. Keras is imported inside the
builders: `--help` and flag errors should not wait for TensorFlow.
"""

from __future__ import annotations

from typing import Any

ARCHITECTURES = ("dense", "conv1d")


def build(arch: str, window_length: int, noise_factor: float = 0.0) -> Any:
    """An autoencoder (a `keras.Model`) for windows scaled to [0, 1].

    With `noise_factor` > 0 a GaussianNoise layer corrupts the input during
    training only (the tutorial's denoising example); inference is unchanged.
    """
    from anomstream.models.backend import keras

    layers = keras.layers
    builders = {"dense": _dense, "conv1d": _conv1d}
    if arch not in builders:
        raise ValueError(f"unknown architecture {arch!r}: choose one of {', '.join(ARCHITECTURES)}")
    inputs = keras.Input(shape=(window_length,), name="window")
    x = layers.GaussianNoise(noise_factor, name="denoise")(inputs) if noise_factor > 0 else inputs
    return keras.Model(inputs, builders[arch](x, window_length), name=f"ecg_{arch}")


def _dense(x: Any, window_length: int) -> Any:
    """The tutorial's 140-32-16-8-16-32-140 (ReLU, sigmoid output)."""
    from anomstream.models.backend import keras

    layers = keras.layers
    for units in (32, 16, 8, 16, 32):
        x = layers.Dense(units, activation="relu")(x)
    return layers.Dense(window_length, activation="sigmoid")(x)


def _conv1d(x: Any, window_length: int) -> Any:
    """The tutorial's convolutional denoiser over 1-D windows, with a dense bottleneck.

    Without the Dense(16) the code is 35 positions x 8 channels = 280 numbers for
    a 140-sample window: wide enough to reconstruct anomalies too (ROC-AUC fell
    to 0.54-0.93 in our runs). Squeezing it to 16 gives 0.993 (models/MODEL_CARD.md).
    """
    from anomstream.models.backend import keras

    layers = keras.layers
    padded = -window_length % 4  # two stride-2 stages need a multiple of 4
    steps = (window_length + padded) // 4
    x = layers.Reshape((window_length, 1))(x)
    if padded:
        x = layers.ZeroPadding1D((0, padded))(x)
    x = layers.Conv1D(16, 7, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv1D(8, 7, strides=2, padding="same", activation="relu")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(16, activation="relu", name="bottleneck")(x)
    x = layers.Dense(steps * 8, activation="relu")(x)
    x = layers.Reshape((steps, 8))(x)
    x = layers.Conv1DTranspose(8, 7, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv1DTranspose(16, 7, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv1D(1, 7, padding="same", activation="sigmoid")(x)
    if padded:
        x = layers.Cropping1D((0, padded))(x)
    return layers.Reshape((window_length,))(x)
