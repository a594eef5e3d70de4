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
        (lambda: threshold.make("zscore"), "unknown threshold method 'zscore': choose one of mean-std, percentile, fpr"),
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
