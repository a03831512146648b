"""ActivationQueue: full and empty behaviour, order, no write while full."""

import pytest
from amaranth.sim import Simulator

from dcsim.hw.fifo import ActivationQueue


def test_depth_must_be_positive():
    with pytest.raises(TypeError, match=r"^Queue depth must be a positive integer, not 0$"):
        ActivationQueue(8, 0)


def test_fill_drain_full_and_empty():
    dut = ActivationQueue(8, 3)
    seen = []

    async def tb(ctx):
        assert ctx.get(dut.r.valid) == 0 and ctx.get(dut.w.ready) == 1   # empty
        for v in (11, 22, 33, 44):                                        # 44 is refused
            ctx.set(dut.w.valid, 1)
            ctx.set(dut.w.payload, v)
            await ctx.tick()
        ctx.set(dut.w.valid, 0)
        assert ctx.get(dut.level) == 3 and ctx.get(dut.w.ready) == 0      # full
        # A read while full does not make room for a write in the same cycle.
        ctx.set(dut.r.ready, 1)
        ctx.set(dut.w.valid, 1)
        ctx.set(dut.w.payload, 55)
        seen.append(ctx.get(dut.r.payload))
        await ctx.tick()
        ctx.set(dut.w.valid, 0)
        assert ctx.get(dut.level) == 2
        while ctx.get(dut.r.valid):
            seen.append(ctx.get(dut.r.payload))
            await ctx.tick()
        assert ctx.get(dut.level) == 0 and ctx.get(dut.w.ready) == 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert seen == [11, 22, 33]


def test_simultaneous_read_and_write_keeps_level():
    dut = ActivationQueue(8, 2)
    out = []

    async def tb(ctx):
        ctx.set(dut.w.valid, 1)
        ctx.set(dut.w.payload, 1)
        await ctx.tick()
        ctx.set(dut.r.ready, 1)
        for v in (2, 3, 4):
            ctx.set(dut.w.payload, v)
            out.append(ctx.get(dut.r.payload))
            await ctx.tick()
            assert ctx.get(dut.level) == 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert out == [1, 2, 3]
