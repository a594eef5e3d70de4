"""docker-compose.yml, as far as it can be checked without a Docker engine: docker-compose validates it,
and its structure, images and ANOMSTREAM_* configuration are checked against the CLI the image runs."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from anomstream.config import env_names

SERVICES = {"kafka", "topics", "train", "worker", "prometheus", "grafana", "replay"}
TOPICS = {"telemetry-windows", "telemetry-scores", "telemetry-anomalies", "telemetry-windows-dlq"}


@pytest.fixture(scope="module")
def compose(repo: Path) -> dict[str, Any]:
    """The file as written (PyYAML resolves the `<<:` merges as compose does)."""
    return yaml.safe_load((repo / "docker-compose.yml").read_text())


def resolve(repo: Path, tool: Callable[[str], str], **variables: str) -> dict[str, Any]:
    """The file as docker-compose resolves it (${VAR:-default} filled in from `variables`), replay profile on."""
    done = subprocess.run(
        [tool("docker-compose"), "-f", "docker-compose.yml", "--profile", "replay", "config"],
        cwd=repo, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin", **variables},
    )
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


@pytest.fixture(scope="module")
def resolved(repo: Path, tool: Callable[[str], str]) -> dict[str, Any]:
    return resolve(repo, tool)


def settings_env_names() -> set[str]:
    """Every ANOMSTREAM_* variable the CLI reads (anomstream.config.env_names)."""
    from anomstream.cli import build_parser

    return env_names(build_parser())


def test_docker_compose_config_accepts_the_file(repo: Path, tool: Callable[[str], str]) -> None:
    binary = tool("docker-compose")
    version = subprocess.run([binary, "version", "--short"], capture_output=True, text=True, timeout=30).stdout.strip()
    done = subprocess.run([binary, "-f", "docker-compose.yml", "config", "-q"], cwd=repo, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"docker-compose {version}: {done.stdout}{done.stderr}"


def test_docker_compose_config_rejects_a_broken_copy(repo: Path, tool: Callable[[str], str], tmp_path: Path) -> None:
    """The check above has teeth: the same file with a non-integer replica count is refused."""
    text = (repo / "docker-compose.yml").read_text()
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text.replace("replicas: 2", "replicas: two", 1))
    assert broken.read_text() != text
    done = subprocess.run(
        [tool("docker-compose"), "-f", str(broken), "--project-directory", str(repo), "config", "-q"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode != 0 and "replicas" in done.stdout + done.stderr


def test_services_healthchecks_and_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == SERVICES
    for name in ("kafka", "prometheus", "grafana"):
        assert services[name]["healthcheck"]["test"], f"{name} has no healthcheck"
    # The worker's healthcheck is the image's HEALTHCHECK; the jobs share the image and turn it off.
    for name in ("topics", "train", "replay"):
        assert services[name]["healthcheck"] == {"disable": True}
        assert services[name]["restart"] == "no"
    assert services["replay"]["profiles"] == ["replay"]
    assert [name for name, service in services.items() if "profiles" in service] == ["replay"]
    worker = services["worker"]
    assert worker["deploy"]["replicas"] == 2
    assert "ports" not in worker, "two replicas cannot publish the same host port"
    assert worker["depends_on"] == {
        "kafka": {"condition": "service_healthy"},
        "topics": {"condition": "service_completed_successfully"},
        "train": {"condition": "service_completed_successfully"},
    }
    assert services["topics"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    assert services["grafana"]["depends_on"] == {"prometheus": {"condition": "service_healthy"}}
    # The full image for train and replay; the worker's is built for its RUNTIME. Each service can build its
    # image (never pulled from a registry).
    assert services["train"]["image"] == services["replay"]["image"] == "anomstream:0.1.0"
    assert worker["image"] == "anomstream:0.1.0-${RUNTIME:-tensorflow}" and worker["build"]["args"]["RUNTIME"] == "${RUNTIME:-tensorflow}"
    assert services["train"]["build"]["args"]["RUNTIME"] == "tensorflow", "the train job needs TensorFlow whatever the worker runs"
    assert all(services[name]["build"]["context"] == "." for name in ("worker", "train", "replay"))


ROOT_USERS = {"0", "root"}


def root_overrides(services: dict[str, Any], own_image: str) -> list[str]:
    """Services that compose would run as root or privileged, overriding their image's user."""
    problems = []
    for name, service in services.items():
        user = str(service.get("user", "")).strip()
        uid, _, gid = user.partition(":")
        if uid in ROOT_USERS or gid in ROOT_USERS:
            problems.append(f"{name}: user {user}")
        if service.get("image") == own_image and user:
            problems.append(f"{name}: user {user} replaces the image's non-root USER")
        if service.get("privileged") or "ALL" in service.get("cap_add", []):
            problems.append(f"{name}: privileged")
    return problems


