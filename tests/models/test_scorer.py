import numpy as np

from anomstream.models import artifact


def test_one_trace_serves_every_batch_size(tiny_artifact):
    """The fixed input signature with a free batch dimension never retraces (no per-size compile on the hot path)."""
    _, scorer = artifact.scorer(tiny_artifact)
    for size in (1, 7, 64, 300, 1):
        errors = scorer.errors(np.zeros((size, 32), dtype=np.float32))
        assert errors.shape == (size,) and np.isfinite(errors).all()
    assert scorer.runtime._errors.experimental_get_tracing_count() == 1


def test_large_arrays_are_scored_in_chunks_with_the_same_result(tiny_artifact, monkeypatch):
    from anomstream.models import scorer as scorer_module

    _, scorer = artifact.scorer(tiny_artifact)
    windows = np.random.default_rng(0).normal(size=(50, 32)).astype(np.float32)
    whole = scorer.errors(windows)
    monkeypatch.setattr(scorer_module, "CHUNK", 8)
    np.testing.assert_allclose(scorer.errors(windows), whole, rtol=1e-6)
