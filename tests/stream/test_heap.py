import gc
import weakref

import pytest

from anomstream.stream import heap


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic GC frees it


@pytest.fixture(autouse=True)
def restore_gc():
    threshold = gc.get_threshold()
    yield
    heap.release()
    assert gc.get_threshold() == threshold and gc.get_freeze_count() == 0


def test_settle_freezes_what_is_alive_and_raises_the_young_threshold():
    kept = [Node() for _ in range(100)]
    heap.settle()
    assert gc.get_freeze_count() >= len(kept)
    assert gc.get_threshold()[0] == heap.YOUNG_THRESHOLD
    # Frozen: in the permanent generation, which no collection scans (gc.get_objects() lists the other three).
    tracked = {id(o) for o in gc.get_objects()}
    assert not any(id(n) in tracked for n in kept)
    heap.release()
    tracked = {id(o) for o in gc.get_objects()}
    assert all(id(n) in tracked for n in kept)  # released: collectable again


def test_a_cycle_made_after_settle_is_still_collected():
    """Only the start-up heap is frozen: a batch's cycles are still freed."""
    heap.settle()
    late = Node()
    alive = weakref.ref(late)
    del late
    gc.collect()
    assert alive() is None


def test_settle_again_frees_cycles_that_died_while_frozen():
    # A replaced model: frozen at start-up, dropped at a reload. Frozen cycles are never collected,
    # so unless settle unfreezes first, each reload would leak the old model for good.
    old = Node()
    alive = weakref.ref(old)
    heap.settle()
    del old
    gc.collect()
    assert alive() is not None  # frozen: invisible to a collection
    heap.settle()
    assert alive() is None
