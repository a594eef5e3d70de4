"""The repository as a clean clone holds it, for the tests that build what a user builds (a wheel, the image).

Imported as ``tests.checkout``, like ``tests.worker_process``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def clean_copy(destination: Path) -> Path:
    """git's tracked files and the new ones it does not ignore, each as the work tree has it, copied to `destination`."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():  # deleted in the work tree but still in the index: a clean clone would not have it either
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination
