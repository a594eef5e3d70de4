"""Every input format and every dead-letter reason, decoded without a broker.

`Msg` stands in for a received `confluent_kafka.Message` (a plain value
holder); the integration tests send the same payloads through a real broker
(tests/stream/test_poison.py sends thousands). The hypothesis properties at
the end are what the hand-written cases cannot be: exhaustive in spirit.
"""

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anomstream.stream import codec

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
    batch = codec.decode_batch([js(id="a", values=VALID, source="p7", ts=1.5, label=1)], (1, L))
    assert not batch.invalid
    (window,) = batch.windows
    assert (window.id, window.source, window.ts, window.label) == ("a", "p7", 1.5, 1)
    np.testing.assert_array_equal(batch.values[:, 0], np.array([VALID], dtype=np.float32))


def test_a_run_id_travels_in_either_format_and_may_not_be_empty():
    batch = codec.decode_batch([js(id="a", values=VALID, run="r1"), f32(VALID, id="b", run="r:2"), js(id="c", values=VALID, run=""),
                                f32(VALID, id="d", run="")], (1, L))  # fmt: skip
    assert [(w.id, w.run) for w in batch.windows] == [("a", "r1"), ("b", "r:2")]
    assert [(bad.reason, bad.detail) for bad in batch.invalid] == [("bad_schema", "the run is empty."), ("bad_schema", "the run header is empty.")]


def test_float_labels_from_csv_are_accepted():
    batch = codec.decode_batch([js(id="a", values=VALID, label=0.0)], (1, L))
    assert batch.windows[0].label == 0


def test_binary_window_reads_headers():
    batch = codec.decode_batch([f32(VALID, id="b", source="p8", ts=2.25, label=0)], (1, L))
    assert not batch.invalid
    assert (batch.windows[0].id, batch.windows[0].source, batch.windows[0].ts, batch.windows[0].label) == ("b", "p8", 2.25, 0)
    np.testing.assert_array_equal(batch.values[0, 0], np.array(VALID, dtype=np.float32))


def test_a_float32_batch_becomes_one_matrix_row_by_row():
    rows = [[float(i * L + j) for j in range(L)] for i in range(4)]
    rows[2][5] = math.inf
    batch = codec.decode_batch([f32(row, id=str(i)) for i, row in enumerate(rows)], (1, L))
    assert [w.id for w in batch.windows] == ["0", "1", "3"]
    np.testing.assert_array_equal(batch.values[:, 0], np.array([rows[0], rows[1], rows[3]], dtype=np.float32))
    assert batch.values.dtype == np.float32
    assert [(bad.reason, bad.detail) for bad in batch.invalid] == [("non_finite", "value 5 is inf, not a finite number.")]


def test_a_json_batch_becomes_one_matrix_and_an_overflow_is_non_finite():
    rows = [[0.25 * (i + j) for j in range(L)] for i in range(3)]
    rows[1][0] = 1e39  # beyond float32
    batch = codec.decode_batch([js(id=str(i), values=row) for i, row in enumerate(rows)], (1, L))
    assert [w.id for w in batch.windows] == ["0", "2"]
    np.testing.assert_array_equal(batch.values[:, 0], np.array([rows[0], rows[2]], dtype=np.float32))
    assert [bad.reason for bad in batch.invalid] == ["non_finite"]


def test_the_last_of_a_repeated_header_counts():
    message = f32(VALID, id="first")
    message._headers += [("id", b"second"), ("label", b"1"), ("label", None)]
    (window,) = codec.decode_batch([message], (1, L)).windows
    assert (window.id, window.label) == ("second", None)
    # content-type too: a float32 body later declared JSON is read as JSON (and is not JSON)
    message = f32(VALID, id="b")
    message._headers.append(("content-type", b"application/json"))
    assert [bad.reason for bad in codec.decode_batch([message], (1, L)).invalid] == ["not_json"]


def test_mixed_batch_keeps_order_and_separates_the_bad():
    messages = [js(id="1", values=VALID), Msg(b"nope"), f32(VALID, id="2"), js(id="3", values=VALID[:-1]), js(id="4", values=VALID)]
    batch = codec.decode_batch(messages, (1, L))
    assert [w.id for w in batch.windows] == ["1", "2", "4"]
    assert batch.values.shape == (3, 1, L)
    assert [(bad.message, bad.reason) for bad in batch.invalid] == [(messages[1], "not_json"), (messages[3], "wrong_length")]


