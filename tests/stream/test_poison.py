"""Guarantee 4, poison input: thousands of bad messages through a real broker never stop the worker.

A seeded generator (`random.Random`, so a failure replays exactly) writes every bad payload together with
the reason and the detail it must get; the oracle is the contract in README.md ("Message formats"), not
the codec. Valid windows are mixed in, many of them unusual (colons and escapes in ids, extra fields,
whitespace, nulls, float32), and everything goes through a real confluent-kafka producer into one running
worker. The hypothesis properties in test_codec.py explore the same space without a broker.
"""

from __future__ import annotations

import json
import random
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from anomstream.stream import codec
from anomstream.stream.codec import BAD_BINARY, BAD_SCHEMA, NON_FINITE, NOT_JSON, TOO_LARGE, WRONG_LENGTH

SEED = 20261127
L = 140
BIG = 8 * 1024 * 1024  # topic max.message.bytes and client message.max.bytes here, so > 1 MB poison reaches the DLQ whole
BAD_UTF8 = [b"\xff", b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\xf8\x88\x80\x80\x80", b"\xfe\xfe"]
HEADER_NAMES = ["trace", "x-request-id", "ünïcödé", "dup", "dup", "content-encoding"]
TYPE = {list: "array", dict: "object", str: "str", int: "int", float: "float", bool: "bool", type(None): "null"}
WRONG = {  # field -> values the schema refuses
    "id": [5, 1.5, True, None, ["w"], {"a": 1}, ""], "values": ["0.5, 0.5", {"0": 1.0}, 5, None, True],
    "source": [7, ["p"], False, {"p": 1}], "ts": ["1764200000", [1.0], {"s": 1}, True],
    "label": ["1", "0", [1], False, 2, -1, 0.5, 3.0, 1e10, 7],
}

Made = tuple[bytes | None, list[tuple[str, bytes | None]] | None, str | None, str]  # value, headers, reason, expected


@dataclass(frozen=True)
class Case:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] | None
    reason: str | None  # None: a valid window, which must be scored
    expect: str  # a fragment of error.detail; for a valid window, the verdict's id


