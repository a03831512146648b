"""The retraining recipe an imported network gets, chosen on LeNet-300-100's validation set.

Usage: python benchmarks/bench_recipe.py --baseline FLOAT.npz [--scales 0.1 1.0]
       [--epochs 4]

An imported network takes one recipe for every graph (``ARCH_DEFAULTS[IMPORTED]`` in
``dcsim/compress/pipeline.py``), so it cannot be tuned on the network it is applied to.
This benchmark chooses it on a network dcsim defines: from one trained float
LeNet-300-100 (trained and saved to ``--baseline`` if the file does not exist), it runs
the ordinary pipeline at the paper's densities (8/9/26%, 5-bit codes) once per
retraining learning-rate scale (the retraining lr as a fraction of the baseline's first
one, 0.1), with every error measured on the 10,000 **validation** images
(``eval_split="val"``); the test set is not read. Prints one row per scale (validation
error after each pruning round, after sharing and after fine-tuning, and the ratio on
the real file) and writes benchmarks/results/recipe_lenet300.json.
"""

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from dcsim import container, report
from dcsim.compress.pipeline import CompressionConfig, DeepCompression
from dcsim.nn import models
from dcsim.nn.datasets import load_mnist


def run_scale(scale: float, epochs: int, args, data) -> dict:
    config = CompressionConfig(arch="lenet300", retrain_lr_scale=scale, retrain_epochs=epochs)
    rounds = []
    log = lambda msg: print(f"  [{scale}] {msg}", flush=True)     # noqa: E731
    model = models.load(args.baseline, arch="lenet300")
    pipeline = DeepCompression(config, progress=False, log=log,
                               on_stage=lambda stage, m: rounds.append(
                                   (stage, float(m.error(data.val_x, data.val_y)))))
    t0 = time.perf_counter()
    compressed = pipeline.run(model, data, train_baseline=False, eval_split="val")
    seconds = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.dcz"
        container.write(compressed, path)
        summary = report.summary(path)
    meta = compressed.meta
    return {"retrain_lr_scale": scale, "retrain_epochs": epochs,
            "baseline_val_error": meta["baseline_error"],
            "stages_val_error": rounds,
            "pruned_val_error": meta["pruned_error"], "shared_val_error": meta["shared_error"],
            "compressed_val_error": meta["compressed_error"],
            "val_cost_points": meta["compressed_error"] - meta["baseline_error"],
            "ratio": summary["ratio"], "file_bytes": summary["file_bytes"],
            "seconds": seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, metavar="FLOAT.npz")
    parser.add_argument("--scales", type=float, nargs="+", default=[0.1, 1.0])
    parser.add_argument("--epochs", type=int, default=4, help="retraining epochs per round")
    args = parser.parse_args()
    data = load_mnist()
    if not Path(args.baseline).exists():
        t0 = time.perf_counter()
        model = models.build("lenet300", seed=0)
        DeepCompression(CompressionConfig(arch="lenet300")).train_baseline(model, data)
        models.save(model, args.baseline)
        print(f"baseline trained in {time.perf_counter() - t0:.0f} s", flush=True)
    rows = [run_scale(s, args.epochs, args, data) for s in args.scales]
    print(f"{'lr scale':>8} {'baseline':>8} {'pruned':>7} {'shared':>7} {'final':>7} "
          f"{'cost':>6} {'ratio':>6} {'s':>5}   (validation error, %)")
    for r in rows:
        print(f"{r['retrain_lr_scale']:>8} {r['baseline_val_error']:>8.2f} "
              f"{r['pruned_val_error']:>7.2f} {r['shared_val_error']:>7.2f} "
              f"{r['compressed_val_error']:>7.2f} {r['val_cost_points']:>+6.2f} "
              f"{r['ratio']:>6.1f} {r['seconds']:>5.0f}")
    out = Path(__file__).parent / "results" / "recipe_lenet300.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "baseline": str(args.baseline),
                               "machine": platform.processor() or platform.machine(),
                               "load_average": os.getloadavg()}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
