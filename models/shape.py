"""Window shapes: (channels, length) for a series, (channels, height, width) for an image.

A window's first axis is always its channels; what follows is one axis for a
series and two for an image (a spectrogram frame, a digit). Everything that
reduces over a window's samples reduces over `sample_axes`, so one code path
serves both, and every message spells a shape with `text`.
"""

from __future__ import annotations

from typing import Any

from anomstream.errors import ArtifactError

Shape = tuple[int, ...]


def is_image(shape: Shape) -> bool:
    return len(shape) == 3


def sample_axes(ndim: int) -> tuple[int, ...]:
    """The axes of a batch (n, channels, ...) that hold one channel's samples."""
    return tuple(range(2, ndim))


def text(shape: Shape) -> str:
    """A shape as messages spell it: `3 x 140 (channels x samples)`, `1 x 8 x 8 (channels x height x width)`."""
    names = "channels x height x width" if is_image(shape) else "channels x samples"
    return f"{' x '.join(str(int(d)) for d in shape)} ({names})"


def of_input(input_shape: Any) -> Shape:
    """A model's window shape from its input shape: (batch, channels, ...), or (batch, length) for the
    one-channel models of artifact schemas 1 to 3."""
    dims = [int(d) for d in list(input_shape)[1:]]
    if len(dims) == 1:
        return (1, dims[0])
    if len(dims) in (2, 3):
        return tuple(dims)
    raise ArtifactError(
        f"the model takes inputs of shape {tuple(input_shape)}: expected (batch, channels, length) or (batch, channels, height, width)."
    )
