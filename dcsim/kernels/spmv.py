"""Sparse, weight-shared matrix-vector kernels (float and bit-exact fixed point).

Every kernel reads the *encoded* form of a layer -- relative-index entries ``(z, code)``
with fillers, line pointers and a codebook (``dcsim.compress.sparse``) -- and never a
decoded dense matrix. ``y = W x + b`` with ``W[i, j] = codebook[code]``.

- float: CSR (a row per output, parallel over row blocks) and CSC (a column per input,
  zero inputs skipped, parallel over column blocks with one partial output per block);
  batch 1 (``x`` of shape ``(cols,)``) and small batches (``x`` of shape
  ``(batch, cols)``); float32 data and float32 accumulation, like BLAS's sgemv.
- fixed: the engine's interleaved CSC (row i on PE ``i % n_pe`` as local row
  ``i // n_pe``), integers throughout, rules from :mod:`dcsim.kernels.fixed`. This is
  the reference the RTL engine is verified against, integer for integer.
- dense numpy baselines on the decoded weights, for comparison.

Each kernel core is a small ``@njit(cache=True)`` function over plain arrays that fills
a preallocated output for a range of lines; a serial and a ``parallel=True`` driver call
it (one core, two compilations, as umap does), and a public wrapper validates the
inputs and raises :class:`dcsim.errors.FormatError` instead of reading out of bounds.
"""

from __future__ import annotations

import numba
import numpy as np

from dcsim.compress.layer import CompressedLayer
from dcsim.compress.sparse import RelIndexMatrix, encode, interleave
from dcsim.errors import FormatError
from dcsim.kernels.fixed import FixedFormat

__all__ = [
    "quantize_layer", "spmv_fixed", "layer_fixed",
    "spmv_csr", "spmv_csc", "layer_float", "dense_gemv", "layer_dense",
]


# ----------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------

def _check_matrix(m, order: str, what: str = "matrix") -> None:
    if not isinstance(m, RelIndexMatrix):
        raise FormatError(f"{what} must be a RelIndexMatrix, not {type(m).__name__}")
    if m.order != order:
        raise FormatError(f"{what} must be in {order!r} order, not {m.order!r}")
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


def _check_range(name: str, v: np.ndarray, lo: int, hi: int, fmt: FixedFormat) -> None:
    if v.size and (int(v.min()) < lo or int(v.max()) > hi):
        raise FormatError(
            f"{name} must lie in {lo}..{hi} ({fmt.act_bits}-bit fixed point), not "
            f"{int(v.min())}..{int(v.max())}; quantize with FixedFormat.to_fixed")


def _blocks(n: int, parts: int) -> np.ndarray:
    """Boundaries (parts + 1,) of ``parts`` near-equal blocks of ``range(n)``."""
    return np.linspace(0, n, parts + 1).astype(np.int64)


# ----------------------------------------------------------------------------------
# fixed point: the engine's interleaved CSC
# ----------------------------------------------------------------------------------

@numba.njit(cache=True)
def _fixed_pe(line_ptr, z, code, pe, n_pe, codebook_q, x_q, acc):
    """One PE's columns in order: ``acc[b, row] += x_q[b, j] * codebook_q[code]``.

    line_ptr (cols + 1,) int64, z/code (entries,), x_q (batch, cols) int64,
    acc (batch, rows) int64 -- this PE's rows only are written.
    """
    batch = x_q.shape[0]
    u_pe = np.uint64(pe)
    u_n_pe = np.uint64(n_pe)
    for j in range(line_ptr.shape[0] - 1):
        start = np.uint64(line_ptr[j])
        end = np.uint64(line_ptr[j + 1])
        if start == end:
            continue
        for b in range(batch):
            a = x_q[b, j]
            if a == 0:  # the leading-non-zero detector never broadcasts a zero
                continue
            pos = np.uint64(0)
            for e in range(start, end):
                p = pos + np.uint64(z[e])
                acc[b, p * u_n_pe + u_pe] += a * codebook_q[code[e]]
                pos = p + np.uint64(1)


