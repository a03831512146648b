"""Sparse, weight-shared matrix-vector kernels (float and bit-exact fixed point).

Every kernel reads the *encoded* form of a layer -- relative-index entries ``(z, code)``
with fillers, line pointers and a codebook (``dcsim.compress.sparse``) -- and never a
decoded dense matrix. ``y = W x + b`` with ``W[i, j] = codebook[code]``.

- float: CSR (a row per output, parallel over row blocks balanced by entries) and CSC
  (a column per input, zero inputs skipped, parallel over column blocks with one
  partial output per block; one input runs the fixed kernel's unrolled scatter loop,
  ``_scatter_column``); batch 1 (``x`` of shape ``(cols,)``) and batches
  (``(batch, cols)``); float32 data and accumulation, like BLAS's sgemv.
  One set of cores runs on packed entries: ``pack`` (validate once, pack each
  ``(z, code)`` into one 16-bit word) + ``spmv_packed``, what repeated products
  (benchmarks, ``run``) use; ``spmv_csr`` / ``spmv_csc`` take a RelIndexMatrix as it
  is and pack it on every call.
- fixed: the engine's interleaved CSC (row i on PE ``i % n_pe`` as local row
  ``i // n_pe``), integers throughout, rules from :mod:`dcsim.kernels.fixed`. This is
  the reference the RTL engine is verified against, integer for integer.
  ``spmv_fixed`` validates and packs per call; ``plan_fixed`` + ``spmv_fixed_plan``
  do that once per layer.
- dense numpy baselines on the decoded weights, for comparison.

Each kernel core is a small ``@njit(cache=True)`` function over plain arrays that fills
a preallocated output for a range of lines; a serial and a ``parallel=True`` driver call
it (one core, two compilations, as umap does), and a public wrapper validates the
inputs and raises :class:`dcsim.errors.FormatError` instead of reading out of bounds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from dcsim.compress.layer import CompressedLayer
from dcsim.compress.sparse import RelIndexMatrix, encode, fillers_for_gap, interleave
from dcsim.errors import FormatError
from dcsim.kernels.fixed import FixedFormat

__all__ = [
    "quantize_layer", "spmv_fixed", "plan_fixed", "spmv_fixed_plan", "FixedPlan",
    "layer_fixed", "spmv_csr", "spmv_csc", "pack", "spmv_packed", "PackedMatrix",
    "layer_float", "dense_gemv", "layer_dense",
]


# ----------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------

def _check_kind(m, order: str | None = None, what: str = "matrix") -> None:
    if not isinstance(m, RelIndexMatrix):
        raise FormatError(f"{what} must be a RelIndexMatrix, not {type(m).__name__}")
    if order is not None and m.order != order:
        raise FormatError(f"{what} must be in {order!r} order, not {m.order!r}")


def _check_matrix(m, order: str, what: str = "matrix") -> None:
    _check_kind(m, order, what)
    m.validate()


def _check_codes_fit(m: RelIndexMatrix, n_codes: int, what: str = "matrix") -> None:
    if m.code.size and int(m.code.max()) >= n_codes:
        raise FormatError(
            f"{what} codes must index the codebook of {n_codes} entries, not "
            f"{int(m.code.max())}; encode the layer with its own codebook")


def _check_vector(name: str, v, length: int, kind: str) -> np.ndarray:
    v = np.asarray(v)
    if v.ndim != 1 or v.shape[0] != length:
        raise FormatError(f"{name} must have shape ({length},), not {v.shape}")
    if kind == "int" and v.dtype.kind not in "ui":
        raise FormatError(f"{name} must be integers, not {v.dtype}")
    if kind == "float" and v.dtype.kind not in "uif":
        raise FormatError(f"{name} must be real numbers, not {v.dtype}")
    return v


def _check_table(name: str, v, kind: str) -> np.ndarray:
    v = np.asarray(v)
    if v.ndim != 1 or v.shape[0] == 0:
        raise FormatError(f"{name} must be a non-empty 1-D array, not shape {v.shape}")
    return _check_vector(name, v, v.shape[0], kind)


def _check_input(name: str, x, cols: int, kind: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim not in (1, 2) or x.shape[-1] != cols:
        raise FormatError(
            f"{name} must have shape ({cols},) or (batch, {cols}), not {x.shape}")
    if kind == "int" and x.dtype.kind not in "ui":
        raise FormatError(f"{name} must be integers, not {x.dtype}")
    if kind == "float" and x.dtype.kind not in "uif":
        raise FormatError(f"{name} must be real numbers, not {x.dtype}")
    return x


# ----------------------------------------------------------------------------------
# packing: one word per (z, code) entry
# ----------------------------------------------------------------------------------

# Entry indices and positions are unsigned in every kernel: numba then drops its
# negative-index wrap-around checks, which halves the instructions per entry (measured
# 8.3 -> 4.3 ms on Alex-6).
_U1, _U2, _U3, _U4, _U5, _U6, _U7, _U8 = (np.uint64(k) for k in range(1, 9))

def _code_bits(n_codes: int) -> int:
    """Bits that hold every code below ``n_codes``."""
    return max(1, int(n_codes - 1).bit_length())


def _word_dtype(code_bits: int):
    """The packed word: 16 bits (z gets 16 - code_bits) unless codes need more than 12."""
    return np.uint16 if code_bits <= 12 else np.uint32


@numba.njit(cache=True)
def _repack(line_ptr, z, code, span, out_ptr, out_z, out_code, fill):
    """Re-encode a relative-index matrix with a wider z (``span = 2**z_bits``): fillers
    of the narrow form are merged into the next entry's z, and new ones are inserted
    only where a gap reaches ``span``. With ``fill=False`` only out_ptr (the new line
    pointers) is computed. The stored weights and their positions are unchanged."""
    n = 0
    for i in range(line_ptr.shape[0] - 1):
        out_ptr[i] = n
        gap = 0
        for e in range(line_ptr[i], line_ptr[i + 1]):
            gap += np.int64(z[e])
            if code[e] == 0:  # a filler stands at a zero position
                gap += 1
                continue
            for _ in range(fillers_for_gap(gap, span)):
                if fill:
                    out_z[n] = span - 1
                    out_code[n] = 0
                n += 1
            gap -= fillers_for_gap(gap, span) * span
            if fill:
                out_z[n] = gap
                out_code[n] = code[e]
            n += 1
            gap = 0
    out_ptr[line_ptr.shape[0] - 1] = n


def _pack_entries(line_ptr, z, code, code_bits: int):
    """Pack each ``(z, code)`` into one word ``z << code_bits | code``, z widened to the
    rest of the word (``_repack``): one load gives both fields, a shift the zero run and
    a mask the code. Returns (line_ptr int64, entries uint16/uint32)."""
    dtype = _word_dtype(code_bits)
    span = 1 << (8 * np.dtype(dtype).itemsize - code_bits)
    line_ptr = np.ascontiguousarray(line_ptr, dtype=np.int64)
    out_ptr = np.empty_like(line_ptr)
    _repack(line_ptr, z, code, span, out_ptr, z[:0].astype(np.int64),
            code[:0].astype(np.int64), False)
    out_z = np.empty(out_ptr[-1], dtype=np.int64)
    out_code = np.empty(out_ptr[-1], dtype=np.int64)
    _repack(line_ptr, z, code, span, out_ptr, out_z, out_code, True)
    return out_ptr, (out_z << code_bits | out_code).astype(dtype)


def _balanced(line_ptr: np.ndarray, parts: int) -> np.ndarray:
    """Line boundaries (parts + 1,) int64 that split the *entries* (not the lines) into
    ``parts`` near-equal blocks, so threads get equal work on uneven lines."""
    targets = np.linspace(0, int(line_ptr[-1]), parts + 1)
    bounds = np.searchsorted(line_ptr, targets, side="left").astype(np.int64)
    bounds[0], bounds[-1] = 0, line_ptr.shape[0] - 1
    return np.maximum.accumulate(bounds)


# ----------------------------------------------------------------------------------
# fixed point: the engine's interleaved CSC
# ----------------------------------------------------------------------------------

@numba.njit(cache=True)
def _scatter_column(ent, start, end, sh, mask, a, codebook, row):
    """``row[r] += a * codebook[code]`` for one column's entries ``start..end-1``.

    Generic over the number type: the fixed kernel runs it on int64 (exact), the float
    CSC kernel on float32. As in the CSR kernel, q is the row the next entry would have
    if its z were 0.
    Eight entries are unpacked before their eight read-modify-writes of ``row``: the
    writes go to distinct rows, and issuing the loads first keeps the compiler from
    waiting on each store (1.3 -> 0.93 ns per entry against four, 3.9 with one).
    """
    e = start
    q = np.uint64(0)
    while e + _U8 <= end:
        w0 = np.uint32(ent[e])
        w1 = np.uint32(ent[e + _U1])
        w2 = np.uint32(ent[e + _U2])
        w3 = np.uint32(ent[e + _U3])
        w4 = np.uint32(ent[e + _U4])
        w5 = np.uint32(ent[e + _U5])
        w6 = np.uint32(ent[e + _U6])
        w7 = np.uint32(ent[e + _U7])
        q0 = q + np.uint64(w0 >> sh)
        q1 = q0 + np.uint64(w1 >> sh)
        q2 = q1 + np.uint64(w2 >> sh)
        q3 = q2 + np.uint64(w3 >> sh)
        q4 = q3 + np.uint64(w4 >> sh)
        q5 = q4 + np.uint64(w5 >> sh)
        q6 = q5 + np.uint64(w6 >> sh)
        q7 = q6 + np.uint64(w7 >> sh)
        row[q0] += a * codebook[w0 & mask]
        row[q1 + _U1] += a * codebook[w1 & mask]
        row[q2 + _U2] += a * codebook[w2 & mask]
        row[q3 + _U3] += a * codebook[w3 & mask]
        row[q4 + _U4] += a * codebook[w4 & mask]
        row[q5 + _U5] += a * codebook[w5 & mask]
        row[q6 + _U6] += a * codebook[w6 & mask]
        row[q7 + _U7] += a * codebook[w7 & mask]
        q = q7 + _U8
        e += _U8
    while e < end:
        w = np.uint32(ent[e])
        q += np.uint64(w >> sh)
        row[q] += a * codebook[w & mask]
        q += _U1
        e += _U1


@numba.njit(cache=True)
def _fixed_pe(line_ptr, ent, shift, codebook_q, x_q, acc):
    """One PE's columns in order: ``acc[b, row] += x_q[b, j] * codebook_q[code]``.

    line_ptr (cols + 1,) int64; ent (entries,) packed ``z << shift | code``;
    x_q (batch, cols) int64; acc (batch, local_rows) int64, this PE's rows.
    """
    sh = np.uint32(shift)
    mask = (np.uint32(1) << sh) - np.uint32(1)
    for j in range(line_ptr.shape[0] - 1):
        start = np.uint64(line_ptr[j])
        end = np.uint64(line_ptr[j + 1])
        if start == end:
            continue
        for b in range(x_q.shape[0]):
            a = x_q[b, j]
            if a != 0:  # the leading-non-zero detector never broadcasts a zero
                _scatter_column(ent, start, end, sh, mask, a, codebook_q, acc[b])


@numba.njit(cache=True)
def _fixed_one(pe_ptr, pe_off, ent, shift, n_pe, pe, codebook_q, x_q, acc):
    # a contiguous accumulator per PE (its local rows), written back strided at the end
    local = np.ascontiguousarray(acc[:, pe::n_pe])
    lo = pe_off[pe]
    hi = pe_off[pe + 1]
    _fixed_pe(pe_ptr[pe], ent[lo:hi], shift, codebook_q, x_q, local)
    acc[:, pe::n_pe] = local


@numba.njit(cache=True)
def _fixed_serial(pe_ptr, pe_off, ent, shift, n_pe, codebook_q, x_q, acc):
    for pe in range(n_pe):
        _fixed_one(pe_ptr, pe_off, ent, shift, n_pe, pe, codebook_q, x_q, acc)


@numba.njit(cache=True, parallel=True)
def _fixed_parallel(pe_ptr, pe_off, ent, shift, n_pe, codebook_q, x_q, acc):
    # PEs own disjoint rows, so they run concurrently without races, as in the engine
    for pe in numba.prange(n_pe):
        _fixed_one(pe_ptr, pe_off, ent, shift, n_pe, pe, codebook_q, x_q, acc)


# A batch (run(), conv patches) takes another loop order: for each column, each entry
# adds ``w * x[j, b0:b1]`` to its row for a block of inputs at once. Zero activations
# then contribute zero products instead of being skipped; integer sums are exact, so the
# integers are the same. Operands are held as int32 (act_bits <= 32) and multiplied
# into int64, which the compiler vectorises; on LeNet-5's conv layers this is ~20x
# faster than walking the columns once per input.
BATCH_BLOCK = 64


@numba.njit(cache=True)
def _n_tasks(n_parts, batch):
    """Tasks of a batch: each of ``n_parts`` (PEs, row blocks) on each block of
    BATCH_BLOCK inputs."""
    return n_parts * ((batch + BATCH_BLOCK - 1) // BATCH_BLOCK)


@numba.njit(cache=True)
def _fixed_block(line_ptr, ent, shift, codebook_q, xt, local):
    """local (local_rows, nb) int64 += this PE's W times xt (cols, nb) int32;
    codebook_q int32."""
    sh = np.uint32(shift)
    mask = (np.uint32(1) << sh) - np.uint32(1)
    nb = xt.shape[1]
    for j in range(line_ptr.shape[0] - 1):
        xj = xt[j]
        q = np.uint64(0)
        for e in range(np.uint64(line_ptr[j]), np.uint64(line_ptr[j + 1])):
            w = np.uint32(ent[e])
            q += np.uint64(w >> sh)
            c = np.int64(codebook_q[w & mask])
            row = local[q]
            for b in range(nb):
                row[b] += c * np.int64(xj[b])
            q += _U1


@numba.njit(cache=True)
def _fixed_task(pe_ptr, pe_off, ent, shift, n_pe, codebook_q, x_q, acc, k):
    """Task k: PE ``k % n_pe`` on the inputs of block ``k // n_pe``.

    x_q (batch, cols) int64, acc (batch, rows) int64; the block's inputs are transposed
    here, where they are in cache, rather than the whole batch in numpy.
    """
    pe = k % n_pe
    b0 = (k // n_pe) * BATCH_BLOCK
    b1 = min(b0 + BATCH_BLOCK, acc.shape[0])
    xt = np.empty((x_q.shape[1], b1 - b0), dtype=np.int32)
    for b in range(b0, b1):
        for j in range(x_q.shape[1]):
            xt[j, b - b0] = x_q[b, j]
    local = np.ascontiguousarray(acc[b0:b1, pe::n_pe].T)
    lo = pe_off[pe]
    hi = pe_off[pe + 1]
    _fixed_block(pe_ptr[pe], ent[lo:hi], shift, codebook_q, xt, local)
    acc[b0:b1, pe::n_pe] = local.T


@numba.njit(cache=True)
def _fixed_batch_serial(pe_ptr, pe_off, ent, shift, n_pe, codebook_q, x_q, acc):
    for k in range(_n_tasks(n_pe, acc.shape[0])):
        _fixed_task(pe_ptr, pe_off, ent, shift, n_pe, codebook_q, x_q, acc, k)


@numba.njit(cache=True, parallel=True)
def _fixed_batch_parallel(pe_ptr, pe_off, ent, shift, n_pe, codebook_q, x_q, acc):
    # tasks own disjoint (inputs, rows) blocks of acc: no races
    for k in numba.prange(_n_tasks(n_pe, acc.shape[0])):
        _fixed_task(pe_ptr, pe_off, ent, shift, n_pe, codebook_q, x_q, acc, k)


@dataclass(frozen=True, eq=False)
class FixedPlan:
    """A layer's interleaved CSC slices, validated and packed once for the fixed kernel.

    Made by :func:`plan_fixed`; run by :func:`spmv_fixed_plan`. Holds what does not
    change between inputs: rows, cols, n_pe, fmt, codebook_q int64 (n_codes,),
    code_bits (the shift of the packed entries), pe_ptr int64 (n_pe, cols + 1) column
    pointers per PE, pe_off int64 (n_pe + 1,) where each PE's entries start in
    ``entries``, entries (all PEs' entries, ``z << code_bits | code`` with z widened
    to the rest of a uint16/uint32 word, fillers merged: ``_pack_entries``).
    """

    rows: int
    cols: int
    n_pe: int
    fmt: FixedFormat
    codebook_q: np.ndarray
    code_bits: int
    pe_ptr: np.ndarray
    pe_off: np.ndarray
    entries: np.ndarray


def plan_fixed(pes, rows, codebook_q, fmt: FixedFormat) -> FixedPlan:
    """Validate the engine's per-PE slices and codebook once and pack them.

    Arguments as :func:`spmv_fixed`. Raises FormatError (ConfigError for a fan-in the
    accumulator cannot hold) with the same messages as :func:`spmv_fixed`.
    """
    if not isinstance(fmt, FixedFormat):
        raise FormatError(f"fmt must be a FixedFormat, not {fmt!r}")
    if not isinstance(pes, (list, tuple)) or not pes:
        raise FormatError(
            f"pes must be a non-empty list of RelIndexMatrix (from interleave), not {pes!r}")
    if not isinstance(rows, (int, np.integer)) or isinstance(rows, bool) or rows < 1:
        raise FormatError(f"rows must be a positive integer, not {rows!r}")
    n_pe = len(pes)
    for pe, m in enumerate(pes):
        _check_matrix(m, "csc", f"PE {pe}'s slice")
    cols = pes[0].shape[1]
    for pe, m in enumerate(pes):
        want = (len(range(pe, rows, n_pe)), cols)
        if tuple(m.shape) != want:
            raise FormatError(
                f"PE {pe}'s slice must have shape {want} for {rows} rows on {n_pe} PEs, "
                f"not {tuple(m.shape)}")
    fmt.check_cols(cols)
    codebook_q = _check_table("codebook_q", codebook_q, "int")
    if codebook_q[0] != 0:
        raise FormatError(
            f"codebook_q[0] must be 0 (the filler and pruned weight), not "
            f"{codebook_q[:1].tolist()!r}")
    fmt.check_act("codebook_q", codebook_q)
    for pe, m in enumerate(pes):
        _check_codes_fit(m, codebook_q.shape[0], f"PE {pe}'s slice")
    code_bits = _code_bits(codebook_q.shape[0])
    packed = [_pack_entries(m.line_ptr, m.z, m.code, code_bits) for m in pes]
    pe_off = np.zeros(n_pe + 1, dtype=np.int64)
    np.cumsum([ent.shape[0] for _, ent in packed], out=pe_off[1:])
    return FixedPlan(
        rows=int(rows), cols=int(cols), n_pe=n_pe, fmt=fmt,
        codebook_q=np.ascontiguousarray(codebook_q, dtype=np.int64), code_bits=code_bits,
        pe_ptr=np.stack([ptr for ptr, _ in packed]), pe_off=pe_off,
        entries=np.concatenate([ent for _, ent in packed]))


def spmv_fixed_plan(plan: FixedPlan, bias_acc, x_q, relu: bool,
                    parallel: bool = False) -> np.ndarray:
    """:func:`spmv_fixed` on a :class:`FixedPlan`: the same integers, without
    re-validating and re-packing the matrix on every call (``bias_acc`` and ``x_q`` are
    still checked, in O(rows + cols)). Returns int64 (rows,) or (batch, rows)."""
    if not isinstance(plan, FixedPlan):
        raise FormatError(f"plan must be a FixedPlan (from plan_fixed), not {plan!r}")
    fmt = plan.fmt
    bias_acc = _check_vector("bias_acc", bias_acc, plan.rows, "int")
    fmt.check_acc_start("bias_acc", bias_acc)
    x_q = _check_input("x_q", x_q, plan.cols, "int")
    fmt.check_act("x_q", x_q)
    single = x_q.ndim == 1
    x2 = np.ascontiguousarray(np.atleast_2d(x_q), dtype=np.int64)
    acc = np.repeat(bias_acc.astype(np.int64)[None, :], x2.shape[0], axis=0)
    if x2.shape[0] == 1:
        run = _fixed_parallel if parallel and plan.n_pe > 1 else _fixed_serial
        run(plan.pe_ptr, plan.pe_off, plan.entries, plan.code_bits, plan.n_pe,
            plan.codebook_q, x2, acc)
    else:
        run = _fixed_batch_parallel if parallel else _fixed_batch_serial
        run(plan.pe_ptr, plan.pe_off, plan.entries, plan.code_bits, plan.n_pe,
            plan.codebook_q.astype(np.int32), x2, acc)
    y = fmt.finish(acc, relu)
    return y[0] if single else y


def spmv_fixed(pes, rows, codebook_q, bias_acc, x_q, fmt: FixedFormat, relu: bool,
               parallel: bool = False) -> np.ndarray:
    """The engine's fixed-point ``y = finish(bias_acc + W x)`` on interleaved CSC.

    pes : list of RelIndexMatrix -- ``interleave(codes, n_pe, idx_bits)``: PE p holds
        rows ``p, p + n_pe, ...`` as a CSC matrix of shape (local_rows, cols), fillers
        with code 0 included.
    rows : int -- rows of the whole layer.
    codebook_q : int64 (n_codes,) -- codebook in ``fmt`` (``codebook_q[0] == 0``).
    bias_acc : int64 (rows,) -- accumulator initial values (``fmt.bias_to_acc``).
    x_q : int64 (cols,) or (batch, cols) -- input activations in ``fmt``.
    fmt : FixedFormat; relu : bool -- apply ReLU after rounding and saturation.
    parallel : bool -- run PEs on all cores; the integers are the same.

    For one input, columns are walked in order and zero activations skipped, as the
    engine's leading-non-zero detector does; a batch is walked a block of inputs at a
    time. Integer sums are exact, so the result depends neither on the order nor on
    ``n_pe`` nor on ``parallel``. Validates and packs the slices on every
    call (O(entries)); for repeated inputs on one layer use :func:`plan_fixed` once and
    :func:`spmv_fixed_plan`.
    Returns int64 (rows,) or (batch, rows) output activations in ``fmt``.
    """
    return spmv_fixed_plan(plan_fixed(pes, rows, codebook_q, fmt), bias_acc, x_q, relu,
                           parallel=parallel)


def quantize_layer(layer: CompressedLayer, fmt: FixedFormat):
    """A layer's floats -> the engine's integers: ``(codebook_q, bias_acc)``, both int64.

    codebook_q (2**code_bits,) = ``fmt.to_fixed(codebook)`` (entry 0 stays 0);
    bias_acc (rows,) = ``fmt.bias_to_acc(bias)``. The one place this mapping is made:
    the fixed kernel and the engine's image compiler both call it.
    """
    if not isinstance(layer, CompressedLayer):
        raise FormatError(f"layer must be a CompressedLayer, not {type(layer).__name__}")
    if not isinstance(fmt, FixedFormat):
        raise FormatError(f"fmt must be a FixedFormat, not {fmt!r}")
    return fmt.to_fixed(layer.codebook), fmt.bias_to_acc(layer.bias)


def layer_fixed(layer: CompressedLayer, x_q, fmt: FixedFormat, n_pe: int = 1,
                idx_bits: int | None = None, parallel: bool = False) -> np.ndarray:
    """Run one layer's matrix in fixed point as the engine does (its ReLU from ``layer``).

    x_q : int64 (cols,) or (batch, cols). ``idx_bits`` defaults to ``layer.index_bits``;
    neither it nor ``n_pe`` changes the result. Conv layers are run as their flattened
    (out_ch, in_ch*kh*kw) matrix on patch vectors (pooling is not applied here).
    Returns int64 (rows,) or (batch, rows).
    """
    codebook_q, bias_acc = quantize_layer(layer, fmt)
    pes = interleave(layer.codes, n_pe, layer.index_bits if idx_bits is None else idx_bits)
    return spmv_fixed(pes, layer.rows, codebook_q, bias_acc, x_q, fmt, layer.relu,
                      parallel=parallel)


# ----------------------------------------------------------------------------------
# float: CSR (a row per output) and CSC (a column per input) on packed entries
# ----------------------------------------------------------------------------------

# The position of entry k of a line is k + (z_0 + ... + z_k): the loop keeps q, the
# position the next entry would have if its z were 0, so each entry costs one add on the
# dependency chain, and x[q + 1], x[q + 2], ... are constant offsets the compiler folds
# into the load. Per entry: one load of the packed word, a shift (z), an add, a mask
# (code), the codebook load and a fused multiply-add from x: 54 instructions per 8
# entries, three of them loads per entry, which Zen 1's two load ports turn into >= 1.5
# cycles per entry, the bound of this loop (BENCHMARKS.md, section 4).
# Eight entries per pass and eight accumulators (the multiply-add's latency is 5 cycles
# on Zen 1) trim the loop overhead: 0.75 -> 0.70 ns per entry on Alex-8. Widening z to
# the rest of a 16-bit word drops the fillers of a 4-bit index (22% of the entries at 9%
# density, 52% at 4%).

@numba.njit(cache=True, fastmath={"contract"})
def _packed_rows(line_ptr, ent, shift, cb, bias, x, y, r0, r1):
    """Rows r0..r1-1 of y (rows,) = W x + b; ent packed ``z << shift | code``."""
    sh = np.uint32(shift)
    mask = (np.uint32(1) << sh) - np.uint32(1)
    for i in range(r0, r1):
        a0 = np.float32(0.0)
        a1 = np.float32(0.0)
        a2 = np.float32(0.0)
        a3 = np.float32(0.0)
        a4 = np.float32(0.0)
        a5 = np.float32(0.0)
        a6 = np.float32(0.0)
        a7 = np.float32(0.0)
        e = np.uint64(line_ptr[i])
        end = np.uint64(line_ptr[i + 1])
        q = np.uint64(0)
        while e + _U8 <= end:
            w0 = np.uint32(ent[e])
            w1 = np.uint32(ent[e + _U1])
            w2 = np.uint32(ent[e + _U2])
            w3 = np.uint32(ent[e + _U3])
            w4 = np.uint32(ent[e + _U4])
            w5 = np.uint32(ent[e + _U5])
            w6 = np.uint32(ent[e + _U6])
            w7 = np.uint32(ent[e + _U7])
            q0 = q + np.uint64(w0 >> sh)
            q1 = q0 + np.uint64(w1 >> sh)
            q2 = q1 + np.uint64(w2 >> sh)
            q3 = q2 + np.uint64(w3 >> sh)
            q4 = q3 + np.uint64(w4 >> sh)
            q5 = q4 + np.uint64(w5 >> sh)
            q6 = q5 + np.uint64(w6 >> sh)
            q7 = q6 + np.uint64(w7 >> sh)
            a0 += cb[w0 & mask] * x[q0]
            a1 += cb[w1 & mask] * x[q1 + _U1]
            a2 += cb[w2 & mask] * x[q2 + _U2]
            a3 += cb[w3 & mask] * x[q3 + _U3]
            a4 += cb[w4 & mask] * x[q4 + _U4]
            a5 += cb[w5 & mask] * x[q5 + _U5]
            a6 += cb[w6 & mask] * x[q6 + _U6]
            a7 += cb[w7 & mask] * x[q7 + _U7]
            q = q7 + _U8
            e += _U8
        while e < end:
            w = np.uint32(ent[e])
            q += np.uint64(w >> sh)
            a0 += cb[w & mask] * x[q]
            q += _U1
            e += _U1
        y[i] = (((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))) + bias[i]


@numba.njit(cache=True, fastmath={"contract"})
def _packed_rows_batch(line_ptr, ent, shift, cb, bias, x, y, bounds, k):
    """Task k of a batch: rows of block ``k % n_blocks`` for the inputs of block
    ``k // n_blocks`` (BATCH_BLOCK of them). x (batch, cols), y (batch, rows) float32;
    the block's inputs are transposed here, in cache, so each entry's weight multiplies
    a contiguous run of inputs."""
    n_blocks = bounds.shape[0] - 1
    r0 = bounds[k % n_blocks]
    r1 = bounds[k % n_blocks + 1]
    b0 = (k // n_blocks) * BATCH_BLOCK
    b1 = min(b0 + BATCH_BLOCK, x.shape[0])
    nb = b1 - b0
    xt = np.empty((x.shape[1], nb), dtype=np.float32)
    for b in range(nb):
        for j in range(x.shape[1]):
            xt[j, b] = x[b0 + b, j]
    sh = np.uint32(shift)
    mask = (np.uint32(1) << sh) - np.uint32(1)
    acc = np.empty(nb, dtype=np.float32)
    for i in range(r0, r1):
        acc[:] = bias[i]
        q = np.uint64(0)
        for e in range(np.uint64(line_ptr[i]), np.uint64(line_ptr[i + 1])):
            w = np.uint32(ent[e])
            q += np.uint64(w >> sh)
            v = cb[w & mask]
            xq = xt[q]
            for b in range(nb):
                acc[b] += v * xq[b]
            q += _U1
        for b in range(nb):
            y[b0 + b, i] = acc[b]


@numba.njit(cache=True)
def _packed_cols1(line_ptr, ent, shift, cb, x, y, c0, c1):
    """y (rows,) += columns c0..c1-1 of W times x (cols,), zero x skipped (one input:
    the unrolled scatter loop the fixed kernel also uses)."""
    sh = np.uint32(shift)
    mask = (np.uint32(1) << sh) - np.uint32(1)
    for j in range(c0, c1):
        a = x[j]
        if a != 0:
            _scatter_column(ent, np.uint64(line_ptr[j]), np.uint64(line_ptr[j + 1]), sh,
                            mask, a, cb, y)


@numba.njit(cache=True, fastmath={"contract"})
def _packed_cols(line_ptr, ent, shift, cb, xt, yt, c0, c1):
    """yt (rows, batch) += columns c0..c1-1 of W times xt (cols, batch); zero x skipped."""
    sh = np.uint32(shift)
    mask = (np.uint32(1) << sh) - np.uint32(1)
    batch = xt.shape[1]
    for j in range(c0, c1):
        start = np.uint64(line_ptr[j])
        end = np.uint64(line_ptr[j + 1])
        for b in range(batch):
            a = xt[j, b]
            if a == 0:
                continue
            q = np.uint64(0)
            for e in range(start, end):
                w = np.uint32(ent[e])
                q += np.uint64(w >> sh)
                yt[q, b] += cb[w & mask] * a
                q += _U1


@numba.njit(cache=True)
def _packed_csr_serial(line_ptr, ent, shift, cb, bias, x, y, bounds):
    _packed_rows(line_ptr, ent, shift, cb, bias, x, y, 0, y.shape[0])


@numba.njit(cache=True, parallel=True)
def _packed_csr_parallel(line_ptr, ent, shift, cb, bias, x, y, bounds):
    for k in numba.prange(bounds.shape[0] - 1):
        _packed_rows(line_ptr, ent, shift, cb, bias, x, y, bounds[k], bounds[k + 1])


@numba.njit(cache=True)
def _packed_csr_batch_serial(line_ptr, ent, shift, cb, bias, x, y, bounds):
    for k in range(_n_tasks(bounds.shape[0] - 1, x.shape[0])):
        _packed_rows_batch(line_ptr, ent, shift, cb, bias, x, y, bounds, k)


@numba.njit(cache=True, parallel=True)
def _packed_csr_batch_parallel(line_ptr, ent, shift, cb, bias, x, y, bounds):
    # tasks own disjoint (inputs, rows) blocks of y: no races
    for k in numba.prange(_n_tasks(bounds.shape[0] - 1, x.shape[0])):
        _packed_rows_batch(line_ptr, ent, shift, cb, bias, x, y, bounds, k)


@numba.njit(cache=True)
def _packed_csc1_serial(line_ptr, ent, shift, cb, bias, x, y, bounds):
    y[:] = bias
    _packed_cols1(line_ptr, ent, shift, cb, x, y, 0, x.shape[0])


@numba.njit(cache=True, parallel=True)
def _packed_csc1_parallel(line_ptr, ent, shift, cb, bias, x, y, bounds):
    # as _packed_csc_parallel, for one input
    n_blocks = bounds.shape[0] - 1
    partial = np.zeros((n_blocks, y.shape[0]), dtype=y.dtype)
    for k in numba.prange(n_blocks):
        _packed_cols1(line_ptr, ent, shift, cb, x, partial[k], bounds[k], bounds[k + 1])
    for i in range(y.shape[0]):
        s = bias[i]
        for k in range(n_blocks):
            s += partial[k, i]
        y[i] = s


@numba.njit(cache=True)
def _packed_csc_serial(line_ptr, ent, shift, cb, bias, xt, yt, bounds):
    for i in range(yt.shape[0]):
        yt[i, :] = bias[i]
    _packed_cols(line_ptr, ent, shift, cb, xt, yt, 0, xt.shape[0])


@numba.njit(cache=True, parallel=True)
def _packed_csc_parallel(line_ptr, ent, shift, cb, bias, xt, yt, bounds):
    # columns scatter into every row, so each block sums into its own partial output
    n_blocks = bounds.shape[0] - 1
    partial = np.zeros((n_blocks, yt.shape[0], yt.shape[1]), dtype=yt.dtype)
    for k in numba.prange(n_blocks):
        _packed_cols(line_ptr, ent, shift, cb, xt, partial[k], bounds[k], bounds[k + 1])
    for i in numba.prange(yt.shape[0]):
        for b in range(yt.shape[1]):
            s = bias[i]
            for k in range(n_blocks):
                s += partial[k, i, b]
            yt[i, b] = s


@dataclass(frozen=True, eq=False)
class PackedMatrix:
    """A relative-index matrix and its codebook, validated and packed once (:func:`pack`).

    order, shape : as the source RelIndexMatrix.
    code_bits : int -- bits of the code field (enough for every codebook index).
    index_bits : int -- bits of the widened z field, the rest of the word.
    line_ptr : int64 (n_lines + 1,) -- line pointers of the packed entries.
    entries : uint16 (uint32 for codes over 12 bits) (n_entries,) --
        ``z << code_bits | code``; the source's fillers are merged into the next
        entry's z, new ones stored only for gaps of ``2**index_bits`` or more.
    codebook : float32 (2**code_bits,) -- zero-padded.
    bounds : int64 (threads + 1,) -- line boundaries splitting the entries evenly.
    """

    order: str
    shape: tuple
    code_bits: int
    index_bits: int
    line_ptr: np.ndarray
    entries: np.ndarray
    codebook: np.ndarray
    bounds: np.ndarray

    @property
    def n_entries(self) -> int:
        """Stored entries, fillers included."""
        return int(self.entries.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes a product reads from the matrix: packed entries and line pointers."""
        return int(self.entries.nbytes + self.line_ptr.nbytes)


