"""Layers: numerical gradient checks (float64), conv against a plain loop, errors."""

import re

import numpy as np
import pytest

from dcsim.errors import ConfigError
from dcsim.nn.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU, _valid_span, xavier

SEED = 1234


def exact(message):
    return f"^{re.escape(message)}$"


def as_float64(layer):
    layer.params = {k: v.astype(np.float64) for k, v in layer.params.items()}
    return layer


def numeric_grad(f, a, eps=1e-6):
    """Central differences of the scalar f() with respect to every entry of a."""
    g = np.zeros_like(a)
    flat, gflat = a.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return g


def check_layer_grads(layer, x, rng):
    """Compare backward() with central differences of sum(forward(x) * r)."""
    r = rng.standard_normal(layer.forward(x).shape)

    def f():
        return float(np.sum(layer.forward(x) * r))

    layer.forward(x, train=True)
    dx = layer.backward(r)
    analytic = {k: v.copy() for k, v in layer.grads.items()}
    np.testing.assert_allclose(dx, numeric_grad(f, x), rtol=1e-6, atol=1e-7)
    for key, value in layer.params.items():
        np.testing.assert_allclose(analytic[key], numeric_grad(f, value),
                                   rtol=1e-6, atol=1e-7, err_msg=key)


def test_dense_gradients():
    print("seed", SEED)
    rng = np.random.default_rng(SEED)
    layer = as_float64(Dense(7, 5, rng=rng))
    layer.params["b"] += rng.standard_normal(5)
    check_layer_grads(layer, rng.standard_normal((4, 7)), rng)


@pytest.mark.parametrize("stride, padding", [(1, 0), (2, 1), (3, 2)])
def test_conv_gradients(stride, padding):
    print("seed", SEED)
    rng = np.random.default_rng(SEED)
    layer = as_float64(Conv2D(2, 3, 3, stride=stride, padding=padding, rng=rng))
    layer.params["b"] += rng.standard_normal(3)
    check_layer_grads(layer, rng.standard_normal((2, 2, 7, 6)), rng)


def test_maxpool_relu_flatten_gradients():
    print("seed", SEED)
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((2, 3, 6, 4))  # no ties, no exact zeros
    check_layer_grads(MaxPool2D(2), x, rng)
    check_layer_grads(MaxPool2D(3), rng.standard_normal((1, 2, 6, 6)), rng)
    check_layer_grads(ReLU(), x, rng)
    check_layer_grads(Flatten(), x, rng)


def conv_loop(x, W, b, stride, padding):
    """Obviously right cross-correlation: one output pixel at a time."""
    n, c, h, w = x.shape
    out, _, k, _ = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh = (h + 2 * padding - k) // stride + 1
    ow = (w + 2 * padding - k) // stride + 1
    y = np.zeros((n, out, oh, ow))
    for i in range(n):
        for o in range(out):
            for r in range(oh):
                for s in range(ow):
                    patch = xp[i, :, r * stride:r * stride + k, s * stride:s * stride + k]
                    y[i, o, r, s] = np.sum(patch * W[o]) + b[o]
    return y


@pytest.mark.parametrize("stride, padding, k", [(1, 0, 5), (2, 1, 3), (1, 2, 3), (3, 0, 2)])
def test_conv_forward_matches_loop(stride, padding, k):
    print("seed", SEED)
    rng = np.random.default_rng(SEED)
    layer = Conv2D(3, 4, k, stride=stride, padding=padding, rng=rng)
    layer.params["b"][:] = rng.standard_normal(4)
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    y = layer.forward(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, conv_loop(x, layer.params["W"], layer.params["b"],
                                            stride, padding), rtol=1e-5, atol=1e-5)


def test_maxpool_forward_and_ties():
    x = np.array([[[[1, 3, 2, 2], [3, 0, 2, 2]]]], dtype=np.float32)  # (1,1,2,4)
    pool = MaxPool2D(2)
    y = pool.forward(x, train=True)
    np.testing.assert_array_equal(y, [[[[3, 2]]]])
    dx = pool.backward(np.array([[[[10, 20]]]], dtype=np.float32))
    # the gradient of a tied window goes to its first maximum only, as Caffe
    np.testing.assert_array_equal(dx, [[[[0, 10, 20, 0], [0, 0, 0, 0]]]])


def test_xavier_is_caffe_fan_in_uniform():
    w = xavier(np.random.default_rng(SEED), (500, 800), 800)
    assert w.dtype == np.float32
    limit = np.sqrt(3 / 800)
    assert w.min() >= -limit and w.max() <= limit
    assert abs(w.std() - limit / np.sqrt(3)) < 1e-3


def test_float32_stays_float32():
    rng = np.random.default_rng(SEED)
    x = rng.random((4, 1, 12, 12), dtype=np.float32)
    for layer in (Conv2D(1, 2, 5, rng=rng), MaxPool2D(2), ReLU()):
        x = layer.forward(x, train=True)
        assert x.dtype == np.float32
        assert layer.backward(np.ones_like(x)).dtype == np.float32


def test_bad_arguments():
    with pytest.raises(ConfigError, match=exact(
            "Dense in_features must be a positive integer, not 0")):
        Dense(0, 3)
    with pytest.raises(ConfigError, match=exact(
            "Conv2D padding must be a non-negative integer, not -1")):
        Conv2D(1, 1, 3, padding=-1)
    with pytest.raises(ConfigError, match=exact(
            "MaxPool2D input height and width must be multiples of 2, not 5 x 4")):
        MaxPool2D(2).forward(np.zeros((1, 1, 5, 4), dtype=np.float32))
    with pytest.raises(ConfigError, match=exact(
            "Conv2D input must be at least 5 x 5 pixels after padding, not 4 x 6")):
        Conv2D(1, 1, 5).forward(np.zeros((1, 1, 4, 6), dtype=np.float32))
    with pytest.raises(RuntimeError, match=exact(
            "ReLU.backward needs a preceding forward(x, train=True)")):
        ReLU().backward(np.zeros(3))


def test_valid_span_matches_brute_force():
    """The im2col kernels' bounds: outputs o whose input o*stride + j - pad is inside."""
    for stride in (1, 2, 3):
        for pad in range(3):
            for size in range(1, 8):
                for k in range(1, size + 2 * pad + 1):
                    n_out = (size + 2 * pad - k) // stride + 1
                    for j in range(k):
                        lo, hi = _valid_span(j, stride, pad, size, n_out)
                        want = [o for o in range(n_out) if 0 <= o * stride + j - pad < size]
                        assert list(range(lo, hi)) == want, (stride, pad, size, k, j)
