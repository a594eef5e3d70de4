"""The model the worker scores with, and its hot reload.

A new artifact is loaded off the hot path (a watcher thread), checked (same
window length, a canary batch with finite errors) and swapped in as one
reference assignment. A bad new artifact leaves the old model serving.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from anomstream.errors import AnomstreamError, ArtifactError
from anomstream.models import artifact, detector
from anomstream.models.detector import Detector
from anomstream.models.shape import Shape, text
from anomstream.stream import metrics

log = logging.getLogger("anomstream.model")


def _stamp(directory: Path) -> tuple[int, int] | None:
    try:
        stat = (directory / artifact.META_FILE).stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def load_checked(
    directory: Path, warm_batch: int, window_shape: Shape | None = None, runtime: str = "tensorflow", threads: int = 1
) -> Detector:
    """Load on `runtime`, check against the serving model's window shape, and warm the model up."""
    loaded = detector.load(directory, runtime, threads)
    if window_shape is not None and loaded.window_shape != window_shape:
        raise ArtifactError(f"{directory} takes windows of {text(loaded.window_shape)}, the serving model {text(window_shape)}: refused.")
    canary = loaded.score(np.zeros((warm_batch, *loaded.window_shape), dtype=np.float32))
    if not np.isfinite(canary.errors).all():
        raise ArtifactError(f"{directory} gives non-finite errors on a canary batch: refused.")
    return loaded


class LiveModel:
    """Holds the current `Detector`; `current` is read once per batch, so a swap never splits a batch."""

    def __init__(self, directory: Path, warm_batch: int, runtime: str = "tensorflow", threads: int = 1) -> None:
        self.directory = directory
        self.warm_batch = warm_batch
        self.runtime = runtime
        self.threads = threads
        self.current = load_checked(directory, warm_batch, runtime=runtime, threads=threads)
        self._stamp = _stamp(directory)
        self._wake = threading.Event()
        self._requested = threading.Event()  # a SIGHUP not yet acted on
        self.swapped = threading.Event()  # set by a reload; the worker loop then settles the heap (stream.heap)
        self._stopped = threading.Event()
        self._publish(None, self.current)
        log.info(
            "model %s %s loaded from %s on %s", self.current.metadata.name, self.current.metadata.version, directory, self.current.runtime
        )

    def request_reload(self) -> None:
        """SIGHUP: reload now, even if model.json looks unchanged. One that arrives during a reload is kept for
        the next look (it used to be overwritten by the running reload's stamp, and lost)."""
        self._requested.set()
        self._wake.set()

    def watch(self, interval_s: float) -> threading.Thread:
        thread = threading.Thread(target=self._watch, args=(interval_s,), name="model-reload", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()

    def _watch(self, interval_s: float) -> None:
        while not self._stopped.is_set():
            self._wake.wait(interval_s if interval_s > 0 else None)
            self._wake.clear()
            if self._stopped.is_set():
                return
            self.check()

    def check(self) -> bool:
        """One look: reload if asked to (SIGHUP) or if model.json changed; whether a new model now serves."""
        asked = self._requested.is_set()
        self._requested.clear()
        stamp = _stamp(self.directory)
        if stamp is not None and (asked or stamp != self._stamp):
            return self.reload(stamp)
        return False

    def reload(self, stamp: tuple[int, int] | None = None) -> bool:
        old = self.current
        try:
            new = load_checked(self.directory, self.warm_batch, old.window_shape, self.runtime, self.threads)
        # Any exception: a runtime can fail in ways no artifact check foresees, and a reload never takes the worker down.
        except Exception as exc:
            why = str(exc) if isinstance(exc, AnomstreamError) else f"{type(exc).__name__}: {exc}"
            log.warning("model reload failed, still serving %s: %s", old.metadata.version, why)
            metrics.MODEL_RELOADS.labels("failed").inc()
            self._stamp = stamp  # do not retry the same broken files every interval
            return False
        self.current = new
        self._stamp = stamp or _stamp(self.directory)
        self._publish(old, new)
        metrics.MODEL_RELOADS.labels("success").inc()
        log.info("model reloaded: %s -> %s", old.metadata.version, new.metadata.version)
        del old, new  # nothing here may keep the old model alive once the loop settles the heap
        self.swapped.set()
        return True

    @staticmethod
    def _publish(old: Detector | None, new: Detector) -> None:
        if old is not None and old.metadata.version != new.metadata.version:
            metrics.MODEL_INFO.remove(old.metadata.name, old.metadata.version, old.runtime)
        metrics.MODEL_INFO.labels(new.metadata.name, new.metadata.version, new.runtime).set(1)
        metrics.THRESHOLD.set(new.metadata.threshold.value)
