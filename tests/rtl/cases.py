"""Random RTL cases and the one check every RTL case goes through.

A case is ``(description, model, x_q)``: a compressed model (one or more fc layers) and
its integer input. :func:`check_cases` runs them on a Verilator build in one job and
compares, for each run, every output with the fixed kernel (``layer_fixed`` layer after
layer), every layer's cycles with the cycle model, the testbench's clock count from the
start transfer to the first output with the sum of the layer counts plus
``engine.START_TO_OUTPUT``, and the testbench's event counters with the cycle model's
``EventCounts``. It returns what the cases contained (stalls, fillers, empty pairs,
saturated outputs, negative inputs), so a test can assert its cases cover them.
"""

from __future__ import annotations

import numpy as np

from dcsim.compress.layer import CompressedModel
from dcsim.hw.engine import START_TO_OUTPUT
from dcsim.hw.image import compile_model
from dcsim.hw.sim import first_mismatch, image_run, run_job
from dcsim.hw.workloads import random_activations, random_layer, single_layer_model
from dcsim.kernels.spmv import layer_fixed
from dcsim.perf.cycles import engine_col_entries, model_cycles


def signed_activations(cols: int, density: float, rng: np.random.Generator, fmt) -> np.ndarray:
    """Integer inputs in ``fmt``'s whole range, non-zero with probability ``density``,
    with ``fmt.min_int`` and ``fmt.max_int`` among them (cols >= 2)."""
    x = rng.integers(fmt.min_int, fmt.max_int + 1, cols)
    x[rng.random(cols) >= density] = 0
    where = rng.choice(cols, 2, replace=False)
    x[where] = (fmt.min_int, fmt.max_int)
    return x.astype(np.int64)


def random_cases(rng, config) -> list:
    """Single-layer corner cases, signed inputs and a two-layer network whose hidden layer
    has no ReLU, sized for ``config`` (its n_pe, code_bits, act_depth)."""
    n_pe, fmt = config.n_pe, config.fmt
    bits = config.code_bits
    rows_odd = 4 * n_pe + 3
    gap_rows = min(config.act_depth, 4 << config.idx_bits) * n_pe   # gaps past 2**idx_bits

    def layer(name, rows, cols, density, **kw):
        return random_layer(name, rows, cols, density, rng, code_bits=bits, **kw)

    def one(what, lay, x):
        x_q = fmt.to_fixed(x) if x.dtype.kind == "f" else x
        return (what, single_layer_model(lay), x_q)

    cases = [
        one("no weights", layer("zero_w", 13, 20, 0.0), random_activations(20, 0.5, rng)),
        one("dense weights", layer("dense", rows_odd, 24, 1.0), random_activations(24, 1.0, rng)),
        one("gaps over the index range", layer("gaps", gap_rows, 30, 0.02),
            random_activations(30, 0.9, rng)),
        one("all-zero activations", layer("zero_x", 11, 16, 0.5), np.zeros(16, np.float32)),
        one("saturating", layer("sat", 9, 40, 0.8, scale=40.0, bias_scale=20.0, relu=False),
            random_activations(40, 0.9, rng, scale=20.0)),
        one("one row", layer("row1", 1, 33, 0.7), random_activations(33, 0.6, rng)),
        one("one column", layer("col1", 17, 1, 0.7), np.array([0.75], np.float32)),
        one("signed inputs", layer("signed", rows_odd, 26, 0.5, relu=False, scale=0.01),
            signed_activations(26, 0.8, rng, fmt)),
        one("signed inputs, saturating both ways",
            layer("signed_sat", rows_odd, 30, 0.7, relu=False, scale=2.0),
            signed_activations(30, 0.9, rng, fmt)),
    ]
    for density in (0.05, 0.3, 0.6):
        lay = layer(f"d{int(density * 100)}", rows_odd + 2, 3 * n_pe + 5, density)
        cases.append(one(f"density {density}", lay, random_activations(lay.cols, 0.5, rng)))
    empty = layer("empty_cols", 10, 12, 0.6)
    empty.codes[:, ::3] = 0
    cases.append(one("empty columns", empty, random_activations(12, 1.0, rng)))
    # One PE holds every weight: the scanner outruns it and fills its queue.
    skew = layer("skewed", 8 * n_pe, 3 * config.fifo_depth + 8, 1.0)
    skew.codes[np.arange(skew.rows) % n_pe != 0] = 0
    cases.append(one("one busy PE (queue-full stalls)", skew,
                     random_activations(skew.cols, 1.0, rng)))
    hidden = layer("hidden", 2 * n_pe + 5, 21, 0.6, relu=False, scale=0.02)
    out = layer("out", n_pe + 2, hidden.rows, 0.7, relu=True)
    net = CompressedModel(arch="no-relu-hidden", input_shape=(21,), layers=(hidden, out))
    cases.append(("hidden layer without ReLU", net, signed_activations(21, 0.8, rng, fmt)))
    return cases


