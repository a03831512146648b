"""Cycle-model benchmark: speed, EIE's nine layers, FIFO-depth and PE-scaling curves, and
the Deep Compression on-chip claim with energy per scenario.

EIE ran the real AlexNet / VGG-16 / NeuralTalk layers; here random layers of the same
shapes and weight densities (codes kept i.i.d. with the published density) and random
activations at the published activation density stand in (seeded). Cycles are
``dcsim.perf.cycles`` (exact against the RTL); EIE's times come from its Table IV
(microseconds at 800 MHz, so cycles = us x 800). Writes benchmarks/results/cycles*.json
and docs/eie_fifo_depth.png, docs/eie_pe_scaling.png.

    .venv/bin/python benchmarks/bench_cycles.py [--seed 1] [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from dcsim.compress.layer import CompressedLayer, CompressedModel
from dcsim.hw.config import EngineConfig
from dcsim.hw.image import fit_error, memory_use
from dcsim.hw.workloads import EIE_LAYERS, EIE_TIMES_US, lenet_300_100, random_activations, \
    random_layer
from dcsim.nn.datasets import load_mnist
from dcsim.perf.cycles import engine_col_entries, layer_cycles, model_cycles
from dcsim.perf.energy import SCENARIOS, energy
from dcsim.perf.estimate import estimate

MHZ = 800
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
CONFIG = EngineConfig.preset("eie64")
FIFO_DEPTHS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
PE_COUNTS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def stand_in_codes(rows: int, cols: int, density: float, seed: int) -> np.ndarray:
    """uint16 (rows, cols) codes, non-zero (1..15) with probability ``density``; made in
    column chunks so VGG-6's 100 M weights never need float64 arrays of that size."""
    rng = np.random.default_rng(seed)
    codes = np.zeros((rows, cols), dtype=np.uint16)
    for c0 in range(0, cols, 2048):
        c1 = min(cols, c0 + 2048)
        kept = rng.random((rows, c1 - c0)) < density
        codes[:, c0:c1] = np.where(kept, rng.integers(1, 16, (rows, c1 - c0)), 0)
    return codes


def pct(a: float, b: float) -> float:
    return round(100.0 * (a - b) / b, 1)


def bench_speed(seed: int) -> dict:
    """The issue's speed target: a 4096 x 4096 layer, 9% dense, on 64 PEs."""
    rng = np.random.default_rng(seed)
    layer = random_layer("fc", 4096, 4096, 0.09, rng)
    x = CONFIG.fmt.to_fixed(random_activations(4096, 0.353, rng))
    layer_cycles(engine_col_entries(layer, CONFIG), x, 4096, CONFIG)          # numba warm-up
    times_model, times_all = [], []
    for _ in range(5):
        t0 = time.perf_counter()
        ce = engine_col_entries(layer, CONFIG)
        t1 = time.perf_counter()
        r = layer_cycles(ce, x, 4096, CONFIG)
        t2 = time.perf_counter()
        times_all.append(t2 - t0)
        times_model.append(t2 - t1)
    act = x != 0
    dense = np.ones(4096, dtype=bool)
    t0 = time.perf_counter()
    r_dense = layer_cycles(ce, dense, 4096, CONFIG)
    t_dense = time.perf_counter() - t0
    out = {"layer": "4096x4096, 9% weights, 35.3% activations, 64 PEs, FIFO 8",
           "cycles": r.cycles, "broadcasts": int(act.sum()),
           "model_seconds_min": round(min(times_model), 4),
           "encode_plus_model_seconds_min": round(min(times_all), 4),
           "model_seconds_all_columns_active": round(t_dense, 4),
           "cycles_all_columns_active": r_dense.cycles}
    print(json.dumps(out))
    return out


