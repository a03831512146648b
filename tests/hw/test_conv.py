"""hw.conv: the gather order against the kernels' im2col, and the gateware of the patch
gather (PatchAddress) and the pooling merge (PoolMax) under amaranth.sim."""

from types import SimpleNamespace

import numpy as np
import pytest
from amaranth.sim import Simulator

from dcsim.compress.layer import CompressedModel
from dcsim.errors import FitError
from dcsim.hw.conv import (
    ConvGeometry, PatchAddress, PoolMax, engine_cols, engine_input, engine_layers, input_slots,
    patches, positions,
)
from dcsim.hw.workloads import random_conv_layer, random_layer
from dcsim.kernels.fixed import FixedFormat
from dcsim.kernels.run import im2col, max_pool, trace_fixed
from dcsim.kernels.spmv import layer_fixed

FMT = FixedFormat()


def _conv_model(rng, in_shape, k, stride, padding, pool, out_ch=5):
    conv = random_conv_layer("c", out_ch, in_shape[0], k, 0.6, rng, stride=stride,
                             padding=padding, pool=pool, relu=False, scale=0.05)
    return CompressedModel(arch="t", input_shape=in_shape, layers=(conv,))


@pytest.mark.parametrize("n_pe", [1, 3, 4])
@pytest.mark.parametrize("in_shape, k, stride, padding, pool", [
    ((1, 7, 7), 3, 1, 0, 0), ((3, 8, 6), 5, 1, 2, 2), ((2, 9, 9), 2, 2, 0, 0),
    ((5, 6, 6), 1, 1, 0, 2)])
def test_gather_order_times_filters_is_the_kernels_conv(n_pe, in_shape, k, stride, padding,
                                                        pool):
    """The filter matrix in gather order times every gathered patch, merged by max over
    each pool window, equals the fixed kernel's conv (im2col, integer max-pool)."""
    rng = np.random.default_rng(n_pe * 100 + k)
    model = _conv_model(rng, in_shape, k, stride, padding, pool)
    layer = model.layers[0]
    x_q = rng.integers(FMT.min_int, FMT.max_int + 1, in_shape)
    x_q[rng.random(in_shape) < 0.3] = 0
    (matrix, geom), = engine_layers(model, n_pe)
    per_position = layer_fixed(matrix, patches(geom, x_q), FMT)        # (P, out_ch)
    oy, ox, dest, first = positions(geom)
    got = np.full((geom.out_h * geom.out_w, layer.rows), FMT.min_int - 1, dtype=np.int64)
    for p in range(per_position.shape[0]):
        got[dest[p]] = per_position[p] if first[p] else np.maximum(got[dest[p]],
                                                                   per_position[p])
    cols = im2col(x_q[None], k, k, stride, padding)[0]                   # kernels.run
    want = layer_fixed(layer, cols.reshape(-1, layer.cols), FMT)
    want = want.reshape(cols.shape[0], cols.shape[1], -1).transpose(2, 0, 1)[None]
    if pool:
        want = max_pool(want, pool)
    assert np.array_equal(got.T.reshape(want.shape[1:]), want[0])


def test_fc_after_conv_reads_the_map_in_place():
    rng = np.random.default_rng(5)
    conv = random_conv_layer("c", 6, 2, 3, 0.7, rng, pool=2, relu=True, scale=0.1)
    fc = random_layer("f", 4, 6 * 2 * 2, 0.6, rng, relu=False, scale=0.1)
    model = CompressedModel(arch="t", input_shape=(2, 6, 6), layers=(conv, fc))
    x = rng.random((2, 6, 6)).astype(np.float32)
    trace = trace_fixed(model, x, FMT)
    (_, _), (matrix, geom) = engine_layers(model, 4)
    assert geom is None and matrix.cols == 2 * 2 * 2 * 4        # 2 groups of 4 PEs
    x_engine = engine_input(1, model, trace[1][0], 4)
    assert np.array_equal(layer_fixed(matrix, x_engine, FMT), trace[1][1])


