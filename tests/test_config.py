"""Configuration from ANOMSTREAM_* variables is checked exactly as flags are (anomstream/config.py)."""

from __future__ import annotations

import pytest

from anomstream.cli import main


@pytest.mark.parametrize(
    ("variables", "argv", "message"),
    [
        ({"ANOMSTREAM_DELIVERY": "exactly_once"}, ["worker", "--model", "m"],
         "anomstream worker: ANOMSTREAM_DELIVERY='exactly_once' is not one of exactly-once, at-least-once (the choices of --delivery)."),
        ({"ANOMSTREAM_SPLIT": "bogus"}, ["replay"],
         "anomstream replay: ANOMSTREAM_SPLIT='bogus' is not one of test, train, all (the choices of --split)."),
        ({"ANOMSTREAM_MAX_BATCH": "lots"}, ["worker", "--model", "m"],
         "anomstream worker: ANOMSTREAM_MAX_BATCH='lots' is not a valid int for --max-batch."),
        ({"ANOMSTREAM_JSON": "maybe"}, ["evaluate", "--model", "m"],
         "anomstream evaluate: ANOMSTREAM_JSON='maybe' is not a boolean for --json (use 1/0, true/false, yes/no)."),
        ({"ANOMSTREAM_RUNTIME": "onnx"}, ["worker", "--model", "m"],
         "anomstream worker: ANOMSTREAM_RUNTIME='onnx' is not one of auto, tensorflow, litert (the choices of --runtime)."),
        ({"ANOMSTREAM_LOG_LEVEL": "LOUD"}, ["worker", "--model", "m"],
         "anomstream worker: ANOMSTREAM_LOG_LEVEL='LOUD' is not one of DEBUG, INFO, WARNING, ERROR (the choices of --log-level)."),
    ],
    ids=["delivery-typo", "split", "not-an-int", "not-a-boolean", "runtime", "log-level"],
)
def test_a_bad_environment_value_is_one_sentence_and_exit_2(monkeypatch, capsys, variables, argv, message) -> None:
    """Once, ANOMSTREAM_DELIVERY=exactly_once ran at-least-once and ANOMSTREAM_SPLIT=bogus replayed the train split."""
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert main(argv) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == message


def test_a_variable_for_another_command_does_not_stop_this_one(monkeypatch, capsys) -> None:
    """ANOMSTREAM_SPLIT=auto suits `evaluate` (auto, test, all) but not `replay`: only replay refuses it."""
    monkeypatch.setenv("ANOMSTREAM_SPLIT", "auto")
    assert main(["replay", "--bootstrap-servers", "127.0.0.1:1"]) == 2
    assert "ANOMSTREAM_SPLIT='auto' is not one of test, train, all" in capsys.readouterr().err
    # evaluate accepts it: it goes on to its next check (here, the missing artifact), which is another sentence.
    assert main(["evaluate", "--model", "no-such-artifact"]) == 2
    assert "no-such-artifact does not exist" in capsys.readouterr().err


def test_lower_case_log_levels_still_work(monkeypatch, capsys) -> None:
    monkeypatch.setenv("ANOMSTREAM_LOG_LEVEL", "debug")
    assert main(["evaluate", "--model", "no-such-artifact"]) == 2
    assert "no-such-artifact does not exist" in capsys.readouterr().err