def expected(model: CompressedModel, x_q, fmt) -> list:
    """Each layer's input, then the last output: the fixed kernel layer after layer."""
    values = [np.asarray(x_q, dtype=np.int64)]
    for lay in model.layers:
        values.append(layer_fixed(lay, values[-1], fmt))
    return values


def check_counts(got: dict, modelled: list, what: str) -> None:
    """A run's clocks from the start to the first output and its event counters against
    the cycle model's layers (``modelled``, LayerCycles)."""
    assert got["clocks_to_output"] == sum(got["cycles"]) + START_TO_OUTPUT, what
    ev = got["events"]
    assert ev["ev_fetch"] == sum(lc.events.sparse_sram_word_reads for lc in modelled), what
    assert 2 * ev["ev_pop"] == sum(lc.events.ptr_reads for lc in modelled), what
    assert ev["ev_mac"] == sum(lc.events.macs for lc in modelled), what
    assert ev["ev_bcast"] == sum(lc.events.broadcasts for lc in modelled), what


def check_cases(build, cases, seed: int) -> dict:
    """Run ``cases`` on ``build`` in one job and check outputs, cycles, clocks to the
    first output and event counts (module docstring). Returns totals over the cases:
    ``stalls`` (scanner queue-full stall cycles), ``fillers`` (stored filler entries of
    active columns), ``empty_pairs`` (active (PE, column) pairs with no entry),
    ``saturated`` (outputs at min_int or max_int), ``negative_inputs`` (negative inputs
    of any layer), ``negative_hidden`` (negative inputs of layers after the first)."""
    config = build.config
    fmt = config.fmt
    runs, traces = [], []
    for _, model, x_q in cases:
        traces.append(expected(model, x_q, fmt))
        runs.append(image_run(compile_model(model, config), x_q))
    result = run_job(build, runs, seed=seed)
    seen = dict.fromkeys(("stalls", "fillers", "empty_pairs", "saturated", "negative_inputs",
                          "negative_hidden"), 0)
    for (what, model, _), values, got in zip(cases, traces, result["runs"]):
        msg = first_mismatch(got["outputs"], values[-1], config.n_pe, model.layers[-1].name)
        assert msg is None, f"{what}: {msg} (seed {seed})"
        col_entries = [engine_col_entries(lay, config) for lay in model.layers]
        modelled = model_cycles(model, values[:-1], config, col_entries)
        assert got["cycles"] == [lc.cycles for lc in modelled], \
            f"{what}: RTL {got['cycles']}, model {[lc.cycles for lc in modelled]} (seed {seed})"
        check_counts(got, modelled, what)
        for lay, ce, x_in, lc in zip(model.layers, col_entries, values, modelled):
            active = x_in != 0
            seen["stalls"] += lc.scanner_stalls
            seen["fillers"] += int(ce[:, active].sum()) - int(
                np.count_nonzero(lay.codes[:, active]))
            seen["empty_pairs"] += int((ce[:, active] == 0).sum())
            seen["negative_inputs"] += int((x_in < 0).sum())
        seen["negative_hidden"] += sum(int((v < 0).sum()) for v in values[1:-1])
        seen["saturated"] += int(np.isin(values[-1], (fmt.min_int, fmt.max_int)).sum())
    return seen
