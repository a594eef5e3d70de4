"""Lighter inference runtimes than TensorFlow: start-up, memory, speed and agreement, measured.

    python -m anomstream.benchmarks.runtimes --rt-python /path/to/venv/bin/python [--model DIR] [--out FILE]

TensorFlow's import is most of the worker's start-up (~6 s) and resident memory (~660 MiB).
This exports the demo's dense model once (TensorFlow is needed for that, as at training
time): a LiteRT flatbuffer through TensorFlow's own converter (from a SavedModel), and an ONNX graph written
from the layers' weights (MatMul, Add, Relu, Sigmoid). Then each runtime is timed in a
fresh interpreter: `tensorflow` here, `onnxruntime` and `litert` (`ai-edge-litert`) in
`--rt-python`, a venv with `pip install onnxruntime onnx ai-edge-litert numpy` and no
TensorFlow (what a slim worker image would hold). Each child reports the seconds from its
start to the first scored batch, its RSS then, the median µs per window over batches of
512, and the reconstruction errors of the whole ECG5000 test split, which are compared with
TensorFlow's own: the largest difference and how many verdicts (error > threshold) differ.
Prints one JSON object. This is the comparison that chose LiteRT for the worker's
`--runtime litert` (models/runtimes.py, which holds the export used here); the bench
measures that worker itself, and this script stays the one place ONNX Runtime is measured.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

BATCH = 512
REPEATS = 50


def _seconds_since_process_start() -> float:
    """From exec, interpreter start-up and every import included (/proc: 10 ms resolution)."""
    import os

    ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return uptime - ticks / os.sysconf("SC_CLK_TCK")


def _rss_mib() -> float:
    """VmRSS of this process. Not `benchmarks.procs.memory`: importing procs (and `stream` with it) would add
    ~0.1 s and several MiB to the slim runtimes' own start-up and memory, which are what is measured here."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def export(model_dir: Path, out: Path) -> dict[str, Any]:
    """The inputs every child needs: the test split (raw), the normalisation, TensorFlow's errors, both exports."""
    from anomstream.models import artifact, data
    from anomstream.models.runtimes import export_litert

    metadata, scorer = artifact.scorer(model_dir)
    model = scorer.runtime.model
    dense = [layer for layer in model.layers if layer.__class__.__name__ == "Dense"]
    if len(dense) != len([layer for layer in model.layers if layer.weights]):
        raise SystemExit(f"{model_dir} is not the dense architecture: only Dense layers are exported here.")
    test = data.split(data.load(data.resolve())).test.windows.astype(np.float32)
    np.savez(
        out / "inputs.npz",
        windows=test,
        tf_errors=scorer.errors(test),
        minimum=metadata.normalisation.minimum,
        maximum=metadata.normalisation.maximum,
        threshold=metadata.threshold.value,
    )
    np.savez(out / "weights.npz", **{f"{i}_{part}": w.numpy() for i, layer in enumerate(dense) for part, w in zip(("kernel", "bias"), layer.weights)},
             activations=np.array([layer.get_config()["activation"] for layer in dense]))  # fmt: skip
    export_litert(model, out / "model.tflite")
    return {"layers": [int(layer.units) for layer in dense], "window_length": metadata.window_length}


