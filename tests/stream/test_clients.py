"""librdkafka's own log lines go through Python logging (`anomstream.librdkafka`), never raw on stderr.

No broker needed: a port nobody listens on makes librdkafka log refused connections (FAIL, level 3).
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from anomstream.brokers import free_port
from anomstream.stream import clients
from anomstream.stream.settings import WorkerSettings

RAW = re.compile(r"^%\d\|", re.MULTILINE)  # librdkafka's own stderr format: %3|<ts>|FAIL|<client>| ...


def poll_until_failed(client: Any, caplog: pytest.LogCaptureFixture, timeout: float = 10.0) -> list[logging.LogRecord]:
    """Poll (the logger is only called then) until librdkafka reported the refused connection."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        client.poll(0.1)
        records = [r for r in caplog.records if r.name == "anomstream.librdkafka"]
        if any(r.getMessage().startswith("FAIL ") for r in records):
            return records
    raise AssertionError(f"no FAIL line from librdkafka within {timeout} s: {caplog.text}")


def test_librdkafka_lines_are_log_records_capped_at_warning(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG, logger="anomstream.librdkafka")
    # socket.blocking.max.ms is deprecated: librdkafka warns (CONFWARN, level 4) that it is no longer used.
    producer = clients.create(Producer, {"bootstrap.servers": f"127.0.0.1:{free_port()}", "socket.blocking.max.ms": "100", "client.id": "t"})
    time.sleep(1.0)  # librdkafka's threads fail to connect meanwhile; unpolled, nothing is printed or logged
    assert [r for r in caplog.records if r.name == "anomstream.librdkafka"] == []
    records = poll_until_failed(producer, caplog)
    fail = next(r for r in records if r.getMessage().startswith("FAIL "))
    assert re.fullmatch(r"FAIL \[t#producer-\d+\] \[thrd:.*\]: .*Connection refused.*", fail.getMessage()), fail.getMessage()
    assert fail.levelno == logging.WARNING, "librdkafka retries: its ERROR is our WARNING"
    assert any(r.getMessage().startswith("CONFWARN ") and r.levelno == logging.WARNING for r in records)
    del producer
    assert not RAW.search(capfd.readouterr().err)


def test_a_repeated_line_goes_at_debug_until_it_is_due_again(caplog: pytest.LogCaptureFixture) -> None:
    """A refused connection is retried dozens of times a second: one WARNING per REPEAT_S, not a flood."""
    caplog.set_level(logging.DEBUG, logger="anomstream.librdkafka")
    routed = clients.LibrdkafkaLog(logging.WARNING)
    refused = ("FAIL", "w#producer-1", "127.0.0.1:1/bootstrap: Connect failed: Connection refused")
    routed.log(logging.ERROR, "%s [%s] %s", *refused)
    routed.log(logging.ERROR, "%s [%s] %s", *refused)
    routed.log(logging.WARNING, "%s [%s] %s", "CONFWARN", "w#producer-1", "group.id is a consumer property")
    routed.REPEAT_S = 0.0
    routed.log(logging.ERROR, "%s [%s] %s", *refused)
    assert [(r.levelname, r.getMessage()[:4]) for r in caplog.records] == [
        ("WARNING", "FAIL"), ("DEBUG", "FAIL"), ("WARNING", "CONF"), ("WARNING", "FAIL"),
    ]  # fmt: skip


@pytest.mark.parametrize("kind", [Consumer, AdminClient])
def test_quiet_clients_log_at_debug(kind: Any, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    """Readiness probes (stream.brokers) expect refused connections: nothing above DEBUG."""
    caplog.set_level(logging.DEBUG, logger="anomstream.librdkafka")
    config: dict[str, Any] = {"bootstrap.servers": f"127.0.0.1:{free_port()}"}
    if kind is Consumer:
        config["group.id"] = "g"
    client = clients.create(kind, config, quiet=True)
    records = poll_until_failed(client, caplog)
    assert {r.levelno for r in records} == {logging.DEBUG}
    if kind is Consumer:
        client.close()
    del client
    assert not RAW.search(capfd.readouterr().err)


def confwarns(client: Any, caplog: pytest.LogCaptureFixture) -> list[str]:
    """librdkafka's configuration warnings about `client` (they are logged when it is first polled)."""
    client.poll(0.5)
    return [r.getMessage() for r in caplog.records if r.name == "anomstream.librdkafka" and r.getMessage().startswith("CONFWARN")]


MIXED = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "1000", "isolation.level": "read_committed", "linger.ms": "5",
         "enable.idempotence": "true", "socket.keepalive.enable": "true"}  # fmt: skip


@pytest.mark.parametrize("kind", [Producer, Consumer, AdminClient])
def test_each_client_gets_only_the_properties_that_apply_to_it(kind: Any, caplog: pytest.LogCaptureFixture) -> None:
    """One set of -X properties serves every client: none warns about a property meant for another (the demo's
    session.timeout.ms made its producer print a CONFWARN)."""
    caplog.set_level(logging.DEBUG, logger="anomstream.librdkafka")
    config = {"bootstrap.servers": f"127.0.0.1:{free_port()}", "group.id": "g", **MIXED}
    client = clients.create(kind, config)
    assert confwarns(client, caplog) == []
    if kind is Consumer:
        client.close()
    kept = clients.scoped(kind, config)
    assert "socket.keepalive.enable" in kept  # a property of every client stays
    assert ("session.timeout.ms" in kept) == (kind is Consumer) and ("linger.ms" in kept) == (kind is Producer)


def test_without_the_scoping_librdkafka_warns(caplog: pytest.LogCaptureFixture) -> None:
    """The test above can fail: the same properties handed to a producer whole are a CONFWARN."""
    caplog.set_level(logging.DEBUG, logger="anomstream.librdkafka")
    producer = Producer({"bootstrap.servers": f"127.0.0.1:{free_port()}", **MIXED, "logger": clients.ROUTED})
    assert any("session.timeout.ms is a consumer property and will be ignored by this producer" in line for line in confwarns(producer, caplog))


def test_the_logger_never_enters_a_config_that_is_logged_or_serialised() -> None:
    """`create` adds it to the dict it hands librdkafka; settings and built configs stay plain."""
    settings = WorkerSettings(model=Path("m"), kafka={"security.protocol": "PLAINTEXT"})
    common = settings.common_config()
    assert json.loads(json.dumps(common)) == common
    errors = clients.ErrorWatch()
    assert "logger" not in clients.producer_config(settings, errors)
    assert "logger" not in clients.consumer_config(settings, errors)


def test_a_full_fetch_queue_never_stalls_a_batch_and_x_still_overrides_it() -> None:
    """librdkafka's default (1 s) idled the worker once its fetch queue had filled: well under --max-wait-ms now."""
    errors = clients.ErrorWatch()
    settings = WorkerSettings(model=Path("m"))
    assert clients.consumer_config(settings, errors)["fetch.queue.backoff.ms"] < settings.max_wait_ms
    tuned = WorkerSettings(model=Path("m"), kafka={"fetch.queue.backoff.ms": "500"})
    assert str(clients.consumer_config(tuned, errors)["fetch.queue.backoff.ms"]) == "500"
