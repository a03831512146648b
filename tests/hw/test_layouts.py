"""dcsim.hw.layouts: packing fields into the integers the load stream carries."""

import numpy as np
import pytest
from amaranth.hdl import unsigned
from amaranth.lib import data

from dcsim.hw.layouts import Target, pack, pack_columns, packer

# fields from bit 0 upward: a 2 bits (0..1), b 3 bits (2..4), c 1 bit (5)
LAYOUT = data.StructLayout({"a": unsigned(2), "b": unsigned(3), "c": unsigned(1)})


def test_fields_go_to_their_offsets():
    assert pack(LAYOUT, a=0b11) == 0b000011
    assert pack(LAYOUT, b=0b101) == 0b010100
    assert pack(LAYOUT, c=1) == 0b100000
    assert pack(LAYOUT, a=1, b=0b111, c=1) == 0b111101
    pack_abc = packer(LAYOUT, ("a", "b", "c"))
    assert pack_abc(1, 0b111, 1) == 0b111101
    assert packer(LAYOUT, ("c", "a"))(1, 2) == 0b100010      # any order of names


def test_a_value_outside_its_field_is_refused():
    with pytest.raises(ValueError, match=r"^Field b must fit 3 bits, not 8$"):
        pack(LAYOUT, b=8)
    with pytest.raises(ValueError, match=r"^Field a must fit 2 bits, not -1$"):
        packer(LAYOUT, ("a",))(-1)
    with pytest.raises(ValueError):                          # one value per name
        packer(LAYOUT, ("a", "b"))(1)


# a 3-bit field at 0, then 60 bits (ends at bit 63: packed as Python ints), then 150 bits
WIDE = data.StructLayout({"t": unsigned(3), "m": unsigned(60), "d": unsigned(150)})


def test_columns_pack_as_word_by_word_past_64_bits():
    rng = np.random.default_rng(0)
    n = 500
    t = rng.integers(0, 8, n)                                     # numpy ints
    m = [int(v) for v in rng.integers(0, 1 << 60, n, dtype=np.uint64)]
    d = [int.from_bytes(rng.bytes(19), "little") >> 2 for _ in range(n)]   # < 2**150
    d[0], m[1], t[2] = (1 << 150) - 1, (1 << 60) - 1, 7           # every field at its top
    words = pack_columns(WIDE, ("t", "m", "d"), [t, m, d])
    assert words == [int(a) | b << 3 | c << 63 for a, b, c in zip(t, m, d)]   # by hand
    assert all(type(w) is int for w in words) and max(words).bit_length() == 213
    assert pack_columns(WIDE, ("d", "t"), [[5], [Target.POINTER]]) == [5 << 63 | 1]
    assert pack_columns(WIDE, ("t",), [[]]) == []


@pytest.mark.parametrize("column, message", [
    ([1, 8], "Field t must fit 3 bits, not 8 (word 1)"),
    ([0, 0, -1], "Field t must fit 3 bits, not -1 (word 2)"),
    ([2, 1 << 70], "Field t must fit 3 bits, not 1180591620717411303424 (word 1)"),
])
def test_columns_refuse_a_value_outside_its_field(column, message):
    with pytest.raises(ValueError) as info:
        pack_columns(WIDE, ("t",), [column])
    assert str(info.value) == message
    with pytest.raises(ValueError, match=r"Field d must fit 150 bits, not -3 \(word 1\)"):
        pack_columns(WIDE, ("d",), [[0, -3]])