def test_encode_window_round_trips():
    raw = codec.encode_window("x", np.arange(L), source="s", ts=3.0, label=1)
    batch = codec.decode_batch([Msg(raw)], (1, L))
    assert batch.windows[0].id == "x" and batch.values[0, 0, -1] == L - 1


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
        (js(id="a", values=[[1]] * L), "wrong_length", "values is 8 lists of 1 numbers; the model takes 8 numbers."),
        (js(id="a", values=[1] * (L - 1) + [[1]]), "bad_schema", "Expected `float`, got `array` - at `$.values[7]`."),
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
        # Poison that used to escape decode_batch (and stop the worker) or slip through.
        (Msg(b'{"id": "a\xff", "values": [1, 2, 3, 4, 5, 6, 7, 8]}'), "not_json", "the message is not UTF-8 (byte 9)."),
        (Msg(b'{"id\xff": 1, "id": "a", "values": [1, 2, 3, 4, 5, 6, 7, 8]}'), "not_json", "not UTF-8 (byte 4)."),
        (Msg(b'{"x": "\xed\xa0\x80", "id": "a", "values": [1, 2, 3, 4, 5, 6, 7, 8]}'), "not_json", "not UTF-8 (byte 7)."),
        (Msg(b'{"id": 5, "values": [], "x": "\xff"}'), "not_json", "not UTF-8 (byte 30)."),
        (Msg(b'{"x": ' + b"[" * 5000 + b"]" * 5000 + b', "id": "a", "values": [1, 2, 3, 4, 5, 6, 7, 8]}'), "bad_schema", codec.TOO_DEEP),
        (Msg(b"[" * 100_000 + b"]" * 100_000), "bad_schema", "Expected `object`, got `array`."),
        (f32(VALID, id="b", ts="inf"), "non_finite", "the ts header is inf, not a finite number."),
        (Msg(b'{"id": "a", "id": "b", "values": [1, 2, 3, 4, 5, 6, 7, 8]}'), "bad_schema", 'the key "id" appears more than once'),
        (Msg(b'{"id" : "a:b", "values": [1, 2, 3, 4, 5, 6, 7, 8], "\\u0069d": "c"}'), "bad_schema", 'the key "id" appears'),
        (Msg(b'{"values": [1], "id": "a", "values": [1, 2, 3, 4, 5, 6, 7, 8]}'), "bad_schema", 'the key "values" appears'),
        # The id's colon, escaped, must not be discounted: 3 keys, 3 raw colons, and the decoded id holds one.
        (Msg(b'{"id": "a", "id": "\\u003a", "values": [1, 2, 3, 4, 5, 6, 7, 8]}'), "bad_schema", 'the key "id" appears'),
        (Msg(b'{"id": "a", "values": [1, 2, 3, 4, 5, 6, 7, 8], "x": {"k": 1, "k": 2}}'), "bad_schema", 'the key "k" appears'),
        (Msg(b'{"id": "a", "values": [1, 2, 3, 4, 5, 6, 7, 8], "x": 1, "x": 2}'), "bad_schema", 'the key "x" appears'),
        (Msg(b'{"id": "a", "ts": 1, "ts": 2, "values": [1, 2, 3, 4, 5, 6, 7, 8]}'), "bad_schema", 'the key "ts" appears'),
    ],
)
def test_every_bad_message_gets_a_reason_and_a_sentence(message, reason, detail):
    batch = codec.decode_batch([message, js(id="ok", values=VALID)], (1, L))
    assert [w.id for w in batch.windows] == ["ok"]  # the good neighbour is untouched
    (bad,) = batch.invalid
    assert bad.message is message
    assert bad.reason == reason and bad.reason in codec.REASONS
    assert detail in bad.detail
    assert bad.detail.endswith(".")


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": "urn:ecg:1", "source": "ward:3", "values": [1, 2, 3, 4, 5, 6, 7, 8]}',  # colons in strings
        b'{"id": "a\\"b:", "values": [1, 2, 3, 4, 5, 6, 7, 8]}',  # escapes and a colon: the exact check
        b'{"\\u0069d": "a", "values": [1, 2, 3, 4, 5, 6, 7, 8], "source": null, "label": null}',
        b'{"id": "a", "values": [1, 2, 3, 4, 5, 6, 7, 8], "lead": "II", "meta": {"k": [1, {"k": 2}], "n": ' + b"9" * 5000 + b"}}",
        b'{"id": "a", "values": [1, 2, 3, 4, 5, 6, 7, 8], "x": ' + b"[" * 100 + b"]" * 100 + b"}",
        b' \n{ "values" :[1,2,3,4,5,6,7,8] ,\t"id"\r\n:\n"a" } ',
    ],
)
def test_unusual_but_valid_json_is_accepted(body):
    """Duplicate-key detection must never reject these: colons, escapes, nulls, extra fields, whitespace."""
    batch = codec.decode_batch([Msg(body)], (1, L))
    assert not batch.invalid, batch.invalid
    assert batch.windows[0].id in ("urn:ecg:1", 'a"b:', "a")


