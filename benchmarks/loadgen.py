"""A fixed-rate JSON/f32 producer for the latency phase, run as its own process.

    python -m anomstream.benchmarks.loadgen --bootstrap-servers HOST:PORT --topic T --rate 10000 --seconds 10 --windows W.npz [--format json]

Each message carries `ts = time.time()` taken just before `produce()`, as `replay`
does, so verdict time minus `ts` is the end-to-end latency (the producer's own
batching included). Pacing: every millisecond, send what the target rate says is
due by now, so short stalls are caught up at once and the average rate holds.
Prints one JSON object on stdout: sent, acknowledged, seconds, achieved rate.
It runs in its own process so that producing does not take the GIL from the
process that reads the verdicts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from confluent_kafka import Producer

from anomstream.stream import clients

# replay's producer (idempotent, lz4, linger.ms 5): what a user replaying at a fixed rate gets.
PRODUCER = {"enable.idempotence": True, "linger.ms": 5, "compression.type": "lz4"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--format", choices=["json", "f32"], default="json")
    parser.add_argument("--prefix", default="lat-")
    parser.add_argument("--windows", required=True, help="an .npz with `windows` and `labels` (the harness writes it)")
    args = parser.parse_args(argv)

    import numpy as np

    from anomstream.benchmarks.backlog import Templates

    arrays = np.load(args.windows)
    templates = Templates(arrays["windows"], arrays["labels"])
    acknowledged = 0
    failed = 0

    def on_delivery(error: Any, _message: Any) -> None:
        nonlocal acknowledged, failed
        if error is None:
            acknowledged += 1
        else:
            failed += 1

    producer = clients.create(Producer, {**PRODUCER, "bootstrap.servers": args.bootstrap_servers})
    total = int(args.rate * args.seconds)
    prefix = args.prefix.encode()
    sent = 0
    started = time.monotonic()
    while sent < total:
        due = min(total, int((time.monotonic() - started) * args.rate) + 1)
        while sent < due:
            key, value, headers = templates.message(args.format, sent, prefix, time.time())
            try:
                producer.produce(args.topic, value, key, headers=headers, on_delivery=on_delivery)
            except BufferError:
                producer.poll(0.01)
                continue
            sent += 1
        producer.poll(0)
        time.sleep(0.001)
    sending = time.monotonic() - started
    while producer.flush(1.0):
        pass
    json.dump({"sent": sent, "acknowledged": acknowledged, "failed": failed, "seconds": round(sending, 3),
               "rate": round(sent / sending, 1) if sending > 0 else 0.0}, sys.stdout)  # fmt: skip
    sys.stdout.write("\n")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
