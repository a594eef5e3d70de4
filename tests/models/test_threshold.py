import math

import numpy as np
import pytest

from anomstream.errors import ThresholdError
from anomstream.models import threshold

ERRORS = np.linspace(0.0, 1.0, 1001)


def test_mean_std_is_the_tutorials_rule():
    fitted = threshold.MeanStdThreshold().fit(ERRORS)
    assert fitted.value == pytest.approx(ERRORS.mean() + ERRORS.std())  # population std, as tf.math.reduce_std
    assert threshold.MeanStdThreshold(k=2).fit(ERRORS).value == pytest.approx(ERRORS.mean() + 2 * ERRORS.std())


def test_percentile():
    assert threshold.PercentileThreshold(q=90).fit(ERRORS).value == pytest.approx(0.9)


def test_fpr_keeps_the_false_positive_rate_at_or_below_target():
    rng = np.random.default_rng(0)
    normal = rng.gamma(2.0, 0.01, 5000)
    for fpr in (0.001, 0.01, 0.05, 0.2):
        fitted = threshold.FprThreshold(fpr=fpr).fit(normal)
        rate = fitted.predict(normal).mean()
        assert rate <= fpr
        assert rate >= fpr - 2 / len(normal)


def test_fpr_at_100_windows_and_1_percent_is_the_second_largest_error():
    """At n = 100, fpr = 0.01 one error of the 100 may lie above the value: the maximum was one order statistic too high."""
    errors = np.random.default_rng(1).permutation(np.arange(1.0, 101.0))
    fitted = threshold.FprThreshold(fpr=0.01).fit(errors)
    assert fitted.value == 99.0
    assert fitted.predict(errors).sum() == 1


@pytest.mark.parametrize("n", [100, 101, 250, 1000, 1999])
@pytest.mark.parametrize("fpr", [0.01, 0.03, 0.07, 0.1, 0.29, 0.5])
def test_fpr_is_the_smallest_observed_error_with_at_most_fpr_above_it(n, fpr):
    if n < 1 / fpr:
        pytest.skip("fewer windows than the rate can resolve")
    errors = np.random.default_rng(n).gamma(2.0, 0.01, n)
    value = threshold.FprThreshold(fpr=fpr).fit(errors).value
    assert value in errors  # an observed error
    assert (errors > value).mean() <= fpr
    lower = errors[errors < value]
    assert lower.size == 0 or (errors > lower.max()).mean() > fpr  # the next lower observed error flags too many


def test_fpr_with_ties_counts_windows_strictly_above():
    errors = np.array([1.0] * 95 + [2.0] * 5)  # 5% strictly above 1.0, none above 2.0
    assert threshold.FprThreshold(fpr=0.05).fit(errors).value == 1.0
    assert threshold.FprThreshold(fpr=0.04).fit(errors).value == 2.0


def test_mad_barely_moves_for_three_outliers_that_multiply_mean_std():
    """Three mislabelled windows among 2,003 normal training errors: mean + 2 std jumps, median + 3 MAD does not."""
    clean = np.random.default_rng(2).normal(0.03, 0.005, 2000).clip(min=0.001)
    dirty = np.concatenate([clean, [10.0, 12.0, 15.0]])
    mean_std = [threshold.MeanStdThreshold(k=2).fit(e).value for e in (clean, dirty)]
    mad = [threshold.MadThreshold().fit(e).value for e in (clean, dirty)]
    assert mean_std[1] > 10 * mean_std[0]
    assert mad[1] == pytest.approx(mad[0], rel=0.01)


def test_mad_estimates_the_std_for_normal_errors():
    errors = np.random.default_rng(3).normal(1.0, 0.1, 200_000)
    fitted = threshold.MadThreshold(k=3).fit(errors)
    assert fitted.value == pytest.approx(1.0 + 3 * 0.1, abs=0.005)  # median + 3 sigma: the 1.4826 scale
    assert threshold.MadThreshold(k=0).fit(np.array([1.0, 2.0, 4.0])).value == 2.0  # the median
    assert threshold.make("mad", k=2).describe() == {"method": "mad", "params": {"k": 2}, "value": None}


