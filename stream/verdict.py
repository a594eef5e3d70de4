"""The output contract: one verdict per scored window, as JSON (README, "Message formats").

Typed msgspec structs rather than dicts: building and encoding them is the
per-window cost left once decoding and scoring are batched. Field order is the
wire order; `label` is left out when the input had none.
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np


class InputRef(msgspec.Struct):
    topic: str
    partition: int
    offset: int


class Verdict(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    source: str | None
    ts: float | None
    label: int | None = None
    error: float
    threshold: float
    score: float
    anomaly: bool
    model: dict[str, Any]
    input: InputRef
    scored_at: float


_encoder = msgspec.json.Encoder()


def encode(verdict: Verdict) -> bytes:
    return _encoder.encode(verdict)


def verdicts(windows: list[Any], errors: np.ndarray, threshold: float, model: dict[str, Any], scored_at: float) -> list[tuple[Any, bytes, bool]]:
    """(input message, encoded verdict, anomalous?) for each scored window."""
    out: list[tuple[Any, bytes, bool]] = []
    for window, error in zip(windows, errors.tolist()):
        message = window.message
        anomaly = error > threshold
        verdict = Verdict(
            id=window.id,
            source=window.source,
            ts=window.ts,
            label=window.label,
            error=error,
            threshold=threshold,
            score=error / threshold,
            anomaly=anomaly,
            model=model,
            input=InputRef(message.topic(), message.partition(), message.offset()),
            scored_at=scored_at,
        )
        out.append((message, _encoder.encode(verdict), anomaly))
    return out
