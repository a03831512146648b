"""Tests of dcsim.perf.energy: event counts, pricing per scenario, fit checks."""

import json

import numpy as np
import pytest

from dcsim.compress.layer import CompressedLayer
from dcsim.compress.sparse import encode
from dcsim.errors import ConfigError, FitError
from dcsim.hw.config import EngineConfig
from dcsim.perf import energy as en
from dcsim.perf.cycles import engine_col_entries, layer_cycles
from dcsim.perf.tech import default_tech, load_tech

HAND_TECH = """\
replace: [int_add, int_mult, float_add, float_mult, sram, sram_quoted, dram]
entries:
  - {component: sram, action: read, width_bits: 64, size_bytes: 256, energy_pj: 1, source: t}
  - {component: sram, action: read, width_bits: 64, size_bytes: 1024, energy_pj: 2, source: t}
  - {component: sram_quoted, action: read, width_bits: 32, size_bytes: 8192, energy_pj: 5,
     source: t}
  - {component: int_mult, action: mult, width_bits: 16, energy_pj: 1, source: t}
  - {component: int_add, action: add, width_bits: 48, energy_pj: 0.5, source: t}
  - {component: float_mult, action: mult, width_bits: 32, energy_pj: 4, source: t}
  - {component: float_add, action: add, width_bits: 32, energy_pj: 1, source: t}
  - {component: dram, action: read, width_bits: 64, energy_pj: 1280, source: t}
  - {component: dram, action: read, width_bits: 32, energy_pj: 640, source: t}
"""


@pytest.fixture
def hand_tech(tmp_path):
    path = tmp_path / "hand.yaml"
    path.write_text(HAND_TECH)
    return load_tech(path)


def hand_events(**changes):
    fields = dict(
        layer="l0", rows=2, cols=8, n_pe=2, cycles=5, sparse_sram_word_reads=3,
        ptr_reads=8, codebook_reads=10, macs=10, acc_reads=12, acc_writes=12,
        act_src_reads=8, broadcasts=4, fifo_pushes=8, fifo_pops=8, output_writes=2,
        sparse_sram_bytes=1024, ptr_sram_bytes=512, src_regfile_bytes=16,
        dst_regfile_bytes=64, codebook_bytes=16, fifo_bytes=64, sparse_word_bits=64,
        ptr_bits=16, act_bits=16, acc_bits=48, fifo_entry_bits=32)
    fields.update(changes)
    return en.EventCounts(**fields)


def test_hand_computed_energy(hand_tech):
    # the curve is E = (size/256)**0.5 pJ per 64-bit read; widths scale linearly
    ev = hand_events()
    sram = en.energy(ev, hand_tech, "sram")
    assert sram.components == pytest.approx({
        "sparse_sram": 3 * 2.0,                   # 1024 B: 2 pJ per 64-bit word
        "ptr_sram": 8 * 0.25,                     # one bank of 256 B, 16 of 64 bits
        "codebook": 10 * 0.0625,                  # 16 B: 0.25 pJ x 16/64
        "mult": 10 * 1.0,
        "add": 10 * 0.5,
        "acc_regfile": (12 + 12) * 0.375,         # 64 B: 0.5 pJ x 48/64
        "act_regfile": (8 + 2) * 0.0625,          # 16 B: 0.25 pJ x 16/64
        "fifo": (8 + 8) * 0.25,                   # 64 B: 0.5 pJ x 32/64
    }, rel=1e-12)
    assert sram.total_pj == pytest.approx(37.25, rel=1e-12)
    comp = en.energy(ev, hand_tech, "dram_compressed")
    assert comp.components["dram_sparse"] == pytest.approx(3 * 1280)
    assert comp.components["dram_ptr"] == pytest.approx(8 * 320)   # nearest row: 32 bits
    assert comp.total_pj == pytest.approx(37.25 + 6400, rel=1e-12)
    dense = en.energy(ev, hand_tech, "dram_dense")
    assert dense.components == pytest.approx(
        {"dram_weights": 16 * 640, "float_mult": 16 * 4.0, "float_add": 16 * 1.0})
    assert dense.total_pj == pytest.approx(10320)


def test_dram_scenarios_price_the_weights_once_and_dense_macs_per_position(hand_tech):
    # a conv-like layer: 5 dense weights used at 3 positions; its 3 SRAM word reads and 8
    # pointer reads are those of the positions, 1 word and 2 pointers reach it from DRAM
    ev = hand_events(positions=3, dense_weights=5, dram_word_reads=1, dram_ptr_reads=2)
    comp = en.energy(ev, hand_tech, "dram_compressed")
    assert comp.components["dram_sparse"] == pytest.approx(1 * 1280)
    assert comp.components["dram_ptr"] == pytest.approx(2 * 320)
    assert comp.components["sparse_sram"] == pytest.approx(3 * 2.0)   # on chip: every read
    dense = en.energy(ev, hand_tech, "dram_dense")
    assert dense.components == pytest.approx(
        {"dram_weights": 5 * 640, "float_mult": 15 * 4.0, "float_add": 15 * 1.0})
    plain = hand_events()                     # None: as many as the reads, rows * cols
    assert (plain.dense_weights, plain.dram_word_reads, plain.dram_ptr_reads) == (16, 3, 8)
    with pytest.raises(ConfigError, match="dense_weights of layer 'l0' must be a positive"):
        hand_events(dense_weights=0)


