"""The serving model's hot reload: what a look at the artifact does, and SIGHUP."""

from __future__ import annotations

from anomstream.stream import live_model
from anomstream.stream.live_model import LiveModel


def test_a_sighup_during_a_reload_is_kept_for_the_next_look(ecg_artifact):
    """A SIGHUP that arrives while a reload runs (one that began before it) used to be lost: the running reload
    wrote its stamp over the request's marker, so the next look saw nothing to do."""
    model = LiveModel(ecg_artifact, warm_batch=4)
    before = model.current
    assert not model.check()  # nothing changed, nothing asked
    stamp = live_model._stamp(ecg_artifact)  # a reload begins: it has read the artifact's stamp...
    model.request_reload()  # ...SIGHUP arrives...
    assert model.reload(stamp)  # ...and the reload finishes
    reloaded = model.current
    assert reloaded is not before
    assert model.check()  # the request was kept: the next look reloads again
    assert model.current is not reloaded
    assert not model.check()  # once


def test_a_model_of_another_window_shape_is_refused_in_one_sentence(ecg_artifact, tmp_path):
    """A digits model written where an ECG model serves: windows of another shape, so the serving model stays."""
    import dataclasses

    import pytest

    from anomstream.errors import ArtifactError
    from anomstream.models import artifact, data
    from anomstream.models.recipe import PRESETS
    from anomstream.models.train import train

    digits = data.DataOptions(data="digits", normal_labels=("0",)).load()[0]
    result = train(digits, dataclasses.replace(PRESETS["default"], epochs=1, min_steps=0))
    artifact.save(tmp_path / "digits", result.model, result.metadata_fields)
    with pytest.raises(ArtifactError, match=r"digits takes windows of 1 x 8 x 8 \(channels x height x width\), the serving model"
                                             r" 1 x 140 \(channels x samples\): refused\."):
        live_model.load_checked(tmp_path / "digits", 4, window_shape=(1, 140))
