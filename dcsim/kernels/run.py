"""Whole-model inference and evaluation of a compressed model on the kernels.

fc layers run on the sparse kernels; a conv layer is lowered to a matrix product: the
input (N, C, H, W) is unfolded into patch vectors (im2col, patch entries in
(in_ch, kh, kw) order, the order of the flattened kernels), the sparse CSR kernel
multiplies the (out_ch, in_ch*kh*kw) filter matrix by every patch, and the result is
folded back to (N, out_ch, Ho, Wo); then ReLU if ``layer.relu`` and a ``layer.pool``
max-pool (size = stride = pool) follow. A conv output is flattened in (C, H, W) order
before an fc layer. Fixed mode runs the same steps on integers (the fixed kernel,
integer max-pool) with inputs quantized by ``fmt.to_fixed``.

Each layer's matrix is encoded, validated and packed once per call (``pack``,
``plan_fixed``); the chunks of images then go through the batched kernels unchecked.
"""

from __future__ import annotations

import numba
import numpy as np

from dcsim.compress.layer import CompressedLayer, CompressedModel
from dcsim.compress.sparse import encode, interleave
from dcsim.errors import FormatError
from dcsim.kernels.fixed import FixedFormat
from dcsim.kernels.spmv import (
    pack, plan_fixed, quantize_layer, spmv_fixed_plan, spmv_packed,
)

MODES = ("dense", "float", "fixed")

# images per chunk: bounds the im2col buffers (LeNet-5 conv1: 576 patches per image)
CHUNK = 256


def im2col(x: np.ndarray, kh: int, kw: int, stride: int, padding: int) -> np.ndarray:
    """Patches of x (N, C, H, W) -> (N, Ho, Wo, C*kh*kw), entries in (C, kh, kw) order."""
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
    win = win[:, :, ::stride, ::stride]  # (N, C, Ho, Wo, kh, kw)
    n, c, ho, wo = win.shape[:4]
    return np.ascontiguousarray(win.transpose(0, 2, 3, 1, 4, 5)).reshape(n, ho, wo, c * kh * kw)


def max_pool(x: np.ndarray, size: int) -> np.ndarray:
    """Max over non-overlapping size x size windows of x (N, C, H, W); a ragged edge is
    dropped (Caffe's floor rounding for even inputs, as in LeNet-5)."""
    n, c, h, w = x.shape
    ho, wo = h // size, w // size
    x = x[:, :, :ho * size, :wo * size].reshape(n, c, ho, size, wo, size)
    return x.max(axis=(3, 5))


def _layer_input(layer: CompressedLayer, x: np.ndarray) -> np.ndarray:
    """Reshape a batch to what ``layer`` takes: (N, cols) for fc, (N, C, H, W) for conv."""
    if layer.kind == "fc":
        x = x.reshape(x.shape[0], -1)
        if x.shape[1] != layer.cols:
            raise FormatError(
                f"Layer {layer.name!r} must get {layer.cols} inputs, not {x.shape[1]}; "
                f"check the model's layer shapes")
        return x
    if x.ndim != 4 or x.shape[1] != layer.shape[1]:
        raise FormatError(
            f"Layer {layer.name!r} must get (N, {layer.shape[1]}, H, W) inputs, "
            f"not {x.shape}")
    return x


def _apply_layer(layer: CompressedLayer, x: np.ndarray, matmul) -> np.ndarray:
    """One layer on a batch; ``matmul(patches (P, cols)) -> (P, rows)`` does W x + b
    (and, in fixed mode, rounding, saturation and the layer's ReLU)."""
    x = _layer_input(layer, x)
    if layer.kind == "fc":
        return matmul(x)
    _, _, kh, kw = layer.shape
    patches = im2col(x, kh, kw, layer.stride, layer.padding)
    n, ho, wo, cols = patches.shape
    y = matmul(patches.reshape(n * ho * wo, cols))
    y = y.reshape(n, ho, wo, layer.rows).transpose(0, 3, 1, 2)
    if layer.pool:
        y = max_pool(y, layer.pool)
    return np.ascontiguousarray(y)


def _float_matmul(layer: CompressedLayer, mode: str):
    # the matrix is encoded, validated and packed once per run, not once per chunk
    if mode == "dense":
        w = layer.weights().reshape(layer.matrix_shape)
        multiply = lambda x: x @ w.T + layer.bias  # noqa: E731
    else:
        p = pack(encode(layer.codes, layer.index_bits, "csr"), layer.codebook)
        multiply = lambda x: spmv_packed(p, layer.bias, x)  # noqa: E731

    def matmul(x):
        y = multiply(np.asarray(x, dtype=np.float32))
        return np.maximum(y, 0) if layer.relu else y
    return matmul


def _fixed_matmul(layer: CompressedLayer, fmt: FixedFormat):
    codebook_q, bias_acc = quantize_layer(layer, fmt)
    n_pe = numba.get_num_threads()
    plan = plan_fixed(interleave(layer.codes, n_pe, layer.index_bits), layer.rows,
                      codebook_q, fmt)
    return lambda x_q: spmv_fixed_plan(plan, bias_acc, x_q, layer.relu, parallel=True)


