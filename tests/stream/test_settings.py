"""The worker's identity in the group and in transactions (stream/settings.py)."""

from __future__ import annotations

import argparse

import pytest

from anomstream.errors import ConfigError
from anomstream.stream import commands
from anomstream.stream.clients import ErrorWatch, consumer_config, producer_config
from anomstream.stream.settings import WorkerSettings, default_transactional_id


def settings(*argv: str) -> WorkerSettings:
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers())
    return WorkerSettings.from_args(parser.parse_args(["worker", "--model", "m", *argv]))


def test_without_a_stable_name_every_process_gets_its_own_transactional_id():
    """Two replicas with one host name (host networking) and pid 1 (every container) fenced each other in a loop."""
    ids = {default_transactional_id("g", "") for _ in range(50)}
    assert len(ids) == 50 and all(i.startswith("anomstream-g-") for i in ids)


def test_a_stable_name_gives_the_same_transactional_id_and_static_membership():
    first, again = settings("--instance-id", "pod-0"), settings("--instance-id", "pod-0")
    assert first.transactional_id == again.transactional_id == "anomstream-anomstream-pod-0"
    assert consumer_config(first, ErrorWatch())["group.instance.id"] == "pod-0"
    assert "group.instance.id" not in consumer_config(settings(), ErrorWatch())
    assert producer_config(first, ErrorWatch())["transactional.id"] == "anomstream-anomstream-pod-0"


def test_the_transaction_timeout_defaults_to_10_s_and_must_outlast_two_commit_intervals():
    assert producer_config(settings(), ErrorWatch())["transaction.timeout.ms"] == 10_000
    with pytest.raises(ConfigError, match="too short for --commit-interval-ms 60000"):
        settings("--commit-interval-ms", "60000")
    assert settings("--commit-interval-ms", "60000", "--transaction-timeout-ms", "121000").transaction_timeout_ms == 121_000
    assert settings("--commit-interval-ms", "60000", "--delivery", "at-least-once").commit_interval_ms == 60_000


def test_rebalances_are_incremental_and_a_crashed_member_leaves_after_10_s_unless_told_otherwise():
    config = consumer_config(settings(), ErrorWatch())
    assert (config["partition.assignment.strategy"], config["session.timeout.ms"]) == ("cooperative-sticky", 10_000)
    told = consumer_config(settings("-X", "partition.assignment.strategy=range", "-X", "session.timeout.ms=45000"), ErrorWatch())
    assert (told["partition.assignment.strategy"], told["session.timeout.ms"]) == ("range", "45000")


@pytest.mark.parametrize("value", ["10000", "59999", "soon"])
def test_a_max_poll_interval_shorter_than_the_worker_may_go_without_polling_is_refused(value):
    """A slow-output run with max.poll.interval.ms 10 s was evicted under load while a fresh producer took over
    (a commit path of several blocking calls): the worker now refuses what it cannot honour."""
    with pytest.raises(ConfigError) as refused:
        settings("-X", f"max.poll.interval.ms={value}")
    assert str(refused.value) == (
        f"-X max.poll.interval.ms={value} is below 60000: the worker may wait on Kafka that long without polling (it retries a"
        " slow or restarting broker for 60 s), and the group would evict it mid-commit; give at least that (librdkafka's"
        " default is 300000)."
    )
    assert settings("-X", "max.poll.interval.ms=60000").kafka["max.poll.interval.ms"] == "60000"