@numba.njit(cache=True)
def _fixed_serial(pe_ptr, pe_off, z, code, n_pe, codebook_q, x_q, acc):
    for pe in range(n_pe):
        lo = pe_off[pe]
        hi = pe_off[pe + 1]
        _fixed_pe(pe_ptr[pe], z[lo:hi], code[lo:hi], pe, n_pe, codebook_q, x_q, acc)


@numba.njit(cache=True, parallel=True)
def _fixed_parallel(pe_ptr, pe_off, z, code, n_pe, codebook_q, x_q, acc):
    # PEs own disjoint rows, so they run concurrently without races, as in the engine
    for pe in numba.prange(n_pe):
        lo = pe_off[pe]
        hi = pe_off[pe + 1]
        _fixed_pe(pe_ptr[pe], z[lo:hi], code[lo:hi], pe, n_pe, codebook_q, x_q, acc)


def _gather_pes(pes, rows: int):
    """Check the per-PE CSC slices and pack them: (pe_ptr, pe_off, z, code, cols)."""
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
    pe_ptr = np.stack([np.asarray(m.line_ptr, dtype=np.int64) for m in pes])
    pe_off = np.zeros(n_pe + 1, dtype=np.int64)
    np.cumsum([m.n_entries for m in pes], out=pe_off[1:])
    z = np.concatenate([np.asarray(m.z) for m in pes])
    code = np.concatenate([np.asarray(m.code) for m in pes])
    return pe_ptr, pe_off, z, code, cols


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

    Columns are walked in order and zero activations skipped, as the engine's
    leading-non-zero detector does; integer sums are exact, so the result does not
    depend on ``n_pe`` nor on ``parallel``.
    Returns int64 (rows,) or (batch, rows) output activations in ``fmt``.
    """
    if not isinstance(fmt, FixedFormat):
        raise FormatError(f"fmt must be a FixedFormat, not {fmt!r}")
    pe_ptr, pe_off, z, code, cols = _gather_pes(pes, rows)
    fmt.check_cols(cols)
    codebook_q = _check_table("codebook_q", codebook_q, "int")
    if codebook_q.shape[0] == 0 or codebook_q[0] != 0:
        raise FormatError(
            f"codebook_q[0] must be 0 (the filler and pruned weight), not "
            f"{codebook_q[:1].tolist()!r}")
    _check_range("codebook_q", codebook_q, fmt.min_int, fmt.max_int, fmt)
    for pe, m in enumerate(pes):
        _check_codes_fit(m, codebook_q.shape[0], f"PE {pe}'s slice")
    bias_acc = _check_vector("bias_acc", bias_acc, rows, "int")
    _check_range("bias_acc", bias_acc, fmt.min_int << fmt.frac_bits,
                 fmt.max_int << fmt.frac_bits, fmt)
    x_q = _check_input("x_q", x_q, cols, "int")
    _check_range("x_q", x_q, fmt.min_int, fmt.max_int, fmt)
    single = x_q.ndim == 1
    x2 = np.ascontiguousarray(np.atleast_2d(x_q), dtype=np.int64)
    acc = np.repeat(bias_acc.astype(np.int64)[None, :], x2.shape[0], axis=0)
    run = _fixed_parallel if parallel and len(pes) > 1 else _fixed_serial
    run(pe_ptr, pe_off, z, code, len(pes), codebook_q.astype(np.int64), x2, acc)
    y = fmt.finish(acc, relu)
    return y[0] if single else y


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
# float: CSR and CSC on relative indices
# ----------------------------------------------------------------------------------

# Entry indices and positions are unsigned: numba then drops its negative-index
# wrap-around checks, which halves the instructions per entry (measured 8.3 -> 4.3 ms
# on Alex-6). Two accumulators break the float add chain.
_U1 = np.uint64(1)
_U2 = np.uint64(2)


@numba.njit(cache=True)
def _csr_rows(line_ptr, z, code, codebook, bias, x, y, r0, r1):
    """Rows r0..r1-1 of y (rows,) = W x + b; x (cols,) float32."""
    for i in range(r0, r1):
        acc0 = np.float32(0.0)
        acc1 = np.float32(0.0)
        pos = np.uint64(0)  # position of the next entry when z == 0
        e = np.uint64(line_ptr[i])
        end = np.uint64(line_ptr[i + 1])
        while e + _U2 <= end:
            p0 = pos + np.uint64(z[e])
            p1 = p0 + np.uint64(z[e + _U1]) + _U1
            acc0 += codebook[code[e]] * x[p0]
            acc1 += codebook[code[e + _U1]] * x[p1]
            pos = p1 + _U1
            e += _U2
        if e < end:
            acc0 += codebook[code[e]] * x[pos + np.uint64(z[e])]
        y[i] = (acc0 + acc1) + bias[i]


@numba.njit(cache=True)
def _csr_rows_batch(line_ptr, z, code, codebook, bias, xt, yt, r0, r1):
    """Rows r0..r1-1 of yt (rows, batch) = W xt + b; xt (cols, batch) float32."""
    batch = xt.shape[1]
    for i in range(r0, r1):
        for b in range(batch):
            yt[i, b] = bias[i]
        pos = np.uint64(0)
        for e in range(np.uint64(line_ptr[i]), np.uint64(line_ptr[i + 1])):
            p = pos + np.uint64(z[e])
            w = codebook[code[e]]
            for b in range(batch):
                yt[i, b] += w * xt[p, b]
            pos = p + _U1


@numba.njit(cache=True)
def _csr_serial(line_ptr, z, code, codebook, bias, x, y, bounds):
    _csr_rows(line_ptr, z, code, codebook, bias, x, y, 0, y.shape[0])


@numba.njit(cache=True, parallel=True)
def _csr_parallel(line_ptr, z, code, codebook, bias, x, y, bounds):
    for k in numba.prange(bounds.shape[0] - 1):
        _csr_rows(line_ptr, z, code, codebook, bias, x, y, bounds[k], bounds[k + 1])


@numba.njit(cache=True)
def _csr_batch_serial(line_ptr, z, code, codebook, bias, xt, yt, bounds):
    _csr_rows_batch(line_ptr, z, code, codebook, bias, xt, yt, 0, yt.shape[0])


@numba.njit(cache=True, parallel=True)
def _csr_batch_parallel(line_ptr, z, code, codebook, bias, xt, yt, bounds):
    for k in numba.prange(bounds.shape[0] - 1):
        _csr_rows_batch(line_ptr, z, code, codebook, bias, xt, yt, bounds[k], bounds[k + 1])


@numba.njit(cache=True)
def _csc_cols(line_ptr, z, code, codebook, xt, yt, c0, c1):
    """yt (rows, batch) += columns c0..c1-1 of W times xt (cols, batch); zero x skipped."""
    batch = xt.shape[1]
    for j in range(c0, c1):
        start = np.uint64(line_ptr[j])
        end = np.uint64(line_ptr[j + 1])
        for b in range(batch):
            a = xt[j, b]
            if a == 0:
                continue
            pos = np.uint64(0)
            for e in range(start, end):
                p = pos + np.uint64(z[e])
                yt[p, b] += codebook[code[e]] * a
                pos = p + _U1


@numba.njit(cache=True)
def _csc_serial(line_ptr, z, code, codebook, bias, xt, yt, bounds):
    for i in range(yt.shape[0]):
        for b in range(yt.shape[1]):
            yt[i, b] = bias[i]
    _csc_cols(line_ptr, z, code, codebook, xt, yt, 0, xt.shape[0])


@numba.njit(cache=True, parallel=True)
def _csc_parallel(line_ptr, z, code, codebook, bias, xt, yt, bounds):
    # columns scatter into every row, so each block sums into its own partial output
    n_blocks = bounds.shape[0] - 1
    partial = np.zeros((n_blocks, yt.shape[0], yt.shape[1]), dtype=yt.dtype)
    for k in numba.prange(n_blocks):
        _csc_cols(line_ptr, z, code, codebook, xt, partial[k], bounds[k], bounds[k + 1])
    for i in numba.prange(yt.shape[0]):
        for b in range(yt.shape[1]):
            s = bias[i]
            for k in range(n_blocks):
                s += partial[k, i, b]
            yt[i, b] = s


def _float_args(m, order, codebook, bias, x, check):
    if check:
        _check_matrix(m, order)
    elif not isinstance(m, RelIndexMatrix) or m.order != order:
        raise FormatError(f"matrix must be a RelIndexMatrix in {order!r} order, not {m!r}")
    rows, cols = m.shape
    codebook = _check_table("codebook", codebook, "float")
    if check:
        _check_codes_fit(m, codebook.shape[0])
    bias = _check_vector("bias", bias, rows, "float")
    x = _check_input("x", x, cols, "float")
    return (np.ascontiguousarray(codebook, dtype=np.float32),
            np.ascontiguousarray(bias, dtype=np.float32), x)


def spmv_csr(m: RelIndexMatrix, codebook, bias, x, parallel: bool = False,
             check: bool = True) -> np.ndarray:
    """Float ``y = W x + b`` from a relative-index CSR matrix (a row per output).

    m : RelIndexMatrix, order "csr", shape (rows, cols); codebook float (n_codes,);
    bias float (rows,); x float (cols,) or (batch, cols).
    parallel : bool -- split the rows into blocks over the numba threads.
    check : bool -- validate ``m`` (pointers, positions, codes; O(entries)). Pass False
        only for repeated products on a matrix that passed a checked call: a bad matrix
        then reads out of bounds. ``codebook``, ``bias`` and ``x`` are always checked.
    Returns float32 (rows,) or (batch, rows).
    """
    codebook, bias, x = _float_args(m, "csr", codebook, bias, x, check)
    rows = m.shape[0]
    bounds = _blocks(rows, 4 * numba.get_num_threads())
    if x.ndim == 1:
        y = np.empty(rows, dtype=np.float32)
        run = _csr_parallel if parallel else _csr_serial
        run(m.line_ptr, m.z, m.code, codebook, bias,
            np.ascontiguousarray(x, dtype=np.float32), y, bounds)
        return y
    yt = np.empty((rows, x.shape[0]), dtype=np.float32)
    run = _csr_batch_parallel if parallel else _csr_batch_serial
    run(m.line_ptr, m.z, m.code, codebook, bias,
        np.ascontiguousarray(x.T, dtype=np.float32), yt, bounds)
    return np.ascontiguousarray(yt.T)


def spmv_csc(m: RelIndexMatrix, codebook, bias, x, parallel: bool = False,
             check: bool = True) -> np.ndarray:
    """Float ``y = W x + b`` from a relative-index CSC matrix; zero inputs are skipped.

    m : RelIndexMatrix, order "csc", shape (rows, cols); codebook float (n_codes,);
    bias float (rows,); x float (cols,) or (batch, cols).
    parallel : bool -- split the columns into one block per numba thread, each
    accumulating into its own partial output, summed at the end.
    check : bool -- as for :func:`spmv_csr`.
    Returns float32 (rows,) or (batch, rows).
    """
    codebook, bias, x = _float_args(m, "csc", codebook, bias, x, check)
    rows, cols = m.shape
    single = x.ndim == 1
    xt = np.ascontiguousarray(np.atleast_2d(x).T, dtype=np.float32)
    yt = np.empty((rows, xt.shape[1]), dtype=np.float32)
    run = _csc_parallel if parallel else _csc_serial
    run(m.line_ptr, m.z, m.code, codebook, bias, xt, yt,
        _blocks(cols, numba.get_num_threads()))
    return yt[:, 0].copy() if single else np.ascontiguousarray(yt.T)


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
