"""The Dockerfile's build, run without a Docker engine: as close to `docker build` as this machine allows.

What goes in is what Docker's build context would hold: a clean clone's files, filtered by `.dockerignore`
with Docker's own matching rules (docker-py's `exclude_paths`, from Debian's python3-docker). Then each
instruction of each stage runs in order, for real: ARG and ENV set the environment, WORKDIR and COPY work
on a directory standing in for the image's root, and RUN runs its shell command there. The image's absolute
paths (/opt/anomstream, /src, /models, ...) are rewritten to that directory: the one liberty taken.

Not run: the final stage's RUN (it creates a user and chowns, which needs root and would change this
machine; tests/deploy/test_dockerfile.py checks it statically), and COPY --from (the stages share one root
here, so what they copy is already in place). The base image is this machine's Python 3.11, not
python:3.11-slim-bookworm.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

# The image's absolute paths that its instructions name; each one lives under the stand-in root.
IMAGE_PATHS = ("/opt/anomstream", "/src", "/models", "/context", "/cache", "/home/anomstream", "/tmp/requirements.txt")


def parse(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines = [line for line in dockerfile.splitlines() if not line.lstrip().startswith("#")]
    text = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in text.splitlines() if line.strip()]


def context_files(tree: Path) -> list[str]:
    """The files of `tree` that `docker build` would send, by Docker's own .dockerignore rules (docker-py)."""
    script = (
        "import json, sys\n"
        "from docker.utils.build import exclude_paths\n"
        "root = sys.argv[1]\n"
        "patterns = [l.strip() for l in open(root + '/.dockerignore') if l.strip() and not l.startswith('#')]\n"
        "print(json.dumps(sorted(exclude_paths(root, patterns))))\n"
    )
    done = subprocess.run(["/usr/bin/python3", "-c", script, str(tree)], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise AssertionError(f"docker-py is missing (apt-get install docker-compose brings python3-docker): {done.stderr}")
    return [path for path in json.loads(done.stdout) if (tree / path).is_file()]


def build_context(tree: Path, destination: Path) -> Path:
    """Exactly the files the build context admits, copied from `tree`."""
    for name in context_files(tree):
        (destination / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(tree / name, destination / name)
    return destination


class BuildFailed(AssertionError):
    """A step of the Dockerfile failed, as `docker build` would stop on it."""


@dataclass
class Image:
    """What the build left: the stand-in root, the final stage's environment and entrypoint, and each step's output."""

    root: Path
    env: dict[str, str]
    entrypoint: list[str]
    workdir: Path
    log: list[str] = field(default_factory=list)

    def path(self, image_path: str) -> Path:
        return self.root / image_path.lstrip("/")

    @property
    def python(self) -> Path:
        return self.path("/opt/anomstream/bin/python")


class Build:
    """Runs a Dockerfile's stages in order (see the module's docstring for what is emulated and what is not)."""

    def __init__(self, dockerfile: str, context: Path, root: Path, args: dict[str, str]) -> None:
        self.steps = parse(dockerfile)
        self.context = context
        self.root = root
        self.args = args
        base = Path(getattr(sys, "_base_executable", sys.executable)).parent
        # The base image's PATH: its Python first, then the usual system directories.
        self.base_env = {"PATH": f"{base}:/usr/local/bin:/usr/bin:/bin", "HOME": str(self.mapped_path("/root")), "LANG": "C.UTF-8"}
        self.mapped_path("/root").mkdir(parents=True, exist_ok=True)

    def mapped_path(self, image_path: str) -> Path:
        return self.root / image_path.lstrip("/")

    def mapped(self, text: str) -> str:
        """`text` with the image's absolute paths moved under the stand-in root."""
        for image_path in IMAGE_PATHS:
            text = re.sub(rf"(?<![\w/.]){re.escape(image_path)}(?=$|[/\s:'\";)&|])", str(self.mapped_path(image_path)), text)
        return text

    def run(self) -> Image:
        globals_: dict[str, str] = {}
        built: dict[str, tuple[dict[str, str], Path]] = {}  # stage name -> its ENV and WORKDIR, for `FROM <stage>`
        env: dict[str, str] = {}
        stage_args: dict[str, str] = {}
        cwd = self.root
        stage = ""
        log: list[str] = []
        entrypoint: list[str] = []
        for op, arguments in self.steps:
            if op == "ARG":
                name, _, default = arguments.partition("=")
                value = self.args.get(name, globals_.get(name, default.strip('"')))
                (globals_ if not stage else stage_args)[name] = value
            elif op == "FROM":
                if stage:
                    built[stage] = (env, cwd)
                base, stage = arguments.split()[0], arguments.split()[-1]
                inherited_env, inherited_cwd = built.get(base, (self.base_env, self.root))
                env, stage_args, cwd = dict(inherited_env), {}, inherited_cwd
            elif op == "ENV":
                for name, value in re.findall(r"(\w+)=(\S+)", arguments):
                    env[name] = self.mapped(self._expand(value, {**stage_args, **env}))
            elif op == "WORKDIR":
                cwd = self.mapped_path(arguments.strip())
                cwd.mkdir(parents=True, exist_ok=True)
            elif op == "COPY":
                self._copy(arguments, cwd)
            elif op == "RUN" and stage != "runtime":
                command = self.mapped(arguments)
                self.mapped_path("/tmp").mkdir(parents=True, exist_ok=True)
                done = subprocess.run(["sh", "-c", command], cwd=cwd, env={**env, **stage_args}, capture_output=True, text=True, timeout=1800)
                log.append(f"[{stage}] RUN {arguments[:120]}\n{done.stdout}{done.stderr}")
                if done.returncode != 0:
                    raise BuildFailed(f"RUN in stage {stage} failed (exit {done.returncode}): {arguments[:200]}\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
            elif op == "ENTRYPOINT":
                entrypoint = json.loads(arguments)
        return Image(self.root, env, entrypoint, cwd, log)

    def _copy(self, arguments: str, cwd: Path) -> None:
        words = arguments.split()
        if any(word.startswith("--from=") for word in words):
            return  # one shared root here: what another stage built is in place already
        words = [word for word in words if not word.startswith("--")]
        *sources, target = words
        destination = self.mapped_path(target) if target.startswith("/") else cwd / target
        for source in sources:
            origin = self.context / source
            if not origin.exists():
                raise BuildFailed(f"COPY {source}: not in the build context (.dockerignore leaves it out, or it does not exist)")
            if origin.is_dir():
                shutil.copytree(origin, destination, dirs_exist_ok=True)
            else:
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, destination / origin.name if target.endswith("/") else destination)

    @staticmethod
    def _expand(value: str, variables: dict[str, str]) -> str:
        return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables.get(m.group(1) or m.group(2), ""), value)


def compose_config(repo: Path, docker_compose: str, **variables: str) -> dict:
    """docker-compose.yml as docker-compose resolves it (${VAR:-default} filled in from `variables`), replay profile on."""
    import yaml

    done = subprocess.run(
        [docker_compose, "-f", "docker-compose.yml", "--profile", "replay", "config"],
        cwd=repo, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin", **variables},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


__all__ = ["Build", "BuildFailed", "Image", "build_context", "compose_config", "context_files", "parse"]
