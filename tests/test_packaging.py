"""The wheel a user installs: one import name, and a program that runs outside the repository.

Built from the files a clean clone holds (git's tracked files, and new ones it does not ignore), with
pip as a user builds it, and installed non-editable into a fresh virtual environment: nothing of the
repository is importable there, so a module that only works from the source tree fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests.checkout import REPO, clean_copy

pytestmark = pytest.mark.slow


def run(command: list[str], timeout: float = 900, **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{' '.join(map(str, command))} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = clean_copy(tmp_path_factory.mktemp("clone"))
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(source)])
    (built,) = out.glob("anomstream-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel, its dependencies and the embedded broker: its `bin` directory."""
    home = tmp_path_factory.mktemp("venv")
    venv.create(home, with_pip=True)
    # --no-compile: byte-compiling all of TensorFlow was ~40% of this install (62 -> 39 s, 72 -> 47 s measured);
    # what the demo imports is compiled as it loads instead (+8 s): this module 100.6 -> 88.0 s
    run([str(home / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-compile", f"{wheel}[broker]"])
    return home / "bin"


def test_the_wheel_holds_anomstream_alone(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/", 1)[0] for name in names} == {"anomstream", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
    for module in ("cli", "errors", "stream/worker", "models/detector", "replay/demo", "brokers/tansu", "benchmarks/command"):
        assert f"anomstream/{module}.py" in names
    assert not [name for name in names if "/tests/" in name or name.endswith((".json", ".csv", ".gz"))]
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "anomstream = anomstream.cli:run" in entry_points


def test_beside_a_users_own_models_package_both_import(installed: Path, tmp_path: Path) -> None:
    project = tmp_path / "user-project"
    (project / "models").mkdir(parents=True)
    (project / "models" / "__init__.py").write_text('OWNER = "the user"\n')
    probe = "import models, anomstream, anomstream.models; print(models.OWNER); print(anomstream.__file__); print(anomstream.models.__file__)"
    lines = run([str(installed / "python"), "-c", probe], cwd=project).stdout.splitlines()
    site = str(installed.parent / "lib")
    assert lines[0] == "the user"
    assert lines[1].startswith(site) and lines[2].startswith(site), lines  # the installed copy, not the repository's
    assert "anomstream" in run([str(installed / "anomstream"), "--help"], cwd=project).stdout
    assert "score telemetry windows" in run([str(installed / "python"), "-m", "anomstream", "--help"], cwd=project).stdout


def test_the_demo_runs_from_a_directory_outside_the_repository(installed: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PATH": f"{installed}:{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    done = run([str(installed / "anomstream"), "demo", "--json"], cwd=elsewhere, env=env, timeout=900)
    summary = json.loads(done.stdout)
    assert summary["healthy"] is True and summary["scored"] == 1000 and summary["dead_letters"] == 3
    assert (elsewhere / "reports" / "demo" / "report.md").is_file()
    assert str(REPO) not in done.stderr  # nothing was loaded from the source tree
