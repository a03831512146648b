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
