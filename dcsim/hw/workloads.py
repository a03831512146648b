"""Synthetic compressed layers and models for engine tests and benchmarks.

Random layers stand in for trained ones where only shapes and densities matter (cycle
counts, bit-exactness); ``EIE_LAYERS`` are the nine benchmark shapes of EIE's Table III
as (rows, cols) = (out, in) with their weight and activation densities.
"""

from __future__ import annotations

import numpy as np

from dcsim.compress.layer import CompressedLayer, CompressedModel
from dcsim.errors import ConfigError

# name: (rows, cols, weight density, activation density), EIE (ISCA 2016) Table III
EIE_LAYERS = {
    "Alex-6": (4096, 9216, 0.09, 0.351),
    "Alex-7": (4096, 4096, 0.09, 0.353),
    "Alex-8": (1000, 4096, 0.25, 0.375),
    "VGG-6": (4096, 25088, 0.04, 0.183),
    "VGG-7": (4096, 4096, 0.04, 0.375),
    "VGG-8": (1000, 4096, 0.23, 0.411),
    "NT-We": (600, 4096, 0.10, 1.0),
    "NT-Wd": (8791, 600, 0.11, 1.0),
    "NT-LSTM": (2400, 1201, 0.10, 1.0),
}

# EIE Table IV, microseconds at 800 MHz: (theoretical, actual)
EIE_TIMES_US = {
    "Alex-6": (28.1, 30.3), "Alex-7": (11.7, 12.2), "Alex-8": (8.9, 9.9),
    "VGG-6": (28.1, 34.4), "VGG-7": (7.9, 8.7), "VGG-8": (7.3, 8.4),
    "NT-We": (5.2, 8.0), "NT-Wd": (13.0, 13.9), "NT-LSTM": (6.5, 7.5),
}

LENET_300_100 = (("ip1", 300, 784, 0.08, True), ("ip2", 100, 300, 0.09, True),
                 ("ip3", 10, 100, 0.26, False))


def random_layer(name: str, rows: int, cols: int, density: float, rng: np.random.Generator,
                 code_bits: int = 4, relu: bool = True, scale: float = 0.5,
                 bias_scale: float = 0.3) -> CompressedLayer:
    """An fc layer whose weights are kept with probability ``density`` (codes uniform in
    1..2**code_bits-1), a normal(0, scale) codebook and normal(0, bias_scale) biases."""
    if not 0.0 <= density <= 1.0:
        raise ConfigError(f"density must be in [0, 1], not {density!r}")
    kept = rng.random((rows, cols)) < density
    codes = np.where(kept, rng.integers(1, 1 << code_bits, (rows, cols)), 0)
    codebook = np.concatenate([[0.0], rng.normal(0, scale, (1 << code_bits) - 1)])
    return CompressedLayer(
        name=name, kind="fc", shape=(rows, cols), codes=codes.astype(np.uint16),
        codebook=codebook.astype(np.float32),
        bias=rng.normal(0, bias_scale, rows).astype(np.float32),
        code_bits=code_bits, index_bits=4, relu=relu)


def single_layer_model(layer: CompressedLayer) -> CompressedModel:
    """A one-layer model (the engine runs one layer alone this way)."""
    return CompressedModel(arch=f"layer-{layer.name}", input_shape=(layer.cols,),
                           layers=(layer,))


def lenet_300_100(rng: np.random.Generator, code_bits: int = 5) -> CompressedModel:
    """A random LeNet-300-100-shaped model (784-300-100-10, Deep Compression's
    densities), codebooks scaled so activations stay within the 16-bit format."""
    layers = [random_layer(name, rows, cols, dens, rng, code_bits=code_bits, relu=relu,
                           scale=1.0 / np.sqrt(dens * cols), bias_scale=0.1)
              for name, rows, cols, dens, relu in LENET_300_100]
    return CompressedModel(arch="lenet-300-100", input_shape=(784,), layers=layers)


def random_activations(cols: int, density: float, rng: np.random.Generator,
                       scale: float = 1.0) -> np.ndarray:
    """Float activations, non-zero with probability ``density`` (uniform in [0, scale))."""
    x = rng.random(cols) * scale
    x[rng.random(cols) >= density] = 0.0
    return x.astype(np.float32)


def random_conv_layer(name: str, out_ch: int, in_ch: int, k: int, density: float,
                      rng: np.random.Generator, stride: int = 1, padding: int = 0,
                      pool: int = 0, code_bits: int = 4, relu: bool = True,
                      scale: float = 0.5, bias_scale: float = 0.3) -> CompressedLayer:
    """A conv layer of ``out_ch`` k x k filters over ``in_ch`` channels, weights kept with
    probability ``density`` (as :func:`random_layer`)."""
    flat = random_layer(name, out_ch, in_ch * k * k, density, rng, code_bits=code_bits,
                        relu=relu, scale=scale, bias_scale=bias_scale)
    return CompressedLayer(
        name=name, kind="conv", shape=(out_ch, in_ch, k, k), codes=flat.codes,
        codebook=flat.codebook, bias=flat.bias, code_bits=code_bits, index_bits=4,
        relu=relu, pool=pool, stride=stride, padding=padding)
