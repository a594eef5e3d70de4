"""How a window's shape looks on the wire, and the sentences that say a received one is wrong.

JSON `values` nests as deep as the window has axes, less the channel axis of a
one-channel model (`depth`): a list of numbers for a one-channel series, lists
of numbers for several channels or an image's rows, lists of lists for an image
of several channels. A float32 body holds the window's samples in the same
order. The rest is the cold path of a dead letter: what was received, in words,
beside what the model takes (`wrong_length`), and where a non-finite sample is.
"""

from __future__ import annotations

import math
from typing import Any

from anomstream.models.shape import Shape


def depth(shape: Shape) -> int:
    """How deep a window's JSON `values` nests: the window's axes, less the channel axis of a one-channel model."""
    return len(shape) - 1 if shape[0] == 1 else len(shape)


def shape_text(shape: Shape) -> str:
    """A window shape as the wire contract spells it."""
    if len(shape) == 2:
        channels, length = shape
        return f"{length} numbers" if channels == 1 else f"{channels} lists of {length} numbers (channel-major)"
    channels, height, width = shape
    if channels == 1:
        return f"{height} lists of {width} numbers (row-major)"
    return f"{channels} lists of {height} lists of {width} numbers (channel-major, then row-major)"


def binary_text(shape: Shape) -> str:
    """What a float32 body of `shape` holds, for the wrong-length sentence."""
    if len(shape) == 2:
        channels, length = shape
        return f"{length}" if channels == 1 else f"{channels} x {length} = {channels * length} (channels x samples, channel-major)"
    names = "height x width" if shape[0] == 1 else "channels x height x width"
    dims = shape[1:] if shape[0] == 1 else shape
    return f"{' x '.join(map(str, dims))} = {math.prod(shape)} ({names}, row-major)"


def where(index: tuple[int, ...], shape: Shape) -> str:
    """A sample's place in words: `value 3`, `channel 1 value 3`, `row 2 column 5`, `channel 1 row 2 column 5`."""
    channel, *place = index
    named = f"value {place[0]}" if len(place) == 1 else f"row {place[0]} column {place[1]}"
    return named if shape[0] == 1 else f"channel {channel} {named}"


def fits(values: list[Any], dims: Shape) -> bool:
    """Whether nested lists have exactly the lengths `dims`, outermost first."""
    if len(values) != dims[0]:
        return False
    return len(dims) == 1 or all(fits(inner, dims[1:]) for inner in values)


def shape_of(values: Any) -> str:
    """How a received `values` is shaped, in words (cold path: a wrong-shape dead letter)."""
    if not isinstance(values, list):
        return f"a {type(values).__name__}"
    if values and all(isinstance(v, list) for v in values):
        if any(v and all(isinstance(u, list) for u in v) for v in values):  # a level deeper: describe its parts
            inner = sorted({shape_of(v) for v in values})
            return f"{len(values)} lists of {inner[0] if len(inner) == 1 else 'lists of several shapes'}"
        lengths = sorted({len(v) for v in values})
        inner = f"{lengths[0]} numbers" if len(lengths) == 1 else f"{lengths[0]} to {lengths[-1]} numbers"
        return f"{len(values)} lists of {inner}"
    return f"{len(values)} numbers"


def depth_of(values: Any) -> int | None:
    """How deep a received `values` nests, when it is lists down to numbers at one depth; else None."""
    if not isinstance(values, list) or not values:
        return None
    if all(type(v) in (int, float) for v in values):
        return 1
    if all(isinstance(v, list) for v in values):
        inner = {depth_of(v) for v in values}
        return 1 + inner.pop() if len(inner) == 1 and None not in inner else None
    return None
