"""Run models on the Verilator engine and compare every integer with the fixed kernel."""

from __future__ import annotations

import pickle
import tempfile
import time
from pathlib import Path

import numpy as np

from dcsim.compress.layer import CompressedModel
from dcsim.errors import ConfigError, ToolError
from dcsim.hw.config import EngineConfig
from dcsim.hw.image import EngineImage, compile_model
from dcsim.hw.layouts import load_layout, pack
from dcsim.hw.scoreboard import WRITE_FIELDS, first_wrong_write
from dcsim.hw.verilator import EngineBuild, build_engine
from dcsim.kernels.fixed import FixedFormat
from dcsim.kernels.run import run_fixed, trace_fixed

TB_MODULE = "dcsim.hw.tb"


def pack_words(config: EngineConfig, words) -> list:
    """``(target, pe, bcast, addr, data)`` tuples -> packed load-stream integers."""
    layout = load_layout(config)
    return [pack(layout, target=int(t), pe=p, bcast=b, addr=a, data=d)
            for t, p, b, a, d in words]


def image_run(image: EngineImage, x_q, load: bool = True, reset_after=None,
              monitor: bool = False) -> dict:
    """One run of a job: (optionally) load ``image``, load input ``x_q``, start, and
    either collect the last layer's outputs or reset ``reset_after`` cycles after start.
    With ``monitor``, every PE's accumulator writes are recorded (slow: a Python read of
    every PE each clock; for locating a mismatch with :func:`locate_mismatch`)."""
    c = image.config
    return {
        "load": pack_words(c, image.load_words()) if load else [],
        "input": pack_words(c, image.input_words(x_q)),
        "n_layers": image.n_layers,
        "n_out": image.layers[-1].rows,
        "reset_after": reset_after,
        "monitor": monitor,
    }


def run_job(build: EngineBuild, runs: list, seed: int = 0, load_pause: float = 0.0,
            out_pause: float = 0.0, waves=None) -> dict:
    """Play ``runs`` (see :func:`image_run`) on the built engine in one simulator process.

    load_pause, out_pause : probability of an idle cycle on the load stream and of a
    back-pressure cycle on the output stream (seeded by ``seed``).
    waves : path of an FST waveform to write (``build`` must be a ``waves=True`` build).
    Returns ``{"runs": [...], "seconds": wall time in the simulator}``; a run is
    ``{"outputs": [int], "cycles": [per-layer cycles], "clocks": simulator clocks of the
    whole run (loads and output stream included), "load_seconds": wall time of the image
    and input loads, "compute_seconds": wall time from the start handshake to the first
    output}`` (plus ``"writes"``: ``scoreboard.WRITE_FIELDS`` rows for a monitored run) or,
    for a reset run, ``{"reset": True, "busy_at_reset": bool}``. Loads go through the
    testbench's ``$readmemh`` feeder, or word by word from Python when ``load_pause > 0``.
    """
    runner = build.runner()
    with tempfile.TemporaryDirectory(prefix="dcsim_job_") as tmp:
        tmp = Path(tmp)
        job, result = tmp / "job.pkl", tmp / "result.pkl"
        with open(job, "wb") as f:
            pickle.dump({"runs": runs, "seed": seed, "load_pause": load_pause,
                         "out_pause": out_pause, "config": build.config}, f)
        runner.test(test_module=TB_MODULE, hdl_toplevel=build.toplevel, hdl_toplevel_lang="verilog",
                    build_dir=str(build.build_dir), test_dir=str(tmp),
                    extra_env={"DCSIM_JOB": str(job), "DCSIM_RESULT": str(result)},
                    log_file=str(tmp / "sim.log"), waves=waves is not None,
                    test_args=[] if waves is None else ["--trace-file", str(waves)])
        if not result.exists():
            log = (tmp / "sim.log").read_text()[-2000:] if (tmp / "sim.log").exists() else ""
            raise ToolError(f"The engine simulation must write its results, not stop "
                            f"early; end of its log:\n{log}")
        with open(result, "rb") as f:
            return pickle.load(f)


def first_mismatch(got, want, n_pe: int, layer: str = "") -> str | None:
    """A message naming the first output that differs (row, PE, local row), or None."""
    got = np.asarray(got, dtype=np.int64)
    want = np.asarray(want, dtype=np.int64)
    if got.shape != want.shape:
        return f"layer {layer}: got {got.shape[0]} outputs, want {want.shape[0]}"
    bad = np.flatnonzero(got != want)
    if bad.size == 0:
        return None
    i = int(bad[0])
    return (f"layer {layer} row {i} (PE {i % n_pe}, local row {i // n_pe}): got "
            f"{int(got[i])}, want {int(want[i])} ({bad.size} rows differ)")


