"""Keep Python's cyclic garbage collector off the heap the worker builds at start-up.

TensorFlow, Keras and the model leave ~400k GC-tracked objects behind. A full
(generation 2) collection walks all of them: ~200 ms on the benchmark machine,
which landed straight in the p99 latency whenever the per-batch allocations
triggered one. `settle` moves everything alive into the permanent generation
(`gc.freeze`, as CPython's docs suggest for long-lived servers) and raises the
first generation's threshold above what one batch allocates, so a batch's
objects are freed by reference counting before a collection could look at them.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger("anomstream.heap")

# Net allocations of tracked objects between collections of the youngest generation (CPython's default: 700).
# A 512-window batch allocates a few thousand while it lives; most are freed with it.
YOUNG_THRESHOLD = 50_000


_default_threshold: tuple[int, int, int] | None = None


def settle() -> None:
    """After start-up or a model swap: collect once, then freeze what survives (frozen objects are never scanned)."""
    global _default_threshold
    started = time.perf_counter()
    gc.unfreeze()  # a replaced model's cycles become collectable again
    gc.collect()
    gc.freeze()
    if _default_threshold is None:
        _default_threshold = gc.get_threshold()
    _, older, oldest = _default_threshold
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
    log.debug("heap settled: %d objects frozen in %.0f ms", gc.get_freeze_count(), (time.perf_counter() - started) * 1000)


def release() -> None:
    """When an in-process worker (demo, tests, bench) stops: the process's GC as it was."""
    global _default_threshold
    gc.unfreeze()
    if _default_threshold is not None:
        gc.set_threshold(*_default_threshold)
        _default_threshold = None