def bench_rtl_crosscheck() -> list:
    """The layers benchmarks/bench_engine.py ran on the 64-PE RTL, regenerated with its
    seed and generator calls (in its order): the model's cycles beside the RTL's."""
    path = RESULTS / "bench_engine.json"
    if not path.exists():
        return []
    done = json.loads(path.read_text())["layers"]
    rng = np.random.default_rng(1)
    out = []
    for run in done:
        name = run["layer"]
        if name not in EIE_LAYERS:
            continue
        rows, cols, wd, ad = EIE_LAYERS[name]
        layer = random_layer(name, rows, cols, wd, rng, code_bits=4,
                             scale=1.0 / np.sqrt(wd * cols * ad))
        x = CONFIG.fmt.to_fixed(random_activations(cols, ad, rng))
        if "rtl_cycles" in run:
            r = layer_cycles(engine_col_entries(layer, CONFIG), x, rows, CONFIG)
            out.append({"layer": name, "rtl_cycles": run["rtl_cycles"],
                        "model_cycles": r.cycles})
            print(json.dumps(out[-1]))
    return out


def bench_eie_layers(seed: int, quick: bool) -> tuple:
    """EIE's nine layers at 64 PEs, FIFO 8; plus the FIFO-depth and PE-count sweeps.

    Also a work-matched run per layer: the weight density is rescaled (two secant steps)
    until the stand-in's ideal cycles equal EIE's "theoretical" ones, so that the
    comparison with EIE's "actual" measures the timing (load balance, overheads) alone.
    """
    rows_out, fifo_curves, pe_curves = [], {}, {}
    for li, (name, (rows, cols, wd, ad)) in enumerate(EIE_LAYERS.items()):
        layer = _fc_layer(name, rows, cols, wd, seed + li)
        act = np.random.default_rng(seed + 100 + li).random(cols) < ad
        ce64 = engine_col_entries(layer, CONFIG)
        r = layer_cycles(ce64, act, rows, CONFIG, name=name)
        theo_us, actual_us = EIE_TIMES_US[name]
        theo, actual = round(theo_us * MHZ), round(actual_us * MHZ)
        matched = _work_matched(name, rows, cols, wd, seed + li, act, theo, actual,
                                r.ideal_cycles)
        rows_out.append({
            "layer": name, "rows": rows, "cols": cols, "weight_density": wd,
            "act_density": ad, "active_columns": int(act.sum()),
            "model_cycles": r.cycles, "model_run_cycles": r.phases["run"],
            "ideal_cycles": r.ideal_cycles, "bound_cycles": r.bound_cycles,
            "busiest_entries": r.busiest_entries, "efficiency": round(r.efficiency, 3),
            "breakdown": r.breakdown,
            "eie_theoretical_cycles": theo, "eie_actual_cycles": actual,
            "model_vs_actual_pct": pct(r.cycles, actual),
            "model_vs_theoretical_pct": pct(r.cycles, theo),
            "ideal_vs_theoretical_pct": pct(r.ideal_cycles, theo),
            "bound_vs_theoretical_pct": pct(r.bound_cycles, theo),
            "eie_efficiency": round(theo / actual, 3),
            "work_matched": matched,
        })
        print(json.dumps({k: v for k, v in rows_out[-1].items() if k != "breakdown"}), flush=True)
        depths = FIFO_DEPTHS[:4] if quick else FIFO_DEPTHS
        fifo_curves[name] = [
            {"fifo_depth": d, **_point(layer_cycles(ce64, act, rows, CONFIG, fifo_depth=d))}
            for d in depths]
        counts = PE_COUNTS[:4] if quick else PE_COUNTS
        points = []
        for n in counts:
            config = EngineConfig.preset("eie64", n_pe=n)
            ce = ce64 if n == 64 else engine_col_entries(layer, config)
            points.append({"n_pe": n, **_point(layer_cycles(ce, act, rows, config))})
        base = points[0]["cycles"]
        for p in points:
            p["speedup"] = round(base / p["cycles"], 2)
        pe_curves[name] = points
    return rows_out, fifo_curves, pe_curves


