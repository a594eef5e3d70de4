"""The worker's drift window: what counts as live, when it says nothing, and what a scrape shows."""

import math

import numpy as np
import pytest
from prometheus_client import REGISTRY, generate_latest

from anomstream.models import artifact
from anomstream.models.drift import DriftReference
from anomstream.stream.drift import DriftWindow

RNG = np.random.default_rng(8)
REFERENCE = DriftReference.of(RNG.gamma(4.0, 0.01, 300))


@pytest.fixture(scope="module")
def model(ecg_drift_artifact):
    """`model(version, threshold=10.0, reference=REFERENCE)`: a real artifact's metadata with these values."""
    real = artifact.read_metadata(ecg_drift_artifact)

    def make(version: str, threshold: float = 10.0, reference: DriftReference | None = REFERENCE) -> artifact.Metadata:
        return real.model_copy(update={"version": version, "drift": reference, "threshold": real.threshold.model_copy(update={"value": threshold})})

    return make


@pytest.fixture
def window(model):
    def make(**kwargs) -> DriftWindow:
        drift = DriftWindow(**{"size": 100, "max_age_s": 60.0, "min_windows": 20, **kwargs})
        drift.use(model("v1"))
        return drift

    return make


def test_errors_like_the_reference_read_low_and_shifted_ones_high(window):
    drift = window()
    drift.add(RNG.gamma(4.0, 0.01, 100), "v1", now=0.0)
    assert drift.statistic(now=1.0) < 0.25
    drift.add(RNG.gamma(4.0, 0.01, 100) + 0.1, "v1", now=2.0)  # the whole ring replaced by shifted errors
    assert drift.statistic(now=3.0) > 0.9


def test_too_few_live_errors_or_no_reference_is_nan(window, model):
    drift = window()
    drift.add(np.full(19, 0.04), "v1", now=0.0)
    assert math.isnan(drift.statistic(now=0.0))
    drift.add([0.04], "v1", now=0.0)
    assert not math.isnan(drift.statistic(now=0.0))
    without = DriftWindow(size=100, min_windows=1)
    without.use(model("old", reference=None))
    without.add(np.full(50, 0.04), "old", now=0.0)
    assert math.isnan(without.statistic(now=0.0))


def test_the_ring_keeps_the_latest_size_errors_and_only_young_ones(window):
    drift = window(size=50, max_age_s=10.0)
    drift.add(np.full(40, 1.0), "v1", now=0.0)
    drift.add(np.full(30, 2.0), "v1", now=5.0)  # overwrites the 20 oldest
    live = drift.live(now=6.0)
    assert len(live) == 50 and (live == 1.0).sum() == 20 and (live == 2.0).sum() == 30
    assert sorted(set(drift.live(now=12.0))) == [2.0]  # the first batch is older than 10 s now
    drift.add(np.arange(120, dtype=float), "v1", now=20.0)  # a batch larger than the ring: its latest 50
    assert sorted(drift.live(now=20.0)) == list(range(70, 120))
    drift.add([np.nan, np.inf], "v1", now=20.0)  # non-finite errors are not errors
    assert len(drift.live(now=20.0)) == 50 and np.isfinite(drift.live(now=20.0)).all()


def test_a_new_model_version_empties_the_window_and_late_errors_of_the_old_one_are_dropped(window, model):
    drift = window()
    drift.add(np.full(50, 0.04), "v1", now=0.0)
    drift.use(model("v2"))
    assert len(drift.live(now=0.0)) == 0
    drift.add(np.full(50, 0.04), "v1", now=0.0)  # a batch the old model scored, committed after the swap
    assert len(drift.live(now=0.0)) == 0
    drift.add(np.full(50, 0.04), "v2", now=0.0)
    assert len(drift.live(now=0.0)) == 50


def test_a_scrape_computes_the_gauges_from_the_window(window):
    drift = window(max_age_s=1e9)
    drift.export()
    drift.add(RNG.gamma(4.0, 0.01, 100) * 4, "v1")
    text = generate_latest(REGISTRY).decode()
    value = {name: float(number) for name, number in (line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("anomstream_"))}
    assert value["anomstream_error_drift"] == drift.statistic() > 0.8
    live_median = value['anomstream_live_error_quantile{q="0.5"}']
    reference_median = value['anomstream_reference_error_quantile{q="0.5"}']
    assert reference_median == REFERENCE.quantiles()[0.5]
    assert live_median > 3 * reference_median
    assert value['anomstream_live_error_quantile{q="0.99"}'] > value['anomstream_live_error_quantile{q="0.9"}'] > live_median


def test_anomalies_above_the_threshold_do_not_move_it_but_a_shift_below_does(model):
    """The statistic compares the windows the model calls normal: an incident leaves that sample alone."""
    threshold = float(np.quantile(REFERENCE.errors, 0.95))
    drift = DriftWindow(size=1000, min_windows=100)
    drift.use(model("v1", threshold=threshold))
    normal = RNG.gamma(4.0, 0.01, 600)
    drift.add(np.concatenate([normal, np.full(400, 5.0)]), "v1", now=0.0)  # 40% anomalous, far above the threshold
    assert drift.statistic(now=0.0) < 0.15
    drift.add(normal + 0.02, "v1", now=1.0)  # every error up by half its spread
    assert drift.statistic(now=1.0) > 0.3
    drift.add(np.full(1000, 5.0), "v1", now=2.0)  # everything anomalous: nothing to compare
    assert math.isnan(drift.statistic(now=2.0))
