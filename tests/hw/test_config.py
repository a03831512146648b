"""EngineConfig: validation, presets, derived widths."""

import dataclasses

import pytest

from dcsim.errors import ConfigError
from dcsim.hw.config import PRESETS, EngineConfig


def test_presets_are_valid_and_named():
    small = EngineConfig.preset("small")
    eie = EngineConfig.preset("eie64")
    assert small.n_pe == 4 and eie.n_pe == 64
    assert eie.sparse_bytes == 128 * 1024
    assert eie.entries_per_word == 8 and eie.entry_bits == 8
    assert EngineConfig.preset("small", n_pe=8).n_pe == 8
    assert set(PRESETS) == {"small", "eie64"}


def test_unknown_preset():
    with pytest.raises(ConfigError, match=r"^Engine preset must be one of \['eie64', 'small'\], not 'big'$"):
        EngineConfig.preset("big")


@pytest.mark.parametrize("field,value,message", [
    ("n_pe", 0, "n_pe must be in 1..256, not 0"),
    ("n_pe", 2.0, "n_pe must be an integer, not 2.0"),
    ("fifo_depth", True, "fifo_depth must be an integer, not True"),
    ("ptr_depth", 7, "ptr_depth must be even (two pointer banks), not 7"),
    ("act_depth", 12, "act_depth must be a power of two, not 12"),
    ("word_bits", 8, "word_bits must hold one (z, code) entry of 10 bits, not 8"),
])
def test_invalid_fields(field, value, message):
    base = dict(idx_bits=4, code_bits=6) if field == "word_bits" else {}
    with pytest.raises(ConfigError) as err:
        EngineConfig(**base, **{field: value})
    assert str(err.value) == message


def test_fixed_format_is_validated():
    with pytest.raises(ConfigError, match="frac_bits must be in 1..15"):
        EngineConfig(frac_bits=16)


def test_hashable_and_digest_depends_on_fields():
    a, b = EngineConfig(), EngineConfig()
    assert a == b and hash(a) == hash(b) and a.digest() == b.digest()
    c = dataclasses.replace(a, fifo_depth=4)
    assert c.digest() != a.digest()


def test_derived_widths():
    c = EngineConfig(n_pe=5, idx_bits=4, code_bits=5, sparse_words=100, act_depth=64)
    assert c.entries_per_word == 7 and c.slot_bits == 3
    assert c.ptr_bits == (100).bit_length() + 3
    assert c.pe_bits == 3 and c.row_bits == 6 and c.max_vector == 320
    assert c.fmt.act_bits == 16 and c.codebook_entries == 32