def test_no_service_is_made_to_run_as_root(resolved: dict[str, Any]) -> None:
    """The image runs as uid 10001 (tests/deploy/test_dockerfile.py); compose must not put root back."""
    services = resolved["services"]
    own = services["worker"]["image"]
    assert root_overrides(services, own) == []
    # The check has teeth: root anywhere, any `user:` on our image, or a privileged service is caught.
    for name, change, problem in (
        ("kafka", {"user": "root"}, "kafka: user root"),
        ("train", {"user": "0:0"}, "train: user 0:0"),
        ("worker", {"user": "10002"}, "worker: user 10002 replaces the image's non-root USER"),
        ("grafana", {"privileged": True}, "grafana: privileged"),
    ):
        assert problem in root_overrides({**services, name: {**services[name], **change}}, own)


def test_images_are_pinned(resolved: dict[str, Any], repo: Path) -> None:
    images = {name: service["image"] for name, service in resolved["services"].items()}
    dockerfile_base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", (repo / "Dockerfile").read_text(), re.MULTILINE)
    assert dockerfile_base, "the Dockerfile's base image is the PYTHON_IMAGE build arg"
    images["Dockerfile"] = dockerfile_base.group(1)
    assert images["Dockerfile"].startswith("python:3.11-slim")
    for name, image in images.items():
        reference = image.split("@", 1)[0]
        assert ":" in reference.rsplit("/", 1)[-1], f"{name}: {image} has no tag"
        tag = reference.rsplit(":", 1)[1]
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not pinned to a version"
    assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", images["kafka"])
    assert images["topics"] == images["kafka"]


def test_topics_job_creates_what_the_worker_uses(compose: dict[str, Any]) -> None:
    services = compose["services"]
    script = "\n".join(services["topics"]["command"])
    created = dict(re.findall(r"(telemetry-[a-z-]+):(\d+)", script))
    assert set(created) == TOPICS
    env = services["worker"]["environment"]
    used = {env[f"ANOMSTREAM_{kind}_TOPIC"] for kind in ("INPUT", "SCORES", "OUTPUT", "DLQ")}
    assert used == TOPICS
    # Scaling rule: replicas beyond the input's partition count would sit idle.
    assert int(created[env["ANOMSTREAM_INPUT_TOPIC"]]) == 4 >= services["worker"]["deploy"]["replicas"]
    assert services["replay"]["environment"]["ANOMSTREAM_TOPIC"] == env["ANOMSTREAM_INPUT_TOPIC"]


