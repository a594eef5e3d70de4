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
