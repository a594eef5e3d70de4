"""Every input format and every dead-letter reason, decoded without a broker.

`Msg` stands in for a received `confluent_kafka.Message` (a plain value
holder); the integration tests send the same payloads through a real broker.
"""

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pytest

from stream import codec

L = 8


@dataclass
class Msg:
    _value: bytes | None
    _headers: list = field(default_factory=list)
    _key: bytes | None = b"patient-7"
    _offset: int = 0

    def value(self):
        return self._value

    def key(self):
        return self._key

    def headers(self):
        return self._headers or None

    def topic(self):
        return "windows"

    def partition(self):
        return 0

    def offset(self):
        return self._offset


def js(**payload) -> Msg:
    return Msg(json.dumps(payload).encode())


def f32(values, **headers) -> Msg:
    hdrs = [("content-type", codec.F32)] + [(k, str(v).encode()) for k, v in headers.items()]
    return Msg(np.asarray(values, dtype="<f4").tobytes(), hdrs)


VALID = [0.5 * i for i in range(L)]


def test_json_window_with_every_field():
    batch = codec.decode_batch([js(id="a", values=VALID, source="p7", ts=1.5, label=1)], L)
    assert not batch.invalid
    (window,) = batch.windows
    assert (window.id, window.source, window.ts, window.label) == ("a", "p7", 1.5, 1)
    np.testing.assert_array_equal(batch.values, np.array([VALID], dtype=np.float32))


def test_float_labels_from_csv_are_accepted():
    batch = codec.decode_batch([js(id="a", values=VALID, label=0.0)], L)
    assert batch.windows[0].label == 0


def test_binary_window_reads_headers():
    batch = codec.decode_batch([f32(VALID, id="b", source="p8", ts=2.25, label=0)], L)
    assert not batch.invalid
    assert (batch.windows[0].id, batch.windows[0].source, batch.windows[0].ts, batch.windows[0].label) == ("b", "p8", 2.25, 0)
    np.testing.assert_array_equal(batch.values[0], np.array(VALID, dtype=np.float32))


def test_mixed_batch_keeps_order_and_separates_the_bad():
    messages = [js(id="1", values=VALID), Msg(b"nope"), f32(VALID, id="2"), js(id="3", values=VALID[:-1]), js(id="4", values=VALID)]
    batch = codec.decode_batch(messages, L)
    assert [w.id for w in batch.windows] == ["1", "2", "4"]
    assert batch.values.shape == (3, L)
    assert [(bad.message, bad.reason) for bad in batch.invalid] == [(messages[1], "not_json"), (messages[3], "wrong_length")]


def test_encode_window_round_trips():
    raw = codec.encode_window("x", np.arange(L), source="s", ts=3.0, label=1)
    batch = codec.decode_batch([Msg(raw)], L)
    assert batch.windows[0].id == "x" and batch.values[0, -1] == L - 1


@pytest.mark.parametrize(
    ("message", "reason", "detail"),
    [
        (Msg(b""), "not_json", "the message is empty."),
        (Msg(None), "not_json", "the message is empty."),
        (Msg(b"\xff\xfe{}"), "not_json", "the message is not UTF-8 (byte 0)."),
        (Msg(b'{"id": "a", "values": ['), "not_json", "the message is not JSON"),
        (Msg(b"[1, 2, 3]"), "bad_schema", "Expected `object`, got `array`."),
        (Msg(json.dumps({"values": VALID}).encode()), "bad_schema", "Object missing required field `id`."),
        (js(id="", values=VALID), "bad_schema", "the id is empty."),
        (js(id=5, values=VALID), "bad_schema", "Expected `str`, got `int` - at `$.id`."),
        (js(id="a", values=["1"] * L), "bad_schema", "Expected `float`, got `str` - at `$.values[0]`."),
        (js(id="a", values=[True] * L), "bad_schema", "Expected `float`, got `bool` - at `$.values[0]`."),
        (js(id="a", values=[[1]] * L), "bad_schema", "Expected `float`, got `array` - at `$.values[0]`."),
        (js(id="a", values=VALID, label=2), "bad_schema", "label 2 is not 0 (anomalous) or 1 (normal)."),
        (js(id="a", values=VALID[:3]), "wrong_length", "values has 3 numbers; the model takes 8."),
        (js(id="a", values=VALID + [1.0]), "wrong_length", "values has 9 numbers; the model takes 8."),
        (Msg(b'{"id": "a", "values": [1, 2, 3, 4, 5, 6, 7, NaN]}'), "non_finite", "values holds NaN or Infinity"),
        (Msg(b'{"id": "a", "values": [1, 2, 3, 4, 5, 6, 7, -Infinity]}'), "non_finite", "values holds NaN or Infinity"),
        (Msg(b'{"id": "a", "values": [1, 2, 3, 4, 5, 6, 7, 1e999]}'), "non_finite", "Number out of range"),
        (js(id="a", values=[1e39] + VALID[1:]), "non_finite", "value 0 is inf, not a finite number."),
        (f32([1.0, 2.0], id="b"), "wrong_length", "the body holds 2 float32 values; the model takes 8."),
        (Msg(b"\x00" * 30, [("content-type", codec.F32), ("id", b"b")]), "bad_binary", "a multiple of 4 bytes; this one is 30."),
        (f32(VALID), "bad_schema", "a float32 message needs an `id` header."),
        (f32(VALID, id="b", ts="soon"), "bad_schema", "a header is not valid"),
        (f32([math.nan] + VALID[1:], id="b"), "non_finite", "value 0 is nan, not a finite number."),
        (Msg(b" " * (codec.MAX_BYTES + 1)), "too_large", f"the message is {codec.MAX_BYTES + 1} bytes"),
    ],
)
def test_every_bad_message_gets_a_reason_and_a_sentence(message, reason, detail):
    batch = codec.decode_batch([message, js(id="ok", values=VALID)], L)
    assert [w.id for w in batch.windows] == ["ok"]  # the good neighbour is untouched
    (bad,) = batch.invalid
    assert bad.message is message
    assert bad.reason == reason and bad.reason in codec.REASONS
    assert detail in bad.detail
    assert bad.detail.endswith(".")


def test_empty_batch():
    batch = codec.decode_batch([], L)
    assert batch.windows == [] and batch.invalid == [] and batch.values.shape == (0, L)
