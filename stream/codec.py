"""Input windows and output verdicts on the wire.

Two input formats share one topic: JSON (the default) and little-endian
float32 with the other fields in headers (`content-type:
application/x-float32`). Decoding a batch gives the valid windows as one
float32 matrix, ready for one model call, plus an `Invalid` per bad message
with a reason from a fixed vocabulary and a one-sentence detail: the only way
a message leaves the happy path. No input can make `decode_batch` raise
(tests/stream/test_codec.py checks it with hypothesis): bad UTF-8 anywhere,
nesting beyond the recursion limit and repeated JSON keys are all dead letters.
"""

from __future__ import annotations

import ctypes
import itertools
import json
import logging
import math
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
import numpy as np

from anomstream.models.shape import Shape
from anomstream.stream import json_fast, json_keys, wire_shapes
from anomstream.stream.reasons import (  # noqa: F401 (the vocabulary is the codec's public contract too)
    BAD_BINARY,
    BAD_SCHEMA,
    DECODER_FAILED,
    HEADERS_NOT_UTF8,
    NON_FINITE,
    NOT_JSON,
    REASONS,
    TOO_DEEP,
    TOO_LARGE,
    WRONG_LENGTH,
    Bad,
)

CONTENT_TYPE = "content-type"
F32 = b"application/x-float32"
# A 140-sample window is ~3 KB of JSON. The DLQ takes a bigger message whole only if the worker's producer
# message.max.bytes and the DLQ topic's max.message.bytes exceed the input topic's limit (plus the headers).
MAX_BYTES = 512 * 1024

log = logging.getLogger("anomstream.codec")


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
    values: list[float]  # one channel: `length` numbers
    source: str | None = None
    ts: float | None = None
    label: float | None = None
    run: str | None = None


class _Channels(msgspec.Struct):
    id: str
    values: list[list[float]]  # several channels: `channels` lists of `length` numbers, channel-major; or an image's rows
    source: str | None = None
    ts: float | None = None
    label: float | None = None
    run: str | None = None


class _Images(msgspec.Struct):
    id: str
    values: list[list[list[float]]]  # an image of several channels: `channels` lists of `height` rows of `width` numbers
    source: str | None = None
    ts: float | None = None
    label: float | None = None
    run: str | None = None


# By how deep `values` nests (`depth`): a list of numbers, of lists, of lists of lists.
_decoders = {1: msgspec.json.Decoder(_Window), 2: msgspec.json.Decoder(_Channels), 3: msgspec.json.Decoder(_Images)}
_loose = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


class Window(msgspec.Struct, gc=False):
    """A valid window's identity; its samples are a row of `Batch.values`.

    A struct the cyclic GC does not track: a batch makes hundreds, and each tracked object is work
    for every collection while it lives.
    """

    message: Message
    id: str
    source: str | None
    ts: float | None
    label: int | None
    run: str | None = None  # which replay sent it (replay stamps it; verdicts carry it back for validate)


@dataclass(slots=True)
class Invalid:
    message: Message
    reason: str
    detail: str
    # What the dead letter copies: None to read them from the message (the codec never did); UNREADABLE when
    # confluent-kafka could not, and must not be asked again (see read_headers).
    headers: list[tuple[str, bytes | None]] | None = None


@dataclass
class Batch:
    windows: list[Window]
    values: np.ndarray  # float32, (len(windows), *window_shape); read-only when it is the float32 bodies themselves
    invalid: list[Invalid]


def decode_batch(messages: list[Message], window_shape: Shape) -> Batch:
    """Decode every message; the samples become one (n, *window_shape) array, and non-finite ones are caught
    for all at once."""
    windows: list[Window] = []
    rows: list[Any] = []  # JSON samples (channels flattened, channel-major) as doubles or floats, or a float32 body
    invalid: list[Invalid] = []
    for message in messages:
        try:
            window, row = _decode(message, window_shape)
        except Bad as bad:
            invalid.append(Invalid(message, bad.reason, bad.detail, bad.headers))
            continue
        except Exception as exc:  # a decoder bug must not turn one message into a poison pill that stops the worker
            log.warning("decoding %s[%s]@%s failed unexpectedly", message.topic(), message.partition(), message.offset(), exc_info=True)
            invalid.append(Invalid(message, BAD_SCHEMA, f"{DECODER_FAILED} ({type(exc).__name__}: {exc})."))
            continue
        windows.append(window)
        rows.append(row)
    values = _matrix(rows, window_shape)
    finite = np.isfinite(values).all(axis=tuple(range(1, values.ndim)))
    if not finite.all():
        for index in np.flatnonzero(~finite):
            place = tuple(int(i) for i in np.argwhere(~np.isfinite(values[index]))[0])
            detail = f"{wire_shapes.where(place, window_shape)} is {values[index][place]}, not a finite number."
            invalid.append(Invalid(windows[index].message, NON_FINITE, detail))
        windows = [w for w, ok in zip(windows, finite) if ok]
        values = values[finite]
    return Batch(windows, values, invalid)