def test_conv_after_fc_is_refused():
    """The engine lays a conv's input out as a map: a conv reading an fc layer's output
    vector has no layout, so the chain is refused (a CompressedModel may not even hold
    it: the conv needs a (C, H, W) input)."""
    rng = np.random.default_rng(0)
    chain = SimpleNamespace(input_shape=(32,), layers=(
        random_layer("f", 32, 32, 0.5, rng), random_conv_layer("c", 3, 2, 3, 0.5, rng)))
    with pytest.raises(FitError, match=r"^Layer 'c' is a conv layer after an fc layer"):
        engine_cols(chain, 4)
    with pytest.raises(FitError, match=r"^Layer 'c' is a conv layer after an fc layer"):
        engine_layers(chain, 4)


def _gather(dut, geom, memories):
    """Every position's patch as the PatchAddress gateware gathers it from ``memories``
    (n_pe, depth): list of (positions, cols) values."""
    oy, ox, _, _ = positions(geom)
    out = np.zeros((oy.shape[0], geom.cols), dtype=np.int64)

    async def tb(ctx):
        for name, value in (("in_ch", geom.in_ch), ("in_h", geom.in_h), ("in_w", geom.in_w),
                            ("in_hw", geom.in_h * geom.in_w), ("stride", geom.stride),
                            ("padding", geom.padding)):
            ctx.set(getattr(dut, name), value)
        for pos in range(oy.shape[0]):
            ctx.set(dut.oy, int(oy[pos]))
            ctx.set(dut.ox, int(ox[pos]))
            v = 0
            for ky in range(geom.kh):
                for kx in range(geom.kw):
                    for q in range(geom.groups):
                        ctx.set(dut.ky, ky)
                        ctx.set(dut.kx, kx)
                        ctx.set(dut.q, q)
                        addr, mask = ctx.get(dut.addr), ctx.get(dut.mask)
                        for p in range(geom.n_pe):
                            if mask >> p & 1:
                                out[pos, v * geom.n_pe + p] = memories[p, addr]
                        v += 1

    sim = Simulator(dut)
    sim.add_testbench(tb)
    sim.run()
    return out


@pytest.mark.parametrize("n_pe, in_shape, k, stride, padding", [
    (4, (3, 5, 6), 3, 1, 2), (2, (4, 7, 7), 2, 2, 0), (3, (1, 6, 5), 5, 1, 1)])
def test_patch_address_gathers_the_patches(n_pe, in_shape, k, stride, padding):
    """PatchAddress reads, from the map laid out in the banks (input_slots), exactly the
    patch of every position (zeros for padding pixels and channels)."""
    rng = np.random.default_rng(k)
    model = _conv_model(rng, in_shape, k, stride, padding, 0)
    geom = ConvGeometry.of(model.layers[0], in_shape, n_pe)
    x = rng.integers(-100, 100, in_shape)
    depth = 128
    memories = np.full((n_pe, depth), 7777, dtype=np.int64)   # unwritten slots: not read
    pe, addr = input_slots(in_shape, n_pe, True)
    memories[pe, addr] = x.reshape(-1)
    got = _gather(PatchAddress(7, n_pe), geom, memories)
    assert np.array_equal(got, patches(geom, x))


@pytest.mark.parametrize("merge, old, new, want", [
    (0, 5, -3, -3), (1, 5, -3, 5), (1, -32768, -32767, -32767), (1, 7, 7, 7),
    (0, 32767, -32768, -32768), (1, -32768, -32768, -32768)])
def test_pool_max_merges_by_max_only_when_told(merge, old, new, want):
    dut = PoolMax(16)
    got = {}

    async def tb(ctx):
        ctx.set(dut.merge, merge)
        ctx.set(dut.old, old)
        ctx.set(dut.new, new)
        got["out"] = ctx.get(dut.out)

    sim = Simulator(dut)
    sim.add_testbench(tb)
    sim.run()
    assert got["out"] == want
