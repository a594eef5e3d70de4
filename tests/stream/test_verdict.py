"""The output contract's encoding (README, "Message formats"), without a broker."""

import json

import numpy as np

from anomstream.models.detector import Scores
from anomstream.stream import codec, verdict

MODEL = {"name": "ecg-dense", "version": "v1", "sha256": "ab" * 32}


class Msg:
    def __init__(self, offset: int) -> None:
        self._offset = offset

    def topic(self) -> str:
        return "windows"

    def partition(self) -> int:
        return 3

    def offset(self) -> int:
        return self._offset


def test_verdicts_keep_the_contract_order_and_omit_a_missing_label():
    windows = [codec.Window(Msg(7), "a", "p1", 1.5, 1), codec.Window(Msg(8), "b", None, None, None)]
    errors = np.array([0.01, 0.5], dtype=np.float32)
    scores = Scores(errors, np.array([False, True]), 0.25, errors[:, None])
    encoded = verdict.encode_batch(windows, scores, MODEL, 99.0)
    first, second = (json.loads(raw) for raw in encoded)
    assert list(first) == ["id", "source", "ts", "label", "error", "threshold", "threshold_scope", "score", "anomaly", "model", "input",
                           "scored_at"]
    assert first["threshold_scope"] == second["threshold_scope"] == "global"  # built without per-window thresholds
    assert "label" not in second and second["source"] is None and second["ts"] is None
    assert first["model"] == second["model"] == MODEL
    assert first["input"] == {"topic": "windows", "partition": 3, "offset": 7}
    assert second["error"] == float(np.float32(0.5)) and second["score"] == second["error"] / 0.25
    assert [first["anomaly"], second["anomaly"]] == [False, True]  # the detector's verdicts, carried as given


def test_a_multi_channel_models_verdicts_carry_channel_errors_after_the_error():
    windows = [codec.Window(Msg(7), "a", "p1", 1.5, 1)]
    channel_errors = np.array([[0.1, 0.2, 0.6]], dtype=np.float32)
    scores = Scores(channel_errors.mean(axis=1), np.array([True]), 0.25, channel_errors)
    (only,) = (json.loads(raw) for raw in verdict.encode_batch(windows, scores, MODEL, 99.0))
    assert list(only)[4:7] == ["error", "channel_errors", "threshold"]
    assert only["channel_errors"] == [float(v) for v in channel_errors[0]]
    assert only["error"] == float(np.float32(channel_errors.mean()))


def test_an_anomalous_verdict_carries_its_explanation_after_anomaly():
    from anomstream.models.explain import Explanation

    windows = [codec.Window(Msg(7), "a", None, None, None), codec.Window(Msg(8), "b", None, None, None)]
    errors = np.array([0.01, 0.5], dtype=np.float32)
    found = Explanation(start=3, end=9, share=0.75, channel=None, sample_errors=np.full((1, 4), 0.5, np.float32))
    scores = Scores(errors, np.array([False, True]), 0.25, errors[:, None], (None, found))
    normal, anomalous = (json.loads(raw) for raw in verdict.encode_batch(windows, scores, MODEL, 99.0))
    assert "explanation" not in normal
    assert list(anomalous)[list(anomalous).index("anomaly") + 1] == "explanation"
    # one channel: the sample errors are flat, like the window's `values`
    assert anomalous["explanation"] == {"start": 3, "end": 9, "share": 0.75, "sample_errors": [0.5] * 4}


def test_a_multi_channel_explanation_names_the_channel_and_nests_the_sample_errors():
    from anomstream.models.explain import Explanation

    channel_errors = np.array([[0.1, 0.6]], dtype=np.float32)
    found = Explanation(start=0, end=2, share=0.5, channel=1, sample_errors=np.array([[0.1, 0.1], [0.6, 0.6]], np.float32))
    scores = Scores(channel_errors.mean(axis=1), np.array([True]), 0.25, channel_errors, (found,))
    (only,) = (json.loads(raw) for raw in verdict.encode_batch([codec.Window(Msg(1), "a", None, None, None)], scores, MODEL, 1.0))
    assert only["explanation"]["channel"] == 1
    assert only["explanation"]["sample_errors"] == [[float(np.float32(0.1))] * 2, [float(np.float32(0.6))] * 2]


def test_a_verdict_carries_the_threshold_that_judged_it_and_its_scope():
    from anomstream.models.source_thresholds import applied

    windows = [codec.Window(Msg(1), "a", "loud", None, None), codec.Window(Msg(2), "b", "quiet", None, None),
               codec.Window(Msg(3), "c", None, None, None)]  # fmt: skip
    errors = np.array([0.5, 0.5, 0.5], dtype=np.float32)
    thresholds, scopes = applied(0.25, {"loud": 1.0}, [w.source for w in windows], 3)
    scores = Scores(errors, errors > thresholds, 0.25, errors[:, None], (), thresholds, scopes)
    loud, quiet, unnamed = (json.loads(raw) for raw in verdict.encode_batch(windows, scores, MODEL, 1.0))
    assert list(loud)[list(loud).index("threshold") + 1] == "threshold_scope"
    assert (loud["threshold"], loud["threshold_scope"], loud["score"], loud["anomaly"]) == (1.0, "source", loud["error"] / 1.0, False)
    assert (quiet["threshold"], quiet["threshold_scope"], quiet["anomaly"]) == (0.25, "global", True)
    assert (unnamed["threshold"], unnamed["threshold_scope"]) == (0.25, "global")  # no source: the global one