def test_a_decoder_bug_dead_letters_the_message_instead_of_stopping_the_worker(monkeypatch):
    def broken(message, body, window_length):
        raise KeyError("surprise")

    monkeypatch.setattr(codec, "_decode_json", broken)
    batch = codec.decode_batch([Msg(b"{}"), f32(VALID, id="b")], (1, L))
    assert [w.id for w in batch.windows] == ["b"]
    assert [(bad.reason, bad.detail) for bad in batch.invalid] == [("bad_schema", "the decoder failed on this message (KeyError: 'surprise').")]


def test_empty_batch():
    batch = codec.decode_batch([], (1, L))
    assert batch.windows == [] and batch.invalid == [] and batch.values.shape == (0, 1, L)


# --- properties (hypothesis) ---

finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
finite64 = st.floats(allow_nan=False, allow_infinity=False)
tricky_text = st.text(st.characters(codec="utf-8") | st.sampled_from(':"\\{}[],'), max_size=12)
json_leaf = st.none() | st.booleans() | st.integers() | finite64 | tricky_text
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(tricky_text, inner, max_size=3), max_leaves=8)


FIELDS = {
    "id": tricky_text.filter(bool),
    "values": st.lists(finite32, min_size=L, max_size=L),
    "source": st.none() | tricky_text,
    "ts": st.none() | finite64,
    "label": st.sampled_from([None, 0, 1, 0.0, 1.0]),
    "run": st.none() | tricky_text.filter(bool),
}


@st.composite
def valid_window(draw) -> dict:
    return {name: draw(strategy) for name, strategy in FIELDS.items() if name in ("id", "values") or draw(st.booleans())}


@st.composite
def mutated(draw) -> bytes:
    """A valid window with bytes inserted, deleted or replaced: most poison in the wild looks like this."""
    body = bytearray(json.dumps(draw(valid_window())).encode())
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(body)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        junk = draw(st.binary(min_size=1, max_size=4) | st.sampled_from([b"\xff", b"\xed\xa0\x80", b"NaN", b'"', b":", b"\\", b"[" * 3000]))
        if action == "insert":
            body[at:at] = junk
        elif action == "delete":
            del body[at : at + len(junk)]
        else:
            body[at : at + len(junk)] = junk
    return bytes(body)


bodies = (
    st.binary(max_size=64)
    | st.builds(lambda v: json.dumps(v).encode(), json_value)
    | st.builds(lambda w: json.dumps(w).encode(), valid_window())
    | mutated()
    | st.builds(lambda n: b"\x00" * n, st.integers(0, 4 * L + 8))
)
header_lists = st.lists(
    st.tuples(
        st.sampled_from(["content-type", "id", "source", "ts", "label", "trace"]) | st.text(max_size=6),
        st.none() | st.binary(max_size=8) | st.sampled_from([codec.F32, b"1", b"0", b"nan", b"-inf", b"1e999", b"\xff", b""]),
    ),
    max_size=5,
)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.none() | bodies, header_lists), max_size=4))
def test_decode_batch_never_raises_and_sorts_every_message_exactly_once(items):
    messages = [Msg(body, headers, _offset=i) for i, (body, headers) in enumerate(items)]
    batch = codec.decode_batch(messages, (1, L))
    outcomes = [id(w.message) for w in batch.windows] + [id(bad.message) for bad in batch.invalid]
    assert sorted(outcomes) == sorted(map(id, messages))  # valid or invalid, never both, never lost
    assert batch.values.shape == (len(batch.windows), 1, L) and np.isfinite(batch.values).all()
    for window in batch.windows:
        assert isinstance(window.id, str) and window.id and window.label in (None, 0, 1)
    for bad in batch.invalid:
        assert bad.reason in codec.REASONS
        assert bad.detail.endswith(".") and "\n" not in bad.detail
        assert codec.DECODER_FAILED not in bad.detail  # the safety net is for bugs; nothing known may reach it


