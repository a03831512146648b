"""Engine benchmark on Verilator: cycles of EIE's nine layer shapes, simulation and load speed.

For each layer: random weights and activations of EIE's densities (EIE ran the real
AlexNet/VGG/NeuralTalk layers; random layers of the same shape and density stand in),
run alone on a 64-PE engine (FIFO 8). Printed beside each: the ideal bound (stored
entries of active columns on the busiest PE, and the same with >= 1 cycle per active
(PE, column) pair), EIE's published times converted to cycles at 800 MHz, the Verilator
speed in simulated cycles per second of the run phase, and the image load time (through
the testbench's $readmemh feeder, one word per clock). Alex-7's load is also timed from
Python word by word (the pre-feeder way) for comparison. Writes
benchmarks/results/bench_engine.json.

    AMARANTH_USE_YOSYS=builtin .venv/bin/python benchmarks/bench_engine.py [--layers A B ..]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
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
# EIE's design point. VGG-6's 25089 column pointers per PE do not fit its 16K pointer
# SRAM, so that layer runs on a variant with 32K pointers (one more build); the timing
# rules do not depend on ptr_depth.
CONFIG = EngineConfig.preset("eie64")
BIG_PTR = EngineConfig.preset("eie64", ptr_depth=32768)


def ideal_cycles(col_entries: np.ndarray, x_q: np.ndarray, floor: int = 0) -> int:
    """Stored entries of active columns on the busiest PE; with ``floor=1`` an empty
    active (PE, column) pair counts one cycle, as it does on this engine."""
    return int(np.maximum(col_entries[:, x_q != 0], floor).sum(axis=1).max())


def machine() -> str:
    """``lscpu``'s model name and the CPU count."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        name = next(line.split(":", 1)[1].strip() for line in out.splitlines()
                    if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        name = platform.processor() or platform.machine()
    return f"{name}, {os.cpu_count()} CPUs"


def run_case(name, layer, x_q, config, build, python_load=False) -> dict:
    """Run one layer alone; its row of the table."""
    fmt = config.fmt
    image = compile_model(single_layer_model(layer), config)
    t1 = time.perf_counter()
    # load_pause > 0 selects the word-by-word Python load driver; 1e-12 never pauses
    result = run_job(build, [image_run(image, x_q)], load_pause=1e-12 if python_load else 0.0)
    wall = time.perf_counter() - t1
    run = result["runs"][0]
    mismatch = first_mismatch(run["outputs"], layer_fixed(layer, x_q, fmt), config.n_pe, name)
    li = image.layers[0]
    cycles = run["cycles"][0]
    theo, actual = EIE_TIMES_US.get(name, (None, None))
    words = len(image.load_words()) + len(x_q)
    return {
        "layer": name, "rows": layer.rows, "cols": layer.cols,
        "ptr_depth": config.ptr_depth,
        "weight_density": round(layer.density, 4),
        "act_density": round(float(np.count_nonzero(x_q)) / layer.cols, 4),
        "rtl_cycles": cycles, "ideal_cycles": ideal_cycles(li.col_entries, x_q),
        "ideal_cycles_min1": ideal_cycles(li.col_entries, x_q, floor=1),
        "eie_theoretical_cycles": None if theo is None else round(theo * MHZ),
        "eie_actual_cycles": None if actual is None else round(actual * MHZ),
        "bit_exact": mismatch is None, "mismatch": mismatch,
        "compute_seconds": round(run["compute_seconds"], 3),
        "cycles_per_second": round(cycles / run["compute_seconds"]),
        "load_words": words, "load_by": "python" if python_load else "feeder",
        "load_seconds": round(run["load_seconds"], 1),
        "load_words_per_second": round(words / run["load_seconds"]),
        "job_seconds": round(wall, 1),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", nargs="*", default=list(EIE_LAYERS))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-python-load", action="store_true",
                        help="skip timing Alex-7's load from Python word by word")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    fmt = CONFIG.fmt
    t_all = time.perf_counter()
    builds, build_seconds = {}, {}

    def build_of(config):
        if config not in builds:
            t0 = time.perf_counter()
            builds[config] = build_engine(config)
            build_seconds[f"ptr_depth={config.ptr_depth}"] = round(time.perf_counter() - t0, 1)
        return builds[config]

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
        config = CONFIG
        try:
            compile_model(single_layer_model(layer), CONFIG)
        except FitError as err:
            config = BIG_PTR
            print(f"{name}: {err}; running it on ptr_depth={BIG_PTR.ptr_depth}", flush=True)
        rows_out.append(run_case(name, layer, x_q, config, build_of(config)))
        print(json.dumps(rows_out[-1]), flush=True)
        if name == "Alex-7" and not args.no_python_load:
            rows_out.append(run_case(name, layer, x_q, config, build_of(config),
                                     python_load=True))
            print(json.dumps(rows_out[-1]), flush=True)

    head = ("layer", "rtl_cycles", "ideal_cycles", "ideal_cycles_min1", "eie_theoretical_cycles",
            "eie_actual_cycles", "bit_exact", "cycles_per_second", "load_words", "load_by",
            "load_seconds", "load_words_per_second")
    print(" | ".join(head))
    for r in rows_out:
        print(" | ".join(str(r.get(h, "-")) for h in head))
    out = {"config": CONFIG.to_dict(), "variant_for_vgg6": {"ptr_depth": BIG_PTR.ptr_depth},
           "build_seconds": build_seconds, "machine": machine(),
           "total_seconds": round(time.perf_counter() - t_all, 1), "layers": rows_out}
    print(f"total {out['total_seconds']} s, builds {build_seconds}")
    path = Path(__file__).resolve().parent / "results" / "bench_engine.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
