"""The drift reference in training and in the artifact, and the statistic it is compared with."""

import json

import numpy as np
import pytest
from scipy.stats import ks_2samp

from anomstream.errors import ArtifactError
from anomstream.models import artifact, data, drift, train
from anomstream.models.train import TrainConfig

FAST = dict(epochs=10, batch_size=32, learning_rate=1e-2)


def test_the_distance_is_the_kolmogorov_smirnov_statistic_and_reads_as_a_share_of_traffic():
    rng = np.random.default_rng(3)
    reference = rng.gamma(4.0, 0.01, 400)
    assert drift.distance(reference, reference) == 0.0
    assert drift.distance(reference, reference + 1.0) == 1.0  # every live error above every reference error
    same = rng.gamma(4.0, 0.01, 1000)
    assert drift.distance(reference, same) < 0.15  # sampling noise only
    # A fifth of the traffic anomalous, the rest unchanged: the distance is about that fifth, not more.
    incident = np.concatenate([rng.gamma(4.0, 0.01, 800), rng.gamma(4.0, 0.01, 200) + 0.5])
    assert 0.12 < drift.distance(reference, incident) < 0.3
    # A gain on every window moves the whole distribution: far above.
    assert drift.distance(reference, same * 3.0) > 0.5
    assert drift.distance(reference, incident) == pytest.approx(ks_2samp(reference, incident).statistic)
    assert np.isnan(drift.distance(reference, []))
    assert np.isnan(drift.distance(reference, same, below=0.0))  # nothing at or below the threshold
    assert np.isnan(drift.distance(reference, [np.nan] * 20))  # non-finite live errors are not counted


def test_a_reference_keeps_its_errors_sorted_and_a_large_one_as_quantiles():
    rng = np.random.default_rng(4)
    small = drift.DriftReference.of(rng.random(30))
    assert small.windows == 30 and small.errors == sorted(small.errors) and len(small.errors) == 30
    large_errors = rng.gamma(3.0, 0.02, 5000)
    large = drift.DriftReference.of(large_errors)
    assert large.windows == 5000 and len(large.errors) == drift.MAX_STORED
    assert large.errors[0] == large_errors.min() and large.errors[-1] == large_errors.max()
    assert drift.distance(large.errors, large_errors) < 0.01  # quantiles stand in for the whole sample
    assert drift.DriftReference.of(rng.random(drift.MIN_REFERENCE - 1)) is None
    q = large.quantiles()
    assert q[0.5] == pytest.approx(np.median(large_errors), rel=0.01) and q[0.5] < q[0.9] < q[0.99]


@pytest.mark.parametrize(
    "errors, problem",
    [
        ([0.3, 0.1] + [0.5] * 10, "reference errors must be sorted ascending"),
        ([0.1] * 11 + [float("nan")], "reference errors must be finite and not negative"),
        ([-0.1] + [0.1] * 11, "reference errors must be finite and not negative"),
        ([0.1] * 3, "at least 10 items"),
    ],
)
def test_a_reference_with_bad_values_is_refused(errors, problem):
    with pytest.raises(ValueError, match=problem):
        drift.DriftReference(windows=max(len(errors), drift.MIN_REFERENCE), errors=errors)


@pytest.fixture(scope="module")
def dataset(synthetic_csv):
    return data.load(synthetic_csv)


def test_training_holds_out_reference_windows_from_both_fits_and_scores_them(dataset, tmp_path):
    config = TrainConfig(reference_holdout=0.25, **FAST)
    result = train.train(dataset, config)
    normal = result.split.train.windows[result.split.train.labels == 1]
    fit, held, reference = train._holdout(normal, 0.0, 0.25, config.split_seed)
    split = result.metadata_fields["split"]
    assert split["reference_normal"] == len(reference) == round(len(normal) * 0.25)
    assert split["train_normal"] == len(fit) == len(normal) - len(reference) and len(held) == 0
    record = result.metadata_fields["drift"]
    np.testing.assert_allclose(record.errors, np.sort(result.scorer.errors(reference)), rtol=1e-6)
    # The threshold was fitted on the fit windows' errors, not the reference's.
    assert result.scorer.threshold.describe()["value"] == pytest.approx(
        train.thresholds.make(config.threshold).fit(result.scorer.errors(fit)).value, rel=1e-6
    )
    saved = artifact.save(tmp_path / "model", result.model, result.metadata_fields, result.fitted)
    assert saved.drift == record and artifact.read_metadata(tmp_path / "model").drift == record


def test_both_holdouts_are_disjoint_and_add_up(dataset):
    normal = dataset.windows[dataset.labels == 1]
    fit, held, reference = train._holdout(normal, 0.2, 0.1, 21)
    assert (len(fit), len(held), len(reference)) == (len(normal) - 60 - 30, 60, 30)
    rows = {row.tobytes() for row in np.concatenate([fit, held, reference])}
    assert len(rows) == len(normal)
    with pytest.raises(ValueError, match="must add up to below 1"):
        train._holdout(normal, 0.6, 0.4, 21)


def test_the_tutorial_keeps_no_reference_and_the_default_keeps_a_tenth(dataset):
    assert train.PRESETS["tutorial"].reference_holdout == 0
    assert train.PRESETS["default"].reference_holdout == 0.1
    result = train.train(dataset, TrainConfig(**FAST))
    assert result.metadata_fields["drift"] is None and result.metadata_fields["split"]["reference_normal"] == 0


def test_an_artifact_whose_reference_was_edited_is_refused(tmp_path, dataset):
    result = train.train(dataset, TrainConfig(reference_holdout=0.2, **FAST))
    artifact.save(tmp_path / "model", result.model, result.metadata_fields, result.fitted)
    path = tmp_path / "model" / artifact.META_FILE
    raw = json.loads(path.read_text())
    raw["drift"]["errors"][0] = raw["drift"]["errors"][-1] + 1.0
    path.write_text(json.dumps(artifact.sealed({k: v for k, v in raw.items() if k != "digest"})))
    with pytest.raises(ArtifactError, match="drift.errors: Value error, reference errors must be sorted ascending"):
        artifact.read_metadata(tmp_path / "model")


def test_too_few_normal_windows_for_a_reference_are_all_fitted_on(caplog):
    """40 windows at 0.1 would hold out 4, fewer than a reference needs: none are held out for nothing."""
    rng = np.random.default_rng(6)
    normal = (np.sin(np.linspace(0, 6, 32)) + 0.05 * rng.standard_normal((40, 1, 32))).astype(np.float32)
    fitted = train.fit_normal(normal, TrainConfig(reference_holdout=0.1, epochs=2, batch_size=16))
    assert fitted.reference is None and len(fitted.fitted) == 40
    assert "no drift reference: --reference-holdout 0.1 of 40 normal windows is 4, fewer than 10" in caplog.text
    enough = train.fit_normal(np.concatenate([normal] * 3), TrainConfig(reference_holdout=0.1, epochs=2, batch_size=16))
    assert enough.reference.windows == 12 and len(enough.fitted) == 108
