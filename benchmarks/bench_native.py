"""Native Verilator harness (sw/) against the cocotb flow: same engine, config and images.

1. 8 PEs, a LeNet-300-100 .dcz: ``dcsim sim M.dcz --images N --n-pe 8 --json`` with
   ``--harness native`` and ``--harness cocotb``, N = 100 and 1000: wall time of the
   command (both builds made beforehand, so excluded) and each one's run-phase speed
   (simulated clocks per second from each start transfer on).
2. 64 PEs (``eie64``): random layers of EIE's Alex-7 and NT-We shapes and densities,
   N images through ``hw.native.simulate_native`` and ``hw.sim.simulate`` (what ``dcsim
   sim`` calls; the CLI feeds MNIST only): wall time of each call and run-phase speed;
   the native harness with Verilator ``--threads`` 1 and 2 (``--no-threads2`` skips it).
3. All 10,000 MNIST test images through the .dcz on 8 PEs: ``dcsim sim --images 10000``
   in an empty build folder (build included), its test error beside ``dcsim eval``'s
   fixed-point error.
4. ``threads8``: the native harness with Verilator ``--threads`` 1 and 2, LeNet-300-100
   on 8 PEs, the largest of ``--sizes`` images.
5. ``jobs8``: ``dcsim sim --jobs 1`` against ``--jobs 2`` (native harness processes at
   once, each on half of the images), 8 PEs, the largest of ``--sizes`` and 10,000
   images, build cached: command wall time and the ratio.

Writes benchmarks/results/bench_native.json (a run of some ``--parts`` updates those
parts and keeps the others, each with the machine's load average when it ran).

    .venv/bin/python benchmarks/bench_native.py --model lenet300.dcz [--parts lenet8 eie64 mnist10k]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_engine import machine

from dcsim import container
from dcsim.hw.config import EngineConfig
from dcsim.hw.native import build_native, simulate_native
from dcsim.hw.sim import simulate
from dcsim.hw.verilator import build_engine
from dcsim.hw.workloads import EIE_LAYERS, random_activations, random_layer, single_layer_model

DCSIM = str(Path(sys.executable).with_name("dcsim"))
EIE64 = EngineConfig.preset("eie64")
PARTS = ("lenet8", "eie64", "mnist10k", "threads8", "jobs8")


def l3_cache() -> str:
    """``lscpu``'s L3 line (size and instances), or "unknown"."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return next((line.split(":", 1)[1].strip() for line in out.splitlines()
                 if line.startswith("L3")), "unknown")


def dcsim_sim(model: Path, images: int, harness: str, extra=(), env=None) -> dict:
    """Run ``dcsim sim`` as a user would; its JSON plus ``command`` and ``command_seconds``."""
    command = [DCSIM, "sim", str(model), "--images", str(images), "--n-pe", "8", "--json",
               "--harness", harness, *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}): {proc.stderr[-500:]}")
    out = json.loads(proc.stdout)
    return out | {"command": " ".join(["dcsim", *command[1:]]), "command_seconds": seconds}


def run_rate(result: dict) -> float:
    """Simulated clocks per second of the run phase (start transfer to output)."""
    return result["compute_clocks"] / max(result["compute_seconds"], 1e-9)


def speed_row(case: str, n_pe: int, runs: dict, wall_key: str) -> dict:
    """One table row from ``{label: result}`` (labels "native", "cocotb", ...): each
    one's wall time (``wall_key``), simulator seconds and speeds, and the ratios."""
    row = {"case": case, "n_pe": n_pe, "images": runs["native"]["images"],
           "outputs_match": all(r["outputs_match"] for r in runs.values()),
           "cycles_total": runs["native"]["cycles_total"]}
    for label, r in runs.items():
        row |= {f"{label}_{wall_key}": round(r[wall_key], 2),
                f"{label}_sim_seconds": round(r["sim_seconds"], 3),
                f"{label}_run_cycles_per_second": round(run_rate(r)),
                f"{label}_cycles_per_second": round(r["cycles_per_second"])}
    row["end_to_end_speedup"] = round(row[f"cocotb_{wall_key}"] / row[f"native_{wall_key}"], 1)
    row["run_phase_speedup"] = round(row["native_run_cycles_per_second"]
                                     / row["cocotb_run_cycles_per_second"], 1)
    return row