def test_network_report_sums_layers(hand_tech):
    a, b = hand_events(), hand_events(layer="l1", macs=20)
    rep = en.energy([a, b], hand_tech, "sram")
    assert rep.layers == ("l0", "l1")
    assert rep.components["mult"] == pytest.approx(30.0)
    assert rep.total_pj == pytest.approx(
        en.energy(a, hand_tech).total_pj + en.energy(b, hand_tech).total_pj)
    d = rep.as_dict()
    assert d["layers"][1]["components_pj"]["mult"] == pytest.approx(20.0)
    assert json.loads(json.dumps(d))["total_pj"] == pytest.approx(rep.total_pj)
    assert rep.table().splitlines()[-1].startswith("total")


def test_from_layer_stats_hand_case():
    # 4 x 3 codes on 2 PEs, 2-bit index (span 4): PE0 holds rows 0, 2; PE1 rows 1, 3
    codes = np.array([[1, 0, 0],
                      [0, 2, 0],
                      [3, 0, 0],
                      [0, 0, 1]], dtype=np.uint8)
    active = np.array([True, True, False])
    per_pe = en.entries_per_pe(codes, 2, 2, active)
    assert per_pe.tolist() == [2, 1]
    ev = en.from_layer_stats(rows=4, cols=3, n_pe=2, entries_per_pe=per_pe, n_active=2,
                             sparse_sram_bytes=1024, ptr_sram_bytes=256, code_bits=2,
                             entries_per_word=2, layer="tiny")
    assert (ev.macs, ev.codebook_reads, ev.sparse_sram_word_reads) == (3, 3, 2)
    assert (ev.ptr_reads, ev.broadcasts, ev.fifo_pushes, ev.fifo_pops) == (8, 2, 4, 4)
    # 2 local rows on each of 2 PEs; 2 source vectors, read at RUN's start and at each
    # advance (3 reads of one activation per PE)
    assert (ev.acc_reads, ev.acc_writes, ev.output_writes, ev.act_src_reads) == (7, 7, 4, 6)
    assert ev.cycles == 2
    assert ev.codebook_bytes == 8 and ev.fifo_entry_bits == 18 and ev.fifo_bytes == 18
    assert ev.src_regfile_bytes == 4 and ev.dst_regfile_bytes == 12


def test_analytic_and_cycle_model_events_share_one_rule():
    # The same layer and input through from_layer_stats and the cycle model: every count
    # that does not depend on the schedule must agree (word reads differ by design).
    seed = 77
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    codes = ((rng.random((23, 19)) < 0.3) * rng.integers(1, 16, (23, 19))).astype(np.uint8)
    active = rng.random(19) < 0.6
    config = EngineConfig(n_pe=4, idx_bits=2)
    layer = CompressedLayer(name="l", kind="fc", shape=(23, 19), codes=codes,
                            codebook=np.linspace(0, 1, 16, dtype=np.float32),
                            bias=np.zeros(23, np.float32), code_bits=4, index_bits=2)
    modelled = layer_cycles(engine_col_entries(layer, config), active, 23, config).events
    analytic = en.from_layer_stats(
        rows=23, cols=19, n_pe=4, entries_per_pe=en.entries_per_pe(codes, 4, 2, active),
        n_active=int(active.sum()), sparse_sram_bytes=1024, ptr_sram_bytes=256, code_bits=4)
    for name in ("macs", "codebook_reads", "acc_reads", "acc_writes", "act_src_reads",
                 "output_writes", "ptr_reads", "broadcasts", "fifo_pushes", "fifo_pops"):
        assert getattr(analytic, name) == getattr(modelled, name), name
    # 6 local rows on each of 4 PEs (24 for 23 rows), 5 source vectors + 1 read
    assert modelled.output_writes == 24 and modelled.act_src_reads == 24


def test_expected_entries_matches_exhaustive_enumeration():
    # every 0/1 pattern of a 10-long line, weighted by its probability
    length, density, index_bits = 10, 0.3, 1
    patterns = (np.arange(1 << length)[None, :] >> np.arange(length)[:, None]) & 1
    counts = np.diff(encode(patterns.astype(np.uint8), index_bits).line_ptr)
    ones = patterns.sum(axis=0)
    prob = density ** ones * (1 - density) ** (length - ones)
    exact = float(np.sum(prob * counts))
    assert en.expected_entries_per_line(length, density, index_bits) == pytest.approx(
        exact, rel=1e-12)
    assert en.expected_entries_per_line(length, 1.0, index_bits) == pytest.approx(length)
    assert en.expected_entries_per_line(length, 0.0, index_bits) == 0.0


