"""Energy of the EIE-style engine: event counts times energy per event, per scenario.

:class:`EventCounts` is the interface between the cycle model and this module: for a
real layer and input, ``dcsim.perf.cycles.layer_cycles(...).events`` fills every field
(cycles included) from the modelled walk of the engine, exactly as the RTL runs it;
:func:`from_layer_stats` fills the same fields analytically for layers known only by
their shape and density (the papers' layers, :func:`paper_figures`), with the ideal
bound as ``cycles``. :func:`energy` prices them with a
:class:`~dcsim.perf.tech.TechTable` in one of three scenarios:

``"sram"``
    The compressed weights are resident in the PEs' on-chip SRAMs (EIE's design point).
    Priced: sparse-matrix SRAM word reads at the SRAM fit for the sparse SRAM's capacity
    per PE; pointer reads at the fit for one bank (half the pointer SRAM); codebook,
    accumulator, source/destination activation and FIFO accesses as register files
    (``TechTable.regfile_pj``, reads and writes alike); one ``act_bits`` integer
    multiply and one ``acc_bits`` integer add per MAC. Not priced: the broadcast wires
    of (j, a_j) (the table has no wire energy; each PE's FIFO write is priced as a
    push), control, clock and leakage.
``"dram_compressed"``
    The compressed weights are streamed from DRAM once per inference: the sparse words
    and pointers one pass over the layer's used columns reads (``dram_word_reads``
    64-bit words, ``dram_ptr_reads`` 16-bit pointers) are DRAM reads, priced by
    ``TechTable.dram_read_pj`` at its width; on top of all the on-chip costs of
    ``"sram"`` (the words still pass through the PE's SRAM buffer; its write energy is
    not counted). For an fc layer these are the words and pointers the PEs read; a conv
    layer reads its filters again at every output position from the buffer, but fetches
    them from DRAM once (the columns active at some position). Two pointer reads per
    column and PE are charged even though adjacent columns share one, and a word two
    columns share is charged for each, so this traffic is an upper bound (pointers at
    most 2x).
``"dram_dense"``
    What a CPU or GPU pays at batch 1 with dense float32 weights: ``dense_weights``
    32-bit DRAM reads (each weight fetched once per inference, as above) plus one 32-bit
    float multiply and one 32-bit float add per weight and output position
    (``dense_weights * positions``). Caches, activations, instruction overhead and
    static power are left out, so this is a lower bound for such machines.

Both DRAM scenarios thus move each weight over the DRAM bus at most once per inference,
fc and conv alike.

``python -m dcsim.perf.energy [--json] [--tech FILE]`` prints EIE's DRAM-vs-SRAM
argument and the energy per inference of the LeNet-300-100 and AlexNet fc stacks in
each scenario (see :func:`paper_figures`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np

from dcsim.compress.sparse import fillers_for_gap, interleave
from dcsim.errors import ConfigError, DcsimError
from dcsim.hw.image import fits_on_chip  # the one fit check (FitCheck)
from dcsim.kernels.fixed import FixedFormat
from dcsim.perf.tech import TechTable, default_tech, load_tech

SCENARIOS = ("sram", "dram_compressed", "dram_dense")
_FMT = FixedFormat()
#: EIE's published design point (ISCA 2016, Table II and section V).
EIE_N_PE = 64
EIE_SPARSE_SRAM_BYTES = 128 * 1024
EIE_PTR_SRAM_BYTES = 32 * 1024
EIE_FIFO_DEPTH = 8
#: EIE's total power at 64 PEs, 800 MHz, 45 nm ("about 600 mW"), watts.
EIE_POWER_W = 0.6
SPARSE_WORD_BITS = 64
PTR_BITS = 16


@dataclass(frozen=True)
class EventCounts:
    """Events of one layer on the engine and the memory sizes that price them.

    Counts are totals over all PEs for one pass of the layer (one input vector).

    layer : str -- the layer's name.
    rows, cols : int -- the weight matrix's shape (out x in).
    n_pe : int -- processing elements.
    cycles : int -- clock cycles of the layer.
    sparse_sram_word_reads : int -- ``sparse_word_bits``-bit words read from the
        sparse-matrix SRAMs.
    ptr_reads : int -- ``ptr_bits``-bit column-pointer reads (p[j] and p[j+1] count 2).
    codebook_reads : int -- codebook (register file) reads, one per entry processed.
    macs : int -- multiply-accumulates (filler entries included: they multiply by 0).
    acc_reads, acc_writes : int -- accesses of the destination (accumulator) register
        files, ``acc_bits`` wide (bias initialisation and final read included).
    act_src_reads : int -- source activations read by the leading-non-zero detector.
    broadcasts : int -- (j, a_j) pairs broadcast to the PEs (non-zero activations).
    fifo_pushes, fifo_pops : int -- activation-queue writes and reads over all PEs.
    output_writes : int -- finished ``act_bits`` outputs written to the activation file.
    sparse_sram_bytes, ptr_sram_bytes : int -- capacity of one PE's sparse-matrix SRAM
        and pointer SRAM (both banks), in bytes: the physical sizes, which set the read
        energy, not the layer's footprint.
    src_regfile_bytes, dst_regfile_bytes, codebook_bytes, fifo_bytes : int -- one PE's
        source-activation file, accumulator file, codebook and activation queue, bytes.
    sparse_word_bits, ptr_bits, act_bits, acc_bits, fifo_entry_bits : int -- widths.
    positions : int -- output positions the layer computes per inference (conv: every
        position of the map before pooling; fc: 1).
    dense_weights : int or None -- the layer's weights as a dense tensor (fc: out x in;
        conv: out x in x kh x kw); None means ``rows * cols``.
    dram_word_reads, dram_ptr_reads : int or None -- sparse words and pointers that
        fetching the layer's used weights once takes (``"dram_compressed"``); None means
        ``sparse_sram_word_reads`` and ``ptr_reads`` (every word read once, as in fc).
    """

    layer: str
    rows: int
    cols: int
    n_pe: int
    cycles: int
    sparse_sram_word_reads: int
    ptr_reads: int
    codebook_reads: int
    macs: int
    acc_reads: int
    acc_writes: int
    act_src_reads: int
    broadcasts: int
    fifo_pushes: int
    fifo_pops: int
    output_writes: int
    sparse_sram_bytes: int
    ptr_sram_bytes: int
    src_regfile_bytes: int
    dst_regfile_bytes: int
    codebook_bytes: int
    fifo_bytes: int
    sparse_word_bits: int = SPARSE_WORD_BITS
    ptr_bits: int = PTR_BITS
    act_bits: int = _FMT.act_bits
    acc_bits: int = _FMT.acc_bits
    fifo_entry_bits: int = 32
    positions: int = 1
    dense_weights: int | None = None
    dram_word_reads: int | None = None
    dram_ptr_reads: int | None = None

    _POSITIVE = ("rows", "cols", "n_pe", "sparse_sram_bytes", "ptr_sram_bytes",
                 "src_regfile_bytes", "dst_regfile_bytes", "codebook_bytes", "fifo_bytes",
                 "sparse_word_bits", "ptr_bits", "act_bits", "acc_bits", "fifo_entry_bits",
                 "positions", "dense_weights")
    #: optional fields and the value None stands for
    _DEFAULTS = {"dense_weights": lambda e: e.rows * e.cols,
                 "dram_word_reads": lambda e: e.sparse_sram_word_reads,
                 "dram_ptr_reads": lambda e: e.ptr_reads}

    def __post_init__(self):
        if not isinstance(self.layer, str):
            raise ConfigError(f"EventCounts.layer must be a string, not {self.layer!r}")
        for f in fields(self):
            if f.name == "layer":
                continue
            value = getattr(self, f.name)
            if value is None and f.name in self._DEFAULTS:
                value = self._DEFAULTS[f.name](self)
            floor = 1 if f.name in self._POSITIVE else 0
            if (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                    or value < floor):
                want = "a positive" if floor else "a non-negative"
                raise ConfigError(
                    f"EventCounts.{f.name} of layer {self.layer!r} must be {want} "
                    f"integer, not {value!r}")
            object.__setattr__(self, f.name, int(value))

    def as_dict(self) -> dict:
        """All fields as a plain dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def row_and_source_events(rows: int, cols: int, n_pe: int) -> dict:
    """The events of a layer that depend on its shape only, as the engine runs it (the
    one rule for :func:`from_layer_stats` and ``dcsim.perf.cycles.layer_cycles``).

    INIT and FINISH walk ``R = ceil(rows / n_pe)`` local rows on every PE (padding rows
    of the last PEs included): ``n_pe * R`` bias writes into the accumulators, final
    accumulator reads and output writes. The scanner reads one source vector (one
    activation per PE) at RUN's first cycle and one per vector it moves past, the last
    one past the end: ``n_pe * (ceil(cols / n_pe) + 1)`` source reads.
    Returns a dict: ``acc_init_reads`` (== bias writes == output writes),
    ``act_src_reads``.
    """
    local_rows = -(-int(rows) // int(n_pe))
    vectors = -(-int(cols) // int(n_pe))
    return {"acc_init_reads": int(n_pe) * local_rows,
            "act_src_reads": int(n_pe) * (vectors + 1)}


def entries_per_pe(codes, n_pe: int, index_bits: int, active=None) -> np.ndarray:
    """Stored entries (fillers included) per PE in the active columns, int64 (n_pe,).

    codes : (rows, cols) integer code matrix, 0 = pruned.
    active : boolean mask (cols,) of non-zero input activations; None means all.
    Rows are interleaved over PEs as the engine does (row i on PE i mod n_pe).
    """
    codes = np.asarray(codes)
    cols = codes.shape[1] if codes.ndim == 2 else 0
    mask = np.ones(cols, dtype=bool) if active is None else np.asarray(active)
    if mask.shape != (cols,) or mask.dtype != bool:
        raise ConfigError(
            f"active must be a boolean mask of shape ({cols},), not {mask.dtype} "
            f"{mask.shape}")
    if isinstance(n_pe, bool) or not isinstance(n_pe, (int, np.integer)) or n_pe < 1:
        raise ConfigError(f"n_pe must be a positive integer, not {n_pe!r}")
    out = np.zeros(int(n_pe), dtype=np.int64)
    for pe, m in enumerate(interleave(codes, n_pe, index_bits)):
        out[pe] = int(np.diff(m.line_ptr)[mask].sum())
    return out


def expected_entries_per_line(line_len: int, density: float, index_bits: int) -> float:
    """Expected stored entries (fillers included) in a line of ``line_len`` positions.

    Each position is non-zero with probability ``density``, independently. A non-zero
    entry at position k is preceded by g zeros with ``P(g = j) = density (1-density)**j``
    for ``j < k`` and ``P(g = k) = (1-density)**k``, and needs
    ``sparse.fillers_for_gap(g, 2**index_bits)`` fillers; trailing zeros cost nothing.
    """
    if not isinstance(line_len, (int, np.integer)) or line_len < 0:
        raise ConfigError(f"line_len must be a non-negative integer, not {line_len!r}")
    if not 0.0 <= density <= 1.0:
        raise ConfigError(f"density must be in [0, 1], not {density!r}")
    k = np.arange(int(line_len), dtype=np.int64)
    # w[j] = P(g >= j) * fillers(j); E[fillers | non-zero at k] = d * sum_{j<k} w[j] + w[k]
    w = (1.0 - density) ** k * fillers_for_gap(k, 1 << int(index_bits))
    before = np.concatenate([[0.0], np.cumsum(w)[:-1]])
    return float(density * np.sum(1.0 + density * before + w))


def from_layer_stats(*, rows: int, cols: int, n_pe: int, entries_per_pe, n_active: int,
                     sparse_sram_bytes: int, ptr_sram_bytes: int, code_bits: int,
                     entries_per_word: int = 8, fifo_depth: int = EIE_FIFO_DEPTH,
                     act_bits: int = _FMT.act_bits, acc_bits: int = _FMT.acc_bits,
                     src_regfile_bytes: int | None = None,
                     dst_regfile_bytes: int | None = None, layer: str = "") -> EventCounts:
    """Event counts of one layer known by its statistics only, computed analytically
    (for a real layer use ``dcsim.perf.cycles.layer_cycles(...).events``).

    entries_per_pe : integers, shape (n_pe,) -- stored entries (fillers included) of
        each PE in the ``n_active`` active columns (see :func:`entries_per_pe`).
    n_active : int -- columns whose input activation is non-zero.
    sparse_sram_bytes, ptr_sram_bytes : int -- capacity per PE (sets the read energy).
    code_bits : int -- weight code width; the codebook holds ``2**code_bits`` values.
    entries_per_word : int -- (z, code) entries per 64-bit sparse-SRAM word.
    src_regfile_bytes, dst_regfile_bytes : int -- per PE; by default the layer's share:
        ``ceil(cols/n_pe)`` activations of ``act_bits`` and ``ceil(rows/n_pe)``
        accumulators of ``acc_bits``.

    Rules (each PE, each active column): two pointer reads; one codebook read, one MAC
    and one accumulator read and write per entry; words read = ``ceil(entries /
    entries_per_word)`` per PE, i.e. each word once (a column starting mid-word uses the
    word already read), a lower bound on a real schedule by at most one word per (PE,
    active column). Per layer, :func:`row_and_source_events`: bias writes, final
    accumulator reads and output writes of every local row of every PE, and the
    scanner's source-vector reads; the ``n_active`` non-zero inputs are broadcast, each
    pushed into and popped from every PE's queue. ``cycles`` is the ideal bound
    ``max(entries on the busiest PE, n_active)`` (EIE, ISCA 2016: the bound of perfect
    load balance; one broadcast per cycle); the cycle model gives the engine's exact
    count for a real layer.
    """
    for name, value, floor in (("rows", rows, 1), ("cols", cols, 1), ("n_pe", n_pe, 1),
                               ("n_active", n_active, 0), ("code_bits", code_bits, 1),
                               ("entries_per_word", entries_per_word, 1),
                               ("fifo_depth", fifo_depth, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < floor:
            want = "a positive" if floor else "a non-negative"
            raise ConfigError(f"{name} of layer {layer!r} must be {want} integer, not {value!r}")
    if n_active > cols:
        raise ConfigError(f"n_active of layer {layer!r} must be at most cols={cols}, "
                          f"not {n_active!r}")
    entries = np.asarray(entries_per_pe)
    if entries.shape != (n_pe,) or entries.dtype.kind not in "ui" or (
            entries.size and entries.min() < 0):
        raise ConfigError(
            f"entries_per_pe of layer {layer!r} must be {n_pe} non-negative integers "
            f"(one per PE), not {entries.dtype} {entries.shape}")
    entries = entries.astype(np.int64)
    total = int(entries.sum())
    fixed = row_and_source_events(rows, cols, n_pe)
    col_bits = max(1, math.ceil(math.log2(cols)))
    fifo_entry_bits = col_bits + act_bits
    if src_regfile_bytes is None:
        src_regfile_bytes = math.ceil(math.ceil(cols / n_pe) * act_bits / 8)
    if dst_regfile_bytes is None:
        dst_regfile_bytes = math.ceil(math.ceil(rows / n_pe) * acc_bits / 8)
    return EventCounts(
        layer=layer, rows=rows, cols=cols, n_pe=n_pe,
        cycles=max(int(entries.max()), int(n_active)),
        sparse_sram_word_reads=int(np.sum(-(-entries // entries_per_word))),
        ptr_reads=2 * n_pe * n_active,
        codebook_reads=total, macs=total,
        acc_reads=total + fixed["acc_init_reads"], acc_writes=total + fixed["acc_init_reads"],
        act_src_reads=fixed["act_src_reads"], broadcasts=n_active,
        fifo_pushes=n_pe * n_active, fifo_pops=n_pe * n_active,
        output_writes=fixed["acc_init_reads"],
        sparse_sram_bytes=sparse_sram_bytes, ptr_sram_bytes=ptr_sram_bytes,
        src_regfile_bytes=src_regfile_bytes, dst_regfile_bytes=dst_regfile_bytes,
        codebook_bytes=math.ceil((1 << code_bits) * act_bits / 8),
        fifo_bytes=math.ceil(fifo_depth * fifo_entry_bits / 8),
        sparse_word_bits=SPARSE_WORD_BITS, ptr_bits=PTR_BITS, act_bits=act_bits,
        acc_bits=acc_bits, fifo_entry_bits=fifo_entry_bits)


@dataclass(frozen=True, eq=False)
class EnergyReport:
    """Energy of one or more layers in one scenario, picojoules.

    scenario : str -- one of ``SCENARIOS``.
    tech : str -- the technology table's origin.
    layers : tuple of str -- layer names, in order.
    per_layer : tuple of dict -- component -> pJ, one dict per layer.
    components : dict -- component -> pJ summed over layers.
    total_pj : float -- the sum of everything.
    """

    scenario: str
    tech: str
    layers: tuple
    per_layer: tuple
    components: dict
    total_pj: float

    def as_dict(self) -> dict:
        """A JSON-ready dict."""
        return {"scenario": self.scenario, "tech": self.tech, "total_pj": self.total_pj,
                "components_pj": dict(self.components),
                "layers": [{"layer": n, "total_pj": sum(d.values()), "components_pj": d}
                           for n, d in zip(self.layers, self.per_layer)]}

    def table(self) -> str:
        """A printed table: one row per layer, one column per component, in nJ."""
        names = list(self.components)
        head = f"{'layer':<10}" + "".join(f"{n:>16}" for n in names) + f"{'total':>14}"
        lines = [f"scenario {self.scenario} (nJ)", head]
        for layer, comp in zip(self.layers, self.per_layer):
            lines.append(f"{layer:<10}" + "".join(f"{comp[n] / 1e3:>16.3f}" for n in names)
                         + f"{sum(comp.values()) / 1e3:>14.3f}")
        lines.append(f"{'total':<10}" + "".join(f"{self.components[n] / 1e3:>16.3f}"
                                                for n in names)
                     + f"{self.total_pj / 1e3:>14.3f}")
        return "\n".join(lines)


def layer_energy(ev: EventCounts, tech: TechTable, scenario: str) -> dict:
    """Component -> pJ for one layer in one scenario (see the module docstring)."""
    if scenario not in SCENARIOS:
        raise ConfigError(f"scenario must be one of {SCENARIOS}, not {scenario!r}")
    if scenario == "dram_dense":
        macs = ev.dense_weights * ev.positions
        return {"dram_weights": ev.dense_weights * tech.dram_read_pj(32),
                "float_mult": macs * tech.float_mult_pj(32),
                "float_add": macs * tech.float_add_pj(32)}
    out = {
        "sparse_sram": ev.sparse_sram_word_reads
        * tech.sram_read_pj(ev.sparse_sram_bytes, ev.sparse_word_bits),
        # even/odd banks: each pointer read touches one bank, half the capacity
        "ptr_sram": ev.ptr_reads * tech.sram_read_pj(ev.ptr_sram_bytes / 2, ev.ptr_bits),
        "codebook": ev.codebook_reads * tech.regfile_pj(ev.codebook_bytes, ev.act_bits),
        "mult": ev.macs * tech.int_mult_pj(ev.act_bits),
        "add": ev.macs * tech.int_add_pj(ev.acc_bits),
        "acc_regfile": (ev.acc_reads + ev.acc_writes)
        * tech.regfile_pj(ev.dst_regfile_bytes, ev.acc_bits),
        "act_regfile": (ev.act_src_reads + ev.output_writes)
        * tech.regfile_pj(ev.src_regfile_bytes, ev.act_bits),
        "fifo": (ev.fifo_pushes + ev.fifo_pops)
        * tech.regfile_pj(ev.fifo_bytes, ev.fifo_entry_bits),
    }
    if scenario == "dram_compressed":
        out["dram_sparse"] = ev.dram_word_reads * tech.dram_read_pj(ev.sparse_word_bits)
        out["dram_ptr"] = ev.dram_ptr_reads * tech.dram_read_pj(ev.ptr_bits)
    return out


def energy(events, tech: TechTable | None = None, scenario: str = "sram") -> EnergyReport:
    """Price one layer's or a network's event counts: an :class:`EnergyReport` (pJ).

    events : EventCounts or a sequence of them (a network, in layer order).
    tech : the technology table; default :func:`~dcsim.perf.tech.default_tech`.
    scenario : ``"sram"``, ``"dram_compressed"`` or ``"dram_dense"``.
    """
    tech = default_tech() if tech is None else tech
    if not isinstance(tech, TechTable):
        raise ConfigError(f"tech must be a TechTable, not {type(tech).__name__}")
    if isinstance(events, EventCounts):
        seq = [events]
    elif isinstance(events, Sequence):
        seq = list(events)
    else:
        seq = []
    if not seq or not all(isinstance(e, EventCounts) for e in seq):
        raise ConfigError(
            f"events must be an EventCounts or a non-empty sequence of them, not {events!r}")
    per_layer = tuple(layer_energy(e, tech, scenario) for e in seq)
    components = {k: sum(d[k] for d in per_layer) for k in per_layer[0]}
    return EnergyReport(scenario=scenario, tech=tech.origin,
                        layers=tuple(e.layer for e in seq), per_layer=per_layer,
                        components=components, total_pj=float(sum(components.values())))


@dataclass(frozen=True)
class PaperLayer:
    """A benchmark layer as published: shape (out x in), densities (fractions) and
    EIE's cycle-accurate time at batch 1 (Table IV "actual", microseconds; None if absent)."""

    name: str
    rows: int
    cols: int
    density: float
    act_density: float
    eie_actual_us: float | None = None


#: Deep Compression Table 2; activation density 1.0 (every input counted non-zero:
#: no published figure, so this is an upper bound).
LENET_300_100 = (PaperLayer("ip1", 300, 784, 0.08, 1.0),
                 PaperLayer("ip2", 100, 300, 0.09, 1.0),
                 PaperLayer("ip3", 10, 100, 0.26, 1.0))
#: Deep Compression / EIE Table III (weight and activation densities).
ALEXNET_FC = (PaperLayer("fc6", 4096, 9216, 0.09, 0.351, 30.3),
              PaperLayer("fc7", 4096, 4096, 0.09, 0.353, 12.2),
              PaperLayer("fc8", 1000, 4096, 0.25, 0.375, 9.9))


def paper_network_events(layers, *, code_bits: int, index_bits: int = 4,
                         n_pe: int = EIE_N_PE,
                         sparse_sram_bytes: int = EIE_SPARSE_SRAM_BYTES,
                         ptr_sram_bytes: int = EIE_PTR_SRAM_BYTES):
    """Expected event counts of a stack of :class:`PaperLayer` and its fit check.

    The layers are stand-ins: i.i.d. random weights of the published density, entries
    of ``code_bits + index_bits`` bits packed ``64 // (code_bits + index_bits)`` to a
    word, ``round(act_density * cols)`` active columns, expected entry counts (fillers
    included, :func:`expected_entries_per_line`) rounded to integers. Returns
    ``(events, fit)``: the whole stack resident at once, per PE (busiest PE's words;
    ``cols + 1`` pointers of 16 bits per layer).
    """
    per_word = SPARSE_WORD_BITS // (code_bits + index_bits)
    events = []
    sparse_need = 0
    ptr_need = 0
    for L in layers:
        local = np.array([len(range(pe, L.rows, n_pe)) for pe in range(n_pe)])
        per_line = np.array([expected_entries_per_line(int(n), L.density, index_bits)
                             for n in local])
        n_active = round(L.act_density * L.cols)
        events.append(from_layer_stats(
            rows=L.rows, cols=L.cols, n_pe=n_pe,
            entries_per_pe=np.rint(per_line * n_active).astype(np.int64),
            n_active=n_active, sparse_sram_bytes=sparse_sram_bytes,
            ptr_sram_bytes=ptr_sram_bytes, code_bits=code_bits,
            entries_per_word=per_word, layer=L.name))
        sparse_need += math.ceil(float(per_line.max()) * L.cols / per_word) * SPARSE_WORD_BITS // 8
        ptr_need += (L.cols + 1) * PTR_BITS // 8
    fit = fits_on_chip({"sparse_sram": sparse_need, "ptr_sram": ptr_need},
                       {"sparse_sram": sparse_sram_bytes, "ptr_sram": ptr_sram_bytes})
    return events, fit


def energy_argument(tech: TechTable) -> dict:
    """EIE's DRAM-vs-SRAM energy ratio (published: 120x) from the table, several ways."""
    dram32 = tech.dram_read_pj(32)
    dram64 = tech.dram_read_pj(64)
    quoted32 = tech.lookup("sram_quoted", 32, 8192)
    return {
        "published_ratio": 120.0,
        "dram_32bit_pj": dram32,
        "sram_32bit_quoted_pj": quoted32,
        "ratio_quoted_32bit": dram32 / quoted32,
        "dram_64bit_pj": dram64,
        "sram_fit_64bit_8KB_pj": tech.sram_read_pj(8192, 64),
        "ratio_fit_64bit_8KB": dram64 / tech.sram_read_pj(8192, 64),
        "sram_fit_64bit_128KB_pj": tech.sram_read_pj(EIE_SPARSE_SRAM_BYTES, 64),
        "ratio_fit_64bit_128KB": dram64 / tech.sram_read_pj(EIE_SPARSE_SRAM_BYTES, 64),
    }


def paper_figures(tech: TechTable | None = None) -> dict:
    """The anchor claims as numbers: the energy argument and energy per inference.

    LeNet-300-100 fc stack with 5-bit codes and AlexNet fc6-8 with EIE's 4-bit codes,
    both with 4-bit relative indices on EIE's design point (64 PEs, 128 KB sparse SRAM
    and 32 KB pointer SRAM per PE), in every scenario. Energies in pJ. For AlexNet,
    ``eie_published_pj`` is EIE's published whole-chip energy (Table IV "actual" time
    x 600 mW: leakage, clock and control included, which this model leaves out).
    """
    tech = default_tech() if tech is None else tech
    out = {"tech": tech.origin,
           "sram_fit": {"a_pj": tech.sram_fit_a, "p": tech.sram_fit_p,
                        "max_rel_error": tech.sram_fit_max_rel_error},
           "energy_argument": energy_argument(tech), "networks": {}}
    for name, layers, code_bits in (("LeNet-300-100", LENET_300_100, 5),
                                    ("AlexNet-fc", ALEXNET_FC, 4)):
        events, fit = paper_network_events(layers, code_bits=code_bits)
        reports = {s: energy(events, tech, s) for s in SCENARIOS}
        sram = reports["sram"].total_pj
        times = [L.eie_actual_us for L in layers]
        published = None if None in times else sum(times) * 1e-6 * EIE_POWER_W * 1e12
        out["networks"][name] = {
            "eie_published_pj": published,
            "code_bits": code_bits, "index_bits": 4, "n_pe": EIE_N_PE,
            "weights": sum(L.rows * L.cols for L in layers),
            "macs": sum(e.macs for e in events),
            "fits_on_chip": fit.fits,
            "memories": [{"memory": n, "required_bytes_per_pe": r, "capacity_bytes": c}
                         for n, r, c in fit.memories],
            "total_pj": {s: r.total_pj for s, r in reports.items()},
            "ratio_to_sram": {s: r.total_pj / sram for s, r in reports.items()},
            "reports": {s: r.as_dict() for s, r in reports.items()},
        }
    return out


def format_paper_figures(fig: dict) -> str:
    """The tables :func:`main` prints."""
    ea = fig["energy_argument"]
    fit = fig["sram_fit"]
    lines = [f"technology: {fig['tech']}",
             f"SRAM fit (64-bit read): E = {fit['a_pj']:.4f} pJ * size_bytes^{fit['p']:.3f}, "
             f"max rel. error {fit['max_rel_error']:.1%}",
             "", "EIE energy argument (DRAM read / SRAM read; published ~120x)",
             f"  32-bit, quoted:            {ea['dram_32bit_pj']:.0f} / "
             f"{ea['sram_32bit_quoted_pj']:.2f} pJ = {ea['ratio_quoted_32bit']:.0f}x",
             f"  64-bit, CACTI fit, 8 KB:   {ea['dram_64bit_pj']:.0f} / "
             f"{ea['sram_fit_64bit_8KB_pj']:.2f} pJ = {ea['ratio_fit_64bit_8KB']:.0f}x",
             f"  64-bit, CACTI fit, 128 KB: {ea['dram_64bit_pj']:.0f} / "
             f"{ea['sram_fit_64bit_128KB_pj']:.2f} pJ = {ea['ratio_fit_64bit_128KB']:.0f}x"]
    for name, net in fig["networks"].items():
        lines += ["", f"{name}: {net['weights']} weights, {net['macs']} MACs per inference, "
                  f"{net['code_bits']}-bit codes, {net['index_bits']}-bit index, "
                  f"{net['n_pe']} PEs",
                  "  on chip: " + ", ".join(
                      f"{m['memory']} {m['required_bytes_per_pe']}/{m['capacity_bytes']} B"
                      for m in net["memories"])
                  + (" -> fits" if net["fits_on_chip"] else " -> does NOT fit"),
                  f"  {'scenario':<16}{'uJ/inference':>14}{'x sram':>10}"]
        for s in SCENARIOS:
            lines.append(f"  {s:<16}{net['total_pj'][s] / 1e6:>14.4f}"
                         f"{net['ratio_to_sram'][s]:>10.1f}")
        if net["eie_published_pj"] is not None:
            lines.append(f"  {'EIE published':<16}{net['eie_published_pj'] / 1e6:>14.4f}"
                         f"{net['eie_published_pj'] / net['total_pj']['sram']:>10.1f}"
                         "   (Table IV actual time x 600 mW, all power)")
        sram = net["reports"]["sram"]["components_pj"]
        lines.append("  sram breakdown (nJ): " + ", ".join(
            f"{k} {v / 1e3:.2f}" for k, v in sram.items()))
    return "\n".join(lines)


def main(argv=None) -> int:
    """``python -m dcsim.perf.energy [--json] [--tech FILE]``: print :func:`paper_figures`."""
    parser = argparse.ArgumentParser(prog="python -m dcsim.perf.energy",
                                     description=main.__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--tech", help="a YAML/JSON/CSV technology table overriding the default")
    args = parser.parse_args(argv)
    try:
        tech = load_tech(args.tech) if args.tech else default_tech()
        fig = paper_figures(tech)
    except DcsimError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(fig) if args.json else format_paper_figures(fig))
    return 0


if __name__ == "__main__":
    sys.exit(main())
