"""Replay and validate take the split from the model they validate: never a training row as a test row."""

from __future__ import annotations

import numpy as np
import pytest

from anomstream.cli import build_parser
from anomstream.errors import ConfigError
from anomstream.replay.commands import _selection


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """A one-epoch model trained with --split-seed 7 on a small file, and that file."""
    from anomstream.models import artifact, data
    from anomstream.models.train import TrainConfig, train

    directory = tmp_path_factory.mktemp("selection")
    rng = np.random.default_rng(9)
    rows = [",".join(f"{v:.5f}" for v in rng.normal(size=16)) + f",{int(i % 4 != 0)}" for i in range(200)]
    path = directory / "d.csv"
    path.write_text("\n".join(rows) + "\n")
    result = train(data.load(path), TrainConfig(epochs=1, split_seed=7))
    artifact.save(directory / "model", result.model, result.metadata_fields, result.fitted)
    return directory / "model", path, set(result.split.test.rows.tolist())


def selected(*argv: str):
    return _selection(build_parser().parse_args(["validate", *argv]))


def test_with_the_model_the_replayed_rows_are_its_test_rows(trained):
    model, path, test_rows = trained
    selection, dataset, test = selected("--data", str(path), "--model", str(model))
    assert (selection.split_seed, selection.test_size) == (7, 0.2)
    assert set(selection.rows(dataset, test).rows.tolist()) == test_rows
    # Without --model the flags' default seed (21) rebuilds another split: most of its "test" rows were trained on.
    default, dataset, _ = selected("--data", str(path))
    overlap = set(default.rows(dataset).rows.tolist()) - test_rows
    assert len(overlap) > len(test_rows) / 2


def test_a_split_flag_that_contradicts_the_model_is_refused(trained):
    model, path, _ = trained
    with pytest.raises(ConfigError) as caught:
        selected("--data", str(path), "--model", str(model), "--split-seed", "21")
    assert str(caught.value) == f"--split-seed 21 differs from model {model}'s split (7): leave it out to use the model's."


def test_other_data_is_refused_for_a_test_split_and_allowed_whole(trained, tmp_path):
    model, path, _ = trained
    other = tmp_path / "other.csv"
    lines = path.read_text().splitlines()
    other.write_text("\n".join(lines[:-1]) + "\n")  # one row fewer: not the training data
    with pytest.raises(ConfigError, match=r"holds other windows than model .* was trained on \(parsed content"):
        selected("--data", str(other), "--model", str(model))
    selection, dataset, test = selected("--data", str(other), "--model", str(model), "--split", "all")
    assert len(selection.rows(dataset, test)) == 199


def test_skipping_bad_rows_keeps_the_models_split(trained, tmp_path):
    """--skip-bad-rows used to re-split the remaining rows; now every kept row stays on its side."""
    model, path, test_rows = trained
    lines = path.read_text().splitlines()
    lines[3] = "not,a,row"
    damaged = tmp_path / "damaged.csv"
    damaged.write_text("\n".join(lines) + "\n")
    selection, dataset, _ = selected("--data", str(damaged), "--skip-bad-rows", "--split-seed", "7")
    assert set(selection.rows(dataset).rows.tolist()) == test_rows - {3}
