"""The profile's stage names follow the code: a renamed step must not fall silently into another stage
(the model call was filed under "freeing the last batch" for a while, after `Worker.score` became
`Detector.score`)."""

import inspect

import pytest

from anomstream.benchmarks.profile_worker import classify
from anomstream.models.detector import Detector
from anomstream.stream import codec, verdict
from anomstream.stream.at_least_once import AtLeastOnce
from anomstream.stream.exactly_once import ExactlyOnce
from anomstream.stream.worker import Worker


def frame(function) -> str:
    """A py-spy frame for `function`, as `py-spy record --format raw` writes it: "qualname (path:line)"."""
    path = "/".join(inspect.getsourcefile(function).split("/")[-2:])  # the room and the module, as py-spy shows them
    return f"{function.__qualname__} ({path}:{inspect.getsourcelines(function)[1]})"


LOOP = [frame(Worker.run)]
STEP = LOOP + [frame(Worker.process)]


@pytest.mark.parametrize(
    "stack, stage",
    [
        (LOOP + [frame(Worker.poll_batch)], "consume (wait for a batch)"),
        (STEP + [frame(codec.decode_batch)], "decode (codec.decode_batch)"),
        (STEP + [frame(Detector.score)], "score (model call, explanations)"),
        (STEP + [frame(Worker.verdicts)], "build verdicts (dicts, Record)"),
        (STEP + [frame(Worker.verdicts), frame(verdict.encode_batch)], "encode verdicts (msgspec)"),
        (STEP + [frame(AtLeastOnce.send)], "produce() calls"),
        (STEP + [frame(ExactlyOnce.send)], "produce() calls"),
        (STEP + [frame(Worker.next_offsets)], "next_offsets"),
        (LOOP + [frame(Worker.commit)], "commit: transaction / flush / store"),
        (STEP, "loop itself (freeing the last batch, bookkeeping)"),
    ],
)
def test_each_step_of_the_loop_is_its_own_stage(stack, stage):
    assert classify(stack) == stage
