"""Compression to a budget: file ratio and test error vs the budget, and search time.

Usage: python benchmarks/bench_budget.py [--model lenet300] [--budgets 0 0.05 0.1 0.2 0.5]
       --baseline FLOAT.npz [--peer PEER.dcz] [--plot PNG] [--seed 0]
       python benchmarks/bench_budget.py --replot RESULT.json --plot PNG

For each budget (allowed rise of the validation error, in points), runs the budget
search (``dcsim.compress.budget``: sensitivity scan on the 10,000 validation images,
knapsack allocation on real bytes, iterative prune/retrain, weight sharing,
fine-tuning and the validation check, the knapsack's capacity recalibrated over up to
--attempts compressions) from one trained float baseline,
writes the .dcz and only then reads the test set once for its error. Prints a table,
writes benchmarks/results/budget_<model>.json and, with --plot, the ratio-vs-budget
curve as a PNG. The peer in the same run is the fixed-density pipeline
(``DeepCompression`` with the paper's densities, the default config) from the same
baseline: the table gives the budget file's ratio against it.
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

from dcsim import container, report
from dcsim.compress.budget import (BudgetConfig, BudgetError, add_test_errors,
                                   SCANS, compress_to_budget, monotone_rises,
                                   sensitivity_scan,
                                   with_search_recipe)
from dcsim.compress.pipeline import CompressionConfig, DeepCompression
from dcsim.nn import models
from dcsim.nn.datasets import load_mnist


def _plot(rows, peer, path, model):
    from matplotlib.figure import Figure      # no pyplot: no backend to choose

    fig = Figure(figsize=(5, 3.5))
    ax = fig.subplots()
    rows = sorted(rows, key=lambda r: r["budget"])
    budgets = [r["budget"] for r in rows]
    ax.plot(budgets, [r["ratio"] for r in rows], marker="o", label="budget search")
    missed = [r for r in rows if not r["budget_met"]]
    if missed:
        ax.plot([r["budget"] for r in missed], [r["ratio"] for r in missed], "o",
                color="white", markeredgecolor="C0", label="validation budget not met")
    ax.axhline(peer["ratio"], color="gray", linestyle="--",
               label=f"paper densities ({peer['ratio']:.0f}x)")
    for r in rows:
        ax.annotate(f"{r['test_error'] - r['baseline_test_error']:+.2f}",
                    (r["budget"], r["ratio"]), textcoords="offset points", xytext=(-6, 7),
                    fontsize=7)
    ax.set_xlabel("budget: allowed validation-error rise (points)")
    ax.set_ylabel("compression ratio (real .dcz file)")
    ax.set_title(f"{model}: ratio vs budget (labels: test-error rise)", fontsize=10)
    ax.set_ylim(0, 1.15 * max([r["ratio"] for r in rows] + [peer["ratio"]]))
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _val_error(compressed, args, data) -> float:
    """Validation error (percent) of a compressed model's decoded weights, or of the
    baseline with ``compressed=None``: the peer was tuned on nothing, so this is fair."""
    model = models.load(args.baseline, arch=args.model)
    if compressed is not None:
        params = model.params()
        for layer in compressed.layers:
            params[f"{layer.name}.W"][...] = layer.weights()
            params[f"{layer.name}.b"][...] = layer.bias
    return float(model.error(data.val_x, data.val_y))


def _reused_scan(args):
    """The scan of ``--scan-from`` and the seconds it took, its rises refitted."""
    earlier = json.loads(Path(args.scan_from).read_text())
    scan = earlier["scan"]
    mode = scan.get("scan", "one-shot")
    if (earlier["model"], earlier["seed"], mode) != (args.model, args.seed, args.scan):
        raise SystemExit(f"--scan-from {args.scan_from}: it scanned {earlier['model']} "
                         f"seed {earlier['seed']} ({mode}), not {args.model} seed "
                         f"{args.seed} ({args.scan})")
    for name, options in scan["layers"].items():
        raw = [dict(o, raw_rise=o["errors"] - scan["reference_errors"]) for o in options]
        scan["layers"][name] = monotone_rises(raw)
    return scan, earlier["scan_seconds"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet300", choices=["lenet300", "lenet5"])
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.2, 0.5])
    parser.add_argument("--baseline", metavar="FLOAT.npz",
                        help="reuse this trained float model if it exists, else train and save it")
    parser.add_argument("--replot", metavar="RESULT.json",
                        help="only redraw --plot from a result this script wrote")
    parser.add_argument("--peer", metavar="PEER.dcz",
                        help="reuse the peer's file from an earlier run of this script "
                             "(same baseline) instead of compressing it again")
    parser.add_argument("--plot", metavar="PNG", help="write the ratio-vs-budget curve here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retrain-lr-scale", type=float, default=None,
                        help="the budget search's retraining lr scale (default: the "
                             "search's own, dcsim.compress.budget.SEARCH_RECIPE)")
    parser.add_argument("--retrain-epochs", type=int, default=None)
    parser.add_argument("--val-only", action="store_true",
                        help="choosing a setting: no peer, no test error read; rows carry "
                             "validation errors and ratios only")
    parser.add_argument("--scan", choices=SCANS, default=BudgetConfig.scan,
                        help="how the sensitivity scan reaches each density "
                             "(dcsim.compress.budget.BudgetConfig.scan)")
    parser.add_argument("--attempts", type=int, default=BudgetConfig.attempts,
                        help="compressions each budget's search may run")
    parser.add_argument("--scan-from", metavar="RESULT.json",
                        help="reuse the sensitivity scan of an earlier run of this script "
                             "(same --baseline, --model, --seed and --scan): its error "
                             "counts, refitted with monotone_rises")
    parser.add_argument("--tag", default="", help="suffix of the result and .dcz names")
    parser.add_argument("--no-peer", action="store_true",
                        help="skip the paper-density peer (its compression takes as long "
                             "as a budget's)")
    args = parser.parse_args()
    if args.replot:
        result = json.loads(Path(args.replot).read_text())
        _plot(result["rows"], result["peer"], args.plot, result["model"])
        return
    if not args.baseline:
        parser.error("--baseline is required (unless --replot)")

    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(exist_ok=True)
    data = load_mnist()
    config = CompressionConfig(arch=args.model, seed=args.seed)
    recipe = {k: v for k, v in (("retrain_lr_scale", args.retrain_lr_scale),
                                ("retrain_epochs", args.retrain_epochs)) if v is not None}
    search_config = with_search_recipe(
        CompressionConfig(arch=args.model, seed=args.seed, **recipe), keep=recipe)
    tag = f"_{args.tag}" if args.tag else ""
    if not Path(args.baseline).exists():
        t0 = time.perf_counter()
        model = models.build(args.model, seed=args.seed)
        DeepCompression(config).train_baseline(model, data)
        models.save(model, args.baseline)
        print(f"baseline trained in {time.perf_counter() - t0:.0f} s")
    rows, refused = [], []
    peer = None                    # --val-only: no peer (its report reads the test set)
    if not (args.val_only or args.no_peer):
        path, peer_seconds = out_dir / f"budget_{args.model}_peer.dcz", None
        if args.peer:
            path = Path(args.peer)
            compressed = container.read(path)
        else:
            model = models.load(args.baseline, arch=args.model)
            t0 = time.perf_counter()
            compressed = DeepCompression(config).run(model, data, train_baseline=False)
            peer_seconds = round(time.perf_counter() - t0, 1)
            container.write(compressed, path)
        summary = report.summary(path)
        peer = {"ratio": summary["ratio"], "test_error": summary["compressed_error"],
                "baseline_test_error": summary["baseline_error"],
                "seconds": peer_seconds, "file": str(path),
                "val_error": _val_error(compressed, args, data),
                "baseline_val_error": _val_error(None, args, data),
                "density": compressed.meta["config"]["density"]}
        print(f"peer (paper densities): {peer}", flush=True)
    # The scan depends on the baseline, config and grid only: made once, reused.
    if args.scan_from:
        scan, scan_seconds = _reused_scan(args)
    else:
        t0 = time.perf_counter()
        scan = sensitivity_scan(models.load(args.baseline, arch=args.model), data,
                                search_config, BudgetConfig(budget=0.0, scan=args.scan))
        scan_seconds = time.perf_counter() - t0
    print(f"sensitivity scan: {scan_seconds:.0f} s", flush=True)
    for b in args.budgets:
        model = models.load(args.baseline, arch=args.model)
        t0 = time.perf_counter()
        try:
            compressed, baseline = compress_to_budget(
                model, data, search_config, BudgetConfig(budget=b, scan=args.scan, attempts=args.attempts),
                train_baseline=False,
                scan=scan)
        except BudgetError as exc:
            print(f"budget {b:g}: refused: {exc}", flush=True)
            refused.append({"budget": b, "refused": str(exc)})
            continue
        seconds = time.perf_counter() - t0 + scan_seconds
        if not args.val_only:
            compressed = add_test_errors(compressed, model, baseline, data)
        path = out_dir / f"budget_{args.model}_{b:g}{tag}.dcz"
        container.write(compressed, path)
        summary = report.summary(path)
        record = summary["budget"]
        test = (None, None) if args.val_only else (summary["baseline_error"],
                                                   summary["compressed_error"])
        row = {"budget": b, "ratio": summary["ratio"], "file_bytes": summary["file_bytes"],
               "baseline_test_error": test[0], "test_error": test[1],
               "retrain_lr_scale": search_config.retrain_lr_scale,
               "retrain_epochs": search_config.retrain_epochs,
               "baseline_val_error": record["baseline_val_error"],
               "val_error": record["val_error"]["compressed"],
               "budget_met": record["budget_met"], "attempts": len(record["attempts"]),
               "chosen_attempt": record["chosen_attempt"],
               "tried": [{k: a[k] for k in ("step", "capacity", "density", "code_bits", "budget_met",
                                            "layer_bytes", "seconds")}
                         | {"val_error": a["val_error"]["compressed"]}
                         for a in record["attempts"]],
               "density": record["density"], "code_bits": record["code_bits"],
               "search_seconds": round(record["search_seconds"] + scan_seconds, 1),
               "compress_seconds": record["compress_seconds"], "seconds": round(seconds, 1),
               "vs_peer": summary["ratio"] / peer["ratio"] if peer else None}
        rows.append(row)
        if not args.val_only:
            print(report.format_table(summary, paper=args.model), flush=True)
        print(json.dumps(row), flush=True)
    result = {"model": args.model, "seed": args.seed, "scan_mode": args.scan, "rows": rows, "refused": refused,
              "peer": peer,
              "scan_seconds": round(scan_seconds, 1), "scan": scan,
              "machine": {"cpus": os.cpu_count(),
                          "processor": platform.processor() or platform.machine(),
                          "load_average": os.getloadavg()}}
    (out_dir / f"budget_{args.model}{tag}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{'budget':>6} {'ratio':>7} {'vs peer':>8} {'val err':>8} {'test err':>9} "
          f"{'(base)':>7} {'met':>4} {'search s':>9} {'compress s':>11}  densities / bits")
    for r in refused:
        print(f"{r['budget']:6.2f} refused: {r['refused']}")
    num = lambda v, fmt: "-" if v is None else format(v, fmt)       # noqa: E731
    for r in rows:
        print(f"{r['budget']:6.2f} {r['ratio']:6.1f}x {num(r['vs_peer'], '.2f'):>7}x "
              f"{r['val_error']:7.2f}% {num(r['test_error'], '.2f'):>8}% "
              f"{num(r['baseline_test_error'], '.2f'):>6}% "
              f"{'yes' if r['budget_met'] else 'NO':>4} {r['search_seconds']:9.0f} "
              f"{r['compress_seconds']:11.0f}  "
              + ", ".join(f"{n} {d:g}/{r['code_bits'][n]}" for n, d in r["density"].items()))
    if args.plot:
        _plot(rows, peer, args.plot, args.model)


if __name__ == "__main__":
    main()