class Corpus:
    """One generator per kind of poison; each returns the payload and what the worker must make of it."""

    def __init__(self, seed: int, windows: np.ndarray) -> None:
        self.rng = random.Random(seed)
        self.windows = windows
        self.n = 0

    def window(self) -> dict[str, Any]:
        self.n += 1
        row = self.rng.randrange(len(self.windows))
        return {"id": f"w-{self.n}", "values": [float(v) for v in self.windows[row]], "source": f"patient-{row % 7}",
                "ts": 1764200000.0 + self.n / 1000, "label": self.rng.choice([0, 1])}

    def case(self, make: Any) -> Case:
        value, headers, reason, expect = make(self)
        extra = [(self.rng.choice(HEADER_NAMES), self.rng.choice([None, b"", b"trace-1", self.rng.randbytes(8)])) for _ in range(self.rng.choice([0, 0, 1, 3]))]
        key = self.rng.choice([None, b"", b"patient-%d" % self.rng.randrange(7), self.rng.randbytes(self.rng.randint(1, 12))])
        return Case(key, value, (headers or []) + extra or None, reason, expect)

    def f32(self, values: Any, **fields: bytes | str | None) -> tuple[bytes, list[tuple[str, bytes | None]]]:
        headers = [("content-type", codec.F32)] + [(k, v.encode() if isinstance(v, str) else v) for k, v in fields.items()]
        return np.asarray(values, dtype="<f4").tobytes(), headers

    def _not_utf8(self, body: bytes) -> Made:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as bad:
            return body, None, NOT_JSON, f"the message is not UTF-8 (byte {bad.start})."
        raise AssertionError("the generator meant this to be invalid UTF-8")

    # --- not_json ---
    def empty(self) -> Made:
        return self.rng.choice([b"", None]), None, NOT_JSON, "the message is empty."

    def binary_blob(self) -> Made:
        body = self.rng.randbytes(self.rng.randint(0, 300))
        at = self.rng.randrange(len(body) + 1)
        return self._not_utf8(body[:at] + self.rng.choice(BAD_UTF8) + body[at:])

    def bad_utf8_inside(self) -> Made:
        """Invalid UTF-8 in the id, the source, an extra key (msgspec skips those unread) or value, or anywhere."""
        w = self.window()
        where = self.rng.choice(["id", "source", "l@@ead", "lead", "anywhere"])
        if where != "anywhere":
            w[where] = w[where] + "@@" if where in ("id", "source") else "I@@I"
        body = json.dumps(w).encode()
        if where == "anywhere":
            at = self.rng.randrange(len(body) + 1)
            body = body[:at] + b"@@" + body[at:]
        return self._not_utf8(body.replace(b"@@", self.rng.choice(BAD_UTF8), 1))

    def truncated(self) -> Made:
        body = json.dumps(self.window()).encode()
        return body[: self.rng.randrange(1, len(body))], None, NOT_JSON, "the message is not JSON: "

    def not_json_syntax(self) -> Made:
        w = self.window()
        body = json.dumps(w).encode()
        mangled = self.rng.choice([
            body + b" x", body + body, repr(w).encode(), b"/* c */" + body, body.replace(b", ", b" ", 1),
            body.replace(b"]", b",]", 1), body.replace(b'"id"', b"id", 1), b"\xef\xbb\xbf" + body,
            body.replace(b'"w-', b'"\x00w-', 1), body.replace(b'"w-', b'"\tw-', 1), body.replace(b"[", b"[0x1F, ", 1),
            body.replace(b"[", b"[.5, ", 1), body.replace(b"[", b"[01.5, ", 1), body.replace(b'"id": "', b"'id': '", 1),
        ])
        return mangled, None, NOT_JSON, "the message is not JSON: "

    def not_strict_json(self) -> Made:
        body = json.dumps(self.window()).encode()
        mangled = self.rng.choice([
            body.replace(b'"w-', b'"\\ud800w-', 1), body[:-1] + b', "extra": NaN}', body[:-1] + b', "extra": -Infinity}',
        ])
        return mangled, None, NOT_JSON, "the message is not strict JSON: "

    # --- bad_schema ---
    def not_an_object(self) -> Made:
        w = self.window()
        value = self.rng.choice([w["values"], "w", 7, 1.5, True, None, [w]])
        return json.dumps(value).encode(), None, BAD_SCHEMA, f"Expected `object`, got `{TYPE[type(value)]}`."

    def missing_field(self) -> Made:
        w = self.window()
        name = self.rng.choice(["id", "values"])
        del w[name]
        return json.dumps(w).encode(), None, BAD_SCHEMA, f"Object missing required field `{name}`."

    def wrong_field(self) -> Made:
        """A field of the wrong type (strings for numbers among them), an empty id, or a label other than 0 or 1."""
        w = self.window()
        field, value = self.rng.choice([(field, value) for field, values in WRONG.items() for value in values])
        w[field] = value
        if field == "id" and value == "":
            return json.dumps(w).encode(), None, BAD_SCHEMA, "the id is empty."
        if field == "label" and type(value) in (int, float):
            return json.dumps(w).encode(), None, BAD_SCHEMA, f"label {float(value):g} is not 0 (anomalous) or 1 (normal)."
        wanted = {"id": "str", "values": "array", "source": "str | null"}.get(field, "float | null")
        return json.dumps(w).encode(), None, BAD_SCHEMA, f"Expected `{wanted}`, got `{TYPE[type(value)]}` - at `$.{field}`."

    def wrong_sample(self) -> Made:
        w = self.window()
        at = self.rng.randrange(L)
        value = self.rng.choice([str(w["values"][at]), True, None, [1.0], {}])
        if isinstance(value, str) and self.rng.random() < 0.5:  # every sample a string: it fails at the first
            w["values"], at = [str(v) for v in w["values"]], 0
        w["values"][at] = value
        return json.dumps(w).encode(), None, BAD_SCHEMA, f"Expected `float`, got `{TYPE[type(value)]}` - at `$.values[{at}]`."

    def duplicate_key(self) -> Made:
        w = self.window()
        other = self.window()
        pairs = list(w.items()) + [("lead", "II")]
        name = self.rng.choice(["id", "values", "source", "ts", "label", "lead", "nested"])
        if name == "nested":  # a repeated key inside an extra field's object
            pairs.append(("meta", {"a": 1}))
            name, body_of = "a", lambda text: text.replace('{"a": 1}', '{"a": 1, "a": 2}')
        else:
            pairs.insert(self.rng.randrange(len(pairs) + 1), (name, other.get(name, "I")))
            body_of = lambda text: text  # noqa: E731
        space = lambda: self.rng.choice(["", " ", "\n", "\t"])  # noqa: E731
        key = lambda k: "\"" + "".join(f"\\u{ord(c):04x}" for c in k) + "\"" if self.rng.random() < 0.2 else json.dumps(k)  # noqa: E731
        text = "{" + ",".join(f"{space()}{key(k)}{space()}:{space()}{json.dumps(v)}" for k, v in pairs) + "}"
        return body_of(text).encode(), None, BAD_SCHEMA, f'the key "{name}" appears more than once in one object'

    def deep(self) -> Made:
        w = self.window()
        n = self.rng.randint(5_000, 30_000)
        body = json.dumps(w).encode()
        kind, expect = self.rng.choice([
            ("top", "Expected `object`, got `array`."), ("values", "Expected `float`, got `array` - at `$.values[0]`."),
            ("id", "Expected `str`, got `object` - at `$.id`."), ("extra", codec.TOO_DEEP),
        ])
        if kind == "top":
            return b"[" * n + b"]" * n, None, BAD_SCHEMA, expect
        if kind == "values":
            return body.replace(b'"values": [', b'"values": [' + b"[" * n + b"]" * n + b", ", 1), None, BAD_SCHEMA, expect
        if kind == "id":
            return body.replace(b'"id": "', b'"id": ' + b'{"a": ' * n + b"1" + b"}" * n + b', "x": "', 1), None, BAD_SCHEMA, expect
        return body[:-1] + b', "deep": ' + b"[" * n + b"]" * n + b"}", None, BAD_SCHEMA, expect  # valid JSON, too deep

    def bad_f32_headers(self) -> Made:
        w = self.window()
        fields: dict[str, bytes | str | None] = {"id": w["id"], "ts": "1.5"}
        change, expect = self.rng.choice([
            ({"id": None}, "a float32 message needs an `id` header."), ({"id": b""}, "a float32 message needs an `id` header."),
            ({"id": b"w\xff"}, "a header is not valid: "), ({"source": b"\xfe"}, "a header is not valid: "),
            ({"ts": "soon"}, "a header is not valid: "), ({"ts": ""}, "a header is not valid: "),
            ({"label": "x"}, "a header is not valid: "), ({"label": "2"}, "label 2 is not 0 (anomalous) or 1 (normal)."),
        ])
        fields.update(change)
        if fields["id"] is None:
            del fields["id"]
        return *self.f32(w["values"], **fields), BAD_SCHEMA, expect

    # --- wrong_length, non_finite, bad_binary, too_large ---
    def wrong_length(self) -> Made:
        w = self.window()
        n = self.rng.choice([*range(0, L), *range(L + 1, 3 * L)])
        samples = (w["values"] * 3)[:n]
        if self.rng.random() < 0.6:
            return json.dumps({**w, "values": samples}).encode(), None, WRONG_LENGTH, f"values has {n} numbers; the model takes {L}."
        return *self.f32(samples, id=w["id"]), WRONG_LENGTH, f"the body holds {n} float32 values; the model takes {L}."

    def non_finite(self) -> Made:
        w = self.window()
        at = self.rng.randrange(L)
        kind = self.rng.choice(["token", "overflow", "float32", "binary", "ts"])
        if kind in ("token", "overflow"):
            samples = [json.dumps(v) for v in w["values"]]
            for i in {at, *self.rng.sample(range(L), self.rng.choice([0, 2]))}:
                samples[i] = self.rng.choice(["NaN", "Infinity", "-Infinity"] if kind == "token" else ["1e999", "-1e400", "1" + "0" * 400])
            body = json.dumps({**w, "values": "@@"}).encode().replace(b'"@@"', ("[" + ", ".join(samples) + "]").encode())
            return body, None, NON_FINITE, "values holds NaN or Infinity" if kind == "token" else "Number out of range"
        if kind == "float32":  # finite in float64, beyond float32
            w["values"][at] = big = self.rng.choice([3.5e38, -1e39, 1e300, -3.41e38])
            return json.dumps(w).encode(), None, NON_FINITE, f"value {at} is {'inf' if big > 0 else '-inf'}, not a finite number."
        if kind == "binary":
            body = bytearray(np.asarray(w["values"], dtype="<f4").tobytes())
            bits = self.rng.choice([0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FFFFFFF, 0x7F800000, 0xFF800000])
            body[4 * at : 4 * at + 4] = bits.to_bytes(4, "little")
            shown = {0x7F800000: "inf", 0xFF800000: "-inf"}.get(bits, "nan")
            return bytes(body), self.f32([], id=w["id"])[1], NON_FINITE, f"value {at} is {shown}, not a finite number."
        ts = self.rng.choice(["inf", "-inf", "nan", "1e999"])
        return *self.f32(w["values"], id=w["id"], ts=ts), NON_FINITE, f"the ts header is {float(ts)}, not a finite number."

    def bad_binary(self) -> Made:
        n = self.rng.choice([k for k in range(1, 4 * L + 60) if k % 4])
        return self.rng.randbytes(n), self.f32([], id=f"b-{n}")[1], BAD_BINARY, f"a float32 body must be a multiple of 4 bytes; this one is {n}."

    def too_large(self, size: int | None = None) -> Made:
        n = size or self.rng.randint(codec.MAX_BYTES + 1, 1_000_000)
        kind = self.rng.choice(["padded json", "bytes", "float32"])
        if kind == "padded json":  # valid but for its size
            body = json.dumps(self.window()).encode()
            body = body[:-1] + b" " * (n - len(body)) + b"}"
        else:
            body = self.rng.randbytes(n)
        return body, self.f32([], id="big")[1] if kind == "float32" else None, TOO_LARGE, f"the message is {n} bytes; the limit is {codec.MAX_BYTES}."

    # --- valid windows, plain and unusual ---
    def valid(self) -> Made:
        w = self.window()
        kind = self.rng.choice(["plain"] * 6 + ["float32"] * 3 + ["colons", "unicode", "escapes", "pretty", "reordered",
                                                                 "extra", "nulls", "float labels", "ints", "exponents", "json header"])
        if kind == "float32":
            return *self.f32(w["values"], id=w["id"], source=w["source"], ts=str(w["ts"]), label=str(w["label"])), None, w["id"]
        w.update({
            "colons": {"id": f"urn:ecg:{self.n}", "source": "ward:3:bed-7"}, "unicode": {"id": f"wé-ß-{self.n}"},
            "escapes": {"id": f'w"\\-{self.n}:', "source": "ward:3:bed-7"}, "nulls": {"source": None, "ts": None, "label": None},
            "extra": {"lead": "II:a", "meta": {"k": [1, 2, {"x": "y:z"}], "n": None}, "nest": json.loads("[" * 50 + "]" * 50)},
            "float labels": {"label": float(w["label"])}, "ints": {"values": [round(v * 100) for v in w["values"]]},
        }.get(kind, {}))
        w = dict(reversed(list(w.items()))) if kind == "reordered" else w
        headers = [("content-type", b"application/json")] if kind == "json header" else None
        if kind == "exponents":
            text = json.dumps({**w, "values": "@@"}).replace('"@@"', "[" + ",".join(f"{v:.6e}" for v in w["values"]) + "]")
        elif kind == "plain":
            return codec.encode_window(w["id"], w["values"], w["source"], w["ts"], w["label"]), None, None, w["id"]
        else:
            text = json.dumps(w, indent=2 if kind == "pretty" else None, ensure_ascii=self.rng.random() < 0.5)
        return text.encode(), headers, None, w["id"]