def test_mad_of_zero_falls_back_to_the_mean_absolute_deviation():
    errors = np.array([1.0] * 6 + [2.0, 5.0])  # most errors equal: their MAD is 0
    spread = np.sqrt(np.pi / 2) * np.abs(errors - 1.0).mean()
    assert threshold.MadThreshold(k=3).fit(errors).value == pytest.approx(1.0 + 3 * spread)


@pytest.mark.parametrize("constant", [0.0, 0.02, 1e6])
@pytest.mark.parametrize("k", [0.0, 3.0])
def test_mad_of_constant_errors_is_just_above_them(constant, k):
    """No spread to scale: the value sits a hair above the constant, so it is finite, above 0, and flags any larger error."""
    value = threshold.MadThreshold(k=k).fit(np.full(10, constant)).value
    assert math.isfinite(value) and value > 0 and value > constant
    assert value - constant <= max(1e-9, constant * 1e-6)


def test_predict_is_strictly_above():
    fitted = threshold.PercentileThreshold(q=50).fit(np.array([1.0, 2.0, 3.0]))
    assert fitted.predict(np.array([1.9, 2.0, 2.1])).tolist() == [False, False, True]


def test_describe_and_restore_round_trip():
    fitted = threshold.FprThreshold(fpr=0.05).fit(ERRORS)
    record = fitted.describe()
    assert record == {"method": "fpr", "params": {"fpr": 0.05}, "value": fitted.value}
    again = threshold.restore(record["method"], record["params"], record["value"])
    assert again.predict(ERRORS).tolist() == fitted.predict(ERRORS).tolist()


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: threshold.FprThreshold(fpr=0.0), "fpr must be strictly between 0 and 1, got 0.0"),
        (lambda: threshold.FprThreshold(fpr=1.5), "fpr must be strictly between 0 and 1, got 1.5"),
        (lambda: threshold.PercentileThreshold(q=100), "percentile needs q strictly between 0 and 100, got 100"),
        (lambda: threshold.MeanStdThreshold(k=-1), "mean-std needs k >= 0, got -1"),
        (lambda: threshold.MadThreshold(k=-1), "mad needs a finite k >= 0, got -1"),
        (lambda: threshold.MadThreshold(k=math.inf), "mad needs a finite k >= 0, got inf"),
        (lambda: threshold.MadThreshold(k=math.nan), "mad needs a finite k >= 0, got nan"),
        (lambda: threshold.make("zscore"), "unknown threshold method 'zscore': choose one of mean-std, percentile, fpr, mad."),
        (lambda: threshold.make("fpr", q=3), "fpr takes only fpr, got q"),
    ],
)
def test_bad_parameters_say_what_is_wrong(build, message):
    with pytest.raises(ThresholdError) as caught:
        build()
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("fitter", "errors", "message"),
    [
        (threshold.FprThreshold(fpr=0.01), np.ones(50), "fpr needs at least 100 normal windows to fit on, got 50"),
        (threshold.PercentileThreshold(q=99.5), np.ones(100), "percentile needs at least 200 normal windows"),
        (threshold.MeanStdThreshold(), np.ones(1), "mean-std needs at least 2 normal windows to fit on, got 1"),
        (threshold.MadThreshold(), np.ones(1), "mad needs at least 2 normal windows to fit on, got 1"),
        (threshold.MeanStdThreshold(), np.ones((3, 3)), "mean-std needs a 1-D array of errors, got shape (3, 3)"),
        (threshold.MeanStdThreshold(), np.array([0.1, np.nan, 0.2]), "mean-std got 1 non-finite errors"),
    ],
)
def test_fit_checks_its_input(fitter, errors, message):
    with pytest.raises(ThresholdError) as caught:
        fitter.fit(errors)
    assert str(caught.value).startswith(message)


def test_predict_before_fit_is_an_error():
    with pytest.raises(ThresholdError, match="not fitted: call fit"):
        threshold.MeanStdThreshold().predict(ERRORS)


def test_predict_compares_in_float64_as_the_verdicts_do():
    # float32(0.1) is 0.10000000149...: above a threshold of 0.1, though equal to it in float32.
    fitted = threshold.restore("mean-std", {"k": 1.0}, 0.1)
    assert fitted.predict(np.array([0.1], dtype=np.float32)).tolist() == [True]
    assert float(np.float32(0.1)) > 0.1
