"""One sweep point -> one result row, through the functions ``dcsim estimate`` uses.

:func:`evaluate` is a pure function of the :class:`~dcsim.sweep.spec.Point` (every seed
is in the point), so a process pool, a Dask worker, a retry after a lost worker and a
resumed run all write the same row. Per-model work (loading, MNIST, the fixed-kernel
traces of the images for each fixed-point format) is cached once per process; area
comes from ``perf.area.engine_area`` (synthesis cached on disk, see ``hw.synth``).
"""

from __future__ import annotations

import json
import os
import time
from functools import lru_cache

import numpy as np

from dcsim.hw.config import EngineConfig
from dcsim.perf.energy import SCENARIOS
from dcsim.sweep.spec import CONFIG_FIELDS, Point

#: Columns of a result row, in CSV order. ``*_json`` columns hold JSON text; the
#: ``sweep_*`` columns are the sweep's own timing (the only ones that vary between runs).
COLUMNS = (
    ("key", "model", "seed", "images", "clock_mhz", "tech", "area_table")
    + CONFIG_FIELDS
    + ("fits", "overflows", "cycles_total", "cycles_per_layer_json", "latency_us",
       "time_us_per_image", "efficiency", "efficiency_per_layer_json")
    + tuple(f"energy_{s}_pj" for s in SCENARIOS)
    + tuple(f"energy_{s}_components_json" for s in SCENARIOS)
    + ("area_total_um2", "area_pe_logic_um2", "area_pe_sram_um2", "area_top_logic_um2",
       "area_top_sram_um2", "area_one_pe_um2", "area_one_pe_logic_nand2",
       "area_pe_macros_json", "sweep_seconds", "sweep_worker")
)
TIMING_COLUMNS = ("sweep_seconds", "sweep_worker")


@lru_cache(maxsize=None)
def _model(ref: str, seed: int):
    from dcsim import container
    from dcsim.hw.workloads import lenet_300_100
    from dcsim.sweep.spec import BUILTIN_MODELS

    if ref in BUILTIN_MODELS:
        return lenet_300_100(np.random.default_rng(seed))
    return container.read(ref)


@lru_cache(maxsize=None)
def _images(n: int) -> np.ndarray:
    from dcsim.nn.datasets import load_mnist

    return np.ascontiguousarray(load_mnist(None).test_x[:n].reshape(n, -1), dtype=np.float32)


@lru_cache(maxsize=None)
def _traces(ref: str, seed: int, n: int, fmt_fields: tuple) -> tuple:
    """Each image's layer inputs (``trace_fixed``) for one fixed-point format."""
    from dcsim.kernels.fixed import FixedFormat
    from dcsim.kernels.run import trace_fixed

    model, fmt = _model(ref, seed), FixedFormat(*fmt_fields)
    return tuple([x for x, _ in trace_fixed(model, image, fmt)] for image in _images(n))


@lru_cache(maxsize=None)
def _tech(ref: str):
    from dcsim.perf.tech import default_tech, load_tech

    return default_tech() if ref == "default" else load_tech(ref)


@lru_cache(maxsize=None)
def _area_table(ref: str):
    from dcsim.perf.area import default_area, load_area

    return default_area() if ref == "default" else load_area(ref)


@lru_cache(maxsize=4096)
def _area(config: EngineConfig, area_ref: str) -> dict:
    from dcsim.perf.area import engine_area

    return engine_area(config, _area_table(area_ref))


def model_of(point: Point):
    """The point's CompressedModel (cached per process)."""
    return _model(point.model, point.seed)


def images_of(point: Point) -> np.ndarray:
    """The point's MNIST test images 0..N-1, float32 (N, 784)."""
    return _images(point.images)


def area_of(point: Point) -> dict:
    """``perf.area.engine_area`` of the point's config and area table (cached)."""
    return _area(point.engine_config(), point.area)


def evaluate(point: Point) -> dict:
    """The result row of ``point`` (every column of :data:`COLUMNS`, CSV-ready values)."""
    from dcsim.perf.estimate import estimate

    t0 = time.perf_counter()
    config = point.engine_config()
    fmt = config.fmt
    inputs = _traces(point.model, point.seed, point.images,
                     (fmt.act_bits, fmt.frac_bits, fmt.acc_bits))
    r = estimate(model_of(point), images_of(point), config, tech=_tech(point.tech),
                 clock_mhz=point.clock_mhz, layer_inputs=inputs)
    a = area_of(point)
    layers = r["layers"]
    ideal = sum(layer["ideal_cycles"] for layer in layers)
    row = {"key": point.key, "model": point.model, "seed": point.seed,
           "images": point.images, "clock_mhz": point.clock_mhz, "tech": point.tech,
           "area_table": point.area}
    row.update(point.config)
    row.update({
        "fits": r["fits_on_chip"],
        "overflows": ";".join(r["fit"]["overflows"]),
        "cycles_total": r["cycles_total"],
        "cycles_per_layer_json": json.dumps(r["cycles_per_layer"]),
        "latency_us": r["time_us"],
        "time_us_per_image": r["time_us_per_image"],
        "efficiency": ideal / r["cycles_total"],
        "efficiency_per_layer_json": json.dumps(r["efficiency"]),
    })
    for s in SCENARIOS:
        row[f"energy_{s}_pj"] = r["energy_pj"][s]["total"]
        row[f"energy_{s}_components_json"] = json.dumps(r["energy_pj"][s]["components"],
                                                        sort_keys=True)
    comp = a["components_um2"]
    row.update({
        "area_total_um2": a["total_um2"], "area_pe_logic_um2": comp["pe_logic"],
        "area_pe_sram_um2": comp["pe_sram"], "area_top_logic_um2": comp["top_logic"],
        "area_top_sram_um2": comp["top_sram"], "area_one_pe_um2": a["pe"]["total_um2"],
        "area_one_pe_logic_nand2": a["pe"]["logic_nand2"],
        "area_pe_macros_json": json.dumps(a["pe"]["sram_um2"], sort_keys=True),
        "sweep_seconds": time.perf_counter() - t0,
        "sweep_worker": f"{os.uname().nodename}:{os.getpid()}",
    })
    return {k: _cell(row[k]) for k in COLUMNS}


def evaluate_batch(points: list) -> list:
    """The rows of ``points``, in order: one task of the sweep (a few points per task
    keep the scheduler's and the pickling's cost per point small)."""
    return [evaluate(p) for p in points]


def synthesize_config(config_fields: dict, area_ref: str) -> str:
    """Make sure the area of one config is cached (the sweep's first phase); its key."""
    config = EngineConfig(**config_fields)
    _area(config, area_ref)
    return json.dumps(config_fields, sort_keys=True)


def _cell(value) -> str:
    """One CSV cell: ints and bools as is, floats by repr (exact round trip)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value)