PLAN = [  # (generator, how many): 5,496 bad messages and 1,100 valid ones
    (Corpus.empty, 60), (Corpus.binary_blob, 300), (Corpus.bad_utf8_inside, 500), (Corpus.truncated, 400),
    (Corpus.not_json_syntax, 400), (Corpus.not_strict_json, 100), (Corpus.not_an_object, 150), (Corpus.missing_field, 150),
    (Corpus.wrong_field, 600), (Corpus.wrong_sample, 400), (Corpus.duplicate_key, 600), (Corpus.deep, 150),
    (Corpus.bad_f32_headers, 250), (Corpus.wrong_length, 450), (Corpus.non_finite, 750), (Corpus.bad_binary, 200),
    (Corpus.too_large, 30), (lambda c: c.too_large(c.rng.choice([1_048_577, 1_200_000, 1_500_000, 2_000_000, 3_000_000])), 6),
    (Corpus.valid, 1100),
]


def build(windows: np.ndarray, seed: int = SEED) -> list[Case]:
    corpus = Corpus(seed, windows)
    cases = [corpus.case(make) for make, count in PLAN for _ in range(count)]
    corpus.rng.shuffle(cases)  # interleaved: valid windows sit between the bad ones in every batch
    return cases


class Received:
    """A `Case` as `decode_batch` sees it after a broker round trip (one partition; offset = index)."""

    def __init__(self, case: Case, at: int) -> None:
        self.case, self.at = case, at
        self.value, self.key, self.headers = (lambda: case.value), (lambda: case.key), (lambda: case.headers)
        self.topic, self.partition, self.offset = (lambda: "windows"), (lambda: 0), (lambda: at)