def _matrix(rows: list[Any], window_shape: Shape) -> np.ndarray:
    """The rows as one float32 array, in one pass over the batch when they are all of one kind: float32 bodies
    (measured: 0.05 us a window instead of 0.8 for a frombuffer each), doubles from the JSON happy path, or
    Python floats from the strict decoder (2.9 us a window instead of 6.9 for np.array over the lists)."""
    shape = (len(rows), math.prod(window_shape))
    if not rows:
        return np.empty((0, *window_shape), dtype=np.float32)
    kinds = {type(row) for row in rows}
    with np.errstate(over="ignore"):  # a double beyond float32's range becomes inf, caught by the caller
        if kinds == {bytes}:
            values = np.frombuffer(b"".join(rows), dtype="<f4").astype(np.float32, copy=False)
        elif kinds == {json_fast.Doubles}:
            values = np.frombuffer(b"".join(rows), dtype=np.float64).astype(np.float32)
        elif kinds == {list}:
            values = np.fromiter(itertools.chain.from_iterable(rows), np.float32, shape[0] * shape[1])
        else:
            values = np.empty(shape, dtype=np.float32)
            for index, row in enumerate(rows):
                kind = type(row)
                values[index] = np.frombuffer(row, dtype="<f4" if kind is bytes else np.float64) if kind is not list else row
    return values.reshape(len(rows), *window_shape)


def _decode(message: Message, window_shape: Shape) -> tuple[Window, Any]:
    """A window and its samples: a float32 body, the happy path's doubles, or the strict decoder's floats."""
    body = message.value() or b""
    if len(body) > MAX_BYTES:
        raise Bad(TOO_LARGE, f"the message is {len(body)} bytes; the limit is {MAX_BYTES}.")
    headers = read_headers(message)
    if headers is UNREADABLE:
        raise Bad(BAD_SCHEMA, HEADERS_NOT_UTF8, headers=UNREADABLE)
    if headers and _last(headers, CONTENT_TYPE) == F32:
        return _decode_f32(message, body, headers, window_shape)
    return _decode_json(message, body, window_shape)


UNREADABLE: list[tuple[str, bytes | None]] = []  # read_headers' answer for headers confluent-kafka cannot read
# ctypes checks CPython's error indicator after every `pythonapi` call and raises what it finds there.
_raise_pending = ctypes.pythonapi.PyErr_Occurred
_raise_pending.argtypes, _raise_pending.restype = [], ctypes.c_void_p


def read_headers(message: Message) -> list[tuple[str, bytes | None]] | None:
    """`message.headers()`, or UNREADABLE for a header key that is not UTF-8. Call it once per message.

    confluent-kafka 2.16 converts such a key with `PyUnicode_FromString`, leaves the UnicodeDecodeError
    pending and returns a list whose tuple holds NULL. Called cold, that is a SystemError; once CPython 3.11
    has specialised the call, nothing checks, the call returns the broken list and the worker crashed
    (SIGSEGV) on the first read of it: a poison pill (tests/stream/test_dead_letters.py). `_raise_pending`
    raises whatever error the conversion left behind (~70 ns, paid only by messages with headers).
    """
    try:
        headers = message.headers()
        if headers:
            _raise_pending()
        return headers
    except Exception:  # the pending UnicodeDecodeError, or SystemError when CPython did check
        return UNREADABLE


def _last(headers: list[tuple[str, bytes | None]], name: str) -> bytes | None:
    """A header's value; when it repeats, the last one counts (Kafka allows repeats)."""
    for key, value in reversed(headers):
        if key == name:
            return value
    return None


def _decode_json(message: Message, body: bytes, window_shape: Shape) -> tuple[Window, Any]:
    """The happy path (json_fast) when it can answer; otherwise the strict decoder, which names what is wrong."""
    nesting = wire_shapes.depth(window_shape)
    fast = json_fast.decode(body, window_shape, nesting)
    if fast is not None:
        window_id, source, ts, label, run, samples = fast
        return Window(message, window_id, source, ts, label, run), samples
    return _decode_strict(message, body, window_shape, nesting)


