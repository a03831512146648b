"""Run models on the Verilator engine and compare every integer with the fixed kernel."""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from dcsim.compress.layer import CompressedModel
from dcsim.errors import ConfigError, ToolError
from dcsim.hw.config import EngineConfig
from dcsim.hw.image import EngineImage, compile_model
from dcsim.hw.layouts import pack_load_words
from dcsim.hw.conv import engine_input, engine_layers
from dcsim.hw.scoreboard import WRITE_FIELDS, first_wrong_conv_write, first_wrong_write
from dcsim.hw.verilator import EngineBuild, build_engine
from dcsim.kernels.fixed import FixedFormat
from dcsim.kernels.run import run_fixed, trace_fixed
from dcsim.perf.cycles import layer_cycles
from dcsim.progress import follow_count

TB_MODULE = "dcsim.hw.tb"
#: A run hangs if a phase takes more than HANG_FACTOR x its expected cycles + HANG_MARGIN.
HANG_FACTOR = 4
HANG_MARGIN = 1000
#: The simulator process is killed after WALL_MARGIN_S + (every run's cycle limits) /
#: WALL_CYCLES_PER_S seconds (Verilator runs the 64-PE engine at ~38 k cycles/s).
WALL_MARGIN_S = 120
WALL_CYCLES_PER_S = 500


def cycle_limit(image: EngineImage) -> int:
    """Clocks from the start transfer to the first output after which a run of ``image``
    counts as hung: ``HANG_FACTOR`` x the cycle model's count with every input of every
    layer non-zero (no input takes longer: an active column only adds work), plus
    ``HANG_MARGIN``."""
    c = image.config
    base = np.zeros(c.n_pe, dtype=np.int64)
    total = 0
    for li in image.layers:
        one = layer_cycles(li.col_entries, np.ones(li.cols, dtype=bool), li.rows, c,
                           base).cycles
        # a conv layer runs one such pass (without the descriptor cycle) per position
        total += one if li.geometry is None else 1 + (one - 1) * li.geometry.positions
        base = base + li.entries
    return HANG_FACTOR * total + HANG_MARGIN


def stream_limit(words: int, pause: float) -> int:
    """Clocks for ``words`` transfers on a stream idle with probability ``pause``."""
    return HANG_MARGIN + math.ceil(HANG_FACTOR * words / max(1.0 - pause, 0.01))


def image_run(image: EngineImage, x_q, load: bool = True, reset_after=None,
              monitor: bool = False, n_layers: int | None = None,
              max_cycles: int | None = None) -> dict:
    """One run of a job: (optionally) load ``image``, load input ``x_q``, start, and
    either collect the last layer's outputs or reset ``reset_after`` cycles after start.
    With ``monitor``, every PE's accumulator writes are recorded (slow: a Python read of
    every PE each clock; for locating a mismatch with :func:`locate_mismatch`).
    n_layers : the start's payload (default every layer of ``image``; other values test
    refused starts). max_cycles : clocks from the start to the first output before the
    run counts as hung (default :func:`cycle_limit`; pass it to skip the cycle model)."""
    c = image.config
    return {
        "load": pack_load_words(c, image.load_words()) if load else [],
        "input": pack_load_words(c, image.input_words(x_q)),
        "n_layers": image.n_layers if n_layers is None else n_layers,
        "n_out": image.n_outputs,
        "layers": [li.name for li in image.layers],
        "max_cycles": cycle_limit(image) if max_cycles is None else max_cycles,
        "reset_after": reset_after,
        "monitor": monitor,
    }


