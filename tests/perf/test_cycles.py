"""Tests of dcsim.perf.cycles on hand-worked cases of docs/engine.md's timing rules.

(The model is checked against the RTL, layer by layer, in tests/rtl/test_engine_rtl.py.)
"""

import numpy as np
import pytest

from dcsim.compress.sparse import interleave
from dcsim.errors import ConfigError
from dcsim.hw.config import EngineConfig
from dcsim.hw.image import compile_model
from dcsim.hw.workloads import lenet_300_100, random_layer, single_layer_model
from dcsim.perf.cycles import BREAKDOWN, engine_col_entries, layer_cycles, model_cycles


def cfg(n_pe=1, fifo_depth=8, **kw):
    return EngineConfig(n_pe=n_pe, fifo_depth=fifo_depth, **kw)


def test_one_pe_one_column():
    # RUN: t=1 read vector 0, t=2 broadcast, 3 pop, 4 walker takes it, entries in 5..7,
    # last MAC write in 9, idle from 10. Layer: 1 + 5 + 10 + 6.
    r = layer_cycles([[3]], [1], 5, cfg())
    assert r.phases == {"desc": 1, "init": 5, "run": 10, "finish": 6}
    assert r.cycles == 22
    assert r.breakdown == {"desc": 1, "init": 5, "fill": 4, "zero_vectors": 0,
                           "queue_full_stalls": 0, "empty_pairs": 0, "busy": 3, "drain": 3,
                           "finish": 6}
    assert (r.ideal_cycles, r.bound_cycles, r.busiest_entries) == (3, 3, 3)
    assert r.efficiency == pytest.approx(3 / 22)


def test_empty_column_costs_one_walker_cycle():
    # walker busy in cycle 5 on nothing, idle from 6
    r = layer_cycles([[0]], [7], 1, cfg())
    assert r.phases["run"] == 6 and r.cycles == 1 + 1 + 6 + 2
    assert r.breakdown["empty_pairs"] == 1 and r.breakdown["busy"] == 0
    assert r.breakdown["drain"] == 1
    assert (r.ideal_cycles, r.bound_cycles) == (0, 1)


def test_all_zero_input_costs_one_scanner_cycle_per_vector():
    # 5 columns on 2 PEs = 3 vectors: read at t=1, one cycle per vector, done at t=5
    r = layer_cycles(np.full((2, 5), 4), np.zeros(5, np.int64), 3, cfg(n_pe=2))
    assert r.phases == {"desc": 1, "init": 2, "run": 5, "finish": 3}
    assert r.breakdown["zero_vectors"] == 3 and r.breakdown["fill"] == 2
    assert r.broadcasts == 0 and r.events.macs == 0 and r.events.ptr_reads == 0
    assert r.efficiency == 0.0


def test_only_active_columns_inside_the_layer_count():
    # vectors 0 and 1 are zero (cycles 2, 3), column 2 is broadcast in 4, popped in 5,
    # taken in 6, entries in 7..8, idle from 11; the stored entries of 0, 1 cost nothing
    r = layer_cycles([[5, 5, 2]], [0, 0, 3], 1, cfg())
    assert r.phases["run"] == 11
    assert r.breakdown["zero_vectors"] == 2 and r.breakdown["busy"] == 2


def test_queue_full_stalls_with_fifo_depth_1():
    # PE0 busy on column 0, PE1 on column 3: with one queue slot the scanner stalls until
    # every PE has popped, and PE1 waits for column 3 four cycles longer (hand-worked).
    ce = [[4, 0, 0, 0], [0, 0, 0, 4]]
    deep = layer_cycles(ce, [1, 1, 1, 1], 2, cfg(n_pe=2, fifo_depth=8))
    shallow = layer_cycles(ce, [1, 1, 1, 1], 2, cfg(n_pe=2, fifo_depth=1))
    assert deep.phases["run"] == 14 and shallow.phases["run"] == 18
    assert shallow.scanner_stalls == 4 and deep.scanner_stalls == 0
    assert shallow.critical_pe == 1
    assert shallow.breakdown["queue_full_stalls"] == 4
    assert deep.breakdown["queue_full_stalls"] == 0
    for r in (deep, shallow):
        assert r.breakdown["busy"] == 4 and r.breakdown["empty_pairs"] == 3
        assert r.breakdown["fill"] == 4 and r.breakdown["drain"] == 3


def test_one_pe_stalls_cost_nothing():
    # a single PE's own backlog never starves it: stalls move broadcasts, not the end
    ce = [[4, 4, 4]]
    a = layer_cycles(ce, [1, 1, 1], 1, cfg(fifo_depth=1))
    b = layer_cycles(ce, [1, 1, 1], 1, cfg(fifo_depth=8))
    assert a.scanner_stalls == 2 and b.scanner_stalls == 0
    assert a.phases["run"] == b.phases["run"] == 19


def test_fifo_depth_override_goes_past_the_config_range():
    ce = [[4, 0, 0, 0], [0, 0, 0, 4]]
    assert layer_cycles(ce, [1, 1, 1, 1], 2, cfg(n_pe=2), fifo_depth=1).phases["run"] == 18
    deep = layer_cycles(ce, [1, 1, 1, 1], 2, cfg(n_pe=2, fifo_depth=1), fifo_depth=256)
    c = cfg(n_pe=2)
    assert deep.phases["run"] == 14
    assert deep.events.fifo_bytes == 256 * (c.col_bits + c.act_bits) // 8