def pack(m: RelIndexMatrix, codebook) -> PackedMatrix:
    """Validate ``m`` (CSR or CSC) against ``codebook`` (float (n_codes,)) once and
    pack it for :func:`spmv_packed`. Raises FormatError if ``m`` is malformed or a code
    falls outside the codebook."""
    _check_kind(m)
    return _pack(m, codebook, check=True)


def _pack(m: RelIndexMatrix, codebook, check: bool) -> PackedMatrix:
    """:func:`pack`; with ``check=False`` ``m`` is neither validated nor its codes
    checked against ``codebook`` (``codebook`` itself always is)."""
    if check:
        m.validate()
    codebook = _check_table("codebook", codebook, "float")
    if check:
        _check_codes_fit(m, codebook.shape[0])
    code_bits = _code_bits(codebook.shape[0])
    cb = np.zeros(1 << code_bits, dtype=np.float32)
    cb[:codebook.shape[0]] = codebook
    line_ptr, entries = _pack_entries(m.line_ptr, m.z, m.code, code_bits)
    return PackedMatrix(
        order=m.order, shape=tuple(m.shape), code_bits=code_bits,
        index_bits=8 * entries.itemsize - code_bits, line_ptr=line_ptr, entries=entries,
        codebook=cb, bounds=_balanced(line_ptr, numba.get_num_threads()))