def locate_mismatch(model: CompressedModel, inputs, run: dict, n_pe: int,
                    fmt: FixedFormat) -> str | None:
    """The first wrong accumulator write of a monitored run (``image_run(...,
    monitor=True)``) of ``model``, naming layer, column, row, PE and cycle; None if every
    write matches the fixed kernel's partial sums.

    inputs : each layer's input activations (int64), e.g. ``trace_fixed``'s ``x_in``.
    """
    if "writes" not in run:
        raise ConfigError("run must be a monitored run (image_run(..., monitor=True)), "
                          "not one without accumulator writes")
    writes = np.asarray(run["writes"], dtype=np.int64).reshape(-1, len(WRITE_FIELDS))
    offset = 0
    for layer, x_in, cycles in zip(model.layers, inputs, run["cycles"]):
        mine = writes[(writes[:, 0] > offset) & (writes[:, 0] <= offset + cycles)]
        msg = first_wrong_write(layer, x_in, mine, n_pe, fmt, cycle_offset=offset)
        if msg is not None:
            return msg
        offset += cycles
    return None


def compare_outputs(model: CompressedModel, image: EngineImage, x_images, outputs, cycles,
                    build_root=None) -> dict:
    """The verdict of a harness run against the fixed kernel; both harnesses (cocotb here,
    native in ``dcsim.hw.native``) call it, so they report alike.

    x_images : float (N, features); outputs : ints (N, rows_last) from the engine;
    cycles : ints (N, n_layers), each layer's cycle counter per image. Returns a dict:
    images, outputs (int64 array), outputs_match (every integer equals ``run_fixed``'s),
    first_mismatch (None, or for the first image whose outputs differ, the first wrong
    accumulator write (layer, column, row, PE, cycle), found by rerunning that image on
    the cocotb harness with the accumulator monitor), labels (argmax of the engine's
    outputs), cycles_per_layer (summed over images) and cycles_total.
    """
    config = image.config
    outputs = np.asarray(outputs, dtype=np.int64)
    want = run_fixed(model, x_images, config.fmt)
    per_layer = [int(v) for v in np.asarray(cycles, dtype=np.int64).sum(axis=0)]
    match = bool(np.array_equal(outputs, want))
    first = None
    if not match:
        bad = int(np.flatnonzero((outputs != want).any(axis=1))[0]) \
            if outputs.shape == want.shape else 0
        trace = trace_fixed(model, x_images[bad], config.fmt)
        rerun = run_job(build_engine(config, build_root),
                        [image_run(image, trace[0][0], monitor=True)])["runs"][0]
        where = locate_mismatch(model, [x_in for x_in, _ in trace], rerun, config.n_pe,
                                config.fmt)
        first = f"image {bad}: " + (where or "outputs differ, every accumulator write matches")
    return {
        "images": int(outputs.shape[0]),
        "outputs": outputs,
        "outputs_match": match,
        "first_mismatch": first,
        "labels": [int(v) for v in outputs.argmax(axis=1)],
        "cycles_per_layer": per_layer,
        "cycles_total": int(sum(per_layer)),
    }


def check_images(x_images) -> np.ndarray:
    """``x_images`` as float32 (N, features); ConfigError if it is not such an array."""
    x_images = np.asarray(x_images, dtype=np.float32)
    if x_images.ndim != 2 or x_images.shape[0] < 1:
        raise ConfigError(f"x_images must be a non-empty (N, features) array, not shape "
                          f"{x_images.shape}")
    return x_images


def simulate(model: CompressedModel, x_images, config: EngineConfig, build_root=None,
             seed: int = 0, load_pause: float = 0.0, out_pause: float = 0.0,
             waves=None) -> dict:
    """Run float images ``x_images`` (N, 784) through ``model`` on the Verilator engine
    with the cocotb testbench.

    The model's images are loaded once; each image's input is loaded and the whole
    network runs on chip. With ``waves`` (a path), the run is built with
    ``--trace-fst`` (a separate cached build) and writes an FST waveform there. Returns
    :func:`compare_outputs`'s dict plus sim_seconds (simulator wall time), wall_seconds,
    n_pe, harness ("cocotb"), cycles_per_second (simulated clocks, loads and output
    streams included, per second of simulator wall time), compute_clocks (the layers'
    cycles) and compute_seconds (wall time from each start transfer to the first output).
    """
    x_images = check_images(x_images)
    image = compile_model(model, config)
    x_q = config.fmt.to_fixed(x_images)
    runs = [image_run(image, x, load=(i == 0)) for i, x in enumerate(x_q)]
    waves = None if waves is None else Path(waves).resolve()
    build = build_engine(config, build_root, waves=waves is not None)
    t0 = time.perf_counter()
    result = run_job(build, runs, seed=seed, load_pause=load_pause, out_pause=out_pause,
                     waves=waves)
    wall = time.perf_counter() - t0
    verdict = compare_outputs(model, image, x_images, [r["outputs"] for r in result["runs"]],
                              [r["cycles"] for r in result["runs"]], build_root)
    clocks = sum(r["clocks"] for r in result["runs"])
    return verdict | {
        "sim_seconds": float(result["seconds"]),
        "wall_seconds": wall,
        "n_pe": config.n_pe,
        "harness": "cocotb",
        "cycles_per_second": clocks / max(float(result["seconds"]), 1e-9),
        "compute_clocks": verdict["cycles_total"],
        "compute_seconds": float(sum(r["compute_seconds"] for r in result["runs"])),
    }