def test_event_counts_hand_case():
    # 8 entries per 64-bit word; the layer starts at entry 6 of the PE's SRAM:
    # column 0 = entries 6..8 (words 0, 1), column 1 empty, column 2 = 9..15 (word 1),
    # column 3 inactive.
    r = layer_cycles([[3, 0, 7, 2]], [5, -1, 2, 0], 5, cfg(), entry_base=[6], name="l")
    ev = r.events
    assert ev.layer == "l" and ev.cycles == r.cycles
    assert ev.sparse_sram_word_reads == 3
    assert (ev.ptr_reads, ev.codebook_reads, ev.macs) == (6, 10, 10)
    assert (ev.acc_reads, ev.acc_writes, ev.output_writes) == (15, 15, 5)
    assert (ev.act_src_reads, ev.broadcasts, ev.fifo_pushes, ev.fifo_pops) == (5, 3, 3, 3)
    c = cfg()
    assert ev.sparse_word_bits == c.word_bits and ev.ptr_bits == c.ptr_bits
    assert ev.sparse_sram_bytes == c.sparse_bytes


def test_words_follow_the_layer_offset():
    # the same column read from entry 0 (one word) or from entry 7 (two words)
    assert layer_cycles([[2]], [1], 1, cfg()).events.sparse_sram_word_reads == 1
    assert layer_cycles([[2]], [1], 1, cfg(), entry_base=[7]).events.sparse_sram_word_reads == 2


def test_breakdown_sums_and_efficiency_on_random_layers():
    seed = 5
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    for _ in range(200):
        n_pe = int(rng.choice([1, 2, 3, 8]))
        cols = int(rng.integers(1, 60))
        ce = rng.integers(0, 7, (n_pe, cols)) * (rng.random((n_pe, cols)) < rng.random())
        x = (rng.random(cols) < rng.random()).astype(np.int64)
        r = layer_cycles(ce, x, int(rng.integers(1, 50)),
                         cfg(n_pe=n_pe, fifo_depth=int(rng.choice([1, 2, 8]))))
        assert list(r.breakdown) == list(BREAKDOWN)
        assert sum(r.breakdown.values()) == r.cycles
        assert min(r.breakdown.values()) >= 0
        assert r.ideal_cycles <= r.busiest_entries <= r.bound_cycles
        assert 0.0 <= r.efficiency <= 1.0
        assert r.bound_cycles <= r.phases["run"]
        assert r.events.macs == int(ce[:, x != 0].sum())


def test_model_cycles_matches_the_image_layout():
    rng = np.random.default_rng(3)
    model = lenet_300_100(rng)
    config = EngineConfig.preset("small", n_pe=4)
    image = compile_model(model, config)
    inputs = [(rng.random(layer.cols) < 0.5).astype(np.int64) for layer in model.layers]
    result = model_cycles(model, inputs, config)
    base = np.zeros(4, np.int64)
    for layer, li, x, r in zip(model.layers, image.layers, inputs, result):
        assert np.array_equal(engine_col_entries(layer, config), li.col_entries)
        alone = layer_cycles(li.col_entries, x, li.rows, config, entry_base=base)
        assert r.cycles == alone.cycles and r.layer == layer.name
        assert r.events.sparse_sram_word_reads == alone.events.sparse_sram_word_reads
        base += li.entries


@pytest.mark.parametrize("n_pe, idx_bits, density", [
    (1, 4, 0.02), (1, 2, 0.3), (3, 4, 0.05), (4, 1, 0.5), (8, 3, 0.0), (5, 4, 1.0)])
def test_col_entries_are_the_interleaved_encoding(n_pe, idx_bits, density):
    rng = np.random.default_rng(4)
    layer = random_layer("g", 70 * n_pe + 3, 9, density, rng)     # long gaps: fillers
    config = cfg(n_pe=n_pe, idx_bits=idx_bits)
    want = np.stack([np.diff(m.line_ptr) for m in interleave(layer.codes, n_pe, idx_bits)])
    assert np.array_equal(engine_col_entries(layer, config), want)
    image = compile_model(single_layer_model(layer), config)
    assert np.array_equal(engine_col_entries(layer, config), image.layers[0].col_entries)


@pytest.mark.parametrize("call, message", [
    (lambda: layer_cycles([[1]], [1], 1, "small"),
     "config must be an EngineConfig, not 'small'"),
    (lambda: layer_cycles([[1], [1]], [1], 1, cfg()),
     "col_entries must have shape (1, cols >= 1) for n_pe=1, not (2, 1)"),
    (lambda: layer_cycles([[-1]], [1], 1, cfg()),
     "col_entries must be non-negative integers of shape (1, 1), not int64 (1, 1)"),
    (lambda: layer_cycles([[1]], [1, 2], 1, cfg()), "x_q must have shape (1,), not (2,)"),
    (lambda: layer_cycles([[1]], [1], 0, cfg()), "rows must be a positive integer, not 0"),
    (lambda: layer_cycles([[1]], [1], 1, cfg(), entry_base=[1, 2]),
     "entry_base must be non-negative integers of shape (1,), not int64 (2,)"),
    (lambda: layer_cycles([[1]], [1], 1, cfg(), fifo_depth=0),
     "fifo_depth must be a positive integer, not 0"),
    (lambda: model_cycles(lenet_300_100(np.random.default_rng(0)), [], cfg()),
     "layer_inputs must have one entry per layer (3), not 0"),
])
def test_errors(call, message):
    with pytest.raises(ConfigError) as err:
        call()
    assert str(err.value) == message
