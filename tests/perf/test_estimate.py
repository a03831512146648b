"""Tests of dcsim.perf.estimate: keys, types, consistency with the cycle model, fit."""

import dataclasses

import numpy as np
import pytest

from dcsim.compress.layer import CompressedLayer, CompressedModel
from dcsim.errors import ConfigError
from dcsim.hw.config import EngineConfig
from dcsim.hw.workloads import lenet_300_100, random_conv_layer, random_layer
from dcsim.kernels.run import trace_fixed
from dcsim.perf.cycles import BREAKDOWN, model_cycles
from dcsim.perf.energy import SCENARIOS
from dcsim.perf.estimate import estimate


@pytest.fixture(scope="module")
def lenet():
    return lenet_300_100(np.random.default_rng(2016))


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(11)
    x = rng.random((3, 784)).astype(np.float32)
    x[x < 0.7] = 0.0                     # MNIST-like: most pixels are zero
    return x


def test_keys_types_and_sums(lenet, images):
    config = EngineConfig.preset("small", n_pe=4)
    r = estimate(lenet, images, config)
    assert r["images"] == 3 and r["n_pe"] == 4 and r["clock_mhz"] == 800.0
    assert isinstance(r["cycles_per_layer"], list) and len(r["cycles_per_layer"]) == 3
    assert all(type(c) is int for c in r["cycles_per_layer"])
    assert r["cycles_total"] == sum(r["cycles_per_layer"])
    assert r["time_us"] == pytest.approx(r["cycles_total"] / 800.0)
    assert r["time_us_per_image"] == pytest.approx(r["time_us"] / 3)
    assert r["fits_on_chip"] is True and r["fit"]["error"] is None
    assert r["fit"]["overflows"] == []
    assert len(r["efficiency"]) == 3 and all(0 < e <= 1 for e in r["efficiency"])
    for layer, cycles in zip(r["layers"], r["cycles_per_layer"]):
        assert layer["cycles"] == cycles
        assert list(layer["breakdown"]) == list(BREAKDOWN)
        assert sum(layer["breakdown"].values()) == cycles
    assert set(r["energy_pj"]) == set(SCENARIOS)
    for s in SCENARIOS:
        e = r["energy_pj"][s]
        assert e["total"] > 0
        assert e["total"] == pytest.approx(sum(e["components"].values()))
        assert e["total"] == pytest.approx(sum(pl["total"] for pl in e["per_layer"]))
    totals = {s: r["energy_pj"][s]["total"] for s in SCENARIOS}
    assert totals["sram"] < totals["dram_compressed"] < totals["dram_dense"]


def test_cycles_by_hand_on_a_two_by_two_layer():
    """docs/engine.md's timing rules worked by hand, 1 PE, a dense 2 x 2 layer.

    Both inputs non-zero: broadcasts b = 2, 3; pops P = 3, 4; the walker takes column 0
    in cycle 4 (entries 5, 6) and column 1 in 6 (entries 7, 8); idle from
    max(L + 1, s + 3) = 11, so RUN = 11 and the layer 1 + 2 + 11 + 2 + 1 = 17 cycles.
    Second input zero: vector 1 costs one scan cycle, column 0 alone: RUN = 9, 15 cycles.
    """
    layer = CompressedLayer("fc", "fc", (2, 2), np.ones((2, 2), np.uint8),
                            np.array([0.0, 0.5], np.float32), np.zeros(2, np.float32), 1, 4)
    model = CompressedModel("two", (2,), (layer,))
    config = EngineConfig(n_pe=1)
    r = estimate(model, np.array([[0.5, 0.25], [0.5, 0.0]], np.float32), config)
    assert r["cycles_per_layer"] == [17 + 15]
    assert r["layers"][0]["ideal_cycles"] == 2 + 2 + 2        # busiest PE's active entries


def test_energy_is_per_inference(lenet, images):
    config = EngineConfig.preset("small", n_pe=4)
    one = estimate(lenet, images[:1], config)
    twice = estimate(lenet, np.concatenate([images[:1], images[:1]]), config)
    assert twice["cycles_total"] == 2 * one["cycles_total"]
    for s in SCENARIOS:
        assert twice["energy_pj"][s]["total"] == pytest.approx(one["energy_pj"][s]["total"])
    # dense weights from DRAM: one 32-bit read per weight, whatever the input
    dense = one["energy_pj"]["dram_dense"]["components"]["dram_weights"]
    assert dense == pytest.approx(266200 * 640.0)


def test_not_fitting_is_reported_with_the_memory(lenet, images):
    config = EngineConfig.preset("small", n_pe=4, sparse_words=64)
    r = estimate(lenet, images[:1], config)
    assert r["fits_on_chip"] is False
    assert r["fit"]["overflows"] == ["sparse_words"]
    assert "sparse-matrix words" in r["fit"]["error"]
    assert r["cycles_total"] > 0                  # still modelled


