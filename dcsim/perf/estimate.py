"""``dcsim estimate``: cycles, time, energy per scenario and on-chip fit of a model.

The cycle counts are the cycle model's (``perf.cycles``) on the activations the RTL sees
(``kernels.trace_fixed``), so for the same model, config and images they equal what
``hw.sim.simulate`` measures on the Verilator engine.
"""

from __future__ import annotations

import numpy as np

from dcsim.compress.layer import CompressedModel
from dcsim.errors import ConfigError
from dcsim.hw.config import EngineConfig
from dcsim.hw.image import fit_error, memory_use
from dcsim.kernels.run import trace_fixed_batch
from dcsim.perf.cycles import BREAKDOWN, model_col_entries, model_cycles
from dcsim.perf.energy import SCENARIOS, energy
from dcsim.perf.tech import TechTable, default_tech

#: EIE's clock (ISCA 2016, 45 nm), MHz.
DEFAULT_CLOCK_MHZ = 800.0


def estimate(model: CompressedModel, x_images, config: EngineConfig,
             tech: TechTable | None = None, clock_mhz: float = DEFAULT_CLOCK_MHZ,
             layer_inputs=None) -> dict:
    """Cycles, time, energy and fit of ``model`` on the engine for images ``x_images``.

    x_images : float (N, features) -- model inputs (MNIST: (N, 784)); each goes through
        the fixed kernel (``trace_fixed``) for the activations the engine sees.
    config : EngineConfig; tech : TechTable (default Horowitz 45 nm); clock_mhz : float.
    layer_inputs : optional, one entry per image: that image's list of layer inputs as
        ``[x for x, _ in trace_fixed(model, image, config.fmt)]`` gives it (a sweep
        traces each model once per format and passes them here); default: traced here.

    Returns a JSON-ready dict: ``images``, ``n_pe``, ``clock_mhz``, ``cycles_per_layer``
    (ints, layer order, summed over the N images), ``cycles_total``, ``time_us`` (all N
    images) and ``time_us_per_image``, ``efficiency`` (per layer: ideal / modelled
    cycles over the N images), ``layers`` (per layer: name, shape, cycles, ideal and
    bound cycles, breakdown summed over images), ``fits_on_chip`` (bool: whether
    ``hw.image.compile_model`` accepts the model), ``fit`` (``error``: its FitError
    message or None; ``memories``: need vs capacity; ``overflows``: memory names),
    ``energy_pj`` (scenario -> ``{"total", "components", "per_layer"}``, pJ per
    inference, averaged over the images), ``tech`` and ``config``.
    """
    if not isinstance(model, CompressedModel):
        raise ConfigError(f"model must be a CompressedModel, not {type(model).__name__}")
    if not isinstance(config, EngineConfig):
        raise ConfigError(f"config must be an EngineConfig, not {config!r}")
    tech = default_tech() if tech is None else tech
    if not isinstance(tech, TechTable):
        raise ConfigError(f"tech must be a TechTable, not {type(tech).__name__}")
    if isinstance(clock_mhz, bool) or not isinstance(clock_mhz, (int, float)) or clock_mhz <= 0:
        raise ConfigError(f"clock_mhz must be a positive number, not {clock_mhz!r}")
    x = np.asarray(x_images, dtype=np.float32)
    features = int(np.prod(model.input_shape))
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] != features:
        raise ConfigError(f"x_images must have shape (N >= 1, {features}), not {x.shape}")

    col_entries = model_col_entries(model, config)
    not_fitting = fit_error(model, config)
    memories = memory_use(model, config, col_entries).as_list()

    n_layers = len(model.layers)
    cycles = np.zeros(n_layers, dtype=np.int64)
    ideal = np.zeros(n_layers, dtype=np.int64)
    bound = np.zeros(n_layers, dtype=np.int64)
    breakdown = [dict.fromkeys(BREAKDOWN, 0) for _ in range(n_layers)]
    sums = {s: {"total": 0.0, "components": {}, "per_layer": [{} for _ in range(n_layers)]}
            for s in SCENARIOS}
    if layer_inputs is None:
        layer_inputs = [[xin for xin, _ in trace]
                        for trace in trace_fixed_batch(model, x, config.fmt)]
    elif len(layer_inputs) != x.shape[0]:
        raise ConfigError(f"layer_inputs must have one entry per image ({x.shape[0]}), "
                          f"not {len(layer_inputs)}")
    for inputs in layer_inputs:
        result = model_cycles(model, inputs, config, col_entries)
        for li, lc in enumerate(result):
            cycles[li] += lc.cycles
            ideal[li] += lc.ideal_cycles
            bound[li] += lc.bound_cycles
            for k, v in lc.breakdown.items():
                breakdown[li][k] += v
        events = [lc.events for lc in result]
        for s in SCENARIOS:
            report = energy(events, tech, s)
            acc = sums[s]
            acc["total"] += report.total_pj
            for k, v in report.components.items():
                acc["components"][k] = acc["components"].get(k, 0.0) + v
            for li, comp in enumerate(report.per_layer):
                for k, v in comp.items():
                    acc["per_layer"][li][k] = acc["per_layer"][li].get(k, 0.0) + v
    n = x.shape[0]
    energy_pj = {s: {"total": acc["total"] / n,
                     "components": {k: v / n for k, v in acc["components"].items()},
                     "per_layer": [{"layer": layer.name,
                                    "total": sum(comp.values()) / n,
                                    "components": {k: v / n for k, v in comp.items()}}
                                   for layer, comp in zip(model.layers, acc["per_layer"])]}
                 for s, acc in sums.items()}
    total = int(cycles.sum())
    return {
        "images": int(n),
        "n_pe": config.n_pe,
        "clock_mhz": float(clock_mhz),
        "cycles_per_layer": [int(v) for v in cycles],
        "cycles_total": total,
        "time_us": total / clock_mhz,
        "time_us_per_image": total / clock_mhz / n,
        "efficiency": [float(i / c) for i, c in zip(ideal, cycles)],
        "layers": [{"layer": layer.name, "rows": layer.rows, "cols": layer.cols,
                    "cycles": int(c), "ideal_cycles": int(i), "bound_cycles": int(b),
                    "efficiency": float(i / c), "breakdown": bd}
                   for layer, c, i, b, bd in zip(model.layers, cycles, ideal, bound, breakdown)],
        "fits_on_chip": not_fitting is None,
        "fit": {"error": not_fitting, "memories": memories,
                "overflows": [m["memory"] for m in memories if m["required"] > m["capacity"]]},
        "energy_pj": energy_pj,
        "tech": tech.origin,
        "config": config.to_dict(),
    }
