"""The autoencoders: the tutorial's dense one and a 1-D convolutional one, for windows of any shape.

A window is (channels, length). Both models take and return that shape: the
dense one flattens it (one channel of 140 samples is exactly the tutorial's
140-32-16-8-16-32-140), the convolutional one reads the channels as
convolution channels. Built from stock Keras layers only, so that artifacts
load with `safe_mode=True` and need no custom objects. Keras is imported inside
the builders: `--help` and flag errors should not wait for TensorFlow.
"""

from __future__ import annotations

from typing import Any

ARCHITECTURES = ("dense", "conv1d")


def build(arch: str, window_shape: tuple[int, int], noise_factor: float = 0.0) -> Any:
    """An autoencoder (a `keras.Model`) for windows scaled to [0, 1], shaped (channels, length).

    With `noise_factor` > 0 a GaussianNoise layer corrupts the input during
    training only (the tutorial's denoising example); inference is unchanged.
    """
    from anomstream.models.backend import keras

    layers = keras.layers
    builders = {"dense": _dense, "conv1d": _conv1d}
    if arch not in builders:
        raise ValueError(f"unknown architecture {arch!r}: choose one of {', '.join(ARCHITECTURES)}")
    channels, length = (int(d) for d in window_shape)
    if channels < 1 or length < 2:
        raise ValueError(f"a window of {channels} channels x {length} samples is too small to reconstruct")
    inputs = keras.Input(shape=(channels, length), name="window")
    x = layers.GaussianNoise(noise_factor, name="denoise")(inputs) if noise_factor > 0 else inputs
    return keras.Model(inputs, builders[arch](x, channels, length), name=f"autoencoder_{arch}")


def _dense(x: Any, channels: int, length: int) -> Any:
    """The tutorial's 32-16-8-16-32 (ReLU) over the flattened window, sigmoid output."""
    from anomstream.models.backend import keras

    layers = keras.layers
    x = layers.Flatten()(x)
    for units in (32, 16, 8, 16, 32):
        x = layers.Dense(units, activation="relu")(x)
    x = layers.Dense(channels * length, activation="sigmoid")(x)
    return layers.Reshape((channels, length))(x)


def _conv1d(x: Any, channels: int, length: int) -> Any:
    """The tutorial's convolutional denoiser over 1-D windows, with a dense bottleneck.

    Without the Dense(16) the code is 35 positions x 8 channels = 280 numbers for
    a 140-sample window: wide enough to reconstruct anomalies too (ROC-AUC fell
    to 0.54-0.93 in our runs). Squeezing it to 16 gives 0.993 (models/MODEL_CARD.md).
    Odd lengths are padded to a multiple of 4 for the two stride-2 stages and cropped back.
    """
    from anomstream.models.backend import keras

    layers = keras.layers
    padded = -length % 4
    steps = (length + padded) // 4
    x = layers.Permute((2, 1))(x)  # (length, channels): Keras convolves over the middle axis, channels last
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
    x = layers.Conv1D(channels, 7, padding="same", activation="sigmoid")(x)
    if padded:
        x = layers.Cropping1D((0, padded))(x)
    return layers.Permute((2, 1))(x)