def spmv_packed(p: PackedMatrix, bias, x, parallel: bool = True) -> np.ndarray:
    """Float ``y = W x + b`` on a :class:`PackedMatrix`: CSR, or CSC with zero inputs
    skipped. :func:`spmv_csr` and :func:`spmv_csc` give the same results, packing the
    matrix on every call; this makes no pass over the matrix beyond the product.

    bias float (rows,); x float (cols,) or (batch, cols).
    parallel : bool -- CSR: rows split into one block per numba thread, balanced by
        entries; CSC: columns likewise, each block into its own partial output.
        For batch-1 latency on a small VM, start the process with
        ``NUMBA_THREADING_LAYER=omp OMP_PROC_BIND=true`` (as
        ``benchmarks/bench_spmv.py`` does): unbound workers were woken onto the
        caller's CPU and the split then ran serially or stalled (BENCHMARKS.md,
        section 4, "Threads").
    Returns float32 (rows,) or (batch, rows).
    """
    if not isinstance(p, PackedMatrix):
        raise FormatError(f"matrix must be a PackedMatrix (from pack), not {p!r}")
    rows, cols = p.shape
    bias = _check_vector("bias", bias, rows, "float")
    x = _check_input("x", x, cols, "float")
    bias = np.ascontiguousarray(bias, dtype=np.float32)
    if p.order == "csr" and x.ndim == 1:
        y = np.empty(rows, dtype=np.float32)
        run = _packed_csr_parallel if parallel else _packed_csr_serial
        run(p.line_ptr, p.entries, p.code_bits, p.codebook, bias,
            np.ascontiguousarray(x, dtype=np.float32), y, p.bounds)
        return y
    if p.order == "csr":
        y = np.empty((x.shape[0], rows), dtype=np.float32)
        run = _packed_csr_batch_parallel if parallel else _packed_csr_batch_serial
        run(p.line_ptr, p.entries, p.code_bits, p.codebook, bias,
            np.ascontiguousarray(x, dtype=np.float32), y, p.bounds)
        return y
    if x.ndim == 1:
        y = np.empty(rows, dtype=np.float32)
        run = _packed_csc1_parallel if parallel else _packed_csc1_serial
        run(p.line_ptr, p.entries, p.code_bits, p.codebook, bias,
            np.ascontiguousarray(x, dtype=np.float32), y, p.bounds)
        return y
    xt = np.ascontiguousarray(x.T, dtype=np.float32)
    yt = np.empty((rows, xt.shape[1]), dtype=np.float32)
    run = _packed_csc_parallel if parallel else _packed_csc_serial
    run(p.line_ptr, p.entries, p.code_bits, p.codebook, bias, xt, yt, p.bounds)
    return np.ascontiguousarray(yt.T)


