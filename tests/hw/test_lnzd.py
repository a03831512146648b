"""LeadingNonZero: all-zero, dense, masked and single candidates."""

import pytest
from amaranth.sim import Simulator

from dcsim.hw.lnzd import LeadingNonZero


def _run(n, values, mask):
    dut = LeadingNonZero(n, 16)
    got = {}

    async def tb(ctx):
        for p, v in enumerate(values):
            ctx.set(dut.values[p], v)
        ctx.set(dut.mask, mask)
        for name in ("any", "index", "value", "onehot", "last"):
            got[name] = ctx.get(getattr(dut, name))

    sim = Simulator(dut)
    sim.add_testbench(tb)
    sim.run()
    return got


def test_count_must_be_positive():
    with pytest.raises(TypeError, match=r"^Candidate count must be a positive integer, not 0$"):
        LeadingNonZero(0, 16)


def test_all_zero():
    got = _run(8, [0] * 8, 0xFF)
    assert got["any"] == 0 and got["onehot"] == 0 and got["last"] == 1


def test_dense_picks_lowest_then_next():
    values = [5, -3, 7, 1, 2, 9, -8, 4]
    got = _run(8, values, 0xFF)
    assert (got["any"], got["index"], got["value"], got["onehot"], got["last"]) == (1, 0, 5, 1, 0)
    got = _run(8, values, 0xFE)
    assert (got["index"], got["value"], got["onehot"]) == (1, -3, 2)


def test_mask_hides_candidates_and_last():
    values = [0, 0, 3, 0, 0, 6, 0, 0]
    got = _run(8, values, 0xFF & ~(1 << 2))
    assert (got["index"], got["value"], got["last"]) == (5, 6, 1)
    got = _run(8, values, 0b00011111)          # only j=2 is inside the layer
    assert (got["index"], got["last"]) == (2, 1)


def test_single_candidate():
    got = _run(1, [-7], 1)
    assert (got["any"], got["index"], got["value"], got["last"]) == (1, 0, -7, 1)
    assert _run(1, [-7], 0)["any"] == 0
