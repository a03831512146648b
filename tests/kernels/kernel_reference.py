"""Slow, obviously right references and small models shared by the kernel tests."""

import numpy as np

from dcsim.compress.layer import CompressedLayer, CompressedModel


def reference_fixed(codes, codebook_q, bias_acc, x_q, frac_bits, act_bits, relu):
    """Plain-Python integers: acc = bias + sum_j x_j * cb[code_ij]; round, saturate, ReLU."""
    rows, cols = codes.shape
    lo, hi = -(2 ** (act_bits - 1)), 2 ** (act_bits - 1) - 1
    out = []
    for i in range(rows):
        acc = int(bias_acc[i])
        for j in range(cols):
            acc += int(x_q[j]) * int(codebook_q[int(codes[i, j])])
        y = (acc + 2 ** (frac_bits - 1)) // 2 ** frac_bits  # floor division == arithmetic shift
        y = min(max(y, lo), hi)
        out.append(max(y, 0) if relu else y)
    return np.array(out, dtype=np.int64)


def random_model_layer(rng, name, kind, shape, density, relu=False, pool=0, stride=1,
                       padding=0, scale=0.3):
    """A CompressedLayer with 4-bit codes of the given density, random codebook and bias."""
    rows, cols = shape[0], int(np.prod(shape[1:]))
    codes = rng.integers(1, 16, size=(rows, cols)) * (rng.random((rows, cols)) < density)
    codebook = np.r_[0.0, rng.normal(0, scale, 15)]
    return CompressedLayer(name, kind, shape, codes.astype(np.uint8), codebook,
                           rng.normal(0, 0.1, rows), 4, 4, relu=relu, pool=pool,
                           stride=stride, padding=padding)


def tiny_model(rng):
    """conv(3x3, pad 1) -> pool 2 -> conv(3x3, stride 2, ReLU) -> fc(ReLU) -> fc."""
    return CompressedModel("tiny", (2, 8, 8), [
        random_model_layer(rng, "conv1", "conv", (3, 2, 3, 3), 0.6, pool=2, padding=1),
        random_model_layer(rng, "conv2", "conv", (4, 3, 3, 3), 0.5, relu=True, stride=2),
        random_model_layer(rng, "ip1", "fc", (12, 4), 0.7, relu=True),
        random_model_layer(rng, "ip2", "fc", (10, 12), 0.5),
    ])


def dense_forward(model, x):
    """Plain numpy: direct convolution loops, pool, ReLU, fc -- no im2col."""
    for layer in model.layers:
        w = layer.weights().astype(np.float64)
        if layer.kind == "fc":
            x = x.reshape(x.shape[0], -1) @ w.T + layer.bias
        else:
            p, s = layer.padding, layer.stride
            xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
            kh, kw = w.shape[2:]
            ho = (xp.shape[2] - kh) // s + 1
            wo = (xp.shape[3] - kw) // s + 1
            y = np.zeros((x.shape[0], w.shape[0], ho, wo))
            for i in range(ho):
                for j in range(wo):
                    patch = xp[:, :, i * s:i * s + kh, j * s:j * s + kw]
                    y[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w) + layer.bias
            if layer.pool:
                k = layer.pool
                y = y[:, :, :ho // k * k, :wo // k * k].reshape(
                    y.shape[0], y.shape[1], ho // k, k, wo // k, k).max(axis=(3, 5))
            x = y
        if layer.relu:
            x = np.maximum(x, 0)
    return x.reshape(x.shape[0], -1)


def reference_quantize(values, frac_bits, act_bits):
    """Plain-Python round half up and saturate: floats -> fixed-point integers."""
    import math
    lo, hi = -(2 ** (act_bits - 1)), 2 ** (act_bits - 1) - 1
    return [min(max(math.floor(float(v) * 2 ** frac_bits + 0.5), lo), hi) for v in values]


def _finish(acc, frac_bits, act_bits, relu):
    lo, hi = -(2 ** (act_bits - 1)), 2 ** (act_bits - 1) - 1
    y = min(max((acc + 2 ** (frac_bits - 1)) // 2 ** frac_bits, lo), hi)
    return max(y, 0) if relu else y


def reference_conv_fixed(layer, x_q, frac_bits, act_bits):
    """Plain-Python integer convolution of one (C, H, W) map: direct loops over output
    channel, position and kernel tap (no im2col), then round/saturate/ReLU per output and
    an integer max-pool of ``layer.pool`` windows. Returns (out_ch, Ho, Wo) int64."""
    out_ch, in_ch, kh, kw = layer.shape
    cb = reference_quantize(layer.codebook, frac_bits, act_bits)
    bias = [b * 2 ** frac_bits for b in reference_quantize(layer.bias, frac_bits, act_bits)]
    c_in, h, w = x_q.shape
    p, s = layer.padding, layer.stride
    ho, wo = (h + 2 * p - kh) // s + 1, (w + 2 * p - kw) // s + 1
    y = np.zeros((out_ch, ho, wo), dtype=np.int64)
    for o in range(out_ch):
        for i in range(ho):
            for j in range(wo):
                acc = bias[o]
                for c in range(in_ch):
                    for a in range(kh):
                        for b in range(kw):
                            r, q = i * s + a - p, j * s + b - p
                            if 0 <= r < h and 0 <= q < w:
                                code = int(layer.codes[o, (c * kh + a) * kw + b])
                                acc += int(x_q[c, r, q]) * cb[code]
                y[o, i, j] = _finish(acc, frac_bits, act_bits, layer.relu)
    if layer.pool:
        k = layer.pool
        pooled = np.zeros((out_ch, ho // k, wo // k), dtype=np.int64)
        for o in range(out_ch):
            for i in range(ho // k):
                for j in range(wo // k):
                    pooled[o, i, j] = max(int(y[o, i * k + a, j * k + b])
                                          for a in range(k) for b in range(k))
        y = pooled
    return y


def reference_trace_fixed(model, x_image, frac_bits, act_bits):
    """Each layer's (input, output) integers for one float image, by the plain-Python
    references only: the independent expectation for ``kernels.run``'s fixed mode."""
    shape = model.input_shape
    x_q = np.array(reference_quantize(np.ravel(x_image), frac_bits, act_bits),
                   dtype=np.int64).reshape(shape)
    trace = []
    for layer in model.layers:
        if layer.kind == "conv":
            y = reference_conv_fixed(layer, x_q, frac_bits, act_bits)
        else:
            x_q = x_q.reshape(-1)
            cb = reference_quantize(layer.codebook, frac_bits, act_bits)
            bias = [b * 2 ** frac_bits for b in
                    reference_quantize(layer.bias, frac_bits, act_bits)]
            y = reference_fixed(layer.codes, cb, bias, x_q, frac_bits, act_bits, layer.relu)
        trace.append((x_q, y))
        x_q = y
    return trace