def _work_matched(name, rows, cols, density, seed, act, theo, actual, ideal) -> dict:
    """The layer at the weight density whose ideal cycles hit EIE's theoretical ones."""
    points = [(density, ideal)]
    d = min(1.0, density * theo / ideal)
    for _ in range(2):
        ce = engine_col_entries(_fc_layer(name, rows, cols, d, seed), CONFIG)
        r = layer_cycles(ce, act, rows, CONFIG, name=name)
        points.append((d, r.ideal_cycles))
        (d0, i0), (d1, i1) = points[-2:]
        if i1 == i0:
            break
        d = min(1.0, d1 + (theo - i1) * (d1 - d0) / (i1 - i0))
    return {"weight_density": round(points[-1][0], 4), "ideal_cycles": r.ideal_cycles,
            "model_cycles": r.cycles, "efficiency": round(r.efficiency, 3),
            "model_vs_actual_pct": pct(r.cycles, actual)}


def _point(r) -> dict:
    return {"cycles": r.cycles, "run_cycles": r.phases["run"], "ideal_cycles": r.ideal_cycles,
            "efficiency": round(r.efficiency, 4),
            "run_efficiency": round(r.ideal_cycles / r.phases["run"], 4)}


def _fc_layer(name, rows, cols, density, seed, relu=True) -> CompressedLayer:
    codes = stand_in_codes(rows, cols, density, seed)
    rng = np.random.default_rng(seed + 7)
    codebook = np.concatenate([[0.0], rng.normal(0, 0.05, 15)]).astype(np.float32)
    return CompressedLayer(name=name, kind="fc", shape=(rows, cols), codes=codes,
                           codebook=codebook, bias=np.zeros(rows, np.float32), code_bits=4,
                           index_bits=4, relu=relu)


def bench_fit_and_energy(seed: int, quick: bool) -> dict:
    """Deep Compression's claim on EIE's design point: compressed fc stacks fit on chip,
    dense float32 ones do not; energy per inference in each scenario."""
    out = {}
    chip_bytes = CONFIG.n_pe * CONFIG.sparse_bytes
    # LeNet-300-100 (random stand-in, DC's densities, 4-bit codes) on MNIST test images
    m = load_mnist()
    lenet = lenet_300_100(np.random.default_rng(seed), code_bits=4)
    n_img = 10 if quick else 100
    cases = [("eie64", CONFIG), ("small-4pe", EngineConfig.preset("small", n_pe=4))]
    for label, config in cases:
        est = estimate(lenet, m.test_x[:n_img], config)
        dense_bytes = sum(layer.rows * layer.cols * 4 for layer in lenet.layers)
        cap = config.n_pe * config.sparse_bytes
        out[f"LeNet-300-100 on {label}"] = _fit_row(
            est["fits_on_chip"], est["fit"]["error"], dense_bytes, cap,
            {s: est["energy_pj"][s]["total"] for s in SCENARIOS}, est["cycles_total"] / n_img,
            f"{n_img} MNIST test images")
    # AlexNet fc6-8 (EIE's 4-bit codes), activations at EIE's densities
    layers = [_fc_layer("fc6", 4096, 9216, 0.09, seed + 20),
              _fc_layer("fc7", 4096, 4096, 0.09, seed + 21),
              _fc_layer("fc8", 1000, 4096, 0.25, seed + 22, relu=False)]
    alex = CompressedModel(arch="alexnet-fc", input_shape=(9216,), layers=layers)
    rng = np.random.default_rng(seed + 23)
    acts = [rng.random(9216) < 0.351, rng.random(4096) < 0.353, rng.random(4096) < 0.375]
    for label, config in (("eie64", CONFIG),
                          ("eie64, ptr_depth 32K", EngineConfig.preset("eie64", ptr_depth=32768))):
        err = fit_error(alex, config)
        result = model_cycles(alex, acts, config)
        events = [lc.events for lc in result]
        dense_bytes = sum(layer.rows * layer.cols * 4 for layer in layers)
        row = _fit_row(err is None, err, dense_bytes, config.n_pe * config.sparse_bytes,
                       {s: energy(events, None, s).total_pj for s in SCENARIOS},
                       sum(lc.cycles for lc in result), "random activations at EIE's densities")
        ce = [engine_col_entries(layer, config) for layer in layers]
        row["memories"] = memory_use(alex, config, ce).as_list()
        out[f"AlexNet fc6-8 on {label}"] = row
    for k, v in out.items():
        print(k, json.dumps({x: v[x] for x in ("compressed_fits", "dense_float32_fits",
                                               "energy_ratio_to_sram")}))
    out["chip_sparse_sram_bytes_eie64"] = chip_bytes
    return out


