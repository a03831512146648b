"""ProcessingElement alone: pointer banks, walker, MAC bypass, bias init and finish."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from dcsim.compress.layer import CompressedLayer
from dcsim.hw.config import EngineConfig
from dcsim.hw.image import compile_model
from dcsim.hw.layouts import Target
from dcsim.hw.pe import ProcessingElement
from dcsim.hw.workloads import random_layer, single_layer_model
from dcsim.kernels.spmv import layer_fixed

CONFIG = EngineConfig(n_pe=1, code_bits=4, sparse_words=64, ptr_depth=64, act_depth=32,
                      bias_depth=32, max_layers=2, fifo_depth=4)


def run_pe(layer: CompressedLayer, x_q, config=CONFIG):
    """Drive one PE through init, the broadcast of x_q's non-zeros, and finish; return
    its destination activations and the accumulator writes (cycle, column, row)."""
    image = compile_model(single_layer_model(layer), config)
    li = image.layers[0]
    dut = ProcessingElement(config)
    out, writes = [], []

    async def tb(ctx):
        for target, _, _, addr, data in image.load_words():
            if target == Target.DESC:
                continue
            ctx.set(dut.load_en, 1)
            ctx.set(dut.load_target, int(target))
            ctx.set(dut.load_addr, addr)
            ctx.set(dut.load_data, data)
            await ctx.tick()
        ctx.set(dut.load_en, 0)
        ctx.set(dut.ptr_base, li.ptr_base)
        ctx.set(dut.bias_base, li.bias_base)
        ctx.set(dut.relu, int(li.relu))
        ctx.set(dut.init, 1)
        for r in range(li.rows_local):
            ctx.set(dut.row, r)
            await ctx.tick()
        ctx.set(dut.init, 0)
        pending = [(j, int(a)) for j, a in enumerate(x_q) if a != 0]
        cycle = 0
        while pending or not ctx.get(dut.idle):
            if pending:
                ctx.set(dut.act.payload.j, pending[0][0])
                ctx.set(dut.act.payload.a, pending[0][1])
            ctx.set(dut.act.valid, int(bool(pending)))
            sent = bool(pending) and ctx.get(dut.act.ready)
            if ctx.get(dut.dbg_wr):
                writes.append((cycle, ctx.get(dut.dbg_col), ctx.get(dut.dbg_row)))
            await ctx.tick()
            cycle += 1
            if sent:
                pending.pop(0)
        ctx.set(dut.act.valid, 0)
        ctx.set(dut.finish, 1)
        for r in range(li.rows_local):
            ctx.set(dut.row, r)
            ctx.set(dut.dst_addr, r)           # fc: the output goes to local row r
            await ctx.tick()
        ctx.set(dut.finish, 0)
        await ctx.tick()
        ctx.set(dut.src_bank, 1)            # the outputs went to the other bank
        ctx.set(dut.src_en, 1)
        for r in range(li.rows_local):
            ctx.set(dut.src_addr, r)
            await ctx.tick()
            out.append(ctx.get(dut.src_data))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return np.array(out, dtype=np.int64), writes


def test_config_must_be_engine_config():
    with pytest.raises(TypeError, match=r"^config must be an EngineConfig, not 3$"):
        ProcessingElement(3)


def test_bypass_same_row_back_to_back():
    # One row, every column kept: each column's only entry writes row 0, so consecutive
    # accumulator writes always hit the same row and only the bypass keeps the sum.
    rng = np.random.default_rng(1)
    layer = random_layer("row", 1, 12, 1.0, rng, relu=False)
    x_q = CONFIG.fmt.to_fixed(rng.random(12))
    got, writes = run_pe(layer, x_q)
    assert got.tolist() == layer_fixed(layer, x_q, CONFIG.fmt).tolist()
    cycles = [w[0] for w in writes]
    assert len(writes) == 12 and cycles == list(range(cycles[0], cycles[0] + 12))


def test_pointer_banks_odd_and_even_columns_and_empty_columns():
    # Column lengths 3, 0, 1, 0, 2 ... exercise p[j], p[j+1] from both banks and the
    # one-cycle cost of an empty column.
    rng = np.random.default_rng(2)
    codes = np.zeros((6, 7), dtype=np.uint8)
    codes[[0, 2, 5], 0] = [1, 2, 3]
    codes[4, 2] = 5
    codes[[1, 3], 4] = [6, 7]
    codes[:, 6] = [1, 1, 1, 1, 1, 1]
    layer = CompressedLayer("p", "fc", (6, 7), codes, np.linspace(0, 1, 16).astype(np.float32),
                            rng.normal(0, 0.3, 6).astype(np.float32), 4, 4, relu=True)
    x_q = CONFIG.fmt.to_fixed(np.arange(1, 8) / 4)
    got, writes = run_pe(layer, x_q)
    assert got.tolist() == layer_fixed(layer, x_q, CONFIG.fmt).tolist()
    assert [(col, row) for _, col, row in writes] == [
        (0, 0), (0, 2), (0, 5), (2, 4), (4, 1), (4, 3)] + [(6, r) for r in range(6)]
    # Empty columns 1, 3, 5 cost one cycle each between the writes of 0, 2, 4 and 6.
    c = {col: cyc for cyc, col, _ in reversed(writes)}
    assert c[2] - c[0] == 3 + 1 and c[4] - c[2] == 1 + 1 and c[6] - c[4] == 2 + 1


def test_fillers_gaps_longer_than_index_range():
    rng = np.random.default_rng(3)
    codes = np.zeros((30, 3), dtype=np.uint8)
    codes[[0, 17, 29], 0] = [3, 4, 5]           # gaps of 16 and 11: one filler
    codes[29, 1] = 9                            # 29 zeros: one filler before it
    codes[16, 2] = 2
    layer = CompressedLayer("f", "fc", (30, 3), codes, np.r_[0, np.linspace(-1, 1, 15)].astype(np.float32),
                            rng.normal(0, 0.3, 30).astype(np.float32), 4, 4, relu=False)
    x_q = CONFIG.fmt.to_fixed([0.5, -0.75, 1.0])
    got, _ = run_pe(layer, x_q)
    assert got.tolist() == layer_fixed(layer, x_q, CONFIG.fmt).tolist()


def test_random_layer_with_saturation():
    seed = 4
    rng = np.random.default_rng(seed)
    layer = random_layer("r", 20, 16, 0.4, rng, scale=30.0, relu=False)
    x_q = CONFIG.fmt.to_fixed(rng.normal(0, 8, 16))
    got, _ = run_pe(layer, x_q)
    want = layer_fixed(layer, x_q, CONFIG.fmt)
    assert (np.abs(want) == 2 ** 15).any() or (want == 2 ** 15 - 1).any(), f"seed {seed}"
    assert got.tolist() == want.tolist(), f"seed {seed}"


@pytest.mark.parametrize("relu", [False, True])
def test_finish_is_fixed_format_finish(relu):
    """The PE's gateware copy of FixedFormat.finish and the rule itself give the same
    hand-derived integers at the rounding and saturation edges (x = 1 lsb, so each
    row's accumulator is ``bias << 10`` plus its codebook integer)."""
    fmt = CONFIG.fmt
    # (bias_q, codebook_q, (acc + 512) >> 10 by hand, saturated)
    cases = [(3, 512, 4),                # 3.5 lsb: half rounds up
             (-3, 512, -2),              # -2.5: half rounds up, towards +inf
             (-3, 511, -3),              # -2.5009: floor
             (32767, 32767, 32767),      # 32767 + 32 saturates high
             (-32768, -32768, -32768),   # -32768 - 32 saturates low
             (0, -1, 0)]                 # -1/1024 rounds to 0
    codebook = np.zeros(16, dtype=np.float32)
    codes = np.zeros((len(cases), 1), dtype=np.uint8)
    for i, (_, w, _) in enumerate(cases):
        codebook[i + 1] = w / 1024
        codes[i, 0] = i + 1
    bias = np.array([b / 1024 for b, _, _ in cases], dtype=np.float32)
    layer = CompressedLayer("edge", "fc", (len(cases), 1), codes, codebook, bias, 4, 4,
                            relu=relu)
    want = [max(y, 0) if relu else y for *_, y in cases]
    acc = [(b << 10) + w for b, w, _ in cases]
    assert fmt.finish(np.array(acc), relu).tolist() == want
    got, _ = run_pe(layer, np.array([1]))
    assert got.tolist() == want
