"""Tests of dcsim.hw.synth: Yosys cell counts move the way the widths say, SRAMs apart."""

import json

import pytest

from dcsim.errors import ConfigError
from dcsim.hw.config import EngineConfig
from dcsim.hw.synth import REGFILE_MAX_DEPTH, cache_key, synthesize

SMALL = dict(sparse_words=256, ptr_depth=256, act_depth=128, bias_depth=128, max_layers=2)


@pytest.fixture
def cache(tmp_path_factory):
    # shared with the sweep and area tests: each config is synthesized once a session
    return tmp_path_factory.getbasetemp() / "dcsim-cache" / "synth"


def logic(s):
    return sum(s.cells.values())


def test_memories_are_macros_and_the_queue_is_flops(cache):
    config = EngineConfig(n_pe=2, **SMALL)
    pe = synthesize(config, "pe", cache_dir=cache)
    # every PE memory deeper than 64 entries, with the depth and width the PE declares
    assert sorted(pe.macros) == sorted([
        ("ptr_even", 128, config.ptr_bits), ("ptr_odd", 128, config.ptr_bits),
        ("sparse", 256, 64), ("bias", 128, 16), ("acc", 128, 48), ("act", 256, 16)])
    # the 8-deep queue of (j, a_j) entries and the 2 x 16-entry codebook are flip-flops,
    # beside the pipeline registers
    assert config.fifo_depth <= REGFILE_MAX_DEPTH
    assert config.max_layers * config.codebook_entries <= REGFILE_MAX_DEPTH
    fifo_bits = config.fifo_depth * (config.col_bits + config.act_bits)
    codebook_bits = config.max_layers * config.codebook_entries * config.act_bits
    assert pe.cells["$_DFF_P_"] > fifo_bits + codebook_bits
    assert set(pe.cells) <= {"$_NOT_", "$_AND_", "$_NAND_", "$_OR_", "$_NOR_", "$_XOR_",
                             "$_XNOR_", "$_MUX_", "$_DFF_P_"}


def test_counts_move_with_n_pe_word_bits_code_bits(cache):
    base = EngineConfig(n_pe=2, **SMALL)
    top2 = synthesize(base, "top", cache_dir=cache)
    top4 = synthesize(EngineConfig(n_pe=4, **SMALL), "top", cache_dir=cache)
    assert logic(top4) > logic(top2)          # a wider leading-non-zero tree and PE muxes
    pe64 = synthesize(base, "pe", cache_dir=cache)
    pe32 = synthesize(EngineConfig(n_pe=2, word_bits=32, **SMALL), "pe", cache_dir=cache)
    assert logic(pe32) < logic(pe64)          # a narrower word to shift entries out of
    # a 5-bit code doubles the codebook register file (2 layers x 32 entries x 16 bits)
    pe_c5 = synthesize(EngineConfig(n_pe=2, code_bits=5, **SMALL), "pe", cache_dir=cache)
    assert pe_c5.cells["$_DFF_P_"] >= pe64.cells["$_DFF_P_"] + 2 * 16 * 16
    assert logic(pe_c5) > logic(pe64)
    assert ("sparse", 256, 32) in pe32.macros


def test_cache_hit_reads_the_file(cache):
    config = EngineConfig(n_pe=2, **SMALL)
    first = synthesize(config, "pe", cache_dir=cache)
    path = cache / f"pe_{cache_key(config, 'pe')}.json"
    doc = json.loads(path.read_text())
    assert doc["cells"] == first.cells
    doc["cells"] = {"$_NAND_": 1}
    path.write_text(json.dumps(doc))
    try:
        assert synthesize(config, "pe", cache_dir=cache).cells == {"$_NAND_": 1}
    finally:
        path.write_text(json.dumps(first.as_dict()))


def test_bad_part_is_refused():
    with pytest.raises(ConfigError, match=r"^part must be one of \['pe', 'top'\], not 'lnzd'$"):
        cache_key(EngineConfig(), "lnzd")