def test_prometheus_and_grafana_mounts_match_their_configs(compose: dict[str, Any], repo: Path) -> None:
    services = compose["services"]
    mounts = {source: target.removesuffix(":ro") for source, target in (v.split(":", 1) for v in services["prometheus"]["volumes"])}
    config = yaml.safe_load((repo / "deploy/prometheus.yml").read_text())
    config_dir = Path(mounts["./deploy/prometheus.yml"]).parent
    assert [str(config_dir / rule) for rule in config["rule_files"]] == [mounts["./deploy/alerts.yml"]]
    job = next(job for job in config["scrape_configs"] if job["job_name"] == "anomstream-worker")
    (dns,) = job["dns_sd_configs"]
    assert "worker" in dns["names"] and dns["type"] == "A"
    assert str(dns["port"]) == services["worker"]["environment"]["ANOMSTREAM_METRICS_PORT"]

    grafana = {source: target.removesuffix(":ro") for source, target in (v.split(":", 1) for v in services["grafana"]["volumes"])}
    assert grafana["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = yaml.safe_load((repo / "deploy/grafana/provisioning/dashboards/dashboards.yml").read_text())["providers"][0]
    assert provider["options"]["path"] == grafana["./deploy/grafana/dashboards"]
    datasource = yaml.safe_load((repo / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"


def test_every_anomstream_variable_is_a_real_setting(repo: Path) -> None:
    known = settings_env_names()
    assert {"ANOMSTREAM_BOOTSTRAP_SERVERS", "ANOMSTREAM_MODEL", "ANOMSTREAM_KAFKA_PROPERTY", "ANOMSTREAM_LOG_LEVEL"} <= known
    for path in ("docker-compose.yml", "Dockerfile", "deploy/README.md"):
        used = set(re.findall(r"\bANOMSTREAM_[A-Z0-9_]+\b", (repo / path).read_text()))
        assert used, f"{path} names no ANOMSTREAM_ variable"
        assert not used - known, f"{path} uses variables no flag reads: {sorted(used - known)}"


def dockerfile_env(repo: Path) -> dict[str, str]:
    text = re.sub(r"\\\n\s*", " ", (repo / "Dockerfile").read_text())
    runtime = text.rsplit("\nFROM ", 1)[1]
    env: dict[str, str] = {}
    for line in runtime.splitlines():
        if line.startswith("ENV "):
            env.update(re.findall(r"(\w+)=(\S+)", line))
    return env


@pytest.mark.parametrize(("service", "runtime"), [("worker", "tensorflow"), ("worker", "litert"), ("train", "tensorflow"), ("replay", "tensorflow")])
def test_compose_environment_is_a_valid_configuration(service: str, runtime: str, repo: Path, tool: Callable[[str], str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI parses each service's environment (its image's ENV for the RUNTIME it is built with, then compose's)
    into what we meant; the worker runs on the runtime its image was built for (RUNTIME=litert docker compose up)."""
    from anomstream.cli import build_parser
    from anomstream.stream.settings import WorkerSettings

    resolved = resolve(repo, tool, **({"RUNTIME": runtime} if runtime != "tensorflow" else {}))
    config = resolved["services"][service]
    built_for = config["build"]["args"]["RUNTIME"]
    assert built_for == runtime
    image = {k: v.replace("${RUNTIME}", built_for) for k, v in dockerfile_env(repo).items() if k.startswith("ANOMSTREAM_")}
    assert image == {"ANOMSTREAM_MODEL": "/models/current", "ANOMSTREAM_RUNTIME": built_for, "ANOMSTREAM_METRICS_PORT": "9100"}
    environment = {**image, **{k: str(v) for k, v in config["environment"].items()}}
    for name in [name for name in os.environ if name.startswith("ANOMSTREAM_")]:
        monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    argv = {"worker": ["worker"], "train": ["train", "--out", "/models/current"], "replay": ["replay"]}[service]
    args = build_parser().parse_args(argv)
    if service == "worker":
        settings = WorkerSettings.from_args(args)
        assert (settings.bootstrap_servers, settings.group_id, settings.delivery) == ("kafka:9092", "anomstream", "exactly-once")
        assert (str(settings.model), settings.metrics_port, settings.metrics_host) == ("/models/current", 9100, "0.0.0.0")
        assert settings.runtime == runtime, "compose must not override the runtime its worker image was built for"
        assert config["image"] == f"anomstream:0.1.0-{runtime}"
        assert settings.transactional_id.startswith("anomstream-anomstream-")  # unique per container: <hostname>-<pid>
    elif service == "replay":
        assert (args.bootstrap_servers, args.topic, args.split, args.rate, args.loop) == ("kafka:9092", "telemetry-windows", "test", 100.0, 60)
    else:
        assert args.out == Path("/models/current") and args.preset == "default" and args.arch is None  # the default recipe