def test_a_comma_inside_a_kafka_property_value_stays_in_the_value(monkeypatch) -> None:
    """ANOMSTREAM_KAFKA_PROPERTY splits only where a `key=` follows: `sasl.password=ab,cd` once made a stray `cd`.

    A value is kept as written, even a trailing comma (no `key=` follows it); `-X` from the command line is never split.
    """
    from anomstream.cli import build_parser
    from anomstream.config import kafka_properties

    monkeypatch.setenv("ANOMSTREAM_KAFKA_PROPERTY", "security.protocol=SASL_SSL,sasl.password=ab,cd, sasl.mechanisms=PLAIN,")
    args = build_parser().parse_args(["worker", "--model", "m", "-X", "ssl.cipher.suites=A,B"])
    assert kafka_properties(args.kafka_property, None) == {
        "security.protocol": "SASL_SSL", "sasl.password": "ab,cd", "sasl.mechanisms": "PLAIN,", "ssl.cipher.suites": "A,B",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("variables", "argv", "message"),
    [
        ({"ANOMSTREAM_KAFKA_PROPERTY": "sasl.password:hunter2,security.protocol=SASL_SSL"}, [],
         "anomstream worker: ANOMSTREAM_KAFKA_PROPERTY item 1 of 2 is not key=value (its text is not shown: it may hold a secret)."),
        ({"ANOMSTREAM_KAFKA_PROPERTY": "hunter2"}, [],
         "anomstream worker: ANOMSTREAM_KAFKA_PROPERTY item 1 of 1 is not key=value (its text is not shown: it may hold a secret)."),
        ({}, ["-X", "security.protocol=SASL_SSL", "-X", "hunter2"],
         "anomstream worker: -X number 2 is not key=value (e.g. -X security.protocol=SASL_SSL; its text is not shown: it may hold a secret)."),
    ],
    ids=["env-colon-for-equals", "env-bare-secret", "flag-bare-secret"],
)
def test_a_malformed_kafka_property_is_refused_without_echoing_its_text(monkeypatch, capsys, variables, argv, message) -> None:
    """`-X 'cd' is not key=value` printed the tail of a password; now the error gives a position, never the text."""
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert main(["worker", "--model", "no-such-artifact", *argv]) == 2
    err = capsys.readouterr().err
    assert "hunter2" not in err
    assert err.strip().splitlines()[-1] == message


def librdkafka_properties() -> list[str]:
    """Every configuration property of the librdkafka that confluent-kafka loaded, from its own table
    (rd_kafka_conf_properties_show), so a property a newer librdkafka adds is not missed."""
    import ctypes
    import ctypes.util
    import os
    import tempfile
    from pathlib import Path

    import confluent_kafka

    libs = Path(confluent_kafka.__file__).parent.parent / "confluent_kafka.libs"
    (library,) = libs.glob("librdkafka*.so*")
    rdkafka = ctypes.CDLL(str(library))
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.fopen.restype, libc.fopen.argtypes, libc.fclose.argtypes = ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_char_p], [ctypes.c_void_p]
    rdkafka.rd_kafka_conf_properties_show.argtypes = [ctypes.c_void_p]
    handle, path = tempfile.mkstemp()
    os.close(handle)
    try:
        stream = libc.fopen(path.encode(), b"w")
        rdkafka.rd_kafka_conf_properties_show(stream)
        libc.fclose(stream)
        table = Path(path).read_text()
    finally:
        os.unlink(path)
    return [line.split("|")[0].strip() for line in table.splitlines() if "|" in line and not line.startswith(("Property", "---"))]


def redacted_by_librdkafka(properties: list[str]) -> set[str]:
    """The properties librdkafka itself prints as [redacted] in a configuration dump (debug=conf)."""
    import logging

    from confluent_kafka import Producer

    lines: list[str] = []

    class Lines(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger("test.librdkafka.conf")
    logger.addHandler(Lines())
    logger.setLevel(logging.DEBUG)
    found = set()
    for name in properties:
        lines.clear()
        try:  # a string value: properties of other types refuse it, and none of those holds a secret
            producer = Producer({"bootstrap.servers": "127.0.0.1:1", "debug": "conf", "logger": logger, name: "v4lue-0f-a-s3cret"})
        except Exception:
            continue
        producer.poll(0.05)
        del producer
        if any(f"{name} = [redacted]" in line for line in lines):
            found.add(name)
    return found


def test_every_property_librdkafka_redacts_is_masked_here_too() -> None:
    """Once `sasl.oauthbearer.assertion.private.key.passphrase` and `...private.key.pem` were logged in clear."""
    from anomstream.config import SECRET_PROPERTIES, redact

    properties = librdkafka_properties()
    assert len(properties) > 150 and "sasl.password" in properties  # the table was read
    sensitive = redacted_by_librdkafka(properties)
    assert {"sasl.password", "ssl.key.password", "sasl.oauthbearer.assertion.private.key.passphrase"} <= sensitive  # the probe works
    assert sensitive - SECRET_PROPERTIES == set(), "librdkafka redacts these and this list does not name them"
    assert set(SECRET_PROPERTIES) - {"ssl_key"} <= set(properties), "a name here is not a property of this librdkafka"
    masked = redact({name: "v4lue" for name in SECRET_PROPERTIES | sensitive})
    assert set(masked.values()) == {"***"}
    assert redact({"bootstrap.servers": "b:9092", "security.protocol": "SASL_SSL"}) == {"bootstrap.servers": "b:9092", "security.protocol": "SASL_SSL"}
