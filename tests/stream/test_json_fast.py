"""The JSON happy path answers only where the strict decoder would give the same window, and answers for
every window a producer writes plainly (else the speed is silently gone).

The bodies are test_codec's: valid windows, windows written by hand (escapes, whitespace, extra and repeated
keys), mutated windows, arbitrary JSON and bytes.
"""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anomstream.stream import codec, json_fast
from tests.stream import test_codec as cases

L = cases.L


def strict(body: bytes, shape=(1, L)):
    """What the strict decoder says: (id, source, ts, label, run) and the float32 samples, or the dead letter's reason."""
    try:
        window, values = codec._decode_strict(cases.Msg(body), body, shape, codec.wire_shapes.depth(shape))
    except codec.Bad as bad:
        return bad.reason
    return (window.id, window.source, window.ts, window.label, window.run), np.asarray(values, dtype=np.float64).astype(np.float32)


def fast(body: bytes, shape=(1, L)):
    answer = json_fast.decode(body, shape, codec.wire_shapes.depth(shape))
    if answer is None:
        return None
    *fields, samples = answer
    return tuple(fields), np.frombuffer(samples, dtype=np.float64).astype(np.float32)


# ... and windows with one field swapped for any JSON value (a bool label, a numeric id, a nested source).
swapped = st.builds(lambda window, name, value: json.dumps({**window, name: value}).encode(),
                    cases.valid_window(), st.sampled_from(sorted(cases.FIELDS)), cases.json_value)
anything = cases.bodies | st.builds(lambda case: case[0], cases.written_by_hand()) | swapped


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(anything)
def test_the_happy_path_agrees_with_the_strict_decoder_wherever_it_answers(body):
    answer = fast(body)
    if answer is None:
        return
    expected = strict(body)
    assert not isinstance(expected, str), f"the happy path accepted what the strict decoder refuses ({expected}): {body!r}"
    assert answer[0] == expected[0]
    np.testing.assert_array_equal(answer[1], expected[1])


@settings(max_examples=300, deadline=None)
@given(cases.valid_window().filter(lambda w: not any("[" in (w.get(name) or "") for name in ("id", "source", "run"))))
def test_every_window_encode_window_writes_takes_the_happy_path(window):
    """Any id, source and run but one holding `[` (the happy path counts brackets to prove the shape)."""
    label = None if window.get("label") is None else int(window["label"])
    body = codec.encode_window(window["id"], window["values"], window.get("source"), window.get("ts"), label, window.get("run"))
    answer = fast(body)
    assert answer is not None, body
    assert answer[0] == (window["id"], window.get("source"), window.get("ts"), label, window.get("run"))
    np.testing.assert_array_equal(answer[1], np.asarray(window["values"], dtype=np.float32))


@pytest.mark.parametrize("shape", [(3, L), (1, 4, 5), (2, 3, 4)])
def test_several_channels_and_images_take_the_happy_path_in_channel_major_order(shape):
    window = np.arange(np.prod(shape), dtype=np.float32).reshape(shape) / 7
    body = codec.encode_window("w", window)
    answer = fast(body, shape)
    assert answer is not None
    np.testing.assert_array_equal(answer[1], window.ravel())


@pytest.mark.parametrize(
    "body, shape",
    [
        (b"\xef\xbb\xbf" + codec.encode_window("w", list(range(L))), (1, L)),  # simdjson skips a BOM; strict JSON does not
        (json.dumps({"id": "w", "values": [[0, 1], [], *range(2, L)]}).encode(), (1, L)),  # flattens to L numbers
        (json.dumps({"id": "w", "values": [[0, 1, 2, 3], [4, 5]]}).encode(), (2, 3)),  # 6 numbers, wrong rows
        (json.dumps({"id": "w", "values": [[0, 1, 2], "abc"]}).encode(), (2, 3)),  # a string has a length too
        (b'{"id":"a","id":"b","values":[0,1,2,3,4,5,6,7]}', (1, L)),
        (b'{"id":"a","values":[0,1,2,3,4,5,6,7],"extra":1}', (1, L)),
        (b'{"id":"a","values":[0,1,2,3,4,5,6,7],"label":true}', (1, L)),
        (b'{"id":"a","values":[0,1,2,3,4,5,6,7],"label":2}', (1, L)),
        (b'{"id":7,"values":[0,1,2,3,4,5,6,7]}', (1, L)),
        (b'{"id":"","values":[0,1,2,3,4,5,6,7]}', (1, L)),
        (b'{"id":"a","values":[0,1,2,3,4,5,6,1e999]}', (1, L)),
        (b'{"id":"a","values":[0,1,2,3,4,5,6,100000000000000000000000]}', (1, L)),
        (b'{"id":"a","values":[0,1,2,3,4,5,6,true]}', (1, L)),
    ],
)
def test_what_is_unusual_goes_to_the_strict_decoder(body, shape):
    assert fast(body, shape) is None


def test_a_body_that_fails_half_read_leaves_the_happy_path_working():
    """pysimdjson refuses every later parse while a proxy of a failed one is alive: the speed would vanish."""
    assert fast(b'{"id":"a","values":[0,1,2,3,4,5,6,"x"]}') is None
    assert fast(codec.encode_window("b", list(range(L)))) is not None


def test_a_batch_from_both_paths_is_one_matrix_in_message_order():
    plain = codec.encode_window("plain", [1.5] * L)
    unusual = b'{"id":"unusual","values":[2.5,2.5,2.5,2.5,2.5,2.5,2.5,2.5],"extra":null}'
    binary = cases.f32([3.5] * L, id="binary")
    batch = codec.decode_batch([cases.Msg(plain), cases.Msg(unusual), binary], (1, L))
    assert [w.id for w in batch.windows] == ["plain", "unusual", "binary"]
    np.testing.assert_array_equal(batch.values[:, 0, 0], np.float32([1.5, 2.5, 3.5]))