def test_errors(lenet, images):
    config = EngineConfig.preset("small", n_pe=4)
    with pytest.raises(ConfigError) as err:
        estimate(lenet, images[:, :100], config)
    assert str(err.value) == "x_images must have shape (N >= 1, 784), not (3, 100)"
    with pytest.raises(ConfigError) as err:
        estimate(lenet, images, config, clock_mhz=0)
    assert str(err.value) == "clock_mhz must be a positive number, not 0"
    with pytest.raises(ConfigError) as err:
        estimate(lenet, images, {"n_pe": 4})
    assert str(err.value) == "config must be an EngineConfig, not {'n_pe': 4}"


def test_given_layer_inputs_give_the_same_result(lenet, images):
    config = EngineConfig.preset("small", n_pe=4)
    inputs = [[x for x, _ in trace_fixed(lenet, image, config.fmt)] for image in images]
    assert estimate(lenet, images, config, layer_inputs=inputs) == estimate(lenet, images, config)
    with pytest.raises(ConfigError,
                       match=r"^layer_inputs must have one entry per image \(3\), not 2$"):
        estimate(lenet, images, config, layer_inputs=inputs[:2])


def test_conv_layers_are_priced_with_their_patch_gathers():
    """A CNN is estimated layer by layer; a conv layer's source reads are its patch
    gathers, ``n_pe * (kh*kw*groups + 1)`` per position, plus the pooling merge's read of
    the old output (``n_pe * R`` per position after a window's first)."""
    rng = np.random.default_rng(3)
    conv = random_conv_layer("c1", 6, 1, 5, 0.5, rng, pool=2, scale=0.1)
    fc = random_layer("f", 10, 6 * 12 * 12, 0.2, rng, scale=0.05)
    model = CompressedModel("cnn", (1, 28, 28), (conv, fc))
    config = EngineConfig.preset("small", n_pe=4)
    x = rng.random((2, 784)).astype(np.float32)
    r = estimate(model, x, config)
    assert r["fits_on_chip"] and len(r["cycles_per_layer"]) == 2
    positions, vectors, rows_local = 24 * 24, 25 * 1, 2
    gathers = 4 * (vectors + 1) * positions
    pool_reads = 4 * rows_local * (positions - positions // 4)
    lc = model_cycles(model, [xi for xi, _ in trace_fixed(model, x[0], config.fmt)], config)
    assert lc[0].events.act_src_reads == gathers + pool_reads
    assert lc[0].cycles > positions * (2 * rows_local + 1)
    assert 0 < r["energy_pj"]["sram"]["per_layer"][0]["total"]


def test_dram_scenarios_fetch_each_conv_weight_once():
    """Both DRAM scenarios move a conv layer's weights over the bus once per inference:
    dram_compressed the words each column's entries span on each PE (every patch element
    is active at some position here; a word two columns share counts for each, as in fc)
    and two pointers per column and PE, dram_dense the
    layer's own weights, with one float MAC per weight and output position."""
    from dcsim.hw.image import compile_model
    from dcsim.perf.tech import default_tech
    rng = np.random.default_rng(5)
    conv = random_conv_layer("c1", 6, 1, 5, 0.5, rng, pool=2, scale=0.1)
    fc = random_layer("f", 10, 6 * 12 * 12, 0.2, rng, scale=0.05)
    model = CompressedModel("cnn", (1, 28, 28), (conv, fc))
    config = EngineConfig.preset("small", n_pe=4)
    x = rng.random((1, 784)).astype(np.float32) + 0.1        # every pixel non-zero
    layer = compile_model(model, config).layers[0]
    epw = config.entries_per_word
    words = 0                        # each column's span of words, on each PE (layer 0: base 0)
    for pe_cols in layer.col_entries:
        ends = np.cumsum(pe_cols)
        starts = ends - pe_cols
        words += int(sum(-(-e // epw) - s // epw for s, e in zip(starts, ends) if e > s))
    ev = model_cycles(model, [xi for xi, _ in trace_fixed(model, x[0], config.fmt)],
                      config)[0].events
    assert ev.positions == 24 * 24 and ev.dense_weights == 6 * 25
    assert ev.dram_word_reads == words < ev.sparse_sram_word_reads
    # one pointer pair per PE for each of the 25 patch elements (of 100 engine columns:
    # the other PEs' channel slots are padding, never broadcast)
    assert ev.dram_ptr_reads == 2 * 4 * 25 and ev.ptr_reads == 576 * ev.dram_ptr_reads
    tech = default_tech()
    r = estimate(model, x, config, tech=tech)
    comp = r["energy_pj"]["dram_compressed"]["per_layer"][0]["components"]
    assert comp["dram_sparse"] == pytest.approx(words * tech.dram_read_pj(64))
    dense = r["energy_pj"]["dram_dense"]["per_layer"]
    assert dense[0]["components"]["dram_weights"] == pytest.approx(150 * tech.dram_read_pj(32))
    assert dense[0]["components"]["float_mult"] == pytest.approx(
        150 * 576 * tech.float_mult_pj(32))
    # the fc after the conv: its 10 x 864 weights, not the map's padded engine columns
    assert dense[1]["components"]["dram_weights"] == pytest.approx(
        10 * 864 * tech.dram_read_pj(32))