def _decode_strict(message: Message, body: bytes, window_shape: Shape, nesting: int) -> tuple[Window, list[float]]:
    """The authority on every JSON window: msgspec against the schema, and one sentence for whatever is wrong."""
    try:
        parsed = _decoders[nesting].decode(body)
    except msgspec.ValidationError as exc:
        raise Bad(*_explain_invalid(body, exc, window_shape)) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # msgspec raises the latter for bad UTF-8 inside a string
        raise Bad(*_explain_not_json(body, exc)) from None
    except RecursionError:  # deep nesting in a field msgspec skips (in `values` it is a type error first)
        raise Bad(BAD_SCHEMA, TOO_DEEP) from None
    if not json_keys.surely_unique(body, parsed):
        json_keys.check_exactly(body)
    if not parsed.id:
        raise Bad(BAD_SCHEMA, "the id is empty.")
    values = parsed.values
    if nesting == 1:
        if len(values) != window_shape[-1]:
            raise Bad(WRONG_LENGTH, f"values has {len(values)} numbers; the model takes {window_shape[-1]}.")
    else:
        if not wire_shapes.fits(values, window_shape[-nesting:]):
            raise Bad(WRONG_LENGTH, f"values is {wire_shapes.shape_of(values)}; the model takes {wire_shapes.shape_text(window_shape)}.")
        for _ in range(nesting - 1):
            values = list(itertools.chain.from_iterable(values))
    label = _label(parsed.label)
    if parsed.run is not None and not parsed.run:
        raise Bad(BAD_SCHEMA, "the run is empty.")
    return Window(message, parsed.id, parsed.source, parsed.ts, label, parsed.run), values


def _explain_invalid(body: bytes, exc: msgspec.ValidationError, window_shape: Shape) -> tuple[str, str]:
    """Cold path: a schema error, unless the bytes are not UTF-8 (msgspec may stop at a type error first), or
    `values` nests one level too many or too few for the model's channels: a wrong shape."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as bad:
        return NOT_JSON, f"the message is not UTF-8 (byte {bad.start})."
    text = str(exc)
    if text.startswith("Number out of range"):
        return NON_FINITE, f"{text}: a value overflows to infinity."
    if "`$.values[" in text and ("got `array`" in text or "Expected `array`" in text):
        try:
            values = _loose.decode(body).get("values")
        except (msgspec.DecodeError, AttributeError, RecursionError):
            values = None
        received = wire_shapes.depth_of(values)
        if received is not None and received != wire_shapes.depth(window_shape):
            return WRONG_LENGTH, f"values is {wire_shapes.shape_of(values)}; the model takes {wire_shapes.shape_text(window_shape)}."
    return BAD_SCHEMA, f"{text}."


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


def _decode_f32(
    message: Message, body: bytes, headers: list[tuple[str, bytes | None]], window_shape: Shape
) -> tuple[Window, bytes]:
    if len(body) % 4:
        raise Bad(BAD_BINARY, f"a float32 body must be a multiple of 4 bytes; this one is {len(body)}.")
    if len(body) != 4 * math.prod(window_shape):
        raise Bad(WRONG_LENGTH, f"the body holds {len(body) // 4} float32 values; the model takes {wire_shapes.binary_text(window_shape)}.")
    # One pass, no dict (measured ~1 us a window less); the last of a repeated header counts, as in `_last`.
    raw_id = raw_source = raw_ts = raw_label = raw_run = None
    for name, value in headers:
        if name == "id":
            raw_id = value
        elif name == "source":
            raw_source = value
        elif name == "ts":
            raw_ts = value
        elif name == "label":
            raw_label = value
        elif name == "run":
            raw_run = value
    try:
        window_id = raw_id.decode("utf-8") if raw_id is not None else None
        if not window_id:
            raise Bad(BAD_SCHEMA, "a float32 message needs an `id` header.")
        source = raw_source.decode("utf-8") if raw_source is not None else None
        ts = float(raw_ts) if raw_ts is not None else None
        label = _label(float(raw_label)) if raw_label is not None else None
        run = raw_run.decode("utf-8") if raw_run is not None else None
        if run is not None and not run:
            raise Bad(BAD_SCHEMA, "the run header is empty.")
    except (UnicodeDecodeError, ValueError) as exc:
        raise Bad(BAD_SCHEMA, f"a header is not valid: {exc}.") from None
    if ts is not None and not math.isfinite(ts):  # as in JSON, where 1e999 is out of range
        raise Bad(NON_FINITE, f"the ts header is {ts}, not a finite number.")
    return Window(message, window_id, source, ts, label, run), body


def _label(label: float | None) -> int | None:
    if label is None:
        return None
    if label not in (0.0, 1.0):
        raise Bad(BAD_SCHEMA, f"label {label:g} is not 0 (anomalous) or 1 (normal).")
    return int(label)


def encode_window(
    window_id: str, values: Any, source: str | None = None, ts: float | None = None, label: int | None = None,
    run: str | None = None,
) -> bytes:
    """The JSON input contract, for producers written in Python (replay, tests, benchmarks): `values` is one
    window, (length,) or (1, length) for one channel, (channels, length) for several; an image (height, width)
    or (1, height, width), (channels, height, width) for several."""
    if isinstance(values, np.ndarray):
        samples = (values[0] if values.ndim >= 2 and values.shape[0] == 1 else values).tolist()
    else:
        samples = [float(v) for v in values]
    payload: dict[str, Any] = {"id": window_id, "values": samples}
    for name, value in (("source", source), ("ts", ts), ("label", label), ("run", run)):
        if value is not None:
            payload[name] = value
    return _encoder.encode(payload)


def encode_json(payload: dict[str, Any]) -> bytes:
    return _encoder.encode(payload)
