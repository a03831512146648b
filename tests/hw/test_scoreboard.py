"""The scoreboard: accumulator writes against the fixed kernel's partial sums."""

import math
import re

import numpy as np
import pytest

from dcsim.errors import DataError
from dcsim.hw.scoreboard import first_wrong_write, partial_sums
from dcsim.hw.workloads import random_activations, random_layer
from dcsim.kernels.fixed import FixedFormat
from dcsim.kernels.spmv import layer_fixed, quantize_layer

FMT = FixedFormat(16, 10, 48)
N_PE = 3


def _quantize(v):
    """Plain-Python 16.10 fixed point: round half up, saturate."""
    return min(max(math.floor(float(v) * 1024 + 0.5), -32768), 32767)


def _running_sums(layer, x_q, rows, cols):
    """Each write's accumulator by a plain running sum per row (independent of the
    scoreboard's partial_sums): bias << 10, then + codebook integer * input."""
    acc = {i: _quantize(b) << 10 for i, b in enumerate(layer.bias)}
    sums = []
    for i, j in zip(rows.tolist(), cols.tolist()):
        acc[i] += _quantize(layer.codebook[layer.codes[i, j]]) * int(x_q[j])
        sums.append(acc[i])
    return np.array(sums, dtype=np.int64)


def _layer_and_writes(seed):
    """A random layer, its input and the writes a correct engine makes: one per nonzero
    weight in an active column, in column order (cycle = 10 + position)."""
    rng = np.random.default_rng(seed)
    layer = random_layer("fc", 11, 17, 0.4, rng)
    x_q = FMT.to_fixed(random_activations(17, 0.7, rng))
    rows, cols = np.nonzero((layer.codes != 0) & (x_q[None, :] != 0))
    order = np.lexsort((rows, cols))
    rows, cols = rows[order], cols[order]
    sums = _running_sums(layer, x_q, rows, cols)
    writes = np.stack([10 + np.arange(rows.size), rows % N_PE, rows // N_PE, cols, sums,
                       np.zeros(rows.size, np.int64)], 1)
    return layer, x_q, writes


def test_partial_sums_end_at_the_kernel_output():
    layer, x_q, _ = _layer_and_writes(1)
    rows = np.arange(layer.rows)
    full = partial_sums(layer, x_q, FMT, rows, np.full(layer.rows, layer.cols - 1))
    assert np.array_equal(FMT.finish(full, layer.relu), layer_fixed(layer, x_q, FMT))
    start = partial_sums(layer, x_q * 0, FMT, rows, np.zeros(layer.rows, np.int64))
    assert np.array_equal(start, quantize_layer(layer, FMT)[1])


def test_correct_writes_pass():
    layer, x_q, writes = _layer_and_writes(2)
    assert writes.shape[0] > 20
    assert first_wrong_write(layer, x_q, writes, N_PE, FMT) is None


def test_first_wrong_write_is_named():
    layer, x_q, writes = _layer_and_writes(3)
    bad = writes.copy()
    k = writes.shape[0] // 2
    bad[k:, 4] += 1          # every later write is off too; the first one is reported
    cycle, pe, local, col, got = (int(v) for v in bad[k, :5])
    msg = first_wrong_write(layer, x_q, bad, N_PE, FMT, cycle_offset=4)
    assert msg == (f"layer fc: first wrong accumulator write at cycle {cycle - 4} of the "
                   f"layer: column {col}, row {local * N_PE + pe} (PE {pe}, local row "
                   f"{local}): got {got}, want {got - 1} ({writes.shape[0] - k} of "
                   f"{writes.shape[0]} writes differ)")


def test_dropped_last_entry_is_named():
    layer, x_q, writes = _layer_and_writes(4)
    rows = writes[:, 2] * N_PE + writes[:, 1]
    k = int(np.flatnonzero(rows == rows[-1])[-1])        # a row's last write
    msg = first_wrong_write(layer, x_q, np.delete(writes, k, axis=0), N_PE, FMT)
    assert msg is not None
    assert re.fullmatch(rf"layer fc: row {rows[k]} \(PE {rows[k] % N_PE}, local row "
                        rf"{rows[k] // N_PE}\) (stops at column \d+ \(cycle \d+ of the layer\)|"
                        rf"is never written) with -?\d+, want -?\d+: an entry of that row "
                        rf"was dropped", msg), msg


def test_bad_pe_is_refused():
    layer, x_q, writes = _layer_and_writes(5)
    with pytest.raises(DataError, match=r"^writes of layer 'fc' must name PEs < 2 and "
                                        r"columns < 17, not PE 2 / column \d+$"):
        first_wrong_write(layer, x_q, writes, 2, FMT)
