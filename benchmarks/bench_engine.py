"""Engine benchmark on Verilator: simulated cycles/s and cycles of EIE's nine layer shapes.

For each layer: random weights and activations of EIE's densities (EIE ran the real
AlexNet/VGG/NeuralTalk layers; random layers of the same shape and density stand in),
run alone on a 64-PE engine (FIFO 8). Printed beside each: the ideal bound (stored
entries of active columns on the busiest PE), EIE's published times converted to
cycles at 800 MHz, and the Verilator speed in simulated cycles per second of the run
phase. Writes benchmarks/results/bench_engine.json.

    AMARANTH_USE_YOSYS=builtin .venv/bin/python benchmarks/bench_engine.py [--layers A B ..]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from dcsim.errors import FitError
from dcsim.hw.config import EngineConfig
from dcsim.hw.image import compile_model
from dcsim.hw.sim import first_mismatch, image_run, run_job
from dcsim.hw.verilator import build_engine
from dcsim.hw.workloads import EIE_LAYERS, EIE_TIMES_US, lenet_300_100, random_activations, \
    random_layer, single_layer_model
from dcsim.kernels.run import trace_fixed
from dcsim.kernels.spmv import layer_fixed

MHZ = 800
# EIE's design point; VGG-6's 25089 column pointers do not fit its 16K pointer SRAM
# (EIE would tile it), so that layer is reported as not fitting.
CONFIG = EngineConfig.preset("eie64")


def ideal_cycles(col_entries: np.ndarray, x_q: np.ndarray, floor: int = 0) -> int:
    """Stored entries of active columns on the busiest PE; with ``floor=1`` an empty
    active (PE, column) pair counts one cycle, as it does on this engine."""
    return int(np.maximum(col_entries[:, x_q != 0], floor).sum(axis=1).max())


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", nargs="*", default=list(EIE_LAYERS))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    fmt = CONFIG.fmt
    t0 = time.perf_counter()
    build = build_engine(CONFIG)
    build_seconds = time.perf_counter() - t0

    cases = []
    for name in args.layers:
        rows, cols, wd, ad = EIE_LAYERS[name]
        layer = random_layer(name, rows, cols, wd, rng, code_bits=4,
                             scale=1.0 / np.sqrt(wd * cols * ad))
        cases.append((name, layer, fmt.to_fixed(random_activations(cols, ad, rng))))
    lenet = lenet_300_100(rng, code_bits=4)
    x = np.random.default_rng(args.seed).random(784).astype(np.float32)
    x[x < 0.8] = 0.0
    for layer, (x_in, _) in zip(lenet.layers, trace_fixed(lenet, x, fmt)):
        cases.append((f"LeNet-{layer.name}", layer, x_in))

    rows_out = []
    for name, layer, x_q in cases:
        try:
            image = compile_model(single_layer_model(layer), CONFIG)
        except FitError as err:
            rows_out.append({"layer": name, "fit_error": str(err)})
            print(json.dumps(rows_out[-1]), flush=True)
            continue
        t1 = time.perf_counter()
        result = run_job(build, [image_run(image, x_q)])
        wall = time.perf_counter() - t1
        run = result["runs"][0]
        want = layer_fixed(layer, x_q, fmt)
        mismatch = first_mismatch(run["outputs"], want, CONFIG.n_pe, name)
        li = image.layers[0]
        cycles = run["cycles"][0]
        theo, actual = EIE_TIMES_US.get(name, (None, None))
        rows_out.append({
            "layer": name, "rows": layer.rows, "cols": layer.cols,
            "weight_density": round(layer.density, 4),
            "act_density": round(float(np.count_nonzero(x_q)) / layer.cols, 4),
            "rtl_cycles": cycles, "ideal_cycles": ideal_cycles(li.col_entries, x_q),
            "ideal_cycles_min1": ideal_cycles(li.col_entries, x_q, floor=1),
            "eie_theoretical_cycles": None if theo is None else round(theo * MHZ),
            "eie_actual_cycles": None if actual is None else round(actual * MHZ),
            "bit_exact": mismatch is None,
            "compute_seconds": round(run["compute_seconds"], 3),
            "cycles_per_second": round(cycles / run["compute_seconds"]),
            "load_words": len(image.load_words()), "job_seconds": round(wall, 1),
        })
        print(json.dumps(rows_out[-1]), flush=True)

    head = ("layer", "rtl_cycles", "ideal_cycles", "ideal_cycles_min1", "eie_theoretical_cycles",
            "eie_actual_cycles", "bit_exact", "cycles_per_second")
    print(" | ".join(head))
    for r in rows_out:
        print(" | ".join(str(r.get(h, "-")) for h in head))
    out = {"config": CONFIG.to_dict(), "build_seconds": round(build_seconds, 1),
           "machine": platform.processor() or platform.machine(), "layers": rows_out}
    path = Path(__file__).resolve().parent / "results" / "bench_engine.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
