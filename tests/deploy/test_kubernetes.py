"""deploy/kubernetes/, checked offline (no cluster here): every manifest against the Kubernetes API schemas of
KUBERNETES_VERSIONS (the kubernetes-validate package ships them), the CRD kinds against their documented fields,
and the settings, images, replica bounds and timings against the code, the Dockerfile, compose and BENCHMARKS.md."""

from __future__ import annotations

import copy
import inspect
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from anomstream.config import env_names
from tests.needs import unavailable

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy/kubernetes"
# The oldest and the newest minor version these manifests are validated against (kubernetes-validate's schemas).
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
CRD_KINDS = {"ScaledObject", "TriggerAuthentication", "ServiceMonitor", "PrometheusRule"}  # test_kubernetes_crds.py
CLUSTER_SCOPED = {"Namespace"}


# ---------------------------------------------------------------- rendering, as `kubectl kustomize` does for this folder
def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kustomization(folder: Path) -> dict[str, Any]:
    return yaml.safe_load((folder / "kustomization.yaml").read_text())


def json_patch(doc: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """The `replace`/`add` operations of RFC 6902 on mapping and list paths: all the component uses."""
    doc = copy.deepcopy(doc)
    for op in ops:
        assert op["op"] in ("replace", "add"), f"unsupported JSON patch op {op['op']}"
        *parents, last = [int(part) if part.isdigit() else part for part in op["path"].strip("/").split("/")]
        node: Any = doc
        for part in parents:
            node = node[part]
        if op["op"] == "replace":
            node[last]  # noqa: B018 (replace needs the target to exist)
        node[last] = op["value"]
    return doc


def render(components: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The objects `kubectl apply -k deploy/kubernetes` sends, with `components` (sub-folders) applied."""
    base = kustomization(K8S)
    objects = []
    for name in base["resources"]:
        for doc in documents(K8S / name):
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = base["namespace"]
            objects.append(doc)
    for component in components:
        for patch in kustomization(K8S / component)["patches"]:
            target, ops = patch["target"], yaml.safe_load(patch["patch"])
            objects = [json_patch(o, ops) if (o["kind"], o["metadata"]["name"]) == (target["kind"], target["name"]) else o for o in objects]
    return objects


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    return found


def pod_specs(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    specs = {o["metadata"]["name"]: o["spec"]["template"]["spec"] for o in objects if o["kind"] in ("StatefulSet", "Job")}
    specs |= {o["metadata"]["name"]: o["spec"]["jobTemplate"]["spec"]["template"]["spec"] for o in objects if o["kind"] == "CronJob"}
    return specs


def configmap(objects: list[dict[str, Any]], name: str = "anomstream-worker") -> dict[str, str]:
    return find(objects, "ConfigMap", name)["data"]


@pytest.fixture(scope="module", params=[(), ("litert",)], ids=["tensorflow", "litert"])
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(request.param)


# ---------------------------------------------------------------- the kustomization
def unlisted(folder: Path, listed: list[str]) -> set[str]:
    """YAML files of `folder` the kustomization does not list (components are folders with their own)."""
    return {p.name for p in folder.glob("*.yaml") if p.name != "kustomization.yaml"} - set(listed)


def test_the_kustomization_lists_every_manifest() -> None:
    base = kustomization(K8S)
    assert base["kind"] == "Kustomization" and base["namespace"] == "anomstream"
    assert not unlisted(K8S, base["resources"]), f"not in kustomization.yaml: {sorted(unlisted(K8S, base['resources']))}"
    assert all((K8S / name).is_file() for name in base["resources"])
    assert unlisted(K8S, base["resources"][1:]) == {base["resources"][0]}, "the check has teeth: a missing entry is found"
    for folder in (p for p in K8S.iterdir() if p.is_dir()):
        assert kustomization(folder)["kind"] == "Component" and not unlisted(folder, []), f"{folder.name}: one Component, no loose manifests"


KUSTOMIZE = "v5.6.0"  # sigs.k8s.io/kustomize/kustomize/v5, built from the Go module proxy once and cached


@pytest.fixture(scope="session")
def kustomize() -> str:
    """kustomize itself: on PATH, else cached under $XDG_CACHE_HOME/anomstream, else built there with `go install`
    (about 40 s, once), as the Kafka jars come from Maven. Without Go it cannot be had: `tests.needs.unavailable`."""
    from anomstream.models.data import cache_dir

    found = shutil.which("kustomize")
    if found:
        return found
    bin_dir = cache_dir() / f"kustomize-{KUSTOMIZE}"
    if not (bin_dir / "kustomize").is_file():
        go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").is_file() else None)
        if go is None:
            unavailable("kustomize is not installed and there is no Go toolchain to build it")
        done = subprocess.run([go, "install", f"sigs.k8s.io/kustomize/kustomize/v5@{KUSTOMIZE}"], capture_output=True, text=True,
                              timeout=900, env={**os.environ, "GOBIN": str(bin_dir)})  # fmt: skip
        assert done.returncode == 0, f"go install kustomize {KUSTOMIZE} failed:\n{done.stderr[-3000:]}"
    return str(bin_dir / "kustomize")


def test_kustomize_renders_what_the_tests_check(tmp_path: Path, kustomize: str) -> None:
    """A cross-check of `render`: kustomize's own build (what `kubectl apply -k` runs) gives the same objects."""
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    relative = Path(*[".."] * len(overlay.parts[1:])) / K8S.relative_to("/")
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({"resources": [str(relative)], "components": [str(relative / "litert")]}))
    for folder, components in ((K8S, ()), (overlay, ("litert",))):
        done = subprocess.run([kustomize, "build", "--load-restrictor", "LoadRestrictionsNone", str(folder)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
        assert sorted(yaml.safe_load_all(done.stdout), key=key) == sorted(render(components), key=key)


# ---------------------------------------------------------------- schemas
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_builtin_manifest_validates_against_the_kubernetes_schemas(version: str, rendered: list[dict[str, Any]]) -> None:
    import kubernetes_validate

    builtin = [o for o in rendered if o["kind"] not in CRD_KINDS]
    assert {o["kind"] for o in builtin} == {"Namespace", "ConfigMap", "Secret", "PersistentVolumeClaim", "Job", "CronJob", "Service", "StatefulSet", "PodDisruptionBudget"}
    for obj in builtin:
        kubernetes_validate.validate(obj, version, strict=True)
    broken = copy.deepcopy(find(rendered, "StatefulSet"))
    broken["spec"]["template"]["spec"]["terminationGracePeriodSecond"] = 90  # a typo: strict mode refuses unknown fields
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)


# ---------------------------------------------------------------- alerts
def test_the_prometheusrule_holds_exactly_the_alerts_of_alerts_yml(tool: Any, tmp_path: Path) -> None:
    import importlib.util

    alerts_text = (REPO / "deploy/alerts.yml").read_text()
    rule = find(render(), "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(alerts_text)["groups"]
    spec = importlib.util.spec_from_file_location("render_rules", K8S / "render_rules.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (K8S / "prometheusrule.yaml").read_text() == module.render(alerts_text), "stale: run python deploy/kubernetes/render_rules.py"
    assert module.manifest(alerts_text.replace("> 0.2", "> 0.3"))["spec"]["groups"] != rule["spec"]["groups"]
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rule["spec"]))
    done = subprocess.run([tool("promtool"), "check", "rules", str(tmp_path / "rules.yml")], capture_output=True, text=True, timeout=60)
    alerts = sum(len(group["rules"]) for group in yaml.safe_load(alerts_text)["groups"])
    assert done.returncode == 0 and f"SUCCESS: {alerts} rules found" in done.stdout, done.stdout + done.stderr


def test_the_servicemonitor_gives_the_job_the_alerts_expect() -> None:
    objects = render()
    service, monitor, workers = find(objects, "Service"), find(objects, "ServiceMonitor"), find(objects, "StatefulSet")
    jobs = set(re.findall(r'job="([^"]+)"', (REPO / "deploy/alerts.yml").read_text()))
    assert jobs == {service["metadata"]["name"]} and "jobLabel" not in monitor["spec"]  # the operator's job is the Service's name
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert service["spec"]["selector"].items() <= workers["spec"]["template"]["metadata"]["labels"].items()
    assert workers["spec"]["serviceName"] == service["metadata"]["name"] and service["spec"]["clusterIP"] == "None"
    (port,) = service["spec"]["ports"]
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == [port["name"]] == [port["targetPort"]]
    (container,) = workers["spec"]["template"]["spec"]["containers"]
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [(port["name"], int(configmap(objects)["ANOMSTREAM_METRICS_PORT"]))]
    assert (container["livenessProbe"]["httpGet"]["path"], container["readinessProbe"]["httpGet"]["path"]) == ("/healthz", "/readyz")
    pdb = find(objects, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == workers["spec"]["selector"]["matchLabels"] and pdb["spec"]["maxUnavailable"] == 1


# ---------------------------------------------------------------- settings, images, replicas, timings
def cli_env_names() -> set[str]:
    """Every ANOMSTREAM_* variable the CLI reads (anomstream.config.env_names)."""
    from anomstream.cli import build_parser

    return env_names(build_parser())


def unknown_env_names(text: str) -> set[str]:
    return set(re.findall(r"\bANOMSTREAM_[A-Z0-9_]+\b", text)) - cli_env_names()


def test_every_anomstream_variable_in_the_manifests_is_a_setting() -> None:
    files = [p for p in sorted(K8S.rglob("*")) if p.suffix in (".yaml", ".md")]
    used = set().union(*(re.findall(r"\bANOMSTREAM_[A-Z0-9_]+\b", p.read_text()) for p in files))
    assert {"ANOMSTREAM_INSTANCE_ID", "ANOMSTREAM_KAFKA_CONFIG", "ANOMSTREAM_INPUT_TOPIC"} <= used
    for path in files:
        assert not unknown_env_names(path.read_text()), f"{path.name}: no flag reads {sorted(unknown_env_names(path.read_text()))}"
    assert unknown_env_names("ANOMSTREAM_BOOTSTRAP_SERVER: kafka:9092") == {"ANOMSTREAM_BOOTSTRAP_SERVER"}


def image_env(runtime: str) -> dict[str, str]:
    """The ANOMSTREAM_* variables the runtime stage of the Dockerfile sets, for an image built with RUNTIME=runtime."""
    text = re.sub(r"\\\n\s*", " ", (REPO / "Dockerfile").read_text()).rsplit("\nFROM ", 1)[1]
    pairs = [pair for line in text.splitlines() if line.startswith("ENV ") for pair in re.findall(r"(ANOMSTREAM_\w+)=(\S+)", line)]
    return {k: v.replace("${RUNTIME}", runtime) for k, v in pairs}


def image_problems(image: str, full: str, runtimes: set[str]) -> list[str]:
    """Why `image` is not a worker image the Dockerfile builds: `<full image>-<RUNTIME>`, as compose names it."""
    base, _, runtime = image.rpartition("-")
    return [f"{image} is not {full}-<runtime>"] * (base != full) + [f"{runtime} is not one of {sorted(runtimes)}"] * (runtime not in runtimes)


def test_images_are_the_ones_the_dockerfile_and_compose_build(rendered: list[dict[str, Any]]) -> None:
    from anomstream import __version__

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    full = compose["train"]["image"]
    worker_image = re.sub(r"\$\{RUNTIME:-(\w+)\}", r"\1", compose["worker"]["image"])
    assert full == f"anomstream:{__version__}" and worker_image == f"anomstream:{__version__}-tensorflow"
    runtimes = set(re.findall(r"runtime in \(([^)]*)\)", (REPO / "Dockerfile").read_text())[0].replace("'", "").replace(" ", "").split(","))
    specs = pod_specs(rendered)
    (worker,) = specs["anomstream-worker"]["containers"]
    assert not image_problems(worker["image"], full, runtimes)
    assert [c["image"] for c in specs["anomstream-worker"]["initContainers"]] == [worker["image"]], "one image to pull per worker"
    assert image_problems("anomstream:latest", full, runtimes) and image_problems(f"{full}-onnx", full, runtimes)
    for job in ("anomstream-train", "anomstream-retrain", "anomstream-model-rollback"):
        assert [c["image"] for c in specs[job]["containers"]] == [full], "training needs the full (TensorFlow) image"
    assert "ANOMSTREAM_RUNTIME" not in configmap(rendered), "the image carries its runtime; a ConfigMap value would override it"


def test_the_worker_environment_parses_into_the_intended_settings(rendered: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Image ENV, then the ConfigMap, then the pod's own env, with the Secret's properties file where it is mounted."""
    from anomstream.cli import build_parser
    from anomstream.stream.settings import WorkerSettings, default_transactional_id

    spec = pod_specs(rendered)["anomstream-worker"]
    (container,) = spec["containers"]
    runtime = container["image"].rpartition("-")[2]
    env = {**image_env(runtime), **configmap(rendered)}
    (downward,) = container["env"]
    assert downward == {"name": "ANOMSTREAM_INSTANCE_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
    env[downward["name"]] = pod = "anomstream-worker-2"
    secret = find(rendered, "Secret")["stringData"]
    mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "kafka")
    assert env["ANOMSTREAM_KAFKA_CONFIG"] == f"{mount}/kafka.properties"
    (tmp_path / "kafka.properties").write_text(secret["kafka.properties"])
    env["ANOMSTREAM_KAFKA_CONFIG"] = str(tmp_path / "kafka.properties")
    for name in [name for name in os.environ if name.startswith("ANOMSTREAM_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = WorkerSettings.from_args(build_parser().parse_args(["worker"]))
    assert (settings.runtime, settings.delivery, settings.metrics_port, str(settings.model)) == (runtime, "exactly-once", 9100, "/models/current")
    assert settings.instance_id == pod and settings.consumer_identity() == {"group.instance.id": pod}
    assert settings.transactional_id == default_transactional_id(settings.group_id, pod) == f"anomstream-{settings.group_id}-{pod}"
    models = next(m for m in container["volumeMounts"] if m["name"] == "models")
    assert str(settings.model).startswith(models["mountPath"] + "/") and models["readOnly"]


def replica_problems(scaled: dict[str, Any], partitions: int) -> list[str]:
    """KEDA's bounds against the input's partitions: a replica past them would only idle."""
    low, high = scaled["minReplicaCount"], scaled["maxReplicaCount"]
    return [f"replicas {low}..{high} for {partitions} partitions"] * (not 1 <= low <= high <= partitions)


def test_max_replicas_is_the_input_partition_count() -> None:
    objects = render()
    scaled, config = find(objects, "ScaledObject")["spec"], configmap(objects)
    partitions = int(configmap(objects, "anomstream-topics")[config["ANOMSTREAM_INPUT_TOPIC"]])
    assert scaled["minReplicaCount"] == 1 and scaled["maxReplicaCount"] == partitions == 4
    assert scaled["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "anomstream-worker", "envSourceContainerName": "worker"}
    (trigger,) = scaled["triggers"]
    metadata = trigger["metadata"]
    sources = {"bootstrapServersFromEnv": "ANOMSTREAM_BOOTSTRAP_SERVERS", "consumerGroupFromEnv": "ANOMSTREAM_GROUP_ID", "topicFromEnv": "ANOMSTREAM_INPUT_TOPIC"}
    assert {k: metadata[k] for k in sources} == sources and set(sources.values()) <= config.keys()  # the worker's own values
    assert metadata["offsetResetPolicy"] == "earliest" and int(metadata["lagThreshold"]) > 0 and metadata["allowIdleConsumers"] == "false"
    assert "replicas" not in find(objects, "StatefulSet")["spec"], "KEDA owns the replica count; `kubectl apply` would reset it"
    assert not replica_problems(scaled, partitions)
    assert replica_problems({**scaled, "maxReplicaCount": partitions + 1}, partitions), "the check has teeth"


def shutdown_bound_s() -> float:
    """The longest a worker takes from SIGTERM to exit, from the code's own bounds: the final commit pushes what is left
    (at most STOP_GRACE_S), then makes two transactional calls, each retried for STOP_GRACE_S after its first failure
    while stopping, one call of CALL_TIMEOUT_S in flight at either end (or one wedged call cut off after CALL_TIMEOUT_S +
    HANG_MARGIN_S); then the producer's flush on exit (its timeout, in Worker._flush_on_exit)."""
    from anomstream.stream import delivery, exactly_once
    from anomstream.stream.worker import Worker

    flush = re.findall(r"\.flush\(([0-9.]+)\)", inspect.getsource(Worker._flush_on_exit))
    assert len(flush) == 1, "Worker._flush_on_exit changed: update shutdown_bound_s and the README's arithmetic"
    call = max(2 * exactly_once.CALL_TIMEOUT_S + delivery.STOP_GRACE_S, exactly_once.CALL_TIMEOUT_S + exactly_once.HANG_MARGIN_S)
    return delivery.STOP_GRACE_S + 2 * call + float(flush[0])


def test_the_termination_grace_outlasts_the_workers_shutdown_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    grace = pod_specs(render())["anomstream-worker"]["terminationGracePeriodSeconds"]
    bound = shutdown_bound_s()
    assert bound == 80 and grace > bound, f"grace {grace} s, bound {bound} s: README.md's arithmetic is stale"
    from anomstream.stream import delivery

    monkeypatch.setattr(delivery, "STOP_GRACE_S", 20.0)
    assert shutdown_bound_s() > grace, "the bound follows the code's constants"


def test_liveness_never_kills_a_worker_still_waiting_for_kafka_at_start_up() -> None:
    """/healthz fails once the loop has not turned for Health.stall_after_s; the kubelet kills after failureThreshold
    probes. The worker itself gives up waiting for Kafka after ANOMSTREAM_STARTUP_TIMEOUT_S: that must come first."""
    from anomstream.stream.health import Health

    objects = render()
    probe = pod_specs(objects)["anomstream-worker"]["containers"][0]["livenessProbe"]
    kill_after = Health().stall_after_s + (probe["failureThreshold"] - 1) * probe["periodSeconds"]
    model_start_s = 10  # BENCHMARKS.md: TensorFlow warm 7.3 s after start, LiteRT 0.6 s
    assert float(configmap(objects)["ANOMSTREAM_STARTUP_TIMEOUT_S"]) + model_start_s < kill_after


def test_pods_are_non_root_read_only_and_share_the_model_claim(rendered: list[dict[str, Any]]) -> None:
    specs = pod_specs(rendered)
    assert set(specs) == {"anomstream-worker", "anomstream-train", "anomstream-retrain", "anomstream-model-rollback"}
    for name, spec in specs.items():
        assert spec["securityContext"]["runAsNonRoot"] and spec["securityContext"]["runAsUser"] == 10001, name
        assert spec["enableServiceLinks"] is False and spec["automountServiceAccountToken"] is False, name
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["models"]["persistentVolumeClaim"]["claimName"] == find(rendered, "PersistentVolumeClaim")["metadata"]["name"]
        for container in spec["containers"] + spec.get("initContainers", []):
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] and not context["allowPrivilegeEscalation"] and context["capabilities"]["drop"] == ["ALL"]
            mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
            assert "/tmp" not in mounts or "emptyDir" in volumes[mounts["/tmp"]["name"]], f"{name}: /tmp is a writable emptyDir"
            assert container in spec.get("initContainers", []) or "/tmp" in mounts, f"{name}: /tmp is writable"
            assert mounts["/models"].get("readOnly", False) is (name == "anomstream-worker"), f"{name}: only the jobs write the model"


def benchmarked_rss(runtime: str) -> tuple[float, float]:
    """(highest steady RSS, highest peak RSS) in MiB over every memory measurement BENCHMARKS.md gives for `runtime`."""
    found = re.findall(rf"Memory \(worker process on {runtime},[^)]*\): peak RSS \(VmHWM\) ([0-9.]+) MiB, steady[^)]*\) ([0-9.]+) MiB",
                       (REPO / "BENCHMARKS.md").read_text())
    assert found, f"BENCHMARKS.md has no memory measurement for {runtime}: the sizing cannot be checked"
    return max(float(steady) for _, steady in found), max(float(peak) for peak, _ in found)


def mebibytes(quantity: str) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)(Mi|Gi)", quantity).groups()
    return float(number) * (1024 if unit == "Gi" else 1)


def test_memory_is_sized_from_the_measured_rss_of_each_runtime(rendered: list[dict[str, Any]]) -> None:
    """Request: at least the steady RSS draining a backlog. Limit: the peak plus 20% at least (README, "Sizing")."""
    (container,) = pod_specs(rendered)["anomstream-worker"]["containers"]
    steady, peak = benchmarked_rss(container["image"].rpartition("-")[2])
    request, limit = (mebibytes(container["resources"][kind]["memory"]) for kind in ("requests", "limits"))
    assert not sizing_problems(steady, peak, request, limit)
    assert sizing_problems(steady, peak, request, 1.1 * peak), "the check has teeth: a limit without 20% headroom fails"


def sizing_problems(steady: float, peak: float, request: float, limit: float) -> list[str]:
    """Request at least the steady RSS; limit above the request and at least 1.2 x the peak."""
    return [f"request {request} < steady {steady}"] * (request < steady) + [f"limit {limit} < 1.2 x peak {peak} (or the request)"] * (
        limit < 1.2 * peak or limit <= request
    )