def part_lenet8(model: Path, sizes) -> list:
    rows = []
    for n in sizes:
        pair = {h: dcsim_sim(model, n, h) for h in ("native", "cocotb")}
        assert pair["native"]["cycles_per_layer"] == pair["cocotb"]["cycles_per_layer"]
        assert pair["native"]["labels"] == pair["cocotb"]["labels"]
        row = speed_row(f"LeNet-300-100, {n} images", 8, pair, "command_seconds")
        row["command"] = pair["native"]["command"] + " [--harness cocotb]"
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def part_eie64(images: int, seed: int, threads2: bool) -> list:
    rng = np.random.default_rng(seed)
    rows = []
    for name in ("Alex-7", "NT-We"):
        n_rows, cols, wd, ad = EIE_LAYERS[name]
        layer = random_layer(name, n_rows, cols, wd, rng, code_bits=4,
                             scale=1.0 / np.sqrt(wd * cols * ad))
        model = single_layer_model(layer)
        x = np.stack([random_activations(cols, ad, rng) for _ in range(images)])
        runs = {}
        calls = [("native", lambda: simulate_native(model, x, EIE64))]
        if threads2:
            calls.append(("native_threads2", lambda: simulate_native(model, x, EIE64, threads=2)))
        for label, call in calls + [("cocotb", lambda: simulate(model, x, EIE64))]:
            t0 = time.perf_counter()
            runs[label] = call() | {"call_seconds": time.perf_counter() - t0}
        assert len({tuple(r["cycles_per_layer"]) for r in runs.values()}) == 1
        row = speed_row(f"{name} stand-in, {images} images", 64, runs, "call_seconds")
        if threads2:
            row["threads2_over_threads1"] = round(row["native_threads2_run_cycles_per_second"]
                                                  / row["native_run_cycles_per_second"], 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def part_threads8(model: Path, images: int) -> dict:
    """The native harness with Verilator --threads 1 and 2 on the same LeNet images, 8 PEs."""
    from dcsim.nn.datasets import load_mnist

    m = container.read(model)
    x = load_mnist().test_x[:images]
    small8 = EngineConfig.preset("small", n_pe=8)
    runs = {t: simulate_native(m, x, small8, threads=t) for t in (1, 2)}
    assert runs[1]["labels"] == runs[2]["labels"]
    row = {"case": f"LeNet-300-100, {images} images, 8 PEs, native --threads 1 vs 2",
           "outputs_match": runs[1]["outputs_match"] and runs[2]["outputs_match"]}
    for t, r in runs.items():
        row |= {f"threads{t}_sim_seconds": round(r["sim_seconds"], 2),
                f"threads{t}_run_cycles_per_second": round(run_rate(r))}
    row["threads2_over_threads1"] = round(row["threads2_run_cycles_per_second"]
                                          / row["threads1_run_cycles_per_second"], 2)
    print(json.dumps(row), flush=True)
    return row


def part_jobs8(model: Path, sizes) -> list:
    """``dcsim sim --jobs 1`` and ``--jobs 2`` on the same images (build cached)."""
    rows = []
    for n in sizes:
        runs = {j: dcsim_sim(model, n, "native", extra=("--jobs", str(j))) for j in (1, 2)}
        assert runs[1]["labels"] == runs[2]["labels"]
        assert runs[1]["cycles_per_layer"] == runs[2]["cycles_per_layer"]
        row = {"case": f"LeNet-300-100, {n} images, 8 PEs, --jobs 1 vs 2",
               "command": runs[2]["command"],
               "outputs_match": runs[1]["outputs_match"] and runs[2]["outputs_match"]}
        for j, r in runs.items():
            row |= {f"jobs{j}_command_seconds": round(r["command_seconds"], 2),
                    f"jobs{j}_sim_seconds": round(r["sim_seconds"], 2)}
        row["jobs2_speedup"] = round(row["jobs1_command_seconds"]
                                     / row["jobs2_command_seconds"], 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def part_10k(model: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="dcsim_bench_native_") as tmp:
        env = dict(os.environ, DCSIM_BUILD_DIR=tmp)
        sim = dcsim_sim(model, 10000, "native", env=env)
        cached = dcsim_sim(model, 10000, "native", env=env)
    assert cached["labels"] == sim["labels"]
    t0 = time.perf_counter()
    proc = subprocess.run([DCSIM, "eval", str(model), "--json"], capture_output=True,
                          text=True, check=True)
    eval_seconds = time.perf_counter() - t0
    fixed_error = json.loads(proc.stdout)["fixed_error"]
    row = {"case": "all 10,000 MNIST test images, 8 PEs, build included",
           "command": sim["command"] + "  (DCSIM_BUILD_DIR empty)",
           "command_seconds": round(sim["command_seconds"], 1),
           "command_seconds_build_cached": round(cached["command_seconds"], 1),
           "sim_seconds": round(sim["sim_seconds"], 1),
           "cycles_total": sim["cycles_total"], "cycles_per_layer": sim["cycles_per_layer"],
           "cycles_per_second": round(sim["cycles_per_second"]),
           "outputs_match": sim["outputs_match"], "rtl_test_error": sim["test_error"],
           "eval_fixed_error": fixed_error, "eval_seconds": round(eval_seconds, 1)}
    print(json.dumps(row), flush=True)
    return row


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path, help="a LeNet-300-100 .dcz")
    parser.add_argument("--parts", nargs="*", default=list(PARTS), choices=list(PARTS))
    parser.add_argument("--sizes", type=int, nargs="*", default=[100, 1000])
    parser.add_argument("--images-64", type=int, default=10, help="images per 64-PE layer")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-threads2", action="store_true",
                        help="skip the native harness with Verilator --threads 2 at 64 PEs")
    args = parser.parse_args(argv)
    container.read(args.model)
    small8 = EngineConfig.preset("small", n_pe=8)
    path = Path(__file__).resolve().parent / "results" / "bench_native.json"
    out = json.loads(path.read_text()) if path.exists() else {}
    out |= {"machine": machine(), "l3": l3_cache()}
    for part in args.parts:
        t0 = time.perf_counter()
        builds = {}
        for label, call in {
                "lenet8": (("native", lambda: build_native(small8)),
                           ("cocotb", lambda: build_engine(small8))),
                "eie64": (("native", lambda: build_native(EIE64)),
                          ("cocotb", lambda: build_engine(EIE64)))
                + (() if args.no_threads2 else
                   (("native_threads2", lambda: build_native(EIE64, threads=2)),)),
                "mnist10k": (),
                "jobs8": (("native", lambda: build_native(small8)),),
                "threads8": (("native_threads2", lambda: build_native(small8, threads=2)),)}[part]:
            t1 = time.perf_counter()
            call()
            builds[label] = round(time.perf_counter() - t1, 1)
        load = os.getloadavg()
        rows = {"lenet8": lambda: part_lenet8(args.model, args.sizes),
                "eie64": lambda: part_eie64(args.images_64, args.seed, not args.no_threads2),
                "mnist10k": lambda: part_10k(args.model),
                "threads8": lambda: part_threads8(args.model, max(args.sizes)),
                "jobs8": lambda: part_jobs8(args.model, [max(args.sizes), 10000])}[part]()
        out[part] = {"rows": rows, "build_seconds_before (0 when cached)": builds,
                     "load_average_start": load, "load_average_end": os.getloadavg(),
                     "seconds": round(time.perf_counter() - t0, 1)}

    head = ("case", "native_command_seconds", "cocotb_command_seconds", "end_to_end_speedup",
            "native_run_cycles_per_second", "cocotb_run_cycles_per_second", "run_phase_speedup")
    print(" | ".join(head))
    for r in out.get("lenet8", {}).get("rows", []):
        print(" | ".join(str(r.get(h, "-")) for h in head))
    for r in out.get("eie64", {}).get("rows", []):
        print(" | ".join(str(r.get(h.replace("command", "call"), "-")) for h in head)
              + f" | threads 2/1: {r.get('threads2_over_threads1', '-')}")
    if "mnist10k" in out:
        r = out["mnist10k"]["rows"]
        print(f"10,000 images: {r['command_seconds']} s with the build, outputs_match "
              f"{r['outputs_match']}, RTL error {r['rtl_test_error']:.2f}% vs eval "
              f"{r['eval_fixed_error']:.2f}%")
    for r in out.get("jobs8", {}).get("rows", []):
        print(f"{r['case']}: {r['jobs1_command_seconds']} s vs {r['jobs2_command_seconds']} s, "
              f"{r['jobs2_speedup']}x")
    print(f"machine {out['machine']}, L3 {out['l3']}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