def _pack_order(m, order: str, codebook, check: bool) -> PackedMatrix:
    """Check that ``m`` is a RelIndexMatrix in ``order`` (and, with ``check``, valid
    against ``codebook``) and pack it."""
    if check:
        _check_kind(m, order)
    elif not isinstance(m, RelIndexMatrix) or m.order != order:
        raise FormatError(f"matrix must be a RelIndexMatrix in {order!r} order, not {m!r}")
    return _pack(m, codebook, check)


def spmv_csr(m: RelIndexMatrix, codebook, bias, x, parallel: bool = False,
             check: bool = True) -> np.ndarray:
    """Float ``y = W x + b`` from a relative-index CSR matrix (a row per output).

    m : RelIndexMatrix, order "csr", shape (rows, cols); codebook float (n_codes,);
    bias float (rows,); x float (cols,) or (batch, cols).
    parallel : bool -- split the rows into blocks over the numba threads.
    check : bool -- validate ``m`` (pointers, positions, codes; O(entries)). Pass False
        only for a matrix that passed a checked call: a bad matrix then reads out of
        bounds. ``codebook``, ``bias`` and ``x`` are always checked.
    Packs ``m`` on every call (:func:`pack` + :func:`spmv_packed`); for repeated
    products on one matrix, pack it once and call :func:`spmv_packed`.
    Returns float32 (rows,) or (batch, rows).
    """
    return spmv_packed(_pack_order(m, "csr", codebook, check), bias, x, parallel=parallel)


