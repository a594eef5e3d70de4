"""The autoencoders: the tutorial's dense one, 1-D and 2-D convolutional ones, and the tutorial's two image models.

A window is (channels, length), or (channels, height, width) for an image.
Every model takes and returns that shape: `dense` and `basic` flatten it (one
channel of 140 samples is exactly the tutorial's 140-32-16-8-16-32-140), the
convolutional ones read the channels as convolution channels. `basic` and
`denoise` are the tutorial's Fashion-MNIST examples layer for layer (presets
tutorial-basic and tutorial-denoise); `conv2d` is `denoise` with the dense
bottleneck that makes `conv1d` a detector rather than a copier. Built from stock
Keras layers only, so that artifacts load with `safe_mode=True` and need no
custom objects. Keras is imported inside the builders: `--help` and flag errors
should not wait for TensorFlow.
"""

from __future__ import annotations

import math
from typing import Any

from anomstream.models.shape import Shape, is_image, text

SERIES = ("dense", "conv1d")
IMAGES = ("dense", "conv2d", "basic", "denoise")
ARCHITECTURES = ("dense", "conv1d", "conv2d", "basic", "denoise")
# What --arch accepts: `conv` is the convolutional model for the window's own dimensions (the default preset's).
CHOICES = ("conv", *ARCHITECTURES)
# The tutorial's basic autoencoder codes 28 x 28 = 784 pixels in 64 numbers; other sizes keep that ratio.
BASIC_LATENT, TUTORIAL_PIXELS = 64, 784


def resolve(arch: str, window_shape: Shape) -> str:
    """The architecture that trains on windows of `window_shape`: `conv` chosen by the window's dimensions,
    any other checked to fit them, in one sentence when it does not."""
    if arch not in CHOICES:
        raise ValueError(f"unknown architecture {arch!r}: choose one of {', '.join(CHOICES)}")
    image = is_image(window_shape)
    if arch == "conv":
        return "conv2d" if image else "conv1d"
    if arch not in (IMAGES if image else SERIES):
        kind, fits = ("images", IMAGES) if image else ("series", SERIES)
        raise ValueError(f"--arch {arch} does not take windows of {text(window_shape)}: for {kind} choose one of {', '.join(fits)}")
    return arch


def build(arch: str, window_shape: Shape, noise_factor: float = 0.0) -> Any:
    """An autoencoder (a `keras.Model`) for windows scaled to [0, 1], shaped `window_shape`.

    With `noise_factor` > 0 a GaussianNoise layer corrupts the input during
    training only; inference is unchanged.
    """
    from anomstream.models.backend import keras

    layers = keras.layers
    builders = {"dense": _dense, "conv1d": _conv1d, "conv2d": _conv2d, "basic": _basic, "denoise": _denoise}
    arch = resolve(arch, window_shape)
    shape = tuple(int(d) for d in window_shape)
    if shape[0] < 1 or min(shape[1:]) < 2:
        raise ValueError(f"a window of {text(shape)} is too small to reconstruct")
    inputs = keras.Input(shape=shape, name="window")
    x = layers.GaussianNoise(noise_factor, name="denoise")(inputs) if noise_factor > 0 else inputs
    return keras.Model(inputs, builders[arch](x, shape), name=f"autoencoder_{arch}")


def _dense(x: Any, shape: Shape) -> Any:
    """The tutorial's 32-16-8-16-32 (ReLU) over the flattened window, sigmoid output."""
    from anomstream.models.backend import keras

    layers = keras.layers
    x = layers.Flatten()(x)
    for units in (32, 16, 8, 16, 32):
        x = layers.Dense(units, activation="relu")(x)
    x = layers.Dense(math.prod(shape), activation="sigmoid")(x)
    return layers.Reshape(shape)(x)


def _conv1d(x: Any, shape: Shape) -> Any:
    """The tutorial's convolutional denoiser over 1-D windows, with a dense bottleneck.

    Without the Dense(16) the code is 35 positions x 8 channels = 280 numbers for
    a 140-sample window: wide enough to reconstruct anomalies too (ROC-AUC fell
    to 0.54-0.93 in our runs). Squeezing it to 16 gives 0.993 (models/MODEL_CARD.md).
    Odd lengths are padded to a multiple of 4 for the two stride-2 stages and cropped back.
    """
    from anomstream.models.backend import keras

    layers = keras.layers
    channels, length = shape
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


def _conv2d(x: Any, shape: Shape) -> Any:
    """The tutorial's image denoiser with a Dense(16) bottleneck, as `conv1d` has one: without it the code is a
    quarter of the image in 8 channels, twice as many numbers as pixels, and anomalies reconstruct as well."""
    return _convolutions_2d(x, shape, bottleneck=16)


def _denoise(x: Any, shape: Shape) -> Any:
    """The tutorial's denoiser exactly: Conv2D(16, 3, stride 2), Conv2D(8, 3, stride 2), Conv2DTranspose(8),
    Conv2DTranspose(16), Conv2D(channels, 3, sigmoid)."""
    return _convolutions_2d(x, shape, bottleneck=None)


def _convolutions_2d(x: Any, shape: Shape, bottleneck: int | None) -> Any:
    """Height and width are padded to multiples of 4 for the two stride-2 stages and cropped back (28 x 28 is not)."""
    from anomstream.models.backend import keras

    layers = keras.layers
    channels, height, width = shape
    pad_h, pad_w = -height % 4, -width % 4
    x = layers.Permute((2, 3, 1))(x)  # (height, width, channels): Keras convolves channels last
    if pad_h or pad_w:
        x = layers.ZeroPadding2D(((0, pad_h), (0, pad_w)))(x)
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    if bottleneck is not None:
        steps = ((height + pad_h) // 4, (width + pad_w) // 4)
        x = layers.Flatten()(x)
        x = layers.Dense(bottleneck, activation="relu", name="bottleneck")(x)
        x = layers.Dense(steps[0] * steps[1] * 8, activation="relu")(x)
        x = layers.Reshape((*steps, 8))(x)
    x = layers.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv2DTranspose(16, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv2D(channels, 3, padding="same", activation="sigmoid")(x)
    if pad_h or pad_w:
        x = layers.Cropping2D(((0, pad_h), (0, pad_w)))(x)
    return layers.Permute((3, 1, 2))(x)


def _basic(x: Any, shape: Shape) -> Any:
    """The tutorial's basic autoencoder: Flatten, Dense(64, relu), Dense(pixels, sigmoid), Reshape. The code keeps
    the tutorial's 784-to-64 ratio for other sizes (at least 2 numbers): 8 x 8 digits get 5."""
    from anomstream.models.backend import keras

    layers = keras.layers
    size = math.prod(shape)
    latent = BASIC_LATENT if size == TUTORIAL_PIXELS else max(2, round(BASIC_LATENT * size / TUTORIAL_PIXELS))
    x = layers.Flatten()(x)
    x = layers.Dense(latent, activation="relu", name="code")(x)
    x = layers.Dense(size, activation="sigmoid")(x)
    return layers.Reshape(shape)(x)
