"""Compressed layers and models: the decoded form every stage and consumer agrees on.

A layer's weights are held as *codes*: a dense integer matrix of shape (rows, cols) in
which code 0 means an exact zero (pruned) and code c >= 1 stands for ``codebook[c]``.
This decoded form is what the ``.dcz`` container round-trips bit for bit, what the
kernels and the engine compiler read, and what ``weights()`` turns back into floats.
See ``DESIGN.md`` ("The compressed layer").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dcsim.errors import FormatError

LAYER_KINDS = ("fc", "conv")


@dataclass(frozen=True, eq=False)
class CompressedLayer:
    """One pruned, weight-shared layer ``y = W x + b``.

    Parameters
    ----------
    name : str -- the paper's layer name (``ip1``, ``conv2`` ...).
    kind : ``"fc"`` or ``"conv"``.
    shape : tuple of int -- the weight tensor's shape: ``(rows, cols)`` = (out, in) for
        fc, ``(out_ch, in_ch, kh, kw)`` for conv (flattened to ``(out_ch, in_ch*kh*kw)``).
    codes : uint8 or uint16 array, shape ``matrix_shape`` -- 0 is a pruned weight.
    codebook : float32 array, shape ``(2**code_bits,)`` -- ``codebook[0] == 0``.
    bias : float32 array, shape ``(rows,)`` -- not clustered.
    code_bits : int -- bits per weight code (paper: 8 conv, 5 fc).
    index_bits : int -- bits per relative index in the storage form (paper: 8 conv, 5 fc).
    relu : bool -- a ReLU follows the layer.
    pool : int -- for conv, the size (and stride) of the max-pool that follows; 0 none.
    stride, padding : int -- for conv.
    """

    name: str
    kind: str
    shape: tuple
    codes: np.ndarray
    codebook: np.ndarray
    bias: np.ndarray
    code_bits: int
    index_bits: int
    relu: bool = False
    pool: int = 0
    stride: int = 1
    padding: int = 0

    def __post_init__(self):
        if self.kind not in LAYER_KINDS:
            raise FormatError(f"Layer kind must be one of {LAYER_KINDS}, not {self.kind!r}")
        shape = tuple(int(s) for s in self.shape)
        object.__setattr__(self, "shape", shape)
        want_dims = 2 if self.kind == "fc" else 4
        if len(shape) != want_dims or min(shape) < 1:
            raise FormatError(
                f"Layer {self.name!r}: a {self.kind} shape must be {want_dims} positive "
                f"integers, not {shape!r}")
        if not 1 <= self.code_bits <= 16:
            raise FormatError(
                f"Layer {self.name!r}: code_bits must be in 1..16, not {self.code_bits!r}")
        if not 1 <= self.index_bits <= 16:
            raise FormatError(
                f"Layer {self.name!r}: index_bits must be in 1..16, not {self.index_bits!r}")
        codes = np.asarray(self.codes)
        if codes.shape != self.matrix_shape:
            raise FormatError(
                f"Layer {self.name!r}: codes must have shape {self.matrix_shape}, "
                f"not {codes.shape}")
        if codes.dtype.kind not in "ui":
            raise FormatError(
                f"Layer {self.name!r}: codes must be integers, not {codes.dtype}")
        if codes.size and (codes.min() < 0 or codes.max() >= 2 ** self.code_bits):
            raise FormatError(
                f"Layer {self.name!r}: codes must be in 0..{2 ** self.code_bits - 1} "
                f"for {self.code_bits} code bits, not {int(codes.min())}..{int(codes.max())}")
        object.__setattr__(self, "codes", codes.astype(code_dtype(self.code_bits), copy=False))
        codebook = np.asarray(self.codebook, dtype=np.float32)
        if codebook.shape != (2 ** self.code_bits,):
            raise FormatError(
                f"Layer {self.name!r}: codebook must have {2 ** self.code_bits} entries "
                f"for {self.code_bits} code bits, not shape {codebook.shape}")
        if codebook[0] != 0:
            raise FormatError(
                f"Layer {self.name!r}: codebook[0] must be exactly 0 (the pruned weight), "
                f"not {float(codebook[0])!r}")
        if not np.all(np.isfinite(codebook)):
            raise FormatError(
                f"Layer {self.name!r}: codebook values must be finite, not "
                f"{codebook[~np.isfinite(codebook)][:3].tolist()}")
        object.__setattr__(self, "codebook", codebook)
        bias = np.asarray(self.bias, dtype=np.float32)
        if bias.shape != (self.rows,):
            raise FormatError(
                f"Layer {self.name!r}: bias must have shape ({self.rows},), not {bias.shape}")
        if not np.all(np.isfinite(bias)):
            raise FormatError(
                f"Layer {self.name!r}: biases must be finite, not "
                f"{bias[~np.isfinite(bias)][:3].tolist()}")
        object.__setattr__(self, "bias", bias)

    @property
    def rows(self) -> int:
        """Output neurons (fc) or output channels (conv)."""
        return self.shape[0]

    @property
    def cols(self) -> int:
        """Inputs per output: in features (fc) or in_ch*kh*kw (conv)."""
        return int(np.prod(self.shape[1:]))

    @property
    def matrix_shape(self) -> tuple:
        """``(rows, cols)`` of the weight matrix the sparse encodings work on."""
        return (self.rows, self.cols)

    @property
    def n_weights(self) -> int:
        """Weights of the dense layer (biases not counted)."""
        return self.rows * self.cols

    @property
    def nnz(self) -> int:
        """Weights kept after pruning (non-zero codes)."""
        return int(np.count_nonzero(self.codes))

    @property
    def density(self) -> float:
        """Fraction of weights kept, in [0, 1]."""
        return self.nnz / self.n_weights

    def output_shape(self, in_shape: tuple) -> tuple:
        """The shape of one sample's output for an input of shape ``in_shape``.

        fc: any ``in_shape`` with ``cols`` elements in all -> ``(rows,)`` (a conv map is
        flattened in (C, H, W) order). conv: ``(in_ch, H, W)`` -> ``(out_ch, Ho, Wo)``,
        ``Ho = (H + 2*padding - kh) // stride + 1``, then ``// pool`` if a max-pool
        follows. A FormatError names the layer if the input does not fit it.
        """
        in_shape = tuple(int(s) for s in in_shape)
        if self.kind == "fc":
            if int(np.prod(in_shape, dtype=np.int64)) != self.cols:
                raise FormatError(
                    f"Layer {self.name!r} must get {self.cols} inputs, not "
                    f"{int(np.prod(in_shape, dtype=np.int64))} (shape {in_shape})")
            return (self.rows,)
        out_ch, in_ch, kh, kw = self.shape
        if len(in_shape) != 3 or in_shape[0] != in_ch:
            raise FormatError(
                f"Layer {self.name!r} must get ({in_ch}, H, W) inputs, not {in_shape}")
        if self.stride < 1:
            raise FormatError(f"Layer {self.name!r}: stride must be at least 1, "
                              f"not {self.stride!r}")
        ho, wo = ((n + 2 * self.padding - k) // self.stride + 1
                  for n, k in ((in_shape[1], kh), (in_shape[2], kw)))
        if self.pool:
            ho, wo = ho // self.pool, wo // self.pool
        if ho < 1 or wo < 1:
            raise FormatError(
                f"Layer {self.name!r}: an input of {in_shape} leaves no output positions "
                f"({kh}x{kw} kernel, stride {self.stride}, padding {self.padding}, "
                f"pool {self.pool})")
        return (out_ch, ho, wo)

    def weights(self) -> np.ndarray:
        """The decoded float32 weights, of shape ``shape``."""
        return self.codebook[self.codes].reshape(self.shape)

    def same_as(self, other: "CompressedLayer") -> bool:
        """True if both layers decode to the same integers and floats, bit for bit."""
        return (
            self.name == other.name and self.kind == other.kind and self.shape == other.shape
            and self.code_bits == other.code_bits and self.index_bits == other.index_bits
            and self.relu == other.relu and self.pool == other.pool
            and self.stride == other.stride and self.padding == other.padding
            and np.array_equal(self.codes, other.codes)
            and self.codebook.tobytes() == other.codebook.tobytes()
            and self.bias.tobytes() == other.bias.tobytes())


@dataclass(frozen=True, eq=False)
class CompressedModel:
    """A chain of compressed layers run in order.

    ``input_shape`` is one sample's shape: ``(784,)`` for LeNet-300-100, ``(1, 28, 28)``
    for LeNet-5. A conv layer's output is flattened (C, H, W order) before an fc layer.
    ``meta`` holds JSON-able facts about how the model was made (arch, errors in
    percent, config); it does not affect inference.
    """

    arch: str
    input_shape: tuple
    layers: tuple
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "input_shape", tuple(int(s) for s in self.input_shape))
        if not self.layers:
            raise FormatError("A compressed model must have at least one layer, not 0")
        names = [layer.name for layer in self.layers]
        if len(set(names)) != len(names):
            raise FormatError(f"Layer names must be unique, not {names!r}")
        if not self.input_shape or min(self.input_shape) < 1:
            raise FormatError(f"input_shape must be positive integers, not "
                              f"{self.input_shape!r}")
        self.layer_shapes()

    def layer_shapes(self) -> list:
        """Each layer's ``(input shape, output shape)`` for one sample, in layer order;
        a FormatError naming the first layer whose input does not fit it."""
        shapes = []
        shape = self.input_shape
        for layer in self.layers:
            out = layer.output_shape(shape)
            shapes.append((shape, out))
            shape = out
        return shapes

    def layer(self, name: str) -> CompressedLayer:
        """The layer called ``name``; a FormatError listing the names if there is none."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise FormatError(
            f"Layer name must be one of {[l.name for l in self.layers]}, not {name!r}")

    @property
    def dense_bytes(self) -> int:
        """Size of the uncompressed model: float32 weights and biases."""
        return sum(4 * (layer.n_weights + layer.rows) for layer in self.layers)

    def same_as(self, other: "CompressedModel") -> bool:
        """True if every layer matches bit for bit (meta is not compared)."""
        return (self.arch == other.arch and self.input_shape == other.input_shape
                and len(self.layers) == len(other.layers)
                and all(a.same_as(b) for a, b in zip(self.layers, other.layers)))


def code_dtype(code_bits: int):
    """The smallest unsigned numpy dtype holding codes of ``code_bits`` bits."""
    return np.uint8 if code_bits <= 8 else np.uint16