def run_job(build: EngineBuild, runs: list, seed: int = 0, load_pause: float = 0.0,
            out_pause: float = 0.0, wall_seconds: float | None = None, on_run=None,
            waves=None) -> dict:
    """Play ``runs`` (see :func:`image_run`) on the built engine in one simulator process.

    load_pause, out_pause : probability of an idle cycle on the load stream and of a
    back-pressure cycle on the output stream (seeded by ``seed``; ``seed`` also seeds the
    X values of an ``x_unique`` build).
    wall_seconds : the simulator process is killed after this long (default from the
    runs' cycle limits, ``WALL_MARGIN_S`` + cycles / ``WALL_CYCLES_PER_S``).
    waves : path of an FST waveform to write (``build`` must be a ``waves=True`` build).
    Returns ``{"runs": [...], "seconds": wall time in the simulator}``; a run is
    ``{"outputs": [int], "cycles": [per-layer cycles], "clocks": simulator clocks of the
    whole run (loads and output stream included), "clocks_to_output": clocks from the
    edge that takes the start to the one after which the first output is valid,
    "events": the testbench's event counters (``feeder.EVENT_COUNTERS``, ``ev_bcast``),
    "load_seconds": wall time of the image and input loads, "compute_seconds": wall time
    from the start handshake to the first output}`` (plus ``"writes"``:
    ``scoreboard.WRITE_FIELDS`` rows for a monitored run), for a reset run
    ``{"reset": True, "busy_at_reset": bool}``, for a refused start ``{"refused": True,
    "done", "error", "busy": bool}``. Loads go through the testbench's ``$readmemh``
    feeder, or word by word from Python when ``load_pause > 0``.
    A load, compute or output phase that passes its cycle limit (:func:`cycle_limit`;
    streams: ``HANG_FACTOR`` x their words at their pause rate + ``HANG_MARGIN``) ends the
    job with a ToolError naming the run and the layer; so does the wall-clock limit.
    on_run : optional ``f(n)``, called while the simulator works with the number of runs
    finished so far (for a progress bar).
    """
    runs = [dict(run, max_load_cycles=stream_limit(len(run["load"]) + len(run["input"]),
                                                   load_pause),
                 max_out_cycles=stream_limit(run["n_out"], out_pause)) for run in runs]
    if wall_seconds is None:
        cycles = sum(r["max_cycles"] + r["max_load_cycles"] + r["max_out_cycles"] for r in runs)
        wall_seconds = WALL_MARGIN_S + cycles / WALL_CYCLES_PER_S
    runner = build.runner()
    with tempfile.TemporaryDirectory(prefix="dcsim_job_") as tmp:
        tmp = Path(tmp)
        job, result = tmp / "job.pkl", tmp / "result.pkl"
        with open(job, "wb") as f:
            pickle.dump({"runs": runs, "seed": seed, "load_pause": load_pause,
                         "out_pause": out_pause, "config": build.config}, f)
        # SIM_CMD_PREFIX is cocotb's hook for a command in front of the simulator.
        prefix = os.environ.get("SIM_CMD_PREFIX")
        os.environ["SIM_CMD_PREFIX"] = f"timeout -k 10 {wall_seconds:.0f}"
        env = {"DCSIM_JOB": str(job), "DCSIM_RESULT": str(result)}
        counted = contextlib.nullcontext()
        if on_run is not None:
            env["DCSIM_PROGRESS"] = str(tmp / "progress")
            counted = follow_count(tmp / "progress", on_run)
        t0 = time.perf_counter()
        try:
            with counted:
                runner.test(test_module=TB_MODULE, hdl_toplevel=build.toplevel,
                            hdl_toplevel_lang="verilog", build_dir=str(build.build_dir),
                            test_dir=str(tmp), plusargs=build.plusargs(seed),
                            extra_env=env, log_file=str(tmp / "sim.log"),
                            waves=waves is not None,
                            test_args=[] if waves is None else ["--trace-file", str(waves)])
        except (SystemExit, RuntimeError):
            pass                        # judged below by the result file
        finally:
            if prefix is None:
                del os.environ["SIM_CMD_PREFIX"]
            else:
                os.environ["SIM_CMD_PREFIX"] = prefix
        elapsed = time.perf_counter() - t0
        if not result.exists() and elapsed >= wall_seconds:
            raise ToolError(f"The engine simulation must finish within its wall-clock "
                            f"limit of {wall_seconds:.0f} s, not run on; it was killed")
        if not result.exists():
            log = keep_log(tmp / "sim.log", build.build_dir.parent / "logs")
            raise ToolError(f"The engine simulation must write its results, not stop "
                            f"early; its full log is {log}")
        with open(result, "rb") as f:
            out = pickle.load(f)
    for run in out["runs"]:
        if "hang" in run:
            raise ToolError(f"The engine must finish every run, not hang: {run['hang']}")
    return out


