"""Bring your own network: two PyTorch exports through import, compress and export.

Usage: python benchmarks/bench_onnx.py [--nets mlp cnn] [--no-retrain]

For each of tests/data/{mlp,cnn}.onnx (trained and exported by tests/data/make_onnx.py)
on the 10 000 MNIST test images: the float error in onnxruntime and in dcsim (and
whether every label agrees), then ``dcsim compress --onnx NET --out NET.dcz`` with the
default settings (wall and CPU seconds, import included), the ratio on the real file, the compressed
error, then ``dcsim export`` and the exported file's error in onnxruntime beside
``dcsim eval``'s dense error (they must be equal). Writes
benchmarks/results/onnx_<nets>[_noretrain].json (with the load average before and
after: the machine is shared) and prints one row per network. Targets (issue
#12): MLP >= 35x at <= +0.2 points, import + compress under 10 minutes.
"""

import argparse
import contextlib
import io
import json
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from dcsim.cli import main as dcsim
from dcsim.io.onnx_import import import_onnx
from dcsim.nn.datasets import load_mnist

HERE = Path(__file__).parent
DATA = HERE.parent / "tests" / "data"


def ort_labels(path, x):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return session.run(None, {name: x})[0].argmax(axis=1)


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its threads so far: unlike the
    wall clock, barely moved by other jobs on a shared machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def error(labels, y) -> float:
    """Percent wrong, computed as dcsim.kernels.evaluate does (so equal means equal)."""
    return 100.0 * int(np.count_nonzero(labels != y)) / len(y)


def cli_json(argv):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = dcsim(argv + ["--json"])
    if rc != 0:
        raise SystemExit(f"dcsim {' '.join(argv)} exited {rc}")
    return json.loads(out.getvalue())


def bench(net: str, results: Path, no_retrain: bool) -> dict:
    mnist = load_mnist()
    x, y = mnist.test_x, mnist.test_y
    images = x.reshape(-1, 1, 28, 28)
    onnx_path = DATA / f"{net}.onnx"
    ort_float = ort_labels(onnx_path, images)
    model = import_onnx(onnx_path)
    ours = model.predict(x)
    dcz = results / f"onnx_{net}{'_noretrain' if no_retrain else ''}.dcz"
    start, cpu = time.perf_counter(), _cpu_seconds()
    summary = cli_json(["compress", "--onnx", str(onnx_path), "--out", str(dcz), "--quiet"]
                       + (["--no-retrain"] if no_retrain else []))
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    exported = dcz.with_suffix(".onnx")
    cli_json(["export", str(dcz), "--onnx", str(exported)])
    ort_exported = ort_labels(exported, images)
    evaluated = cli_json(["eval", str(dcz)])
    row = {
        "net": net, "weights": summary["total"]["weights"],
        "float_error_onnxruntime": error(ort_float, y),
        "float_error_dcsim": error(ours, y),
        "float_labels_equal": bool(np.array_equal(ort_float, ours)),
        "baseline_error": summary["baseline_error"],
        "compressed_error": summary["compressed_error"],
        "ratio": summary["ratio"], "file_bytes": summary["file_bytes"],
        "dense_bytes": summary["dense_bytes"],
        "density": summary["total"]["density"],
        "layers": [{k: r[k] for k in ("name", "weights", "density", "ratio_pqh")}
                   for r in summary["layers"]],
        "exported_error_onnxruntime": error(ort_exported, y),
        "eval_dense_error": evaluated["dense_error"],
        "eval_float_error": evaluated["float_error"],
        "eval_fixed_error": evaluated["fixed_error"],
        "compress_seconds": round(seconds, 1), "compress_cpu_seconds": round(cpu, 1),
        "retrained": not no_retrain,
    }
    row["exported_equals_eval"] = row["exported_error_onnxruntime"] == row["eval_dense_error"]
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
    parser.add_argument("--no-retrain", action="store_true")
    args = parser.parse_args()
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    load = os.getloadavg()
    rows = [bench(net, results, args.no_retrain) for net in args.nets]
    head = ("net", "float ORT", "float dcsim", "labels eq", "compressed", "ratio",
            "export ORT", "eval dense", "seconds", "CPU s")
    print(" | ".join(head))
    for r in rows:
        print(" | ".join([r["net"], f"{r['float_error_onnxruntime']:.2f}%",
                          f"{r['float_error_dcsim']:.2f}%", str(r["float_labels_equal"]),
                          f"{r['compressed_error']:.2f}%", f"{r['ratio']:.1f}x",
                          f"{r['exported_error_onnxruntime']:.2f}%",
                          f"{r['eval_dense_error']:.2f}%", f"{r['compress_seconds']:.0f}",
                          f"{r['compress_cpu_seconds']:.0f}"]))
    out = results / f"onnx_{'_'.join(args.nets)}{'_noretrain' if args.no_retrain else ''}.json"
    out.write_text(json.dumps({"machine": platform.machine(), "cpus": os.cpu_count(),
                               "load_average_before": load, "load_average_after":
                               os.getloadavg(), "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
