"""CNNs whole on the engine: LeNet-5 (and any .dcz given) on the RTL, per layer.

For each model and PE count (``small`` preset, code width widened to the model's): the
first ``--images`` MNIST test images through the whole network on the Verilator engine
(native harness), every integer and label against the fixed kernel, every layer's RTL
cycles against the cycle model; then per layer the cycles against the ideal (perfect
balance) and against the busiest PE's stored entries of active patch elements (summed
over positions), the load-balance efficiency, the energy per inference of the three
scenarios and the conv layers' share, and the engine's SRAM for the layer stored once
in gather order vs unrolled into a Toeplitz matrix per output position.

    .venv/bin/python benchmarks/bench_conv.py --model lenet5.dcz [--model cnn.dcz]
        [--images 100] [--n-pe 4 8]

Prints a table and writes benchmarks/results/bench_conv.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from dcsim.container import read
from dcsim.hw.config import EngineConfig
from dcsim.hw.conv import engine_layers
from dcsim.hw.image import code_width_for, compile_model
from dcsim.hw.native import simulate_native
from dcsim.kernels.run import run_fixed, trace_fixed_batch
from dcsim.nn.datasets import load_mnist_test
from dcsim.perf.cycles import engine_col_entries, model_cycles
from dcsim.perf.energy import SCENARIOS
from dcsim.perf.estimate import estimate

try:
    from bench_native import l3_cache
except ImportError:                       # run from elsewhere
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_native import l3_cache


def toeplitz_entries(model, n_pe: int) -> list:
    """Stored non-zeros per layer if each conv were unrolled into one matrix row block per
    output position (every position's copy of the filters), fc layers as they are."""
    out = []
    for layer, (_, geom) in zip(model.layers, engine_layers(model, n_pe)):
        nnz = int(np.count_nonzero(layer.codes))
        out.append(nnz * (geom.out_h * geom.win * geom.out_w * geom.win) if geom else nnz)
    return out


def run_point(path: Path, model, x, n_pe: int) -> dict:
    config = code_width_for(model, EngineConfig.preset("small", n_pe=n_pe))
    image = compile_model(model, config)
    t0 = time.perf_counter()
    sim = simulate_native(model, x, config)
    sim_seconds = time.perf_counter() - t0
    want = run_fixed(model, x, config.fmt)
    traces = trace_fixed_batch(model, x, config.fmt)
    per_image = [model_cycles(model, [xi for xi, _ in t], config) for t in traces]
    modelled = [int(sum(img[i].cycles for img in per_image)) for i in range(len(model.layers))]
    est = estimate(model, x, config, layer_inputs=[[xi for xi, _ in t] for t in traces])
    layers = []
    toeplitz = toeplitz_entries(model, n_pe)
    one_pe = dataclasses.replace(config, n_pe=1)
    whole_entries = [int(engine_col_entries(m, one_pe).sum()) for m, _ in engine_layers(model, 1)]
    for i, (layer, li) in enumerate(zip(model.layers, image.layers)):
        cycles = modelled[i]
        ideal = int(sum(img[i].ideal_cycles for img in per_image))
        busiest = int(sum(img[i].busiest_entries for img in per_image))
        energy = {s: est["energy_pj"][s]["per_layer"][i]["total"] for s in SCENARIOS}
        stored = int(li.entries.sum())
        # the alternative: output positions over PEs, each PE holding every filter (the
        # whole matrix as one PE stores it) and working alone on its own positions
        whole = int(whole_entries[i]) if li.geometry is not None else None
        layers.append({
            "layer": layer.name, "kind": layer.kind, "rtl_cycles": sim["cycles_per_layer"][i],
            "model_cycles": cycles, "ideal_cycles": ideal, "busiest_pe_entries": busiest,
            "cycles_over_busiest": cycles / max(busiest, 1),
            "efficiency": ideal / cycles,
            "positions": li.geometry.positions if li.geometry else 1,
            "stored_entries": stored,
            "sparse_bytes": -(-stored // config.entries_per_word) * config.word_bits // 8,
            "sparse_bytes_per_pe": -(-int(li.entries.max()) // config.entries_per_word)
            * config.word_bits // 8,
            "positions_over_pes_bytes_per_pe": None if whole is None else
            -(-whole // config.entries_per_word) * config.word_bits // 8,
            "toeplitz_nonzeros": toeplitz[i], "energy_pj": energy})
    total = {s: est["energy_pj"][s]["total"] for s in SCENARIOS}
    conv_share = {s: sum(l["energy_pj"][s] for l in layers if l["kind"] == "conv") / total[s]
                  for s in SCENARIOS}
    return {
        "model": str(path), "arch": model.arch, "n_pe": n_pe, "images": int(x.shape[0]),
        "code_bits": config.code_bits, "outputs_match": bool(sim["outputs_match"])
        and bool(np.array_equal(sim["outputs"], want)),
        "labels_match": sim["labels"] == [int(v) for v in want.argmax(axis=1)],
        "cycles_match": sim["cycles_per_layer"] == modelled,
        "first_mismatch": sim["first_mismatch"], "sim_seconds": sim_seconds,
        "fits_on_chip": est["fits_on_chip"], "energy_pj_per_inference": total,
        "conv_energy_share": conv_share, "layers": layers}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", required=True, help="a .dcz (repeatable)")
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--n-pe", type=int, nargs="+", default=[4, 8])
    args = ap.parse_args()
    x = load_mnist_test()[0][:args.images]
    rows = []
    for name in args.model:
        model = read(name)
        for n_pe in args.n_pe:
            row = run_point(Path(name), model, x, n_pe)
            rows.append(row)
            print(f"\n{model.arch} ({name}), {n_pe} PEs, {row['images']} images: outputs "
                  f"{'equal' if row['outputs_match'] else 'DIFFER'}, labels "
                  f"{'equal' if row['labels_match'] else 'DIFFER'}, RTL cycles "
                  f"{'==' if row['cycles_match'] else '!='} model, sim {row['sim_seconds']:.1f} s")
            print(f"{'layer':<8} {'kind':<5} {'cycles/img':>11} {'ideal':>9} {'busiest':>9} "
                  f"{'c/busiest':>9} {'eff':>5} {'SRAM B':>8} {'Toeplitz nz':>12} "
                  f"{'pJ sram':>9} {'pJ dram-c':>10}")
            n = row["images"]
            for l in row["layers"]:
                print(f"{l['layer']:<8} {l['kind']:<5} {l['model_cycles'] / n:>11.0f} "
                      f"{l['ideal_cycles'] / n:>9.0f} {l['busiest_pe_entries'] / n:>9.0f} "
                      f"{l['cycles_over_busiest']:>9.2f} {l['efficiency']:>5.2f} "
                      f"{l['sparse_bytes']:>8} {l['toeplitz_nonzeros']:>12} "
                      f"{l['energy_pj']['sram']:>9.0f} {l['energy_pj']['dram_compressed']:>10.0f}")
            print("energy per inference (pJ): " + ", ".join(
                f"{s} {row['energy_pj_per_inference'][s]:.0f} (conv {100 * row['conv_energy_share'][s]:.0f}%)"
                for s in SCENARIOS))
    out = {"machine": {"cpu": platform.processor() or platform.machine(), "l3": l3_cache(),
                       "cores": os.cpu_count(), "load": os.getloadavg()},
           "command": "benchmarks/bench_conv.py " + " ".join(
               f"--model {m}" for m in args.model) + f" --images {args.images} --n-pe "
           + " ".join(map(str, args.n_pe)), "rows": rows}
    path = Path(__file__).resolve().parent / "results" / "bench_conv.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"\nwrote {path}")
    if not all(r["outputs_match"] and r["labels_match"] and r["cycles_match"] for r in rows):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
