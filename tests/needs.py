"""What a test does when this machine lacks something it needs. Imported as ``tests.needs``."""

from __future__ import annotations

import os

import pytest


def unavailable(reason: str) -> None:
    """A test that cannot run here: skipped on a developer's machine, a failure under CI (`CI=true`), where
    everything a test needs is installed by .ci/run, so a missing piece is a broken set-up, not a pass."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: a test that cannot run is a failure)", pytrace=False)
    pytest.skip(reason)
