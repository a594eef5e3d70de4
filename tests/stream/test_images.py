"""An image model (8 x 8 digits) served through a real broker: rows of JSON numbers and row-major float32 bodies,
verdicts equal to the Python API's, explanations over rows, and wrong shapes to the dead-letter topic."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import anomstream
from anomstream.stream import codec

pytestmark = pytest.mark.integration

F32 = [("content-type", codec.F32)]


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A small conv2d artifact with zeros as normal, and the test digits."""
    from anomstream.models import artifact, data
    from anomstream.models.recipe import PRESETS
    from anomstream.models.train import train

    dataset = data.DataOptions(data="digits", normal_labels=("0",)).load()[0]
    result = train(dataset, dataclasses.replace(PRESETS["default"], epochs=6, min_steps=0))
    directory = tmp_path_factory.mktemp("digits")
    artifact.save(directory / "model", result.model, result.metadata_fields, result.fitted)
    return directory / "model", result.split.test.windows


@pytest.mark.parametrize("fmt", ["json", "f32"])
def test_an_image_model_serves_both_formats(digits_model, worker_settings, topics, send, read, start_worker, fmt):
    model, windows = digits_model
    messages = []
    for index, window in enumerate(windows):
        if fmt == "json":
            body = codec.encode_window(f"w-{index}", window)
            assert json.loads(body)["values"] == window[0].tolist()  # 8 lists (rows) of 8 numbers
            messages.append((b"k", body, None))
        else:
            messages.append((b"k", np.ascontiguousarray(window, dtype="<f4").tobytes(), [*F32, ("id", f"w-{index}".encode())]))
    nan = np.zeros((8, 8), "<f4")
    nan[2, 5] = np.nan
    wrong = [
        (b"flat", codec.encode_json({"id": "flat", "values": [0.5] * 64}), None),
        (b"seven", codec.encode_json({"id": "seven", "values": [[0.5] * 8] * 7}), None),
        (b"ragged", codec.encode_json({"id": "ragged", "values": [[0.5] * 8] * 7 + [[0.5] * 9]}), None),
        (b"deep", codec.encode_json({"id": "deep", "values": [[[0.5] * 8] * 8]}), None),
        (b"f32", np.zeros(63, "<f4").tobytes(), [*F32, ("id", b"f32")]),
        (b"nan", nan.tobytes(), [*F32, ("id", b"nan")]),
    ]
    send(topics["input"], messages + wrong)
    worker = start_worker(replace(worker_settings, model=model, explain="full"))
    verdicts = {v["id"]: v for v in (json.loads(m.value()) for m in read(topics["scores"], len(messages)))}
    letters = {m.key(): dict(m.headers()) for m in read(topics["dlq"], len(wrong))}
    worker.stop()

    detector = anomstream.load(model, runtime="tensorflow")  # `anomstream evaluate`'s path
    assert detector.window_shape == (1, 8, 8)
    offline = detector.score(windows, explain="full")
    live = np.array([verdicts[f"w-{i}"]["error"] for i in range(len(windows))])
    np.testing.assert_allclose(live, offline.errors, rtol=0, atol=1e-5)
    assert [verdicts[f"w-{i}"]["anomaly"] for i in range(len(windows))] == offline.anomalous.tolist()
    assert {v["anomaly"] for v in verdicts.values()} == {True, False}
    assert all("channel_errors" not in v for v in verdicts.values())  # one channel
    flagged = [i for i in range(len(windows)) if offline.anomalous[i]]
    for i in flagged[:20]:
        found, expected = verdicts[f"w-{i}"]["explanation"], offline.explanations[i]
        assert (found["start"], found["end"]) == (expected.start, expected.end) and 0 <= found["start"] < found["end"] <= 8
        assert np.asarray(found["sample_errors"]).shape == (8, 8)  # nested as the input's values
        np.testing.assert_allclose(found["sample_errors"], expected.sample_errors[0], atol=1e-5)

    assert {h["error.reason"] for h in letters.values()} == {codec.WRONG_LENGTH.encode(), codec.NON_FINITE.encode()}
    detail = {key: h["error.detail"].decode() for key, h in letters.items()}
    takes = "the model takes 8 lists of 8 numbers (row-major)."
    assert detail[b"flat"] == f"values is 64 numbers; {takes}"
    assert detail[b"seven"] == f"values is 7 lists of 8 numbers; {takes}"
    assert detail[b"ragged"] == f"values is 8 lists of 8 to 9 numbers; {takes}"
    assert detail[b"deep"] == f"values is 1 lists of 8 lists of 8 numbers; {takes}"
    assert detail[b"f32"] == "the body holds 63 float32 values; the model takes 8 x 8 = 64 (height x width, row-major)."
    assert detail[b"nan"] == "row 2 column 5 is nan, not a finite number."