def keep_log(log: Path, folder: Path) -> Path:
    """Copy a run's ``log`` (which may be missing) to a new file in ``folder`` that
    outlives the run's temporary directory; return its path, for a one-line error."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, kept = tempfile.mkstemp(dir=folder, prefix=time.strftime("sim-%Y%m%d-%H%M%S-"),
                                suffix=".log")
    with os.fdopen(fd, "w") as f:
        f.write(log.read_text(errors="replace") if log.exists() else
                f"(the simulator wrote no log at {log})\n")
    return Path(kept)


def first_mismatch(got, want, n_pe: int, layer: str = "", shape=None) -> str | None:
    """A message naming the first output that differs (row, PE, local row; for a conv
    layer's output map of ``shape`` (C, H, W), flattened: channel, pixel and PE), or
    None."""
    got = np.asarray(got, dtype=np.int64).reshape(-1)
    want = np.asarray(want, dtype=np.int64).reshape(-1)
    if got.shape != want.shape:
        return f"layer {layer}: got {got.shape[0]} outputs, want {want.shape[0]}"
    bad = np.flatnonzero(got != want)
    if bad.size == 0:
        return None
    i = int(bad[0])
    if shape is not None:
        ch, h, w = shape
        c, pix = divmod(i, h * w)
        return (f"layer {layer} channel {c} at (y {pix // w}, x {pix % w}) (PE {c % n_pe}): "
                f"got {int(got[i])}, want {int(want[i])} ({bad.size} outputs differ)")
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
    stored = engine_layers(model, n_pe)
    for i, ((matrix, geom), x_in, cycles) in enumerate(zip(stored, inputs, run["cycles"])):
        mine = writes[(writes[:, 0] > offset) & (writes[:, 0] <= offset + cycles)]
        if geom is None:
            msg = first_wrong_write(matrix, engine_input(i, model, x_in, n_pe), mine, n_pe,
                                    fmt, cycle_offset=offset)
        else:
            msg = first_wrong_conv_write(matrix, geom, x_in, mine, fmt, matrix.name,
                                         cycle_offset=offset)
        if msg is not None:
            return msg
        offset += cycles
    return None


def expected_outputs(model: CompressedModel, x_images, config: EngineConfig) -> Future:
    """The fixed kernel's outputs of ``x_images`` (``run_fixed``), computed in a
    background thread: a harness runs in a process of its own and its caller only waits
    for it, so the reference is ready when the run is. ``.result()`` gives the int64
    array (N, rows_last) for :func:`compare_outputs`, or raises the kernel's error."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dcsim-fixed")
    try:
        return pool.submit(run_fixed, model, x_images, config.fmt)
    finally:
        pool.shutdown(wait=False)


def compare_outputs(model: CompressedModel, image: EngineImage, x_images, outputs, cycles,
                    build_root=None, want=None) -> dict:
    """The verdict of a harness run against the fixed kernel; both harnesses (cocotb here,
    native in ``dcsim.hw.native``) call it, so they report alike.

    x_images : float (N, features); outputs : ints (N, rows_last) from the engine;
    cycles : ints (N, n_layers), each layer's cycle counter per image. Returns a dict:
    images, outputs (int64 array), outputs_match (every integer equals ``run_fixed``'s),
    first_mismatch (None, or for the first image whose outputs differ, the first wrong
    accumulator write (layer, column, row, PE, cycle), found by rerunning that image on
    the cocotb harness with the accumulator monitor), labels (argmax of the engine's
    outputs), cycles_per_layer (summed over images) and cycles_total. want : the fixed
    kernel's outputs if already computed (:func:`expected_outputs`' result), else they
    are computed here.
    """
    config = image.config
    outputs = image.kernel_outputs(np.asarray(outputs, dtype=np.int64))
    want = run_fixed(model, x_images, config.fmt) if want is None else np.asarray(want)
    per_layer = [int(v) for v in np.asarray(cycles, dtype=np.int64).sum(axis=0)]
    match = bool(np.array_equal(outputs, want))
    first = None
    if not match:
        bad = int(np.flatnonzero((outputs != want).any(axis=1))[0]) \
            if outputs.shape == want.shape else 0
        trace = trace_fixed(model, x_images[bad], config.fmt)
        rerun = run_job(build_engine(config, build_root),
                        [image_run(image, trace[0][0], monitor=True,
                                   max_cycles=cycle_limit(image))])["runs"][0]
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
             log=None, on_image=None, waves=None) -> dict:
    """Run float images ``x_images`` (N, 784) through ``model`` on the Verilator engine
    with the cocotb testbench.

    The model's images are loaded once; each image's input is loaded and the whole
    network runs on chip. With ``waves`` (a path), the run is built with
    ``--trace-fst`` (a separate cached build) and writes an FST waveform there. Returns
    :func:`compare_outputs`'s dict plus build_seconds (wall time of ``build_engine``:
    elaboration, plus the Verilator build unless cached), sim_seconds (wall time of the
    simulator run, its start-up included), n_pe, harness ("cocotb"), cycles_per_second
    (simulated clocks, loads and output streams included, per second of simulator wall
    time), compute_clocks (the layers' cycles) and compute_seconds (wall time from each
    start transfer to the first output).

    log : optional ``f(message)`` for ``build_engine``'s messages (a build starts, a
    wait for another process's build); on_image : optional ``f(n)`` called with the
    number of images simulated so far.
    """
    x_images = check_images(x_images)
    image = compile_model(model, config)
    x_q = config.fmt.to_fixed(x_images)
    limit = cycle_limit(image)
    runs = [image_run(image, x, load=(i == 0), max_cycles=limit) for i, x in enumerate(x_q)]
    waves = None if waves is None else Path(waves).resolve()
    want = expected_outputs(model, x_images, config)
    t0 = time.perf_counter()
    build = build_engine(config, build_root, log=log, waves=waves is not None)
    t1 = time.perf_counter()
    result = run_job(build, runs, seed=seed, load_pause=load_pause, out_pause=out_pause,
                     on_run=on_image, waves=waves)
    t2 = time.perf_counter()
    verdict = compare_outputs(model, image, x_images, [r["outputs"] for r in result["runs"]],
                              [r["cycles"] for r in result["runs"]], build_root,
                              want=want.result())
    clocks = sum(r["clocks"] for r in result["runs"])
    return verdict | {
        "build_seconds": t1 - t0,
        "sim_seconds": t2 - t1,
        "n_pe": config.n_pe,
        "harness": "cocotb",
        "cycles_per_second": clocks / max(float(result["seconds"]), 1e-9),
        "compute_clocks": verdict["cycles_total"],
        "compute_seconds": float(sum(r["compute_seconds"] for r in result["runs"])),
    }
