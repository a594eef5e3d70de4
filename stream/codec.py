"""Input windows and output verdicts on the wire.

Two input formats share one topic: JSON (the default) and little-endian
float32 with the other fields in headers (`content-type:
application/x-float32`). Decoding a batch gives the valid windows as one
float32 matrix, ready for one model call, plus an `Invalid` per bad message
with a reason from a fixed vocabulary and a one-sentence detail: the only way
a message leaves the happy path.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
import numpy as np

CONTENT_TYPE = "content-type"
F32 = b"application/x-float32"
MAX_BYTES = 512 * 1024  # a 140-sample window is ~3 KB of JSON; far below the usual 1 MB Kafka limits, so the DLQ can take it whole

# The dead-letter vocabulary (the `error.reason` header). Changing it breaks alerts and dashboards.
NOT_JSON = "not_json"
BAD_SCHEMA = "bad_schema"
WRONG_LENGTH = "wrong_length"
NON_FINITE = "non_finite"
BAD_BINARY = "bad_binary"
TOO_LARGE = "too_large"
REASONS = (NOT_JSON, BAD_SCHEMA, WRONG_LENGTH, NON_FINITE, BAD_BINARY, TOO_LARGE)


class Message(Protocol):
    """What the codec needs of a `confluent_kafka.Message`."""

    def value(self) -> bytes | None: ...
    def key(self) -> bytes | None: ...
    def headers(self) -> list[tuple[str, bytes | None]] | None: ...
    def topic(self) -> str: ...
    def partition(self) -> int: ...
    def offset(self) -> int: ...


class _Window(msgspec.Struct):
    id: str
    values: list[float]
    source: str | None = None
    ts: float | None = None
    label: float | None = None


_decoder = msgspec.json.Decoder(_Window)
_encoder = msgspec.json.Encoder()


@dataclass(slots=True)
class Window:
    """A valid window's identity; its samples are a row of `Batch.values`."""

    message: Message
    id: str
    source: str | None
    ts: float | None
    label: int | None


@dataclass(slots=True)
class Invalid:
    message: Message
    reason: str
    detail: str


@dataclass
class Batch:
    windows: list[Window]
    values: np.ndarray  # float32, (len(windows), window_length)
    invalid: list[Invalid]


class _Bad(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def decode_batch(messages: list[Message], window_length: int) -> Batch:
    """Decode every message; non-finite samples are caught for the whole batch at once."""
    windows: list[Window] = []
    rows: list[np.ndarray | list[float]] = []
    invalid: list[Invalid] = []
    for message in messages:
        try:
            window, values = _decode(message, window_length)
        except _Bad as bad:
            invalid.append(Invalid(message, bad.reason, bad.detail))
            continue
        windows.append(window)
        rows.append(values)
    with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf, caught just below
        values = np.array(rows, dtype=np.float32).reshape(len(rows), window_length)
    finite = np.isfinite(values).all(axis=1)
    if not finite.all():
        for index in np.flatnonzero(~finite):
            bad = int(np.flatnonzero(~np.isfinite(values[index]))[0])
            invalid.append(
                Invalid(windows[index].message, NON_FINITE, f"value {bad} is {values[index, bad]}, not a finite number.")
            )
        windows = [w for w, ok in zip(windows, finite) if ok]
        values = values[finite]
    return Batch(windows, values, invalid)


def _decode(message: Message, window_length: int) -> tuple[Window, np.ndarray | list[float]]:
    body = message.value() or b""
    if len(body) > MAX_BYTES:
        raise _Bad(TOO_LARGE, f"the message is {len(body)} bytes; the limit is {MAX_BYTES}.")
    headers = dict(message.headers() or ())
    if headers.get(CONTENT_TYPE) == F32:
        return _decode_f32(message, body, headers, window_length)
    return _decode_json(message, body, window_length)


def _decode_json(message: Message, body: bytes, window_length: int) -> tuple[Window, list[float]]:
    try:
        parsed = _decoder.decode(body)
    except msgspec.ValidationError as exc:
        text = str(exc)
        if text.startswith("Number out of range"):
            raise _Bad(NON_FINITE, f"{text}: a value overflows to infinity.") from None
        raise _Bad(BAD_SCHEMA, f"{text}.") from None
    except msgspec.DecodeError as exc:
        raise _Bad(*_explain_not_json(body, exc)) from None
    if not parsed.id:
        raise _Bad(BAD_SCHEMA, "the id is empty.")
    if len(parsed.values) != window_length:
        raise _Bad(WRONG_LENGTH, f"values has {len(parsed.values)} numbers; the model takes {window_length}.")
    label = _label(parsed.label)
    return Window(message, parsed.id, parsed.source, parsed.ts, label), parsed.values


def _explain_not_json(body: bytes, exc: Exception) -> tuple[str, str]:
    """Cold path: say *why* it is not JSON, and spot Python's NaN/Infinity tokens."""
    if not body:
        return NOT_JSON, "the message is empty."
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as bad:
        return NOT_JSON, f"the message is not UTF-8 (byte {bad.start})."
    try:
        loose = json.loads(text)  # accepts NaN and Infinity, which strict JSON does not
    except (ValueError, RecursionError):
        return NOT_JSON, f"the message is not JSON: {exc}."
    values = loose.get("values") if isinstance(loose, dict) else None
    if isinstance(values, list) and any(isinstance(v, float) and not math.isfinite(v) for v in values):
        return NON_FINITE, "values holds NaN or Infinity, which are not finite numbers (nor strict JSON)."
    return NOT_JSON, f"the message is not strict JSON: {exc}."


def _decode_f32(message: Message, body: bytes, headers: dict[str, bytes | None], window_length: int) -> tuple[Window, np.ndarray]:
    if len(body) % 4:
        raise _Bad(BAD_BINARY, f"a float32 body must be a multiple of 4 bytes; this one is {len(body)}.")
    if len(body) != 4 * window_length:
        raise _Bad(WRONG_LENGTH, f"the body holds {len(body) // 4} float32 values; the model takes {window_length}.")
    try:
        window_id = _header(headers, "id")
        if not window_id:
            raise _Bad(BAD_SCHEMA, "a float32 message needs an `id` header.")
        ts = _header(headers, "ts")
        label = _header(headers, "label")
        window = Window(
            message,
            window_id,
            _header(headers, "source"),
            float(ts) if ts is not None else None,
            _label(float(label)) if label is not None else None,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise _Bad(BAD_SCHEMA, f"a header is not valid: {exc}.") from None
    return window, np.frombuffer(body, dtype="<f4")


def _header(headers: dict[str, bytes | None], name: str) -> str | None:
    value = headers.get(name)
    return None if value is None else value.decode("utf-8")


def _label(label: float | None) -> int | None:
    if label is None:
        return None
    if label not in (0.0, 1.0):
        raise _Bad(BAD_SCHEMA, f"label {label:g} is not 0 (anomalous) or 1 (normal).")
    return int(label)


def encode_window(
    window_id: str, values: Any, source: str | None = None, ts: float | None = None, label: int | None = None
) -> bytes:
    """The JSON input contract, for producers written in Python (replay, tests, benchmarks)."""
    samples = values.tolist() if isinstance(values, np.ndarray) else [float(v) for v in values]
    payload: dict[str, Any] = {"id": window_id, "values": samples}
    for name, value in (("source", source), ("ts", ts), ("label", label)):
        if value is not None:
            payload[name] = value
    return _encoder.encode(payload)


def encode_json(payload: dict[str, Any]) -> bytes:
    return _encoder.encode(payload)
