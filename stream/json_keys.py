"""No key may repeat in a JSON window: msgspec keeps the last value, so `{"id": "a", "id": "b", ...}` would pass as "b".

A cheap proof for almost every message (`surely_unique`), and an exact check for the rest (`check_exactly`).
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from anomstream.stream.reasons import BAD_SCHEMA, NOT_JSON, TOO_DEEP, Bad

_raw_fields = msgspec.json.Decoder(dict[str, msgspec.Raw])  # the exact check: keys, values unparsed


def surely_unique(body: bytes, parsed: Any) -> bool:
    """Hot path (~0.7 us a window, measured): a cheap proof that no key repeats, which msgspec would hide
    (it keeps the last value, so `{"id": "a", "id": "b", ...}` would pass as "b").

    Outside strings, every colon of a JSON text ends exactly one key, so the body's colons bound the number
    of keys from above. If there are no more colons than known fields present, every key is a distinct
    known field: no duplicate, no unknown key. Colons inside strings only raise the count, and whitespace
    before a colon changes nothing, so this check can send a message to the exact one but never rejects
    it: an id such as "urn:ecg:1" or a key written as "\\u0069d" is valid. (Counting b'":' would be cheaper
    but unsound: `"id" : "a"` has none.) The id's, source's and run's own colons may then be discounted, but only
    when the body has no backslash: only then are a string's raw bytes its decoded text.
    """
    allowed = 2 + (parsed.source is not None) + (parsed.ts is not None) + (parsed.label is not None) + (parsed.run is not None)
    # bytes.count is a plain byte loop (~0.4 ns/byte) and find is memchr: count only before the first `[`
    # and from the first colon after it, and let memchr cross the samples, which hold no colon.
    start = body.find(b"[")
    if start < 0:
        colons = body.count(b":")
    else:
        after = body.find(b":", start)
        colons = body.count(b":", 0, start) + (body.count(b":", after) if after >= 0 else 0)
    if colons <= allowed:
        return True
    own = parsed.id.count(":") + (parsed.source or "").count(":") + (parsed.run or "").count(":")
    return bool(own) and colons - own <= allowed and b"\\" not in body


def check_exactly(body: bytes) -> None:
    """Cold path (~8 us for a 3 KB window with an extra field; a full stdlib parse would cost ~65 us).

    Each top-level key owns exactly one colon outside strings; every other colon lies inside a surviving key
    or value (their raw text, so exactly as in the body) or inside a repeated key and the value msgspec
    dropped. So the colon count minus those inside survivors equals the number of survivors iff no top-level
    key repeats. Keys compare decoded, so a key with a colon and a backslash in the body (an escaped colon?)
    goes to the standard library, as does naming the repeated key. `values` was validated as numbers: no colon.
    """
    try:
        body.decode("utf-8")  # msgspec skips unknown fields without checking their UTF-8
    except UnicodeDecodeError as bad:
        raise Bad(NOT_JSON, f"the message is not UTF-8 (byte {bad.start}).") from None
    try:
        top = _raw_fields.decode(body)
    except RecursionError:
        raise Bad(BAD_SCHEMA, TOO_DEEP) from None
    key_colons = sum(key.count(":") for key in top)
    if not (key_colons and b"\\" in body):
        raws = [bytes(raw) for key, raw in top.items() if key != "values"]
        if body.count(b":") - key_colons - sum(raw.count(b":") for raw in raws) == len(top):
            for raw in raws:  # keys nested in extra fields: the standard library, on those fields only
                if raw[:1] in (b"{", b"[") and b":" in raw:
                    _parse_checking_keys(raw)
            return
    _parse_checking_keys(body)


def _parse_checking_keys(data: bytes) -> None:
    try:
        json.loads(data, object_pairs_hook=_unique_keys, parse_int=_ignore)  # ints unparsed: no 4,300-digit limit
    except RecursionError:
        raise Bad(BAD_SCHEMA, TOO_DEEP) from None
    except ValueError as exc:  # msgspec accepted it, so this should not happen; still one sentence, not a crash
        raise Bad(NOT_JSON, f"the message is not strict JSON: {exc}.") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> None:
    if len(pairs) > 1:
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                shown = json.dumps(key if len(key) <= 64 else key[:64] + "...")
                raise Bad(BAD_SCHEMA, f"the key {shown} appears more than once in one object; which value counts would be a guess.")
            seen.add(key)


def _ignore(_: str) -> None:
    return None
