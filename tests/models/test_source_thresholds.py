"""Per-source thresholds: the artifact field, the one rule that applies them, and the sealed copy that carries them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import anomstream
from anomstream.errors import ArtifactError
from anomstream.models import artifact
from anomstream.models.source_thresholds import applied, write_copy


@pytest.fixture
def copy(tmp_path: Path, tiny_artifact: Path) -> Path:
    target = tmp_path / "artifact"
    shutil.copytree(tiny_artifact, target)
    return target


def _edit(path: Path, change) -> None:
    meta = json.loads((path / artifact.META_FILE).read_text())
    change(meta)
    (path / artifact.META_FILE).write_text(json.dumps(artifact.sealed(meta)))


def test_an_artifact_without_per_source_thresholds_loads_unchanged(tiny_artifact: Path) -> None:
    raw = json.loads((tiny_artifact / artifact.META_FILE).read_text())
    raw["threshold"].pop("per_source", None)  # as an artifact written before the field existed
    metadata = artifact.Metadata.model_validate(raw)
    assert metadata.threshold.per_source == {} and metadata.schema_version == 4


@pytest.mark.parametrize(
    ("per_source", "problem"),
    [
        ({"loud": float("nan")}, "the threshold of source 'loud' must be a finite number above 0 for a named source, not nan"),
        ({"loud": float("inf")}, "the threshold of source 'loud' must be a finite number above 0 for a named source, not inf"),
        ({"loud": -0.5}, "the threshold of source 'loud' must be a finite number above 0 for a named source, not -0.5"),
        ({"loud": 0.0}, "the threshold of source .loud. must be a finite number above 0 for a named source, not 0.0"),
        ({"": 0.5}, "the threshold of source '' must be a finite number above 0 for a named source"),
    ],
    ids=["nan", "inf", "negative", "zero", "unnamed"],
)
def test_a_per_source_threshold_that_would_break_a_worker_is_refused(copy: Path, per_source, problem) -> None:
    _edit(copy, lambda meta: meta["threshold"].update(per_source=per_source))
    with pytest.raises(ArtifactError, match=r"does not match the artifact schema \(1 problems; first: threshold.per_source: Value error, " + problem):
        artifact.read_metadata(copy)


def test_an_unknown_threshold_field_is_refused(copy: Path) -> None:
    _edit(copy, lambda meta: meta["threshold"].update(per_sources={"loud": 1.0}))  # a typo
    with pytest.raises(ArtifactError, match=r"first: threshold.per_sources: Extra inputs are not permitted\)"):
        artifact.read_metadata(copy)


def test_the_rule_a_source_with_a_threshold_gets_it_every_other_window_the_global_one() -> None:
    thresholds, scopes = applied(0.2, {"loud": 0.9}, ["loud", "quiet", None], 3)
    assert thresholds.tolist() == [0.9, 0.2, 0.2] and scopes == ("source", "global", "global")
    assert applied(0.2, {"loud": 0.9}, None, 2)[1] == ("global", "global")  # no sources given
    with pytest.raises(ValueError, match="2 sources for 3 windows"):
        applied(0.2, {"loud": 0.9}, ["loud", None], 3)


def test_score_judges_each_window_by_its_sources_threshold(copy: Path, synthetic) -> None:
    windows = synthetic(20, 5, seed=4)[0].astype(np.float32)
    plain = anomstream.load(copy, runtime="tensorflow").score(windows)
    assert plain.scopes == ("global",) * len(windows) and (plain.thresholds == plain.threshold).all()
    lenient = float(plain.errors.max()) * 2  # flags nothing
    write_copy(copy, copy, {"loud": lenient})
    detector = anomstream.load(copy, runtime="tensorflow")
    sources = ["loud" if i % 2 else None for i in range(len(windows))]
    scored = detector.score(windows, sources=sources)
    odd = np.arange(len(windows)) % 2 == 1
    assert not scored.anomalous[odd].any() and (scored.thresholds[odd] == lenient).all()
    np.testing.assert_array_equal(scored.anomalous[~odd], plain.anomalous[~odd])  # no source: the global threshold
    assert scored.threshold == plain.threshold and scored.scopes[:2] == ("global", "source")
    np.testing.assert_array_equal(detector.score(windows).anomalous, plain.anomalous)  # without sources: all global
    explained = detector.score(windows, explain="range", sources=sources)  # explanations follow the applied thresholds
    assert [e is not None for e in explained.explanations] == scored.anomalous.tolist()


def test_write_copy_is_a_sealed_verified_artifact_with_a_new_version(copy: Path, tmp_path: Path) -> None:
    before = artifact.verify(copy)
    out = tmp_path / "per-source"
    written = write_copy(copy, out, {"b": 0.5, "a": 0.25})
    assert written.threshold.per_source == {"a": 0.25, "b": 0.5} and written.threshold.value == before.threshold.value
    assert written.version.startswith(before.version + "+src-") and written.model_file == before.model_file
    assert artifact.verify(out) == written and artifact.read_metadata(copy) == before  # the original is untouched
    again = write_copy(out, out, {"a": 0.3})  # in place: only model.json changes; the suffix is replaced, not stacked
    assert again.version.count("+src-") == 1 and again.threshold.per_source == {"a": 0.3}
    assert write_copy(out, out, {}).version == before.version  # no per-source thresholds: the original version


def test_write_copy_refuses_a_bad_threshold_and_a_foreign_directory(copy: Path, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"was not written: threshold.per_source: Value error, the threshold of source 'a'"):
        write_copy(copy, tmp_path / "out", {"a": float("nan")})
    assert not (tmp_path / "out").exists()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ArtifactError, match="is a directory with files but no model.json"):
        write_copy(copy, tmp_path / "busy", {"a": 0.5})
