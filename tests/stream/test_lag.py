"""Consumer lag on a real broker, from worker processes: each has its own Prometheus registry, as in production."""

from __future__ import annotations

import re
import time
import uuid

import pytest

from anomstream.stream import codec
from tests.worker_process import WorkerProcess

pytestmark = pytest.mark.integration

LAG = re.compile(r'^anomstream_consumer_lag\{partition="(\d+)"\} (\S+)$', re.M)


def lag_series(worker: WorkerProcess) -> dict[int, float]:
    return {int(partition): float(value) for partition, value in LAG.findall(worker.metrics())}


def test_lag_is_the_end_minus_the_last_commit_and_a_moved_partition_leaves_its_old_owner(
    ecg_artifact, ecg_split, kafka_bootstrap, new_topic, topics, send, tmp_path
):
    """In exactly-once mode the lag followed the consume position, not the commits (about 0 while nothing
    committed), and after a revoke librdkafka's figures brought back a frozen series for a partition the worker
    no longer owned, so sum() counted it twice. Now: end offset minus committed offset, owned partitions only."""
    topics = {**topics, "input": new_topic(partitions=2)}
    group = f"lag-{uuid.uuid4().hex[:8]}"
    test = ecg_split.test
    send(topics["input"], [(b"k%d" % (i % 8), codec.encode_window(f"w-{i}", test.windows[i % len(test)]), None) for i in range(200)])
    # A long commit interval: the 200 windows are read and scored at once, and committed 8 s later. Statistics every
    # second (the worker's default is 5 s), so that the lag shows both states, and a frozen series would come back,
    # within seconds.
    slow_commits = ("--commit-interval-ms", "8000", "--transaction-timeout-ms", "30000", "-X", "statistics.interval.ms=1000")
    with WorkerProcess.start(ecg_artifact, kafka_bootstrap, topics, group, tmp_path / "a.log", *slow_commits) as a:
        a.wait_ready()
        a.wait_for(lambda: sum(lag_series(a).values()) == 200, 7, "the lag to count the 200 scored, uncommitted windows")
        a.wait_for(lambda: (lag := lag_series(a)) and len(lag) == 2 and sum(lag.values()) == 0, 60, "the lag to be 0 after the commit")
        with WorkerProcess.start(ecg_artifact, kafka_bootstrap, topics, group, tmp_path / "b.log", *slow_commits) as b:
            b.wait_ready()  # b took one of the two partitions (cooperative: only that one moved)
            time.sleep(3)  # three statistics intervals: a frozen series would be back by now
            on_a, on_b = lag_series(a), lag_series(b)
            assert len(on_a) == 1 and len(on_b) == 1 and set(on_a) | set(on_b) == {0, 1}, (on_a, on_b)
            assert sum(on_a.values()) + sum(on_b.values()) == 0
