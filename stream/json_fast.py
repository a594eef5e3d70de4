"""The JSON happy path: a plainly valid window's samples go from the bytes to float64 without a Python float each.

pysimdjson parses the whole body (strict JSON, UTF-8 checked) and copies
`values` out as one buffer of doubles. It answers only when the message is
certainly valid and its meaning certain: every field of the right type, the
right shape, no key repeated or unknown, nothing the strict decoder would read
differently. Anything else, even a valid message that merely looks unusual,
gets None, and the strict msgspec decoder in `codec` decides: it alone names
what is wrong, so every dead letter keeps its reason and sentence.
tests/stream/test_json_fast.py holds the two to the same answers.
"""

from __future__ import annotations

import functools
import math
import threading
from typing import Any

import simdjson

from anomstream.models.shape import Shape

_FIELDS = frozenset(("id", "values", "source", "ts", "label", "run"))  # the window's keys, as codec's structs name them
_BOM = b"\xef\xbb\xbf"  # simdjson skips a byte-order mark; the strict decoder refuses it, and so must we
_local = threading.local()  # a Parser serves one thread, and one document at a time


# A window read on the happy path: (id, source, ts, label, run) as the strict decoder would give them, then
# its samples as one buffer of native doubles (a `Doubles`). A plain tuple: an object per window costs more.
Fast = tuple[str, "str | None", "float | None", "int | None", "str | None", Any]


def _doubles_type() -> type:
    document = simdjson.Parser().parse(b"[0]")
    return type(document.as_buffer(of_type="d"))


Doubles = _doubles_type()  # what `Fast` holds the samples in: a copy, independent of the parser that made it


def decode(body: bytes, window_shape: Shape, nesting: int) -> Fast | None:
    """The window, or None when only the strict decoder may say (an error, or anything unusual)."""
    if body.startswith(_BOM):
        return None
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = simdjson.Parser()
    try:
        return _read(parser, body, window_shape, nesting)
    except Exception:  # not valid, or not the plain kind: the strict decoder gives the reason (its frame, and refs, die here)
        return None


def _read(parser: simdjson.Parser, body: bytes, window_shape: Shape, nesting: int) -> Fast | None:
    # Every array that a right-shaped `values` has opens with its own `[`; one more anywhere (a nested list in
    # a single-channel window, a `[` inside a string) and the strict decoder decides.
    dims = window_shape[-nesting:]
    if nesting == 1:
        first = body.find(b"[")
        if first < 0 or body.find(b"[", first + 1) >= 0:
            return None
    elif body.count(b"[") != _arrays(dims):
        return None
    document = parser.parse(body)
    names = tuple(document.keys())  # every key, repeats too: a repeat or an unknown key goes to the strict decoder
    if len(names) != len(set(names)) or not _FIELDS.issuperset(names):
        return None
    window_id = document["id"]  # no id or no values: KeyError, and the strict decoder says which is missing
    values = document["values"]
    # `get` of a missing key costs ~3 us in pysimdjson 7 (measured), a look in `names` nothing
    source = document["source"] if "source" in names else None
    ts = document["ts"] if "ts" in names else None
    label = document["label"] if "label" in names else None
    run = document["run"] if "run" in names else None
    if type(window_id) is not str or not window_id or not _fits(values, dims):
        return None
    if not (source is None or type(source) is str) or not (run is None or type(run) is str) or run == "":
        return None
    if not (ts is None or type(ts) is float or type(ts) is int) or not (label is None or label in (0, 1) and type(label) in (int, float)):
        return None
    samples = values.as_buffer(of_type="d")  # every leaf a number, or TypeError: the strict decoder then says which
    return window_id, source, None if ts is None else float(ts), None if label is None else int(label), run, samples


@functools.cache
def _arrays(dims: Shape) -> int:
    """How many arrays a `values` of nested lengths `dims` has: itself, then one per element of each outer level
    (computed once per shape, not per message)."""
    return 1 + sum(math.prod(dims[:level]) for level in range(1, len(dims)))


def _fits(values: Any, dims: Shape) -> bool:
    """Whether nested arrays have exactly the lengths `dims`, outermost first (a string has a length too, but no
    number in it: `as_buffer` refuses it)."""
    if type(values) is not simdjson.Array or len(values) != dims[0]:
        return False
    return len(dims) == 1 or all(_fits(inner, dims[1:]) for inner in values)
