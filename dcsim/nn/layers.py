"""Layers with forward and backward passes on numpy arrays (NCHW images, float32).

Every layer has ``forward(x, train)`` and ``backward(grad_out) -> grad_in`` and the
dicts ``params`` and ``grads`` (empty for layers without weights). ``forward(...,
train=True)`` keeps what ``backward`` needs; layers compute in the dtype of their
input and parameters, so float64 copies can be gradient-checked.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from dcsim.errors import ConfigError

__all__ = ["Layer", "Dense", "Conv2D", "MaxPool2D", "ReLU", "Flatten", "xavier"]


def xavier(rng: np.random.Generator, shape: tuple, fan_in: int) -> np.ndarray:
    """Caffe's ``xavier`` filler (variance_norm FAN_IN): uniform in +-sqrt(3 / fan_in),
    float32."""
    scale = np.sqrt(3.0 / fan_in)
    return rng.uniform(-scale, scale, size=shape).astype(np.float32)


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{what} must be a positive integer, not {value!r}")
    return int(value)


class Layer:
    """Base class: a layer without parameters. ``name`` is the paper's name of a
    parameter layer (``ip1``, ``conv2``), None otherwise. ``input_grad`` False lets the
    first layer of a model skip computing the gradient of its input."""

    name: str | None = None

    def __init__(self):
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.input_grad = True
        self._cache = None

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad_out: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError

    def _cached(self):
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward needs a preceding "
                               f"forward(x, train=True)")
        return self._cache


class Dense(Layer):
    """Fully connected layer ``y = x W^T + b``.

    x : (N, in_features) -> y : (N, out_features).
    params: ``W`` (out_features, in_features), ``b`` (out_features,).
    """

    def __init__(self, in_features: int, out_features: int, *,
                 rng: np.random.Generator | None = None, name: str | None = None):
        super().__init__()
        n_in = _positive_int(in_features, "Dense in_features")
        n_out = _positive_int(out_features, "Dense out_features")
        rng = np.random.default_rng(0) if rng is None else rng
        self.name = name
        self.params = {"W": xavier(rng, (n_out, n_in), n_in),
                       "b": np.zeros(n_out, dtype=np.float32)}

    def forward(self, x, train=False):
        W, b = self.params["W"], self.params["b"]
        self._cache = x if train else None
        return x @ W.T + b

    def backward(self, grad_out):
        x = self._cached()
        self.grads = {"W": grad_out.T @ x, "b": grad_out.sum(axis=0)}
        return grad_out @ self.params["W"] if self.input_grad else None


class Conv2D(Layer):
    """2-D convolution (cross-correlation, as Caffe) by im2col and one matrix product.

    x : (N, in_ch, H, W) -> y : (N, out_ch, OH, OW) with
    OH = (H + 2 padding - kernel) // stride + 1 (likewise OW); zero padding.
    params: ``W`` (out_ch, in_ch, kernel, kernel), ``b`` (out_ch,).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1,
                 padding: int = 0, *, rng: np.random.Generator | None = None,
                 name: str | None = None):
        super().__init__()
        c_in = _positive_int(in_ch, "Conv2D in_ch")
        c_out = _positive_int(out_ch, "Conv2D out_ch")
        self.kernel = _positive_int(kernel, "Conv2D kernel")
        self.stride = _positive_int(stride, "Conv2D stride")
        if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) \
                or padding < 0:
            raise ConfigError(f"Conv2D padding must be a non-negative integer, "
                              f"not {padding!r}")
        self.padding = int(padding)
        rng = np.random.default_rng(0) if rng is None else rng
        self.name = name
        k = self.kernel
        fan_in = c_in * k * k
        self.params = {"W": xavier(rng, (c_out, c_in, k, k), fan_in),
                       "b": np.zeros(c_out, dtype=np.float32)}

    def output_hw(self, h: int, w: int) -> tuple[int, int]:
        """Output height and width for an input of h x w pixels."""
        k, s, p = self.kernel, self.stride, self.padding
        if h + 2 * p < k or w + 2 * p < k:
            raise ConfigError(f"Conv2D input must be at least {k} x {k} pixels after "
                              f"padding, not {h + 2 * p} x {w + 2 * p}")
        return (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1

    def forward(self, x, train=False):
        W, b = self.params["W"], self.params["b"]
        n, c, h, w = x.shape
        oh, ow = self.output_hw(h, w)
        k = self.kernel
        cols = np.empty((c * k * k, n * oh * ow), dtype=x.dtype)
        _im2col(x, k, self.stride, self.padding, oh, ow, cols)
        y = W.reshape(len(W), -1) @ cols                     # (out, N*OH*OW)
        y += b[:, None]
        self._cache = (cols, x.shape) if train else None
        # A view in NCHW order of (out, N, OH, OW) memory: the next layer's kernels
        # read any strides, and the backward pass gets its gradient back in this
        # memory order, so neither direction copies.
        return y.reshape(len(W), n, oh, ow).transpose(1, 0, 2, 3)

    def backward(self, grad_out):
        cols, x_shape = self._cached()
        W = self.params["W"]
        n, c_out, oh, ow = grad_out.shape
        g = grad_out.transpose(1, 0, 2, 3).reshape(c_out, -1)  # (out, N*OH*OW)
        self.grads = {"W": (g @ cols.T).reshape(W.shape), "b": g.sum(axis=1)}
        if not self.input_grad:
            return None
        dcols = W.reshape(c_out, -1).T @ g                   # (C*k*k, N*OH*OW)
        dx = np.zeros(x_shape, dtype=dcols.dtype)
        _col2im(dcols, self.kernel, self.stride, self.padding, oh, ow, dx)
        return dx


@njit(cache=True)
def _valid_span(j, stride, pad, size, n_out):
    """The output positions o in [lo, hi) whose input position o*stride + j - pad lies
    in [0, size)."""
    lo = max(0, (pad - j + stride - 1) // stride)
    hi = min(n_out, (size - 1 + pad - j) // stride + 1)
    return lo, max(lo, hi)


@njit(cache=True)
def _im2col(x, k, stride, pad, oh, ow, cols):
    """cols[(c*k + i)*k + j, (n*oh + y)*ow + x'] = x[n, c, y*stride + i - pad,
    x'*stride + j - pad] (0 outside the image)."""
    n_img, n_ch, h, w = x.shape
    for c in range(n_ch):
        for i in range(k):
            y_lo, y_hi = _valid_span(i, stride, pad, h, oh)
            for j in range(k):
                x_lo, x_hi = _valid_span(j, stride, pad, w, ow)
                row = (c * k + i) * k + j
                for n in range(n_img):
                    for y in range(oh):
                        base = (n * oh + y) * ow
                        if y < y_lo or y >= y_hi:
                            cols[row, base:base + ow] = 0
                            continue
                        src_y = y * stride + i - pad
                        cols[row, base:base + x_lo] = 0
                        cols[row, base + x_hi:base + ow] = 0
                        for xx in range(x_lo, x_hi):
                            cols[row, base + xx] = x[n, c, src_y, xx * stride + j - pad]


@njit(cache=True)
def _col2im(dcols, k, stride, pad, oh, ow, dx):
    """The adjoint of :func:`_im2col`: add every column entry back to its pixel."""
    n_img, n_ch, h, w = dx.shape
    for c in range(n_ch):
        for i in range(k):
            y_lo, y_hi = _valid_span(i, stride, pad, h, oh)
            for j in range(k):
                x_lo, x_hi = _valid_span(j, stride, pad, w, ow)
                row = (c * k + i) * k + j
                for n in range(n_img):
                    for y in range(y_lo, y_hi):
                        base = (n * oh + y) * ow
                        dst_y = y * stride + i - pad
                        for xx in range(x_lo, x_hi):
                            dx[n, c, dst_y, xx * stride + j - pad] += dcols[row, base + xx]


class MaxPool2D(Layer):
    """Max pooling over size x size windows with stride = size (non-overlapping).

    x : (N, C, H, W) with H and W multiples of size -> y : (N, C, H/size, W/size).
    The gradient goes to the first maximum of each window (row-major), as Caffe.
    """

    def __init__(self, size: int):
        super().__init__()
        self.size = _positive_int(size, "MaxPool2D size")

    def forward(self, x, train=False):
        s = self.size
        n, c, h, w = x.shape
        if h % s or w % s:
            raise ConfigError(f"MaxPool2D input height and width must be multiples of "
                              f"{s}, not {h} x {w}")
        y = np.empty((n, c, h // s, w // s), dtype=x.dtype)
        first = np.empty(y.shape, dtype=np.uint8)
        _maxpool(x, s, y, first)
        self._cache = (first, x) if train else None
        return y

    def backward(self, grad_out):
        first, x = self._cached()
        dx = np.empty_like(x)  # x's memory order, which the layer before expects
        _maxpool_backward(grad_out, first, self.size, dx)
        return dx


@njit(cache=True)
def _maxpool(x, s, y, first):
    """y = max of each s x s window; first = its row-major index of the first max."""
    n_img, n_ch, oh, ow = y.shape
    for n in range(n_img):
        for c in range(n_ch):
            for i in range(oh):
                for j in range(ow):
                    best = x[n, c, i * s, j * s]
                    arg = 0
                    for u in range(s):
                        for v in range(s):
                            value = x[n, c, i * s + u, j * s + v]
                            if value > best:
                                best = value
                                arg = u * s + v
                    y[n, c, i, j] = best
                    first[n, c, i, j] = arg


@njit(cache=True)
def _maxpool_backward(grad_out, first, s, dx):
    n_img, n_ch, oh, ow = grad_out.shape
    for n in range(n_img):
        for c in range(n_ch):
            for i in range(oh):
                for j in range(ow):
                    arg = first[n, c, i, j]
                    for u in range(s):
                        for v in range(s):
                            dx[n, c, i * s + u, j * s + v] = (
                                grad_out[n, c, i, j] if u * s + v == arg else 0)


class ReLU(Layer):
    """max(x, 0), elementwise; any shape."""

    def forward(self, x, train=False):
        y = np.maximum(x, 0)
        self._cache = y if train else None
        return y

    def backward(self, grad_out):
        return grad_out * (self._cached() > 0)


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W) in C order (index c*H*W + h*W + w), as Caffe."""

    def forward(self, x, train=False):
        self._cache = x.shape if train else None
        return x.reshape(len(x), -1)

    def backward(self, grad_out):
        return grad_out.reshape(self._cached())
