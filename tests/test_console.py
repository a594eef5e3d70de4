"""Progress without a terminal: log lines a person (or a CI log) can read."""

from __future__ import annotations

import logging

import pytest
from rich.console import Console

from anomstream import console


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(console.time, "monotonic", clock)
    monkeypatch.setattr(console, "stderr", Console(stderr=True, force_terminal=False))  # as in CI or a container
    return clock


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "anomstream"]


def test_a_task_that_takes_a_second_says_so_once(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "anomstream")
    with console.progress("replay", total=1000, unit="windows") as advance:
        for _ in range(1000):
            clock.now += 0.001
            advance()
        advance()  # past the total: nothing more to say
    assert lines(caplog) == ["replay: 1000/1000 windows (1.0 s) "]


def test_a_slow_task_says_every_tenth(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "anomstream")
    with console.progress("training", total=50, unit="epochs") as advance:
        for epoch in range(50):
            clock.now += 0.5  # 2.5 s a tenth
            advance(loss=1.0 / (epoch + 1))
    said = lines(caplog)
    assert [line.split(" ")[1] for line in said] == [f"{n}/50" for n in range(5, 51, 5)]
    assert said[-1] == "training: 50/50 epochs (25.0 s) loss=0.02"