@settings(max_examples=300, deadline=None)
@given(valid_window(), st.booleans())
def test_valid_windows_round_trip_through_encode_window_and_float32(window, binary):
    label = None if window.get("label") is None else int(window["label"])
    if binary:
        headers = [(name, str(window[name]).encode()) for name in ("id", "source", "ts", "run") if window.get(name) is not None]
        if label is not None:
            headers.append(("label", str(label).encode()))
        message = Msg(np.asarray(window["values"], dtype="<f4").tobytes(), [("content-type", codec.F32)] + headers)
    else:
        message = Msg(codec.encode_window(window["id"], window["values"], window.get("source"), window.get("ts"), label, window.get("run")))
    batch = codec.decode_batch([message], (1, L))
    assert not batch.invalid, batch.invalid
    (decoded,) = batch.windows
    assert (decoded.id, decoded.source, decoded.ts, decoded.label, decoded.run) == (
        window["id"], window.get("source"), window.get("ts"), label, window.get("run"))
    np.testing.assert_array_equal(batch.values[0, 0], np.asarray(window["values"], dtype=np.float32))


@st.composite
def written_by_hand(draw) -> tuple[bytes, str | None]:
    """A valid window as some other producer may write it (any key order, whitespace, escapes, extra fields),
    perhaps with one key repeated; returns the bytes and the repeated key (None when there is none)."""
    pairs = list(draw(valid_window()).items())
    pairs += [(name, draw(json_value)) for name in draw(st.lists(tricky_text.filter(lambda k: k not in codec._Window.__struct_fields__), max_size=2, unique=True))]
    repeated = None
    if draw(st.booleans()):
        repeated, _ = draw(st.sampled_from(pairs))
        again = draw(FIELDS.get(repeated, json_value))  # a valid value, so only the repetition is wrong
        pairs.insert(draw(st.integers(0, len(pairs))), (repeated, again))
    pairs = draw(st.permutations(pairs))
    space = st.sampled_from(["", " ", "\n", "\t", "\r\n  "])

    def written(value: object) -> str:
        """Strings raw, ASCII-escaped or fully \\u-escaped (then a colon in an id hides as \\u003a)."""
        if not isinstance(value, str):
            return json.dumps(value, ensure_ascii=draw(st.booleans()))
        style = draw(st.sampled_from(["raw", "ascii", "escaped"]))
        if style == "escaped" and all(ord(c) < 0x10000 for c in value):
            return '"' + "".join(f"\\u{ord(c):04x}" for c in value) + '"'
        return json.dumps(value, ensure_ascii=style != "raw")

    items = [f"{draw(space)}{written(k)}{draw(space)}:{draw(space)}{written(v)}{draw(space)}" for k, v in pairs]
    return ("{" + ",".join(items) + "}").encode(), repeated


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(written_by_hand())
def test_a_repeated_key_is_always_caught_and_nothing_else_is_rejected(case):
    """The fast colon count may only send a message to the exact check: it must never let a duplicate through
    (whitespace before colons, escaped keys, colons inside strings) nor reject a valid window."""
    body, repeated = case
    batch = codec.decode_batch([Msg(body)], (1, L))
    if repeated is None:
        assert not batch.invalid, (body, batch.invalid)
    else:
        (bad,) = batch.invalid
        assert bad.reason == "bad_schema"
        assert f"the key {json.dumps(repeated[:64])}" in bad.detail