def _check_batch(model: CompressedModel, x) -> np.ndarray:
    if not isinstance(model, CompressedModel):
        raise FormatError(f"model must be a CompressedModel, not {type(model).__name__}")
    x = np.asarray(x)
    flat = int(np.prod(model.input_shape))
    if x.ndim >= 2 and x.shape[1:] == model.input_shape:
        return x
    if x.ndim == 2 and x.shape[1] == flat:
        return x.reshape((x.shape[0],) + model.input_shape)
    raise FormatError(
        f"x must have shape (N, {', '.join(map(str, model.input_shape))}) or "
        f"(N, {flat}), not {x.shape}")


def _forward(model, x, matmuls):
    for layer, matmul in zip(model.layers, matmuls):
        x = _apply_layer(layer, x, matmul)
    return x.reshape(x.shape[0], -1)


def run_fixed(model: CompressedModel, x, fmt: FixedFormat = FixedFormat()) -> np.ndarray:
    """Fixed-point inference: float images x (N, *input_shape) or (N, prod) ->
    the last layer's int64 outputs (N, rows_last) in ``fmt``."""
    x = _check_batch(model, x)
    matmuls = [_fixed_matmul(layer, fmt) for layer in model.layers]
    out = [_forward(model, fmt.to_fixed(x[i:i + CHUNK]), matmuls)
           for i in range(0, x.shape[0], CHUNK)]
    return np.concatenate(out) if out else np.zeros((0, model.layers[-1].rows), np.int64)


def run(model: CompressedModel, x, mode: str = "float",
        fmt: FixedFormat = FixedFormat()) -> np.ndarray:
    """Logits of a compressed model: x float (N, *input_shape) or (N, prod(input_shape)).

    mode : "dense" -- decoded float32 weights, numpy matmul (the comparison point);
        "float" -- the sparse weight-shared float kernel (CSR, parallel);
        "fixed" -- the bit-exact fixed-point kernel; its integers converted to floats.
    Returns float (N, rows_last): float32 for dense/float, float64 for fixed.
    """
    if mode not in MODES:
        raise FormatError(f"mode must be one of {MODES}, not {mode!r}")
    if mode == "fixed":
        return fmt.to_float(run_fixed(model, x, fmt))
    x = _check_batch(model, x)
    matmuls = [_float_matmul(layer, mode) for layer in model.layers]
    out = [_forward(model, np.asarray(x[i:i + CHUNK], dtype=np.float32), matmuls)
           for i in range(0, x.shape[0], CHUNK)]
    return np.concatenate(out) if out else np.zeros((0, model.layers[-1].rows), np.float32)


def trace_fixed_batch(model: CompressedModel, x, fmt: FixedFormat = FixedFormat()) -> list:
    """:func:`trace_fixed` of every image of ``x`` (N, *input_shape) or (N, prod), each
    layer planned once for the whole batch (not once per image). Returns a list of N
    traces."""
    x = fmt.to_fixed(_check_batch(model, np.asarray(x)))
    matmuls = [_fixed_matmul(layer, fmt) for layer in model.layers]
    traces = [[] for _ in range(x.shape[0])]
    for start in range(0, x.shape[0], CHUNK):
        chunk = x[start:start + CHUNK]
        for layer, matmul in zip(model.layers, matmuls):
            x_in = _layer_input(layer, chunk)
            y = _apply_layer(layer, x_in, matmul)
            for k in range(x_in.shape[0]):
                traces[start + k].append((x_in[k].copy(), y[k].copy()))
            chunk = y
    return traces


def trace_fixed(model: CompressedModel, x_image, fmt: FixedFormat = FixedFormat()) -> list:
    """Each layer's fixed-point input and output integers for one image.

    x_image : float, shape ``input_shape`` or (prod(input_shape),).
    Returns a list, in layer order, of ``(x_q_in, y_q_out)`` int64 arrays: for an fc
    layer (cols,) and (rows,) -- exactly what the engine reads and must write; for a
    conv layer the (C, H, W) input map and the (out_ch, Ho, Wo) output after ReLU/pool.
    The last ``y_q_out`` equals ``run_fixed(model, x_image[None])[0]``.
    """
    return trace_fixed_batch(model, np.asarray(x_image)[None], fmt)[0]


def evaluate(model: CompressedModel, x, y, fmt: FixedFormat = FixedFormat()) -> dict:
    """Top-1 errors, in percent, of the three modes on images x with labels y (N,).

    Returns ``{"images": N, "dense_error": ..., "float_error": ..., "fixed_error": ...}``.
    """
    x = _check_batch(model, x)
    y = np.asarray(y)
    if y.shape != (x.shape[0],):
        raise FormatError(f"y must have shape ({x.shape[0]},) like x, not {y.shape}")
    result = {"images": int(x.shape[0])}
    for mode in MODES:
        logits = run(model, x, mode, fmt)
        wrong = int(np.count_nonzero(np.argmax(logits, axis=1) != y)) if len(y) else 0
        result[f"{mode}_error"] = 100.0 * wrong / max(len(y), 1)
    return result
