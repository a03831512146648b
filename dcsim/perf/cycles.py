"""Cycle model of the engine, exact against the RTL (the rules of docs/engine.md, "Timing").

The model is event-driven, not cycle-by-cycle: for the i-th broadcast of a layer (in
cycle ``b_i``, the same for all PEs) each PE p computes, from the rules of
``docs/engine.md``, its pop cycle ``P_i = max(b_i + 1, C_{i-1})``, the cycle its walker
takes the column ``C_i = max(P_i + 1, L_{i-1})`` and the walker's last busy cycle
``L_i = C_i + max(1, n_pi)``. The scanner broadcasts in cycle ``b_i`` only if every
queue has room, i.e. every PE popped broadcast ``i - fifo_depth`` before ``b_i``:
``b_i = max(scanner cursor, max_p P_{i - fifo_depth} + 1)`` (a pop frees room only from
the next cycle). A vector without non-zeros costs the scanner one cycle. So a layer
costs O(broadcasts x n_pe) work, and a 4096 x 4096 layer on 64 PEs takes milliseconds.

The same walk counts the events the energy model prices (:class:`EventCounts`): sparse
words as the walker reads them (a column reads the word of its first entry and one more
at every word boundary it crosses; empty columns read nothing), both pointer banks per
pop, one codebook read, MAC and accumulator read/write per entry emitted (fillers
included), bias writes and final reads of every local row of every PE (INIT and FINISH
run ``ceil(rows / n_pe)`` rows on every PE), the source-vector reads of the scanner
(vector 0 at RUN's first cycle and one read per advance, the last one past the end),
and one queue push and pop per broadcast per PE.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numba
import numpy as np

from dcsim.compress.layer import CompressedLayer, CompressedModel
from dcsim.compress.sparse import fillers_for_gap
from dcsim.errors import ConfigError
from dcsim.hw.config import EngineConfig
from dcsim.hw.conv import ConvGeometry, engine_input, engine_layers, patches, positions
from dcsim.perf.energy import EventCounts, row_and_source_events

#: Breakdown keys of :class:`LayerCycles`, in the order they happen.
BREAKDOWN = ("desc", "init", "fill", "zero_vectors", "queue_full_stalls", "empty_pairs",
             "busy", "drain", "finish")


@numba.njit(cache=True)
def _walk(col_entries, entry_start, active, fifo_depth, entries_per_word):
    """The RUN phase of one layer (see the module docstring).

    col_entries : int64 (n_pe, cols); entry_start : int64 (n_pe, cols) -- index of each
    column's first entry in the PE's sparse SRAM (entries of all layers back to back);
    active : bool (cols,).
    Returns (t_run, stats int64 (n_pe, 7), scanner int64 (3,), words int64 (n_pe,)):
    stats columns = work, empty, fill, zero, stall, L_last, idle; scanner = broadcasts,
    scanner stall cycles, scanner zero-vector cycles.
    """
    n_pe, cols = col_entries.shape
    vectors = (cols + n_pe - 1) // n_pe
    n_bcast = 0
    for j in range(cols):
        if active[j]:
            n_bcast += 1
    max_pop = np.zeros(max(n_bcast, 1), dtype=np.int64)
    c_prev = np.zeros(n_pe, dtype=np.int64)
    l_prev = np.zeros(n_pe, dtype=np.int64)
    s_last = np.full(n_pe, -1000, dtype=np.int64)
    stats = np.zeros((n_pe, 7), dtype=np.int64)
    words = np.zeros(n_pe, dtype=np.int64)
    t = 2                       # cycle 1 reads source vector 0
    i = 0
    zeros_window = 0            # zero-vector cycles since the previous broadcast
    total_stall = 0
    total_zero = 0
    for k in range(vectors):
        first = True
        for j in range(k * n_pe, min(cols, (k + 1) * n_pe)):
            if not active[j]:
                continue
            first = False
            b = t
            if i >= fifo_depth and max_pop[i - fifo_depth] + 1 > b:
                b = max_pop[i - fifo_depth] + 1
            stall_window = b - t
            total_stall += stall_window
            mp = 0
            for p in range(n_pe):
                pop = max(b + 1, c_prev[p])
                take = max(pop + 1, l_prev[p])
                n = col_entries[p, j]
                last = take + max(1, n)
                # the walker's idle cycles before this column: charge them to the
                # scanner's latest non-broadcast cycles (stalls come after zero vectors)
                gap = take - l_prev[p]
                stall = min(gap, stall_window)
                zero = min(gap - stall, zeros_window)
                stats[p, 4] += stall
                stats[p, 3] += zero
                stats[p, 2] += gap - stall - zero
                if n > 0:
                    stats[p, 0] += n
                    s_last[p] = last
                    s = entry_start[p, j]
                    words[p] += (s + n - 1) // entries_per_word - s // entries_per_word + 1
                else:
                    stats[p, 1] += 1
                c_prev[p] = take
                l_prev[p] = last
                if pop > mp:
                    mp = pop
            max_pop[i] = mp
            t = b + 1
            i += 1
            zeros_window = 0
        if first:
            t += 1
            zeros_window += 1
            total_zero += 1
    t_run = t                   # scan_done is set from this cycle on
    for p in range(n_pe):
        stats[p, 5] = l_prev[p]
        idle = max(l_prev[p] + 1, s_last[p] + 3) if n_bcast > 0 else 1
        stats[p, 6] = idle
        if idle > t_run:
            t_run = idle
    scanner = np.array([n_bcast, total_stall, total_zero], dtype=np.int64)
    return t_run, stats, scanner, words


@dataclass(frozen=True, eq=False)
class LayerCycles:
    """The modelled timing and events of one layer for one input vector.

    layer : str; rows, cols, n_pe : int.
    cycles : int -- ``1 + R + run + R + 1`` with ``R = ceil(rows / n_pe)`` (the RTL's
        per-layer count); phases : dict desc/init/run/finish -> cycles.
    breakdown : dict, keys ``BREAKDOWN``, summing to ``cycles``: desc, init, finish as
        above; the RUN cycles of the PE that finishes last (``critical_pe``): ``fill``
        (pipeline fill before its first column: source read, broadcast, pop, pointer
        read), ``zero_vectors`` (scanner cycles on vectors without non-zeros that kept
        it waiting, trailing ones included), ``queue_full_stalls`` (scanner stalled by
        another PE's full queue while this one waited), ``empty_pairs`` (one cycle per
        active column with no entry on it), ``busy`` (its entries, fillers included),
        ``drain`` (after its walker's last cycle: the MAC pipeline and the idle cycle).
    ideal_cycles : int -- ``ceil(entries of active columns / n_pe)``: perfect balance,
        one entry per PE per cycle, no overheads (EIE's "theoretical").
    bound_cycles : int -- ``max_p sum_{active j} max(1, n_pj)``: this engine's RUN
        floor (busiest PE, one cycle per empty active pair).
    busiest_entries : int -- entries of active columns on the busiest PE.
    efficiency : float -- ``ideal_cycles / cycles`` (load-balance efficiency, <= 1).
    broadcasts : int -- non-zero activations broadcast; scanner_stalls,
        scanner_zero_vectors : int -- the scanner's stall and empty-vector cycles.
    events : EventCounts -- what the energy model prices.
    """

    layer: str
    rows: int
    cols: int
    n_pe: int
    cycles: int
    phases: dict
    breakdown: dict
    critical_pe: int
    ideal_cycles: int
    bound_cycles: int
    busiest_entries: int
    efficiency: float
    broadcasts: int
    scanner_stalls: int
    scanner_zero_vectors: int
    events: EventCounts

    def as_dict(self) -> dict:
        """A JSON-ready dict (events as a dict)."""
        out = {k: getattr(self, k) for k in (
            "layer", "rows", "cols", "n_pe", "cycles", "phases", "breakdown", "critical_pe",
            "ideal_cycles", "bound_cycles", "busiest_entries", "efficiency", "broadcasts",
            "scanner_stalls", "scanner_zero_vectors")}
        out["events"] = self.events.as_dict()
        return out


def _check_int_array(name: str, value, shape) -> np.ndarray:
    arr = np.asarray(value)
    if arr.shape != shape or arr.dtype.kind not in "ui" or (arr.size and arr.min() < 0):
        raise ConfigError(f"{name} must be non-negative integers of shape {shape}, not "
                          f"{arr.dtype} {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def memory_bytes(config: EngineConfig, fifo_depth: int | None = None) -> dict:
    """Per-PE capacities (bytes) and widths that set the energy of each access
    (EventCounts fields); fifo_depth overrides the config's."""
    c = config
    depth = c.fifo_depth if fifo_depth is None else fifo_depth
    fifo_entry_bits = c.col_bits + c.act_bits
    return {
        "sparse_sram_bytes": c.sparse_bytes,
        "ptr_sram_bytes": math.ceil(c.ptr_depth * c.ptr_bits / 8),
        "src_regfile_bytes": math.ceil(c.act_depth * c.act_bits / 8),
        "dst_regfile_bytes": math.ceil(c.act_depth * c.acc_bits / 8),
        "codebook_bytes": math.ceil(c.max_layers * c.codebook_entries * c.act_bits / 8),
        "fifo_bytes": math.ceil(depth * fifo_entry_bits / 8),
        "sparse_word_bits": c.word_bits, "ptr_bits": c.ptr_bits, "act_bits": c.act_bits,
        "acc_bits": c.acc_bits, "fifo_entry_bits": fifo_entry_bits,
    }


def layer_cycles(col_entries, x_q, rows: int, config: EngineConfig, entry_base=None,
                 name: str = "", fifo_depth: int | None = None) -> LayerCycles:
    """Model one layer run on the engine.

    col_entries : integers (n_pe, cols) -- stored entries (fillers included) of each
        (PE, column): ``LayerImage.col_entries`` or ``diff(line_ptr)`` of
        ``sparse.interleave``.
    x_q : (cols,) the layer's input (integers or floats; only which are non-zero matters)
        or a boolean mask of non-zero inputs.
    rows : int -- the layer's outputs.
    config : EngineConfig -- n_pe must equal ``col_entries.shape[0]``.
    entry_base : integers (n_pe,) -- index of the layer's first entry in each PE's
        sparse SRAM (entries of earlier layers); default 0. Only word reads depend on it.
    fifo_depth : int -- overrides ``config.fifo_depth`` (for studies past the depths an
        EngineConfig accepts, e.g. EIE's sweep to 256); default the config's.
    """
    if not isinstance(config, EngineConfig):
        raise ConfigError(f"config must be an EngineConfig, not {config!r}")
    ce = np.asarray(col_entries)
    if ce.ndim != 2 or ce.shape[0] != config.n_pe or ce.shape[1] < 1:
        raise ConfigError(f"col_entries must have shape ({config.n_pe}, cols >= 1) for "
                          f"n_pe={config.n_pe}, not {ce.shape}")
    n_pe, cols = ce.shape
    ce = _check_int_array("col_entries", ce, (n_pe, cols))
    x = np.asarray(x_q)
    if x.shape != (cols,):
        raise ConfigError(f"x_q must have shape ({cols},), not {x.shape}")
    active = np.ascontiguousarray(x != 0) if x.dtype != bool else np.ascontiguousarray(x)
    if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or rows < 1:
        raise ConfigError(f"rows must be a positive integer, not {rows!r}")
    depth = config.fifo_depth if fifo_depth is None else fifo_depth
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
        raise ConfigError(f"fifo_depth must be a positive integer, not {depth!r}")
    base = (np.zeros(n_pe, dtype=np.int64) if entry_base is None
            else _check_int_array("entry_base", entry_base, (n_pe,)))
    start = base[:, None] + np.concatenate(
        [np.zeros((n_pe, 1), dtype=np.int64), np.cumsum(ce, axis=1)[:, :-1]], axis=1)
    t_run, stats, scanner, words = _walk(ce, np.ascontiguousarray(start), active,
                                         int(depth), config.entries_per_word)
    t_run = int(t_run)
    r = -(-int(rows) // n_pe)
    vectors = -(-cols // n_pe)
    phases = {"desc": 1, "init": r, "run": t_run, "finish": r + 1}
    cycles = sum(phases.values())
    n_bcast = int(scanner[0])
    if n_bcast:
        crit = int(np.argmax(stats[:, 6]))
        work, empty, fill, zero, stall, l_last, idle = (int(v) for v in stats[crit])
        run_parts = {"fill": fill, "zero_vectors": zero + t_run - idle,
                     "queue_full_stalls": stall, "empty_pairs": empty, "busy": work,
                     "drain": idle - l_last}
    else:
        crit = 0
        run_parts = {"fill": t_run - vectors, "zero_vectors": vectors, "queue_full_stalls": 0,
                     "empty_pairs": 0, "busy": 0, "drain": 0}
    breakdown = {k: phases[k] if k in phases else run_parts[k] for k in BREAKDOWN}
    per_pe = ce[:, active].sum(axis=1)
    total = int(per_pe.sum())
    ideal = -(-total // n_pe)
    bound = int(np.maximum(ce[:, active], 1).sum(axis=1).max()) if n_bcast else 0
    fixed = row_and_source_events(rows, cols, n_pe)
    events = EventCounts(
        layer=name, rows=int(rows), cols=cols, n_pe=n_pe, cycles=cycles,
        sparse_sram_word_reads=int(words.sum()), ptr_reads=2 * n_pe * n_bcast,
        codebook_reads=total, macs=total,
        acc_reads=total + fixed["acc_init_reads"], acc_writes=total + fixed["acc_init_reads"],
        act_src_reads=fixed["act_src_reads"], broadcasts=n_bcast,
        fifo_pushes=n_pe * n_bcast, fifo_pops=n_pe * n_bcast,
        output_writes=fixed["acc_init_reads"],
        **memory_bytes(config, int(depth)))
    return LayerCycles(
        layer=name, rows=int(rows), cols=cols, n_pe=n_pe, cycles=cycles, phases=phases,
        breakdown=breakdown, critical_pe=crit, ideal_cycles=ideal, bound_cycles=bound,
        busiest_entries=int(per_pe.max()), efficiency=ideal / cycles,
        broadcasts=n_bcast, scanner_stalls=int(scanner[1]),
        scanner_zero_vectors=int(scanner[2]), events=events)


def conv_layer_cycles(col_entries, x_map, geom: ConvGeometry, config: EngineConfig,
                      entry_base=None, name: str = "",
                      fifo_depth: int | None = None) -> LayerCycles:
    """Model one conv layer run on the engine (``docs/engine.md``, "Convolution").

    col_entries : integers (n_pe, geom.cols) -- stored entries of the filter matrix in
        gather order (``LayerImage.col_entries``); x_map : the input map (C, H, W) (only
        which values are non-zero matters); geom : its ``hw.conv.ConvGeometry``; the
        other arguments as :func:`layer_cycles`.

    The layer takes one descriptor cycle, then per output position (``hw.conv.positions``
    order) an fc-like pass over its gathered patch: ``R`` INIT cycles, the RUN of
    :func:`layer_cycles` on the patch's non-zeros, ``R + 1`` FINISH cycles (``R`` =
    filters per PE). Phases, breakdown, ideal and bound cycles, busiest entries and
    events are sums over positions (each position's descriptor cycle dropped); events
    add the pooling merge's reads of the old output (``act_src_reads``, ``n_pe * R`` per
    position after a window's first). ``critical_pe`` is the critical PE of the position
    with the longest RUN. For the DRAM scenarios of ``perf.energy``, ``dram_word_reads``
    and ``dram_ptr_reads`` are those of one pass over the columns active at some
    position (the filters fetched once), ``positions`` the patches, ``dense_weights``
    ``out_ch * in_ch * kh * kw``.
    """
    if not isinstance(geom, ConvGeometry):
        raise ConfigError(f"geom must be a ConvGeometry, not {geom!r}")
    if geom.n_pe != config.n_pe:
        raise ConfigError(f"geom.n_pe must be the config's {config.n_pe}, not {geom.n_pe}")
    active = patches(geom, x_map) != 0
    _, _, _, first = positions(geom)
    parts = [layer_cycles(col_entries, a, geom.out_ch, config, entry_base, name, fifo_depth)
             for a in active]
    r = geom.rows_local
    phases = {"desc": 1, "init": sum(p.phases["init"] for p in parts),
              "run": sum(p.phases["run"] for p in parts),
              "finish": sum(p.phases["finish"] for p in parts)}
    cycles = sum(phases.values())
    breakdown = {k: (1 if k == "desc" else sum(p.breakdown[k] for p in parts))
                 for k in BREAKDOWN}
    longest = max(parts, key=lambda p: p.phases["run"])
    ideal = sum(p.ideal_cycles for p in parts)
    counts = {f: sum(getattr(p.events, f) for p in parts) for f in _EVENT_SUMS}
    counts["act_src_reads"] += config.n_pe * r * int((~first).sum()) if geom.pool else 0
    once = layer_cycles(col_entries, active.any(axis=0), geom.out_ch, config, entry_base,
                        name, fifo_depth).events
    events = dataclasses.replace(
        parts[0].events, cycles=cycles, cols=geom.cols, positions=len(active),
        dense_weights=geom.out_ch * geom.in_ch * geom.kh * geom.kw,
        dram_word_reads=once.sparse_sram_word_reads, dram_ptr_reads=once.ptr_reads,
        **counts)
    return LayerCycles(
        layer=name, rows=geom.out_ch, cols=geom.cols, n_pe=config.n_pe, cycles=cycles,
        phases=phases, breakdown=breakdown, critical_pe=longest.critical_pe,
        ideal_cycles=ideal, bound_cycles=sum(p.bound_cycles for p in parts),
        busiest_entries=sum(p.busiest_entries for p in parts), efficiency=ideal / cycles,
        broadcasts=sum(p.broadcasts for p in parts),
        scanner_stalls=sum(p.scanner_stalls for p in parts),
        scanner_zero_vectors=sum(p.scanner_zero_vectors for p in parts), events=events)


#: EventCounts fields a conv layer sums over its positions.
_EVENT_SUMS = ("sparse_sram_word_reads", "ptr_reads", "codebook_reads", "macs", "acc_reads",
               "acc_writes", "act_src_reads", "broadcasts", "fifo_pushes", "fifo_pops",
               "output_writes")


@numba.njit(cache=True)
def _count_col_entries(codes, n_pe, span):
    """Entries per (PE, column) of ``sparse.interleave``'s encoding, in one row-major pass:
    a non-zero after ``g`` zeros of its (PE, column) line takes
    ``sparse.fillers_for_gap(g, span)`` fillers."""
    rows, cols = codes.shape
    out = np.zeros((n_pe, cols), dtype=np.int64)
    gap = np.zeros((n_pe, cols), dtype=np.int64)
    for i in range(rows):
        p = i % n_pe
        for k in range(cols):
            if codes[i, k] != 0:
                out[p, k] += fillers_for_gap(gap[p, k], span) + 1
                gap[p, k] = 0
            else:
                gap[p, k] += 1
    return out


def engine_col_entries(layer: CompressedLayer, config: EngineConfig) -> np.ndarray:
    """Stored entries (fillers included) of each (PE, column) of fc ``layer`` on the
    engine, int64 (n_pe, cols): ``diff(line_ptr)`` of ``sparse.interleave(codes, n_pe,
    idx_bits)``, counted without building the entries (tests hold the two equal). For a
    model with conv layers use :func:`model_col_entries` (the engine's column order)."""
    if not isinstance(layer, CompressedLayer) or layer.kind != "fc":
        raise ConfigError(f"layer must be an fc CompressedLayer, not {layer!r}")
    return _count_col_entries(np.ascontiguousarray(layer.codes), config.n_pe,
                              1 << config.idx_bits)


def model_col_entries(model: CompressedModel, config: EngineConfig) -> list:
    """Each layer's (n_pe, engine cols) entry counts, as ``hw.image.compile_model`` stores
    the layers (``hw.conv.engine_layers``: conv filter matrices in gather order, an fc
    after a conv in its map's order)."""
    return [engine_col_entries(matrix, config)
            for matrix, _ in engine_layers(model, config.n_pe)]


def model_cycles(model: CompressedModel, layer_inputs, config: EngineConfig,
                 col_entries=None) -> list:
    """Model a whole network for one image: a list of :class:`LayerCycles`, layer order.

    layer_inputs : sequence of each layer's input integers (``[x for x, _ in
        kernels.trace_fixed(model, image, config.fmt)]``).
    col_entries : optional list of each layer's (n_pe, engine cols) entry counts
        (:func:`model_col_entries` if None); word reads see the layers back to back in
        each PE's SRAM, as ``hw.image.compile_model`` places them. Conv layers go through
        :func:`conv_layer_cycles`.
    """
    if not isinstance(model, CompressedModel):
        raise ConfigError(f"model must be a CompressedModel, not {type(model).__name__}")
    if len(layer_inputs) != len(model.layers):
        raise ConfigError(f"layer_inputs must have one entry per layer "
                          f"({len(model.layers)}), not {len(layer_inputs)}")
    if col_entries is None:
        col_entries = model_col_entries(model, config)
    out = []
    base = np.zeros(config.n_pe, dtype=np.int64)
    shapes = model.layer_shapes()
    for i, (layer, x, ce) in enumerate(zip(model.layers, layer_inputs, col_entries)):
        if layer.kind == "conv":
            geom = ConvGeometry.of(layer, shapes[i][0], config.n_pe)
            out.append(conv_layer_cycles(ce, x, geom, config, base, layer.name))
        else:
            x = engine_input(i, model, x, config.n_pe)
            lc = layer_cycles(ce, np.ravel(x), layer.rows, config, base, layer.name)
            # an fc after a conv has map_slots engine columns; its dense weights are its own
            out.append(dataclasses.replace(lc, events=dataclasses.replace(
                lc.events, dense_weights=layer.rows * layer.cols)))
        base = base + np.asarray(ce, dtype=np.int64).sum(axis=1)
    return out