def test_several_channels_arrive_as_nested_json_or_channel_major_float32():
    """(channels, length) windows: JSON lists per channel, float32 channel after channel; both give the same array."""
    window = np.arange(3 * L, dtype=np.float32).reshape(3, L) / 7
    batch = codec.decode_batch([js(id="a", values=window.tolist()), f32(window.ravel(), id="b")], (3, L))
    assert batch.invalid == [] and [w.id for w in batch.windows] == ["a", "b"]
    assert batch.values.shape == (2, 3, L)
    np.testing.assert_array_equal(batch.values[0], window)
    np.testing.assert_array_equal(batch.values[1], window)
    assert json.loads(codec.encode_window("c", window))["values"] == window.tolist()
    assert json.loads(codec.encode_window("d", window[:1]))["values"] == window[0].tolist()  # one channel: a flat list


@pytest.mark.parametrize(
    ("message", "detail"),
    [
        (js(id="a", values=[0.5] * (3 * L)), "values is 24 numbers; the model takes 3 lists of 8 numbers (channel-major)."),
        (js(id="a", values=[[0.5] * L] * 2), "values is 2 lists of 8 numbers; the model takes 3 lists of 8 numbers (channel-major)."),
        (js(id="a", values=[[0.5] * L, [0.5] * L, [0.5] * 5]), "values is 3 lists of 5 to 8 numbers; the model takes 3 lists of 8 numbers (channel-major)."),
        (f32([0.5] * L, id="b"), "the body holds 8 float32 values; the model takes 3 x 8 = 24 (channels x samples, channel-major)."),
    ],
    ids=["flat", "two-channels", "ragged", "f32-one-channel"],
)
def test_a_window_of_the_wrong_shape_is_wrong_length_with_both_shapes(message, detail):
    batch = codec.decode_batch([message], (3, L))
    assert [(bad.reason, bad.detail) for bad in batch.invalid] == [("wrong_length", detail)]


def test_a_non_finite_sample_names_its_channel():
    window = [[0.5] * L, [0.5] * L, [0.5] * (L - 1) + [1e39]]
    batch = codec.decode_batch([js(id="a", values=window)], (3, L))
    assert [(bad.reason, bad.detail) for bad in batch.invalid] == [("non_finite", "channel 2 value 7 is inf, not a finite number.")]


# -- image windows: (1, height, width) and (channels, height, width) --------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 3, 4), (2, 3, 4)])
def test_image_windows_decode_from_nested_rows_and_row_major_bodies(shape):
    window = np.arange(np.prod(shape), dtype=np.float32).reshape(shape) / 10
    batch = codec.decode_batch([Msg(codec.encode_window("j", window)), f32(window.ravel(), id="b")], shape)
    assert not batch.invalid and batch.values.shape == (2, *shape)
    np.testing.assert_array_equal(batch.values[0], window)
    np.testing.assert_array_equal(batch.values[1], window)
    expected_values = window[0].tolist() if shape[0] == 1 else window.tolist()
    assert json.loads(codec.encode_window("j", window))["values"] == expected_values


@pytest.mark.parametrize(
    "shape, message, detail",
    [
        ((2, 3, 4), js(id="a", values=[[[0.5] * 4] * 3]), "values is 1 lists of 3 lists of 4 numbers; the model takes 2 lists of 3 lists of 4 numbers (channel-major, then row-major)."),
        ((2, 3, 4), js(id="a", values=[[0.5] * 4] * 3), "values is 3 lists of 4 numbers; the model takes 2 lists of 3 lists of 4 numbers (channel-major, then row-major)."),
        ((2, 3, 4), js(id="a", values=[[[0.5] * 4] * 3, [[0.5] * 4] * 2]), "values is 2 lists of lists of several shapes; the model takes 2 lists of 3 lists of 4 numbers (channel-major, then row-major)."),
        ((1, 3, 4), js(id="a", values=[0.5] * 12), "values is 12 numbers; the model takes 3 lists of 4 numbers (row-major)."),
        ((2, 3, 4), f32([0.5] * 12, id="b"), "the body holds 12 float32 values; the model takes 2 x 3 x 4 = 24 (channels x height x width, row-major)."),
        ((2, 3, 4), f32([0.5] * 13 + [float("inf")] + [0.5] * 10, id="b"), "channel 1 row 0 column 1 is inf, not a finite number."),
    ],
)
def test_a_wrong_image_is_one_sentence_naming_both_shapes(shape, message, detail):
    batch = codec.decode_batch([message], shape)
    assert [(bad.reason, bad.detail) for bad in batch.invalid] == [
        (codec.NON_FINITE if "finite" in detail else codec.WRONG_LENGTH, detail)
    ]