def _fit_row(fits, err, dense_bytes, cap, totals, cycles, inputs) -> dict:
    sram = totals["sram"]
    return {"compressed_fits": fits, "fit_error": err,
            "dense_float32_bytes": dense_bytes, "chip_sparse_sram_bytes": cap,
            "dense_float32_fits": dense_bytes <= cap,
            "energy_pj_per_inference": totals,
            "energy_ratio_to_sram": {s: round(v / sram, 1) for s, v in totals.items()},
            "cycles_per_inference": cycles, "inputs": inputs}


def plot(fifo_curves: dict, pe_curves: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, pts in fifo_curves.items():
        ax.plot([p["fifo_depth"] for p in pts], [p["run_efficiency"] for p in pts],
                marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("activation queue (FIFO) depth")
    ax.set_ylabel("load-balance efficiency\n(ideal / modelled RUN cycles)")
    ax.set_title("Load balance vs FIFO depth, 64 PEs (cf. EIE Fig. 8)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "eie_fifo_depth.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, pts in pe_curves.items():
        ax.plot([p["n_pe"] for p in pts], [p["speedup"] for p in pts], marker="o", label=name)
    ns = [p["n_pe"] for p in next(iter(pe_curves.values()))]
    ax.plot(ns, ns, "k--", lw=1, label="linear")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("processing elements")
    ax.set_ylabel("speedup over 1 PE (layer cycles)")
    ax.set_title("Speedup vs number of PEs, FIFO 8 (cf. EIE Fig. 11)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "eie_pe_scaling.png", dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true",
                        help="short sweeps and 10 MNIST images (a smoke run)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    speed = bench_speed(args.seed)
    crosscheck = bench_rtl_crosscheck()
    layers, fifo_curves, pe_curves = bench_eie_layers(args.seed, args.quick)
    fit = bench_fit_and_energy(args.seed, args.quick)

    head = ("layer", "model_cycles", "eie_actual_cycles", "model_vs_actual_pct",
            "eie_theoretical_cycles", "ideal_cycles", "ideal_vs_theoretical_pct",
            "bound_cycles", "efficiency", "eie_efficiency")
    print(" | ".join(head) + " | matched density | matched model | matched vs actual %")
    for r in layers:
        m = r["work_matched"]
        print(" | ".join(str(r[h]) for h in head)
              + f" | {m['weight_density']} | {m['model_cycles']} | {m['model_vs_actual_pct']}")
    meta = {"seed": args.seed, "quick": args.quick, "config": CONFIG.to_dict(),
            "machine": platform.processor() or platform.machine(),
            "seconds": round(time.perf_counter() - t0, 1)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"meta": meta, "speed": speed, "rtl_crosscheck": crosscheck, "eie_layers": layers,
           "deep_compression_fit": fit}
    (RESULTS / "cycles.json").write_text(json.dumps(out, indent=1))
    (RESULTS / "cycles_fifo_depth.json").write_text(
        json.dumps({"meta": meta, "curves": fifo_curves}, indent=1))
    (RESULTS / "cycles_pe_scaling.json").write_text(
        json.dumps({"meta": meta, "curves": pe_curves}, indent=1))
    plot(fifo_curves, pe_curves)
    print(f"done in {meta['seconds']} s")
    return out


if __name__ == "__main__":
    main()
