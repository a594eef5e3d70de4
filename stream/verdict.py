"""The output contract: one verdict per scored window, as JSON (README, "Message formats").

Typed msgspec structs rather than dicts: building and encoding them is the
per-window cost left once decoding and scoring are batched. Field order is the
wire order; `label` and `run` are left out when the input had none, `channel_errors` for one channel,
`explanation` for a normal window (and for every window under --explain off).
"""

from __future__ import annotations

import itertools
from typing import Any

import msgspec

from anomstream.models.detector import Scores
from anomstream.models.explain import Explanation


class InputRef(msgspec.Struct, gc=False):
    topic: str
    partition: int
    offset: int


class ExplanationOut(msgspec.Struct, omit_defaults=True, gc=False):
    start: int
    end: int
    share: float
    channel: int | None = None  # multi-channel models only
    sample_errors: list[Any] | None = None  # --explain full: the errors nested as the input's `values` (models/explain.py)


class Verdict(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    id: str
    source: str | None
    ts: float | None
    label: int | None = None
    run: str | None = None
    error: float
    channel_errors: list[float] | None = None  # a multi-channel model's: one error per channel, `error` their mean
    threshold: float  # the one that judged this window: its source's, or the global one
    threshold_scope: str  # "source" or "global" (models/source_thresholds.py)
    score: float
    anomaly: bool
    explanation: ExplanationOut | None = None  # anomalous windows: where the error sits (models/explain.py)
    model: msgspec.Raw  # the same for every verdict of a batch: encoded once
    input: InputRef
    scored_at: float


_encoder = msgspec.json.Encoder()


def encode_batch(windows: list[Any], scores: Scores, model: dict[str, Any], scored_at: float) -> list[bytes]:
    """Each scored window's encoded verdict; `anomaly` is the detector's own (models/detector.py)."""
    model_json = msgspec.Raw(_encoder.encode(model))
    encoded: list[bytes] = []
    per_channel = scores.channel_errors.tolist() if scores.channel_errors.shape[1] > 1 else itertools.repeat(None)
    explained = scores.explanations or itertools.repeat(None)
    for window, error, anomaly, threshold, scope, channel_errors, explanation in zip(
        windows, scores.errors.tolist(), scores.anomalous.tolist(), scores.thresholds.tolist(), scores.scopes, per_channel, explained
    ):
        message = window.message
        verdict = Verdict(
            id=window.id,
            source=window.source,
            ts=window.ts,
            label=window.label,
            run=window.run,
            error=error,
            channel_errors=channel_errors,
            threshold=threshold,
            threshold_scope=scope,
            score=error / threshold,
            anomaly=anomaly,
            explanation=None if explanation is None else _explanation(explanation),
            model=model_json,
            input=InputRef(message.topic(), message.partition(), message.offset()),
            scored_at=scored_at,
        )
        encoded.append(_encoder.encode(verdict))
    return encoded


def _explanation(found: Explanation) -> ExplanationOut:
    sample_errors = None
    if found.sample_errors is not None:  # shaped like the input's `values`: flat for one channel
        sample_errors = (found.sample_errors[0] if len(found.sample_errors) == 1 else found.sample_errors).tolist()
    return ExplanationOut(found.start, found.end, found.share, found.channel, sample_errors)
