"""Where in an anomalous window the reconstruction error sits, and on which channel.

An on-call engineer looking at one anomalous verdict wants to know where to
look. The rule, computed on the per-sample absolute errors |x̂ - x| in the
normalised scale (the ones whose mean is the window's `error`):

- the error curve is the per-sample error averaged over the channels;
- the explained range is the contiguous run of samples around the curve's peak
  where the curve stays at or above half the peak (the full width at half
  maximum), `start <= sample < end`;
- `share` is that range's part of the window's total error;
- `channel` (multi-channel models only) is the channel with the largest error.

For an image window (channels, height, width) the curve is over its rows (each
row's mean error), so `start` and `end` are rows: where in a spectrogram frame
or a digit the error sits, top to bottom.

A spike or a dropout gives a narrow range with a large share; an anomaly spread
over the whole window gives a low share, which says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MODES = ("off", "range", "full")  # the worker's --explain: none, the range, the range and every sample's error


@dataclass(frozen=True)
class Explanation:
    start: int  # first sample of the range
    end: int  # one past its last sample
    share: float  # the range's part of the window's error, 0 to 1
    channel: int | None  # the channel with the largest error; None for a one-channel model
    sample_errors: np.ndarray | None  # --explain full: (channels, length) or (channels, height, width) per-sample errors


def explain(sample_errors: np.ndarray, full: bool = False) -> list[Explanation]:
    """One explanation per window of (n, channels, length) or (n, channels, height, width) per-sample errors."""
    sample_errors = np.asarray(sample_errors, dtype=np.float32)
    channels = sample_errors.shape[1]
    curves = sample_errors.mean(axis=1)
    if curves.ndim == 3:  # images: one point per row
        curves = curves.mean(axis=2)
    found = []
    for window, curve in zip(sample_errors, curves):
        start, end = half_maximum_range(curve)
        total = float(curve.sum())
        share = float(curve[start:end].sum()) / total if total > 0 else 0.0
        found.append(
            Explanation(
                start=start,
                end=end,
                share=round(share, 6),
                channel=int(window.reshape(channels, -1).mean(axis=1).argmax()) if channels > 1 else None,
                sample_errors=window if full else None,
            )
        )
    return found


def half_maximum_range(curve: np.ndarray) -> tuple[int, int]:
    """[start, end) of the run around the peak where `curve` is at least half the peak."""
    peak = int(curve.argmax())
    level = curve[peak] / 2
    below = np.flatnonzero(curve < level)
    left, right = below[below < peak], below[below > peak]
    start = int(left[-1]) + 1 if left.size else 0
    end = int(right[0]) if right.size else len(curve)
    return start, end
