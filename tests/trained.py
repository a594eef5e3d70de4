"""Artifacts the suite trains once per run, whichever test or xdist worker asks first. Imported as ``tests.trained``.

A fixture keyed by its recipe (the TrainConfig) and its name: the first caller trains and saves it under a lock
in a folder all workers of the run share; the others wait on the lock and read it. Training TensorFlow models
again in each worker cost 5-10 s a model, on cores the brokers and the other workers need.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def run_folder(factory: pytest.TempPathFactory) -> Path:
    """A folder every xdist worker of this run shares: the run's basetemp (each worker's own is a child of it)."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def artifact(factory: pytest.TempPathFactory, name: str, dataset: Callable[[], Any], config: Any) -> Path:
    """The artifact `train(dataset(), config)` saves, trained once per run and recipe; never write into it."""
    from anomstream.models import artifact as artifacts

    key = hashlib.sha256(repr(config).encode()).hexdigest()[:10]
    root = run_folder(factory) / "trained"
    root.mkdir(exist_ok=True)
    out = root / f"{name}-{key}"
    with (root / f"{name}-{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this worker dies
        if not (out / artifacts.META_FILE).is_file():
            from anomstream.models.train import train

            partial = root / f".{name}-{key}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            result = train(dataset(), config)
            artifacts.save(partial, result.model, result.metadata_fields, result.fitted)
            partial.rename(out)
    return out