def spmv_csc(m: RelIndexMatrix, codebook, bias, x, parallel: bool = False,
             check: bool = True) -> np.ndarray:
    """Float ``y = W x + b`` from a relative-index CSC matrix; zero inputs are skipped.

    m : RelIndexMatrix, order "csc", shape (rows, cols); codebook float (n_codes,);
    bias float (rows,); x float (cols,) or (batch, cols).
    parallel : bool -- split the columns into one block per numba thread, each
    accumulating into its own partial output, summed at the end.
    check : bool -- as for :func:`spmv_csr`, which this also follows in packing ``m``
        on every call.
    Returns float32 (rows,) or (batch, rows).
    """
    return spmv_packed(_pack_order(m, "csc", codebook, check), bias, x, parallel=parallel)


def layer_float(layer: CompressedLayer, x, order: str = "csr",
                parallel: bool = True) -> np.ndarray:
    """Float ``W x + b`` of one layer's matrix on the sparse kernel (no ReLU, no pool).

    Encodes ``layer.codes`` with ``layer.index_bits`` in ``order`` ("csr" or "csc").
    x float (cols,) or (batch, cols); returns float32 (rows,) or (batch, rows).
    """
    if order not in ("csr", "csc"):
        raise FormatError(f"order must be 'csr' or 'csc', not {order!r}")
    m = encode(layer.codes, layer.index_bits, order)
    kernel = spmv_csr if order == "csr" else spmv_csc
    return kernel(m, layer.codebook, layer.bias, x, parallel=parallel)


# ----------------------------------------------------------------------------------
# dense baselines
# ----------------------------------------------------------------------------------

def dense_gemv(weights: np.ndarray, bias: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Dense numpy ``W x + b`` (BLAS sgemv/sgemm): weights (rows, cols), x (cols,) or
    (batch, cols), all float32; returns float32 (rows,) or (batch, rows)."""
    return x @ weights.T + bias if x.ndim == 2 else weights @ x + bias


def layer_dense(layer: CompressedLayer, x) -> np.ndarray:
    """Dense float32 ``W x + b`` of one layer's decoded weights (the comparison point)."""
    w = layer.weights().reshape(layer.matrix_shape)
    return dense_gemv(w, layer.bias, np.asarray(x, dtype=np.float32))
