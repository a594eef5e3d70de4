"""The dead-letter vocabulary, and the error every decoding step raises for a message it cannot take.

Apart from stream/codec.py so that the codec's helpers (stream/json_keys.py) can raise it too.
"""

from __future__ import annotations

# The dead-letter vocabulary (the `error.reason` header). Changing it breaks alerts and dashboards.
NOT_JSON = "not_json"
BAD_SCHEMA = "bad_schema"
WRONG_LENGTH = "wrong_length"
NON_FINITE = "non_finite"
BAD_BINARY = "bad_binary"
TOO_LARGE = "too_large"
REASONS = (NOT_JSON, BAD_SCHEMA, WRONG_LENGTH, NON_FINITE, BAD_BINARY, TOO_LARGE)

TOO_DEEP = "the message nests too deeply to decode (Python's recursion limit)."
HEADERS_NOT_UTF8 = "a header key is not UTF-8, so the headers cannot be read or copied; the source offset points to the original."
DECODER_FAILED = "the decoder failed on this message"  # the safety net in decode_batch; tests check it never fires


class Bad(Exception):
    """A message that is a dead letter: its reason, one sentence of detail, and the headers to copy."""

    def __init__(self, reason: str, detail: str, headers: list[tuple[str, bytes | None]] | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.headers = headers  # Invalid.headers
