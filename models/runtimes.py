"""The two ways to run an autoencoder on a batch of scaled windows: TensorFlow, or LiteRT.

TensorFlow is the reference: training, evaluation and the worker by default.
LiteRT (`ai-edge-litert`) runs the same model, converted at training time by
TensorFlow's own converter into `model.tflite`. It needs neither TensorFlow nor
Keras, so a worker on it starts in under a second and holds 5-9x less memory
(BENCHMARKS.md, session 4's full run); its errors match
TensorFlow's to float32 rounding (tests/models/test_runtimes.py).

Both import their library when built, never at module import: a worker on
LiteRT must not pay for TensorFlow.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from anomstream.console import native_stderr_to_debug
from anomstream.errors import ArtifactError, ConfigError
from anomstream.models.shape import Shape, of_input, sample_axes

log = logging.getLogger("anomstream.litert")

RUNTIMES = ("tensorflow", "litert")
# What --runtime and `anomstream.load(runtime=...)` accept: auto picks LiteRT when it can run the artifact.
CHOICES = ("auto", *RUNTIMES)


class Runtime(Protocol):
    """What `models.scorer.Scorer` needs from a runtime; arrays are float32, windows (batch, channels, ...)."""

    window_shape: Shape

    def channel_errors(self, scaled: np.ndarray) -> np.ndarray:
        """Mean absolute reconstruction error per window and channel, (batch, channels)."""

    def reconstruct(self, scaled: np.ndarray) -> np.ndarray: ...


class KerasRuntime:
    """A Keras model behind two compiled functions with a free batch dimension: one trace, any batch size."""

    def __init__(self, model: Any) -> None:
        from anomstream.models.backend import tf

        self.model = model
        self.window_shape = of_input(model.input_shape)
        model_shape = [-1, *[int(d) for d in model.input_shape[1:]]]  # a legacy model takes (batch, length)
        window = [-1, *self.window_shape]
        signature = [tf.TensorSpec([None, *self.window_shape], tf.float32)]

        axes = list(sample_axes(len(window)))

        def reconstruct(x: Any) -> Any:
            return tf.reshape(model(tf.reshape(x, model_shape), training=False), window)

        self._errors = tf.function(lambda x: tf.reduce_mean(tf.abs(reconstruct(x) - x), axis=axes), input_signature=signature)
        self._reconstruct = tf.function(reconstruct, input_signature=signature)

    def channel_errors(self, scaled: np.ndarray) -> np.ndarray:
        return self._errors(scaled).numpy()

    def reconstruct(self, scaled: np.ndarray) -> np.ndarray:
        return self._reconstruct(scaled).numpy()


class LiteRTRuntime:
    """A LiteRT interpreter; not thread-safe, so each one is used by one thread (the worker loop, or a canary)."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        interpreter_class = _litert_interpreter()
        # The model's bytes, held in memory: an interpreter opened on the path maps the file, so an artifact
        # rewritten in place (a new one written over it, or a broken one) changed the serving model under it
        # (tests/stream/test_worker.py's hot reload: a resize then read garbage constants and the worker died).
        try:
            self._flatbuffer = path.read_bytes()
        except OSError as exc:
            raise ArtifactError(f"{path} cannot be read: {exc.strerror or exc}.") from None
        # The first allocation creates the XNNPACK delegate, which LiteRT announces on stderr at INFO by itself.
        with native_stderr_to_debug(log):
            try:
                self._interpreter = interpreter_class(model_content=self._flatbuffer, num_threads=threads)
                self._interpreter.allocate_tensors()
            except (ValueError, RuntimeError) as exc:  # LiteRT's error types for an unreadable flatbuffer
                raise ArtifactError(f"{path} cannot be loaded by LiteRT: {str(exc).splitlines()[0]}.") from None
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        signature = self._input["shape_signature"]
        self.window_shape = of_input(signature)
        self._model_shape = [int(d) for d in signature[1:]]
        self._batch = 0

    def reconstruct(self, scaled: np.ndarray) -> np.ndarray:
        batch = len(scaled)
        if batch != self._batch:
            # The batch dimension is dynamic (-1). Re-planning costs ~30-300 us, so it is done only when the size
            # changes: under load every batch is --max-batch long.
            self._interpreter.resize_tensor_input(self._input["index"], [batch, *self._model_shape])
            self._interpreter.allocate_tensors()
            self._batch = batch
        self._interpreter.set_tensor(self._input["index"], scaled.reshape(batch, *self._model_shape))
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output["index"]).reshape(batch, *self.window_shape)

    def channel_errors(self, scaled: np.ndarray) -> np.ndarray:
        return np.abs(self.reconstruct(scaled) - scaled).mean(axis=sample_axes(scaled.ndim), dtype=np.float32)


def _litert_interpreter() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise ConfigError(
            "--runtime litert needs the ai-edge-litert package, a dependency of anomstream missing here: pip install ai-edge-litert,"
            " or use --runtime tensorflow."
        ) from None
    return Interpreter


def check_available(runtime: str) -> None:
    """Fail at start-up, in one sentence, if the chosen runtime's package is missing."""
    if runtime not in CHOICES:
        raise ConfigError(f"--runtime {runtime} is not one of {', '.join(CHOICES)}.")
    if runtime == "litert":
        _litert_interpreter()


def litert_installed() -> bool:
    try:
        _litert_interpreter()
    except ConfigError:
        return False
    return True


def resolve(runtime: str, has_litert: bool) -> str:
    """The concrete runtime for a choice: auto is LiteRT when the artifact has model.tflite and
    ai-edge-litert is installed (the same verdicts, a fraction of the start-up and memory), else TensorFlow."""
    check_available(runtime)
    if runtime != "auto":
        return runtime
    return "litert" if has_litert and litert_installed() else "tensorflow"


def export_litert(model: Any, path: Path) -> None:
    """Convert a Keras model to a LiteRT flatbuffer at `path` (written atomically), with TensorFlow's converter.

    Through a SavedModel, which freezes the weights into constants: converted from a
    concrete function, a Keras 3 model keeps them as resource variables, and LiteRT's
    default (XNNPACK) delegate then reads NaN.
    """
    from anomstream.models.backend import tf

    with tempfile.TemporaryDirectory(prefix="anomstream-export-") as tmp:
        saved = os.path.join(tmp, "saved_model")
        model.export(saved, verbose=False)
        flatbuffer = tf.lite.TFLiteConverter.from_saved_model(saved).convert()
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(flatbuffer)
    partial.replace(path)