def onnx_from_weights(weights: Path, path: Path) -> None:
    """An ONNX graph of the dense stack, written from its weights (the conversion a training run would do)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.load(weights)
    activations = [str(a) for a in w["activations"]]
    nodes, initializers, current = [], [], "window"
    for i, activation in enumerate(activations):
        initializers += [numpy_helper.from_array(w[f"{i}_kernel"], f"k{i}"), numpy_helper.from_array(w[f"{i}_bias"], f"b{i}")]
        nodes += [helper.make_node("MatMul", [current, f"k{i}"], [f"m{i}"]), helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"])]
        kind = {"relu": "Relu", "sigmoid": "Sigmoid"}[activation]
        nodes.append(helper.make_node(kind, [f"a{i}"], [f"y{i}"]))
        current = f"y{i}"
    width = w["0_kernel"].shape[0]
    graph = helper.make_graph(
        nodes, "ecg_dense", [helper.make_tensor_value_info("window", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info(current, TensorProto.FLOAT, ["batch", width])], initializers,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def child(runtime: str, work: Path) -> dict[str, Any]:
    """Runs in a fresh interpreter: import, load, score; start-up is timed from the process's start."""
    inputs = np.load(work / "inputs.npz")
    if runtime == "tensorflow":
        from anomstream.models import artifact

        errors_of = artifact.scorer(work / "model")[1].errors  # the worker's own scoring path
    else:
        minimum, maximum = float(inputs["minimum"]), float(inputs["maximum"])
        if runtime == "onnxruntime":
            import onnxruntime

            options = onnxruntime.SessionOptions()
            session = onnxruntime.InferenceSession(str(work / "model.onnx"), options, providers=["CPUExecutionProvider"])
            output = session.get_outputs()[0].name

            def reconstruct(x: np.ndarray) -> np.ndarray:
                return session.run([output], {"window": x})[0]
        else:
            from ai_edge_litert.interpreter import Interpreter

            interpreter = Interpreter(model_path=str(work / "model.tflite"))
            detail_in, detail_out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
            shape = [0]

            def reconstruct(x: np.ndarray) -> np.ndarray:
                if shape[0] != len(x):  # the batch dimension is dynamic: resize, then allocate, once per size
                    interpreter.resize_tensor_input(detail_in["index"], list(x.shape))
                    interpreter.allocate_tensors()
                    shape[0] = len(x)
                interpreter.set_tensor(detail_in["index"], x)
                interpreter.invoke()
                return interpreter.get_tensor(detail_out["index"])

        def errors_of(windows: np.ndarray) -> np.ndarray:  # models.scorer's normalisation and error, in NumPy
            scaled = ((windows - minimum) / (maximum - minimum)).astype(np.float32)
            return np.abs(reconstruct(scaled) - scaled).mean(axis=1)

    windows = inputs["windows"]
    batch = np.resize(windows, (BATCH, windows.shape[1])).astype(np.float32)
    errors_of(batch)
    ready = _seconds_since_process_start()
    rss = _rss_mib()
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        errors_of(batch)
        times.append(time.perf_counter() - started)
    errors = np.concatenate([errors_of(windows[i : i + BATCH]) for i in range(0, len(windows), BATCH)])
    reference, threshold = inputs["tf_errors"], float(inputs["threshold"])
    return {
        "runtime": runtime,
        "seconds_to_first_batch": round(ready, 3),
        "rss_mib_at_first_batch": round(rss, 1),
        "us_per_window_batch_512": round(float(np.median(times)) / BATCH * 1e6, 3),
        "max_abs_error_diff": float(np.abs(errors - reference).max()),
        "max_rel_error_diff": float((np.abs(errors - reference) / reference).max()),
        "verdicts_differing": int(((errors > threshold) != (reference > threshold)).sum()),
        "windows_compared": len(errors),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rt-python", required=True, help="a Python with onnxruntime, onnx, ai-edge-litert and numpy (no TensorFlow needed)")
    parser.add_argument("--model", type=Path, help="a dense model artifact (default: the demo's cached model)")
    parser.add_argument("--repeats", type=int, default=3, help="fresh interpreters per runtime; medians are reported (default: 3)")
    parser.add_argument("--out", type=Path, help="also write the JSON result here")
    parser.add_argument("--child", choices=["tensorflow", "onnxruntime", "litert"], help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--build-onnx", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.work)))
        return 0
    if args.build_onnx:
        onnx_from_weights(args.work / "weights.npz", args.work / "model.onnx")
        return 0

    from anomstream.models import data
    from anomstream.replay.demo import cached_model

    model_dir = args.model or cached_model(data.load(data.resolve()), "tutorial")
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="anomstream-runtimes-") as tmp:
        work = Path(tmp)
        exported = export(model_dir, work)
        (work / "model").symlink_to(Path(model_dir).resolve())
        me = ["-m", "anomstream.benchmarks.runtimes", "--rt-python", args.rt_python, "--work", str(work)]
        subprocess.run([args.rt_python, *me, "--build-onnx"], check=True, cwd=root)
        runs: dict[str, list[dict[str, Any]]] = {}
        for _ in range(args.repeats):  # interleaved, so that the machine's drift hits every runtime alike
            for runtime, python in (("tensorflow", sys.executable), ("onnxruntime", args.rt_python), ("litert", args.rt_python)):
                done = subprocess.run([python, *me, "--child", runtime], check=True, cwd=root, capture_output=True, text=True)
                runs.setdefault(runtime, []).append(json.loads(done.stdout.strip().splitlines()[-1]))
    result = {
        "model": str(model_dir),
        "exported": exported,
        "batch": BATCH,
        "repeats": args.repeats,
        "runtimes": {runtime: _median_of(rows) for runtime, rows in runs.items()},
        "runs": runs,
    }
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


def _median_of(rows: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("seconds_to_first_batch", "rss_mib_at_first_batch", "us_per_window_batch_512")
    summary = {key: round(float(np.median([row[key] for row in rows])), 3) for key in keys}
    summary.update({key: max(row[key] for row in rows) for key in ("max_abs_error_diff", "max_rel_error_diff", "verdicts_differing")})
    return summary


if __name__ == "__main__":
    sys.exit(main())
