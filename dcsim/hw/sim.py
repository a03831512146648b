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
from dcsim.hw.verilator import EngineBuild, build_engine
from dcsim.kernels.run import trace_fixed

TB_MODULE = "dcsim.hw.tb"


def pack_words(config: EngineConfig, words) -> list:
    """``(target, pe, bcast, addr, data)`` tuples -> packed load-stream integers."""
    layout = load_layout(config)
    return [pack(layout, target=int(t), pe=p, bcast=b, addr=a, data=d)
            for t, p, b, a, d in words]


def image_run(image: EngineImage, x_q, load: bool = True, reset_after=None) -> dict:
    """One run of a job: (optionally) load ``image``, load input ``x_q``, start, and
    either collect the last layer's outputs or reset ``reset_after`` cycles after start."""
    c = image.config
    return {
        "load": pack_words(c, image.load_words()) if load else [],
        "input": pack_words(c, image.input_words(x_q)),
        "n_layers": image.n_layers,
        "n_out": image.layers[-1].rows,
        "reset_after": reset_after,
    }


def run_job(build: EngineBuild, runs: list, seed: int = 0, load_pause: float = 0.0,
            out_pause: float = 0.0) -> dict:
    """Play ``runs`` (see :func:`image_run`) on the built engine in one simulator process.

    load_pause, out_pause : probability of an idle cycle on the load stream and of a
    back-pressure cycle on the output stream (seeded by ``seed``).
    Returns ``{"runs": [...], "seconds": wall time in the simulator}``; a run is
    ``{"outputs": [int], "cycles": [per-layer cycles], "clocks": simulator clocks of the
    whole run (loads and output stream included), "compute_seconds": wall time from the
    start handshake to the first output}`` or, for a reset run,
    ``{"reset": True, "busy_at_reset": bool}``.
    """
    runner = build.runner()
    with tempfile.TemporaryDirectory(prefix="dcsim_job_") as tmp:
        tmp = Path(tmp)
        job, result = tmp / "job.pkl", tmp / "result.pkl"
        with open(job, "wb") as f:
            pickle.dump({"runs": runs, "seed": seed, "load_pause": load_pause,
                         "out_pause": out_pause}, f)
        runner.test(test_module=TB_MODULE, hdl_toplevel=build.toplevel, hdl_toplevel_lang="verilog",
                    build_dir=str(build.build_dir), test_dir=str(tmp),
                    extra_env={"DCSIM_JOB": str(job), "DCSIM_RESULT": str(result)},
                    log_file=str(tmp / "sim.log"))
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


def simulate(model: CompressedModel, x_images, config: EngineConfig, build_root=None,
             seed: int = 0, load_pause: float = 0.0, out_pause: float = 0.0) -> dict:
    """Run float images ``x_images`` (N, 784) through ``model`` on the Verilator engine.

    The model's images are loaded once; each image's input is loaded and the whole
    network runs on chip. Returns a dict: images, outputs (N, rows_last) int64,
    outputs_match (every integer equals ``trace_fixed``'s), labels (N,) argmax of the
    engine's outputs, cycles_per_layer (list, summed over images), cycles_total,
    sim_seconds (simulator wall time), n_pe.
    """
    x_images = np.asarray(x_images, dtype=np.float32)
    if x_images.ndim != 2 or x_images.shape[0] < 1:
        raise ConfigError(f"x_images must be a non-empty (N, features) array, not shape "
                          f"{x_images.shape}")
    image = compile_model(model, config)
    fmt = config.fmt
    traces = [trace_fixed(model, x, fmt) for x in x_images]
    runs = [image_run(image, tr[0][0], load=(i == 0)) for i, tr in enumerate(traces)]
    build = build_engine(config, build_root)
    t0 = time.perf_counter()
    result = run_job(build, runs, seed=seed, load_pause=load_pause, out_pause=out_pause)
    wall = time.perf_counter() - t0
    outputs = np.array([r["outputs"] for r in result["runs"]], dtype=np.int64)
    want = np.array([tr[-1][1] for tr in traces], dtype=np.int64)
    cycles = np.array([r["cycles"] for r in result["runs"]], dtype=np.int64)
    per_layer = [int(v) for v in cycles.sum(axis=0)]
    return {
        "images": int(x_images.shape[0]),
        "outputs": outputs,
        "outputs_match": bool(np.array_equal(outputs, want)),
        "labels": [int(v) for v in outputs.argmax(axis=1)],
        "cycles_per_layer": per_layer,
        "cycles_total": int(sum(per_layer)),
        "sim_seconds": float(result["seconds"]),
        "wall_seconds": wall,
        "n_pe": config.n_pe,
    }
