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
