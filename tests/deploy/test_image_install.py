"""The image builds, for both variants, from exactly the files its build context admits, and its worker serves
with the environment compose gives it. No Docker engine here: tests/deploy/image.py runs the Dockerfile's own
steps (its RUN commands, its smoke commands) on a stand-in root, and says what it cannot do."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from anomstream.brokers import free_port
from anomstream.stream import codec
from tests.checkout import clean_copy
from tests.deploy.image import Build, BuildFailed, Image, build_context, compose_config, context_files
from tests.worker_process import WorkerProcess

pytestmark = pytest.mark.slow
MODEL_DIR = "artifacts/tiny-dense"
TRAINING_STACK = ("tensorflow", "keras", "pandas", "sklearn")


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory, tiny_artifact: Path) -> Path:
    """A clean clone with a trained artifact where `docker build --build-arg MODEL_DIR=...` would find it."""
    tree = clean_copy(tmp_path_factory.mktemp("clone"))
    shutil.copytree(tiny_artifact, tree / MODEL_DIR)
    (tree / MODEL_DIR / "report").mkdir()
    (tree / MODEL_DIR / "report" / "roc.png").write_bytes(b"\x89PNG")  # a report beside the model stays out of the image
    return tree


def build(clone: Path, root: Path, runtime: str, dockerfile: str | None = None) -> Image:
    context = build_context(clone, root.parent / f"{root.name}-context")
    args = {"RUNTIME": runtime, "MODEL_DIR": MODEL_DIR, "TARGETARCH": "amd64", "EXTRAS": ""}
    return Build(dockerfile or (clone / "Dockerfile").read_text(), context, root, args).run()


@pytest.fixture(scope="module", params=["tensorflow", "litert"])
def image(request: pytest.FixtureRequest, clone: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Image]:
    """The image for RUNTIME=tensorflow (the full one) and RUNTIME=litert (the slim worker), built once each."""
    runtime = request.param
    return runtime, build(clone, tmp_path_factory.mktemp(f"image-{runtime}"), runtime)


def in_image(image: Image, code: str) -> str:
    import subprocess

    done = subprocess.run([str(image.python), "-c", code], capture_output=True, text=True, timeout=300, env=image.env, cwd=image.workdir)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_context_holds_the_package_and_nothing_else(clone: Path) -> None:
    files = set(context_files(clone))
    for folder in ("anomstream", "stream", "models", "replay", "brokers", "benchmarks"):
        assert any(name.startswith(f"{folder}/") for name in files), f"{folder}/ is not in the build context"
    assert not [name for name in files if name.startswith(("tests/", "deploy/", ".ci/", "benchmarks/results/"))]
    assert {name for name in files if name.startswith("artifacts/")} == {f"{MODEL_DIR}/{name}" for name in ("model.json", "model.keras", "model.tflite")}


def test_each_variant_builds_and_passes_its_own_smoke_commands(image: tuple[str, Image]) -> None:
    """The build stage ran `pip install --no-deps .`, `anomstream worker --help` and the LiteRT import; here the result."""
    runtime, built = image
    assert any("anomstream worker --help" in step for step in built.log)
    missing = in_image(built, f"import importlib.util; print([m for m in {TRAINING_STACK!r} if importlib.util.find_spec(m) is None])")
    assert missing == ("[]" if runtime == "tensorflow" else str(list(TRAINING_STACK)))
    if runtime == "tensorflow":  # amd64: the CPU-only wheel, same API
        assert in_image(built, "import importlib.metadata as m; print(m.version('tensorflow-cpu'))").startswith("2.")
    assert in_image(built, "import anomstream, sys; print(anomstream.__file__.startswith(sys.prefix))") == "True"
    baked = built.path("/models/current")
    assert sorted(p.name for p in baked.iterdir()) == ["model.json", "model.keras", "model.tflite"]
    assert not built.path("/context").exists() and not (built.path("/opt/anomstream/bin") / "pip").exists()
    assert built.env["ANOMSTREAM_RUNTIME"] == runtime and built.entrypoint == ["anomstream", "worker"]


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for value in values:
        producer.produce(topic, value)
    assert producer.flush(30) == 0


def consume(bootstrap: str, topic: str, count: int, timeout: float = 90.0) -> list[dict]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{uuid.uuid4().hex[:6]}",
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed"})  # fmt: skip
    consumer.subscribe([topic])
    found: list[dict] = []
    deadline = time.monotonic() + timeout
    try:
        while len(found) < count and time.monotonic() < deadline:
            found += [json.loads(m.value()) for m in consumer.consume(100, timeout=0.5) if m.error() is None]
    finally:
        consumer.close()
    return found


@pytest.mark.integration
def test_the_entrypoint_serves_with_the_environment_compose_gives_it(
    image: tuple[str, Image], repo: Path, tool: Callable[[str], str], kafka_bootstrap: str, new_topic: Callable[..., str],
    windows: Callable[..., tuple], tmp_path: Path,
) -> None:  # fmt: skip
    """`RUNTIME=litert docker compose up`: the slim image's worker with compose's environment over the image's ENV
    (which once set ANOMSTREAM_RUNTIME=tensorflow and crash-looped on `import keras`). Only where it runs changes:
    the broker, fresh topics, the group and the metrics port."""
    runtime, built = image
    worker = compose_config(repo, tool("docker-compose"), **({"RUNTIME": runtime} if runtime != "tensorflow" else {}))["services"]["worker"]
    assert worker["build"]["args"]["RUNTIME"] == runtime
    topics = {name: new_topic() for name in ("INPUT", "SCORES", "OUTPUT", "DLQ")}
    port = free_port()
    env = {
        **built.env,
        **{name: built_path(built, str(value)) for name, value in worker["environment"].items()},
        "ANOMSTREAM_BOOTSTRAP_SERVERS": kafka_bootstrap,
        **{f"ANOMSTREAM_{name}_TOPIC": topic for name, topic in topics.items()},
        "ANOMSTREAM_GROUP_ID": f"image-{uuid.uuid4().hex[:8]}",
        "ANOMSTREAM_METRICS_HOST": "127.0.0.1",
        "ANOMSTREAM_METRICS_PORT": str(port),
    }
    command = [shutil.which(built.entrypoint[0], path=env["PATH"]), *built.entrypoint[1:]]
    assert command[0] == str(built.path("/opt/anomstream/bin/anomstream"))
    normal, _ = windows(20, 0, 5)
    produce(kafka_bootstrap, topics["INPUT"], [codec.encode_window(f"img-{i}", row) for i, row in enumerate(normal)])
    log = tmp_path / "worker.log"
    with WorkerProcess(command, log, port, env=env, stdout=log, cwd=built.workdir) as process:
        process.wait_ready(120)
        verdicts = consume(kafka_bootstrap, topics["SCORES"], 20)
        assert process.stop(60) == 0, process.log_tail()
    assert sorted(v["id"] for v in verdicts) == sorted(f"img-{i}" for i in range(20))
    assert f"on {runtime}" in log.read_text()


def built_path(built: Image, value: str) -> str:
    """A compose value that names an image path (its volumes mount there) as the stand-in root has it."""
    return str(built.path(value)) if value.startswith("/models") else value


def test_a_package_folder_the_dockerfile_leaves_out_fails_the_build(clone: Path, tmp_path: Path) -> None:
    """The build has teeth: without `COPY benchmarks` (as shipped until this test, with `cli.py` importing the
    bench) the slim image does not build."""
    dockerfile = (clone / "Dockerfile").read_text()
    assert "COPY benchmarks ./benchmarks\n" in dockerfile
    with pytest.raises(BuildFailed, match=r"RUN in stage build failed .*pip install --no-deps \."):
        build(clone, tmp_path / "root", "litert", dockerfile.replace("COPY benchmarks ./benchmarks\n", ""))
