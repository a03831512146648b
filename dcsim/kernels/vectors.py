"""Golden test vectors: one layer's encoded form, inputs and expected outputs, as .npz."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dcsim.compress.layer import CompressedModel
from dcsim.compress.sparse import interleave
from dcsim.errors import FormatError
from dcsim.files import write_atomic
from dcsim.kernels.fixed import FixedFormat
from dcsim.kernels.run import im2col, trace_fixed_batch
from dcsim.kernels.spmv import layer_float, quantize_layer, spmv_fixed


def _layer_inputs(model, index, images, n_inputs, fmt, rng):
    """Fixed-point input vectors (n, cols) of layer ``index``."""
    layer = model.layers[index]
    if images is None:
        x_q = rng.integers(fmt.min_int, fmt.max_int + 1, size=(n_inputs, layer.cols))
        previous_relu = index > 0 and model.layers[index - 1].relu
        if previous_relu:
            x_q = np.abs(x_q) // 2
        # activations are sparse after a ReLU: the engine skips zeros, so test that path
        x_q[rng.random(x_q.shape) < 0.5] = 0
        return x_q.astype(np.int64)
    vectors = []
    for trace in trace_fixed_batch(model, images, fmt):
        x_in = trace[index][0]
        if layer.kind == "conv":
            _, _, kh, kw = layer.shape
            x_in = im2col(x_in[None], kh, kw, layer.stride, layer.padding)
        vectors.extend(x_in.reshape(-1, layer.cols))
        if len(vectors) >= n_inputs:
            break
    return np.stack(vectors[:n_inputs]).astype(np.int64)


def write_vectors(model: CompressedModel, layer_name: str, out_dir, n_inputs: int = 8,
                  fmt: FixedFormat = FixedFormat(), n_pe: int = 4, idx_bits: int = 4,
                  images=None, seed: int = 0) -> Path:
    """Write ``out_dir/<layer_name>.npz`` with a layer's golden vectors; return its path.

    Inputs are the layer's real fixed-point inputs for ``images`` (float, shape
    (N, *input_shape); for a conv layer: patch vectors) or, without images, ``n_inputs``
    random ``fmt`` integers (seeded, half of them zero, non-negative after a ReLU).
    The file is written to a temporary name and renamed, so it is whole or absent.

    Keys (``n`` inputs, ``rows`` x ``cols`` matrix, ``E`` entries over all PEs):

    - ``x_q`` int64 (n, cols) -- input activations in ``fmt``; ``x`` float64 (n, cols)
      -- the same values as floats (``x_q * 2**-frac_bits``).
    - ``y_q`` int64 (n, rows) -- expected engine outputs: ``finish(bias_acc + W x_q)``
      rounded, saturated, ReLU'd if ``relu`` (no pooling); the fixed kernel's result.
    - ``y`` float32 (n, rows) -- the float kernel's ``W x + b`` (ReLU'd if ``relu``).
    - ``codes`` (rows, cols) uint8/uint16 -- 0 = pruned; ``codebook`` float32
      (2**code_bits,); ``codebook_q`` int64; ``bias`` float32 (rows,); ``bias_acc``
      int64 (rows,) -- accumulator initial values.
    - ``pe_line_ptr`` int64 (n_pe, cols + 1) -- PE p's column pointers, relative to its
      own entries (``pe_line_ptr[p, 0] == 0``); ``pe_offset`` int64 (n_pe + 1,) -- PE
      p's entries are ``pe_z[pe_offset[p]:pe_offset[p+1]]`` and likewise ``pe_code``;
      ``pe_z``, ``pe_code`` int64 (E,) -- relative row index and code of each entry
      (fillers: z = 2**idx_bits - 1, code 0). PE p holds rows p, p + n_pe, ...
    - scalars (int64): ``rows``, ``cols``, ``n_pe``, ``idx_bits``, ``code_bits``,
      ``act_bits``, ``frac_bits``, ``acc_bits``, ``relu`` (0/1), ``seed``;
      ``layer_name`` str.
    """
    layer = model.layer(layer_name)
    index = [l.name for l in model.layers].index(layer_name)
    if not isinstance(n_inputs, (int, np.integer)) or n_inputs < 1:
        raise FormatError(f"n_inputs must be a positive integer, not {n_inputs!r}")
    rng = np.random.default_rng(seed)
    x_q = _layer_inputs(model, index, images, n_inputs, fmt, rng)
    codebook_q, bias_acc = quantize_layer(layer, fmt)
    pes = interleave(layer.codes, n_pe, idx_bits)
    y_q = spmv_fixed(pes, layer.rows, codebook_q, bias_acc, x_q, fmt, layer.relu)
    y = layer_float(layer, fmt.to_float(x_q), "csr", parallel=False)
    if layer.relu:
        y = np.maximum(y, 0)
    pe_offset = np.zeros(n_pe + 1, dtype=np.int64)
    np.cumsum([m.n_entries for m in pes], out=pe_offset[1:])
    arrays = dict(
        x_q=x_q, x=fmt.to_float(x_q), y_q=y_q, y=y,
        codes=layer.codes, codebook=layer.codebook, codebook_q=codebook_q,
        bias=layer.bias, bias_acc=bias_acc,
        pe_line_ptr=np.stack([m.line_ptr for m in pes]).astype(np.int64),
        pe_offset=pe_offset,
        pe_z=np.concatenate([m.z for m in pes]).astype(np.int64),
        pe_code=np.concatenate([m.code for m in pes]).astype(np.int64),
        rows=np.int64(layer.rows), cols=np.int64(layer.cols), n_pe=np.int64(n_pe),
        idx_bits=np.int64(idx_bits), code_bits=np.int64(layer.code_bits),
        act_bits=np.int64(fmt.act_bits), frac_bits=np.int64(fmt.frac_bits),
        acc_bits=np.int64(fmt.acc_bits), relu=np.int64(layer.relu), seed=np.int64(seed),
        layer_name=np.str_(layer.name))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{layer.name}.npz"
    return write_atomic(path, lambda f: np.savez(f, **arrays))