def test_the_corpus_oracle_agrees_with_the_codec():
    """Offline, in a second: every generated case gets the reason and detail its generator promised."""
    cases = build(np.random.default_rng(1).normal(size=(64, L)))
    assert sum(c.reason is not None for c in cases) >= 5000
    batch = codec.decode_batch([Received(c, i) for i, c in enumerate(cases)], (1, L))
    assert sorted(w.message.at for w in batch.windows) == [i for i, c in enumerate(cases) if c.reason is None]
    assert [w.id for w in batch.windows] == [w.message.case.expect for w in batch.windows]
    for bad in batch.invalid:
        assert (bad.reason, bad.message.case.expect in bad.detail) == (bad.message.case.reason, True), (bad, bad.message.case)
    assert Counter(bad.reason for bad in batch.invalid) == Counter(c.reason for c in cases if c.reason)
    assert set(Counter(c.reason for c in cases)) == {None, *codec.REASONS}


def _produce(bootstrap: str, topic: str, cases: list[Case]) -> dict[int, int]:
    """Send every case, in order; returns offset -> case index from the delivery reports."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5, "message.max.bytes": BIG})
    offsets: dict[int, int] = {}
    failed: list[str] = []

    def report(index: int) -> Any:
        return lambda error, message: failed.append(str(error)) if error else offsets.__setitem__(message.offset(), index)

    for index, case in enumerate(cases):
        while True:
            try:
                producer.produce(topic, case.value, case.key, headers=case.headers, on_delivery=report(index))
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(120) == 0 and not failed, failed[:3]
    return offsets


def _metrics(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        lines = response.read().decode().splitlines()
    return {name: float(value) for name, value in (line.rsplit(" ", 1) for line in lines if line.startswith("anomstream_"))}


@pytest.mark.integration
@pytest.mark.chaos
def test_thousands_of_poison_messages_reach_the_dlq_whole_and_the_worker_keeps_scoring(
    ecg_split, worker_settings, new_topic, read, start_worker, kafka_bootstrap
):
    """One worker, 5,496 bad messages and 1,100 valid ones interleaved: nothing lost, nothing mixed up, no stop."""
    cases = build(ecg_split.test.windows[:, 0])  # one channel: (n, 140)
    bad = Counter(c.reason for c in cases if c.reason)
    valid = sum(c.reason is None for c in cases)
    big = {"max.message.bytes": str(BIG)}
    settings = replace(worker_settings, input_topic=new_topic(config=big), dlq_topic=new_topic(config=big), kafka={"message.max.bytes": str(BIG)})
    worker = start_worker(settings)
    before = _metrics(worker.url)

    offsets = _produce(kafka_bootstrap, settings.input_topic, cases)
    letters = read(settings.dlq_topic, bad.total(), timeout=240)
    verdicts = read(settings.scores_topic, valid, timeout=240)
    consumed = "anomstream_windows_consumed_total"
    deadline = time.monotonic() + 60  # counters are published just after the commit that made the outputs visible
    while (after := _metrics(worker.url))[consumed] - before[consumed] < len(cases) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert worker.thread.is_alive() and worker.error is None, worker.error  # one worker throughout, never stopped
    worker.stop()
    assert worker.error is None, worker.error

    # Every bad message is in the DLQ once, byte for byte, with the reason and the detail it must have.
    assert len(letters) == bad.total() >= 5000
    seen: set[int] = set()
    for letter in letters:
        headers = letter.headers()
        extra = dict(headers[-5:])
        index = offsets[int(extra["source.offset"])]
        case = cases[index]
        assert case.reason is not None and index not in seen, case
        seen.add(index)
        assert (letter.value(), letter.key(), headers[:-5]) == (case.value, case.key, case.headers or []), case
        assert (extra["error.reason"].decode(), extra["source.topic"].decode(), extra["source.partition"]) == (case.reason, settings.input_topic, b"0")
        assert case.expect in extra["error.detail"].decode(), (extra["error.detail"], case)
    # Every valid window is scored exactly once, under its own id.
    scored = [json.loads(m.value()) for m in verdicts]
    assert sorted(offsets[v["input"]["offset"]] for v in scored) == [i for i, c in enumerate(cases) if c.reason is None]
    assert all(v["id"] == cases[offsets[v["input"]["offset"]]].expect for v in scored)
    # The counters agree, reason by reason; and everything was committed.
    delta = {name: after.get(name, 0.0) - before.get(name, 0.0) for name in after}
    assert delta[consumed] == len(cases) and delta["anomstream_windows_scored_total"] == valid
    assert {r: delta[f'anomstream_invalid_messages_total{{reason="{r}"}}'] for r in codec.REASONS} == dict(bad)
    group = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": settings.group_id})
    (committed,) = group.committed([TopicPartition(settings.input_topic, 0)], timeout=10)
    group.close()
    assert committed.offset == len(cases)
    print(f"\npoison: {len(cases)} sent, {bad.total()} bad {dict(sorted(bad.items()))}, {valid} valid scored, "
          f"{sum(len(c.value or b'') for c in cases) / 1e6:.0f} MB, largest {max(len(c.value or b'') for c in cases):,} bytes")


@pytest.mark.integration
@pytest.mark.chaos
def test_a_message_just_under_the_brokers_limit_is_dead_lettered_with_default_limits(worker_settings, read, start_worker, kafka_bootstrap):
    """librdkafka's producer limit (1,000,000) is below the broker's (1,048,588): the worker raises its own."""
    worker = start_worker(worker_settings)  # default topics and client settings, as a user would run it
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "message.max.bytes": 1_048_588})
    producer.produce(worker_settings.input_topic, b" " * 1_040_000, b"near-limit")
    assert producer.flush(30) == 0
    letters: list = []
    deadline = time.monotonic() + 120
    while worker.thread.is_alive() and not letters and time.monotonic() < deadline:
        letters = read(worker_settings.dlq_topic, 1, timeout=2)
    assert worker.error is None, worker.error
    assert [(m.key(), len(m.value())) for m in letters] == [(b"near-limit", 1_040_000)]
