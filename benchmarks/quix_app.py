"""The bench's peer: a Quix Streams application doing the worker's job, as its documentation shows it.

JSON windows in, one verdict per window out, with the same artifact on the same runtime (LiteRT's
`model.tflite`, its normalisation and threshold read from `model.json`): a `StreamingDataFrame` with a
per-message `apply` that calls the compiled model directly, `to_topic`, and `Application.run(count=N)`,
under `processing_guarantee` exactly-once or at-least-once. Run by benchmarks/quix.py in a virtual
environment of its own: Quix Streams 3.28 pins confluent-kafka below 2.13 and pydantic below 2.14, which
the worker's environment is past. So this file imports neither anomstream nor anything but Quix Streams,
numpy and ai-edge-litert.

Quix Streams' batched alternative is a count window (`tumbling_count_window(512).collect()`): that is
state, kept per message key in RocksDB with a changelog topic under exactly-once, so each message costs a
state write more, and a window only closes when its key has 512 messages. The per-message `apply` is what
its documentation recommends for a stateless transformation, and it is what is measured.

    python quix_app.py --broker HOST:PORT --input T --output T --group G --artifact DIR --guarantee exactly-once --count N

Prints one JSON line when the first window is scored (`first_scored`, time.monotonic, the same clock as the
bench's on Linux) and one when `count` verdicts are out (`done`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


class Model:
    """The artifact's LiteRT model, normalisation and threshold: what the worker scores with, one window at a time."""

    def __init__(self, artifact: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter

        meta = json.loads((artifact / "model.json").read_text())
        self.shape = (meta.get("channels", 1), *([meta["window_height"]] if meta.get("window_height") else []), meta["window_length"])
        low = np.atleast_1d(np.asarray(meta["normalisation"]["minimum"], np.float32))
        high = np.atleast_1d(np.asarray(meta["normalisation"]["maximum"], np.float32))
        per_channel = (-1,) + (1,) * (len(self.shape) - 1)
        self.low, self.span = low.reshape(per_channel), (high - low).reshape(per_channel)
        self.threshold = float(meta["threshold"]["value"])
        self.model_ref = {"name": meta["name"], "version": meta["version"], "sha256": meta["model_file"]["sha256"]}
        self.interpreter = Interpreter(model_content=(artifact / meta["litert_file"]["file"]).read_bytes(), num_threads=1)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.interpreter.resize_tensor_input(self.input["index"], [1, *[int(d) for d in self.input["shape_signature"][1:]]])
        self.interpreter.allocate_tensors()
        self.model_shape = [1, *[int(d) for d in self.input["shape_signature"][1:]]]

    def error(self, values: Any) -> float:
        scaled = (np.asarray(values, dtype=np.float32).reshape(self.shape) - self.low) / self.span
        self.interpreter.set_tensor(self.input["index"], scaled.reshape(self.model_shape))
        self.interpreter.invoke()
        rebuilt = self.interpreter.get_tensor(self.output["index"]).reshape(self.shape)
        return float(np.abs(rebuilt - scaled).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--artifact", required=True, type=Path)
    parser.add_argument("--guarantee", choices=["exactly-once", "at-least-once"], required=True)
    parser.add_argument("--count", type=int, required=True, help="stop after this many verdicts")
    args = parser.parse_args(argv)

    from quixstreams import Application

    model = Model(args.artifact)
    app = Application(
        broker_address=args.broker,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        processing_guarantee=args.guarantee,
        auto_create_topics=False,
        loglevel="WARNING",
    )
    windows = app.topic(args.input, value_deserializer="json")
    verdicts = app.topic(args.output, value_serializer="json")
    first: list[float] = []

    def score(window: dict[str, Any]) -> dict[str, Any]:
        if not first:
            first.append(time.monotonic())
            print(json.dumps({"first_scored": first[0]}), flush=True)
        error = model.error(window["values"])
        return {"id": window["id"], "source": window.get("source"), "ts": window.get("ts"), "label": window.get("label"),
                "error": error, "threshold": model.threshold, "score": error / model.threshold,
                "anomaly": error > model.threshold, "model": model.model_ref, "scored_at": time.time()}  # fmt: skip

    app.dataframe(windows).apply(score).to_topic(verdicts)
    app.run(count=args.count, collect=False)
    print(json.dumps({"done": time.monotonic(), "verdicts": args.count}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
