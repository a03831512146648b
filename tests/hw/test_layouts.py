"""dcsim.hw.layouts: packing fields into the integers the load stream carries."""

import pytest
from amaranth.hdl import unsigned
from amaranth.lib import data

from dcsim.hw.layouts import pack, packer

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