def test_scenario_ordering_on_a_sparse_layer():
    seed = 1234
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    codes = (rng.random((256, 512)) < 0.1) * rng.integers(1, 16, (256, 512))
    active = rng.random(512) < 0.4
    per_pe = en.entries_per_pe(codes.astype(np.uint8), 8, 4, active)
    ev = en.from_layer_stats(rows=256, cols=512, n_pe=8, entries_per_pe=per_pe,
                             n_active=int(active.sum()), sparse_sram_bytes=8192,
                             ptr_sram_bytes=2048, code_bits=4)
    totals = [en.energy(ev, default_tech(), s).total_pj for s in en.SCENARIOS]
    assert totals[0] < totals[1] < totals[2]
    assert totals[2] / totals[0] > 10


def test_fits_on_chip():
    ok = en.fits_on_chip({"sparse_sram": 100, "ptr_sram": 50},
                         {"sparse_sram": 100, "ptr_sram": 64})
    assert ok.fits and ok.overflows == ()
    ok.require()
    bad = en.fits_on_chip({"sparse_sram": 101, "ptr_sram": 70},
                          {"sparse_sram": 100, "ptr_sram": 64})
    assert not bad.fits
    with pytest.raises(FitError) as info:
        bad.require()
    assert str(info.value) == (
        "The model must fit on chip, but sparse_sram needs 101 bytes per PE and holds "
        "100; ptr_sram needs 70 bytes per PE and holds 64 (use more PEs or larger "
        "memories)")


@pytest.mark.parametrize("call, message", [
    (lambda: en.fits_on_chip({"a": 1}, {"b": 1}),
     "required_bytes and capacity_bytes must name the same memories, not ['a'] and ['b']"),
    (lambda: en.fits_on_chip({"a": -1}, {"a": 1}),
     "required_bytes['a'] must be a non-negative number, not -1"),
    (lambda: hand_events(macs=-1),
     "EventCounts.macs of layer 'l0' must be a non-negative integer, not -1"),
    (lambda: hand_events(n_pe=0),
     "EventCounts.n_pe of layer 'l0' must be a positive integer, not 0"),
    (lambda: hand_events(cycles=2.5),
     "EventCounts.cycles of layer 'l0' must be a non-negative integer, not 2.5"),
    (lambda: en.energy(hand_events(), default_tech(), "dram"),
     "scenario must be one of ('sram', 'dram_compressed', 'dram_dense'), not 'dram'"),
    (lambda: en.energy([], default_tech()),
     "events must be an EventCounts or a non-empty sequence of them, not []"),
    (lambda: en.energy(hand_events(), "45nm"), "tech must be a TechTable, not str"),
    (lambda: en.from_layer_stats(rows=4, cols=3, n_pe=2, entries_per_pe=[1, 1],
                                 n_active=4, sparse_sram_bytes=8, ptr_sram_bytes=8,
                                 code_bits=4, layer="x"),
     "n_active of layer 'x' must be at most cols=3, not 4"),
    (lambda: en.from_layer_stats(rows=4, cols=3, n_pe=2, entries_per_pe=[1, 1, 1],
                                 n_active=1, sparse_sram_bytes=8, ptr_sram_bytes=8,
                                 code_bits=4, layer="x"),
     "entries_per_pe of layer 'x' must be 2 non-negative integers (one per PE), not "
     "int64 (3,)"),
    (lambda: en.entries_per_pe(np.zeros((2, 3), np.uint8), 2, 4, np.array([1, 0, 1])),
     "active must be a boolean mask of shape (3,), not int64 (3,)"),
    (lambda: en.entries_per_pe(np.zeros((2, 3), np.uint8), 0, 4),
     "n_pe must be a positive integer, not 0"),
    (lambda: en.expected_entries_per_line(10, 1.5, 4),
     "density must be in [0, 1], not 1.5"),
])
def test_bad_inputs(call, message):
    with pytest.raises(ConfigError) as info:
        call()
    assert str(info.value) == message


def test_paper_figures_reproduce_the_anchor_claims():
    fig = en.paper_figures(default_tech())
    ea = fig["energy_argument"]
    assert ea["ratio_quoted_32bit"] == pytest.approx(128.0)
    assert ea["ratio_fit_64bit_128KB"] < ea["ratio_fit_64bit_8KB"]
    lenet = fig["networks"]["LeNet-300-100"]
    assert lenet["weights"] == 266200 and lenet["fits_on_chip"]
    alex = fig["networks"]["AlexNet-fc"]
    for net in (lenet, alex):
        t = net["total_pj"]
        assert t["sram"] < t["dram_compressed"] < t["dram_dense"]
    # dense DRAM energy is one 32-bit read per weight plus one float mult and add
    assert alex["total_pj"]["dram_dense"] == pytest.approx(
        alex["weights"] * (640 + 3.7 + 0.9))
    assert alex["eie_published_pj"] == pytest.approx((30.3 + 12.2 + 9.9) * 0.6e6)


def test_main_prints_json_and_rejects_bad_tech(capsys, tmp_path):
    assert en.main(["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["networks"]) == {"LeNet-300-100", "AlexNet-fc"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {component: dram}\n")
    assert en.main(["--tech", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: ") and "entries[0]: action must be" in err
