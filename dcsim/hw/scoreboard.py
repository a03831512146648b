"""Locate an engine run's first wrong accumulator write against the fixed kernel's partial sums.

The cocotb ``AccumulatorMonitor`` (``dcsim.hw.tb``) records every PE's accumulator writes
as rows ``(cycle, pe, local_row, column, sum, position)`` (position: a conv layer's output
position, ``hw.conv.positions`` order); ``cycle`` counts clocks of the run, the
layer descriptor cycle of layer 0 being 1. The engine walks the active columns of a layer
in increasing ``j``, so after the write of column j row i's accumulator must hold the
fixed kernel's partial sum ``bias_acc[i] + sum_{j' <= j} codebook_q[code[i, j']] x[j']``
(fillers write the same value again). The first write that differs names the layer,
column, row, PE and cycle of the fault.
"""

from __future__ import annotations

import numpy as np

from dcsim.compress.layer import CompressedLayer
from dcsim.errors import DataError
from dcsim.kernels.fixed import FixedFormat
from dcsim.kernels.spmv import quantize_layer

WRITE_FIELDS = ("cycle", "pe", "local_row", "column", "sum", "position")
_ROW_BLOCK = 256      # rows of the dense partial-sum block (bounds memory on big layers)


def partial_sums(layer: CompressedLayer, x_q, fmt: FixedFormat, rows, cols) -> np.ndarray:
    """The fixed kernel's accumulator of row ``rows[k]`` after column ``cols[k]``.

    rows, cols : int (K,) -- global row i and column j of each query.
    Returns int64 (K,): ``bias_acc[i] + sum_{j' <= j} codebook_q[code[i, j']] * x_q[j']``.
    """
    codebook_q, bias_acc = quantize_layer(layer, fmt)
    x_q = np.asarray(x_q, dtype=np.int64)
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    out = np.empty(rows.shape[0], dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    uniq = np.unique(rows)
    for b in range(0, uniq.shape[0], _ROW_BLOCK):
        block = uniq[b:b + _ROW_BLOCK]
        cums = fmt.partial_sums(bias_acc[block], codebook_q[layer.codes[block]], x_q)
        sel = order[(rows[order] >= block[0]) & (rows[order] <= block[-1])]
        out[sel] = cums[np.searchsorted(block, rows[sel]), cols[sel]]
    return out


def first_wrong_write(layer: CompressedLayer, x_q, writes, n_pe: int, fmt: FixedFormat,
                      layer_name: str | None = None, cycle_offset: int = 0) -> str | None:
    """A message naming the first accumulator write of ``layer`` that differs from the
    fixed kernel's partial sum, or None if every write matches it.

    writes : int64 (K, 6) -- this layer's rows of ``WRITE_FIELDS`` (run cycles).
    cycle_offset : cycles of the run before this layer's descriptor cycle; the message
    gives the cycle within the layer (``cycle - cycle_offset``, descriptor cycle = 1).
    Besides wrong sums it catches a row whose last write stops short of its full sum
    (a dropped entry at the end of a row).
    """
    writes = np.asarray(writes, dtype=np.int64).reshape(-1, len(WRITE_FIELDS))
    name = layer.name if layer_name is None else layer_name
    if writes.size and (writes[:, 1].max() >= n_pe or writes[:, 3].max() >= layer.cols):
        raise DataError(f"writes of layer {name!r} must name PEs < {n_pe} and columns < "
                        f"{layer.cols}, not PE {writes[:, 1].max()} / column "
                        f"{writes[:, 3].max()}")
    writes = writes[np.lexsort((writes[:, 1], writes[:, 0]))]
    rows = writes[:, 2] * n_pe + writes[:, 1]
    want = partial_sums(layer, x_q, fmt, rows, writes[:, 3])
    bad = np.flatnonzero(want != writes[:, 4])
    if bad.size:
        k = int(bad[0])
        cycle, pe, local, col, got = (int(v) for v in writes[k, :5])
        return (f"layer {name}: first wrong accumulator write at cycle {cycle - cycle_offset} "
                f"of the layer: column {col}, row {int(rows[k])} (PE {pe}, local row {local}): "
                f"got {got}, want {int(want[k])} ({bad.size} of {writes.shape[0]} writes differ)")
    all_rows = np.arange(layer.rows, dtype=np.int64)
    full = partial_sums(layer, x_q, fmt, all_rows, np.full(layer.rows, layer.cols - 1))
    held = quantize_layer(layer, fmt)[1].astype(np.int64)     # accumulators start at bias
    last_cycle = np.zeros(layer.rows, dtype=np.int64)
    last_col = np.full(layer.rows, -1, dtype=np.int64)
    written, rev = np.unique(rows[::-1], return_index=True)
    last = rows.shape[0] - 1 - rev                  # each written row's last write
    held[written] = writes[last, 4]
    last_cycle[written] = writes[last, 0]
    last_col[written] = writes[last, 3]
    short = np.flatnonzero(held != full)
    if short.size == 0:
        return None
    row = int(short[np.argmin(last_cycle[short])])
    where = (f"stops at column {int(last_col[row])} (cycle "
             f"{int(last_cycle[row]) - cycle_offset} of the layer)"
             if last_col[row] >= 0 else "is never written")
    return (f"layer {name}: row {row} (PE {row % n_pe}, local row {row // n_pe}) {where} "
            f"with {int(held[row])}, want {int(full[row])}: an entry of that row was dropped")


def first_wrong_conv_write(matrix: CompressedLayer, geom, x_map, writes, fmt: FixedFormat,
                           layer_name: str, cycle_offset: int = 0) -> str | None:
    """:func:`first_wrong_write` for a conv layer: position by position (``writes``'
    ``position`` field), against the partial sums of the filter matrix in gather order
    (``matrix``, from ``hw.conv.engine_layers``) on that position's gathered patch; the
    message names the position (output pixel), the channel (row), PE and cycle."""
    from dcsim.hw.conv import patches, positions
    writes = np.asarray(writes, dtype=np.int64).reshape(-1, len(WRITE_FIELDS))
    pats = patches(geom, x_map)
    oy, ox, _, _ = positions(geom)
    for pos in range(pats.shape[0]):
        mine = writes[writes[:, 5] == pos]
        where = f"{layer_name} output position {pos} (y {int(oy[pos])}, x {int(ox[pos])})"
        msg = first_wrong_write(matrix, pats[pos], mine, geom.n_pe, fmt, layer_name=where,
                                cycle_offset=cycle_offset)
        if msg is not None:
            return msg.replace("row ", "channel ", 1) if "accumulator write" in msg else msg
    return None
