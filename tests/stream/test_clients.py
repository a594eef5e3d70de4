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

from stream import clients
from stream.brokers import free_port
from stream.settings import WorkerSettings

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
    # group.id is a consumer property: the producer warns (CONFWARN, level 4) that it ignores it.
    producer = clients.create(Producer, {"bootstrap.servers": f"127.0.0.1:{free_port()}", "group.id": "g", "client.id": "t"})
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


def test_the_logger_never_enters_a_config_that_is_logged_or_serialised() -> None:
    """`create` adds it to the dict it hands librdkafka; settings and built configs stay plain."""
    settings = WorkerSettings(model=Path("m"), kafka={"security.protocol": "PLAINTEXT"})
    common = settings.common_config()
    assert json.loads(json.dumps(common)) == common
    errors = clients.ErrorWatch()
    assert "logger" not in clients.producer_config(settings, errors)
    assert "logger" not in clients.consumer_config(settings, errors)
