"""Conv layers on the engine: geometry, column order, activation layout, patch gather.

A conv layer's (out_ch x in_ch*kh*kw) filter matrix is stored once, in the engine's
sparse form, with its columns in the engine's *gather order* (``docs/engine.md``,
"Convolution"): engine column ``e = ((ky*kw + kx) * groups + q) * n_pe + p`` is input
channel ``c = q*n_pe + p`` at tap ``(ky, kx)``, ``groups = ceil(in_ch / n_pe)``; columns
of channels ``c >= in_ch`` are empty. A feature map (C, H, W) lives in the activation
banks as channel ``c`` on PE ``c % n_pe`` at local address ``(c // n_pe)*H*W + y*W + x``,
so one source vector (the same address on every PE) holds ``n_pe`` channels of one
pixel: a patch is gathered as ``kh*kw*groups`` vectors, and the leading-non-zero
detector skips its zeros as in an fc layer. The engine visits output positions pool
window by pool window (:func:`positions`); each position runs like an fc layer (bias
initialisation, scan, finish) and its finish merges into the pooled output by max.

An fc layer after a conv reads the map in place: its engine column ``addr*n_pe + pe`` is
the map element stored at ``(pe, addr)`` (:func:`map_engine_index`), so flatten costs no
cycle, only the column permutation the compiler applies (:func:`engine_layers`).

This module holds the one definition of that order (numpy, for the compiler, the cycle
model and the scoreboard) and the gateware of the gather (:class:`PatchAddress`) and of
the pooling merge (:class:`PoolMax`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from dcsim.compress.layer import CompressedLayer, CompressedModel
from dcsim.errors import FitError

#: Bits of a conv descriptor's kernel side, stride, padding and pool window fields
#: (values up to 15).
GEOM_BITS = 4
GEOM_MAX = (1 << GEOM_BITS) - 1

_AFTER_FC = ("Layer {!r} is a conv layer after an fc layer; the engine runs conv layers "
             "on the input map or on a conv layer's output")


@dataclass(frozen=True)
class ConvGeometry:
    """Where a conv layer's input, patches and output live on an engine of ``n_pe`` PEs.

    in_ch, in_h, in_w : int -- the input map (C, H, W); out_ch : int -- filters.
    kh, kw, stride, padding : int; pool : int -- max-pool size (= stride), 0 none.
    n_pe : int.
    """

    in_ch: int
    in_h: int
    in_w: int
    out_ch: int
    kh: int
    kw: int
    stride: int
    padding: int
    pool: int
    n_pe: int

    @classmethod
    def of(cls, layer: CompressedLayer, in_shape: tuple, n_pe: int) -> "ConvGeometry":
        """The geometry of conv ``layer`` on input ``in_shape`` (C, H, W)."""
        layer.output_shape(in_shape)                       # validates the shapes
        out_ch, in_ch, kh, kw = layer.shape
        return cls(in_ch=in_ch, in_h=int(in_shape[1]), in_w=int(in_shape[2]), out_ch=out_ch,
                   kh=kh, kw=kw, stride=layer.stride, padding=layer.padding,
                   pool=layer.pool, n_pe=n_pe)

    @property
    def win(self) -> int:
        """Pool window side (1 without pooling)."""
        return max(self.pool, 1)

    @property
    def conv_h(self) -> int:
        """Output rows of the convolution before pooling."""
        return (self.in_h + 2 * self.padding - self.kh) // self.stride + 1

    @property
    def conv_w(self) -> int:
        """Output columns of the convolution before pooling."""
        return (self.in_w + 2 * self.padding - self.kw) // self.stride + 1

    @property
    def out_h(self) -> int:
        """Rows of the layer's output map (after pooling; a ragged edge is dropped)."""
        return self.conv_h // self.win

    @property
    def out_w(self) -> int:
        """Columns of the layer's output map (after pooling)."""
        return self.conv_w // self.win

    @property
    def groups(self) -> int:
        """Source vectors per tap: ``ceil(in_ch / n_pe)``."""
        return -(-self.in_ch // self.n_pe)

    @property
    def vectors(self) -> int:
        """Source vectors of one patch: ``kh * kw * groups``."""
        return self.kh * self.kw * self.groups

    @property
    def cols(self) -> int:
        """Engine columns (pointers) of the filter matrix: ``vectors * n_pe``."""
        return self.vectors * self.n_pe

    @property
    def rows_local(self) -> int:
        """Filters per PE: ``ceil(out_ch / n_pe)``."""
        return -(-self.out_ch // self.n_pe)

    @property
    def positions(self) -> int:
        """Output positions the engine computes: ``out_h*win x out_w*win``."""
        return self.out_h * self.win * self.out_w * self.win

    @property
    def in_local(self) -> int:
        """Input activations per PE per bank: ``groups * in_h * in_w``."""
        return self.groups * self.in_h * self.in_w

    @property
    def out_local(self) -> int:
        """Output activations per PE per bank: ``rows_local * out_h * out_w``."""
        return self.rows_local * self.out_h * self.out_w

    @property
    def out_slots(self) -> int:
        """Output slots over all PEs (padding channels included): ``out_local * n_pe``."""
        return self.out_local * self.n_pe


def kernel_columns(geom: ConvGeometry) -> np.ndarray:
    """The filter-matrix column (``c*kh*kw + ky*kw + kx``, im2col order) of each engine
    column, -1 for a padding channel; int64 (geom.cols,)."""
    e = np.arange(geom.cols, dtype=np.int64)
    p = e % geom.n_pe
    v = e // geom.n_pe
    q = v % geom.groups
    tap = v // geom.groups
    c = q * geom.n_pe + p
    return np.where(c < geom.in_ch, c * geom.kh * geom.kw + tap, -1)


def map_engine_index(shape: tuple, n_pe: int) -> np.ndarray:
    """Engine index ``addr * n_pe + pe`` of each element of a (C, H, W) map in (C, H, W)
    order (where an fc layer after it reads it); int64 (C*H*W,)."""
    ch, h, w = (int(s) for s in shape)
    c = np.arange(ch, dtype=np.int64)[:, None]
    pix = np.arange(h * w, dtype=np.int64)[None, :]
    return (((c // n_pe) * h * w + pix) * n_pe + c % n_pe).reshape(-1)


def map_slots(shape: tuple, n_pe: int) -> int:
    """Activation slots over all PEs a (C, H, W) map takes: ``ceil(C/n_pe)*H*W*n_pe``."""
    ch, h, w = (int(s) for s in shape)
    return -(-ch // n_pe) * h * w * n_pe


def _permuted(layer: CompressedLayer, cols: int, source: np.ndarray) -> CompressedLayer:
    """``layer`` as an fc layer of ``cols`` engine columns, column e taking the layer's
    matrix column ``source[e]`` (empty where -1)."""
    codes = np.zeros((layer.rows, cols), dtype=layer.codes.dtype)
    keep = source >= 0
    codes[:, keep] = layer.codes[:, source[keep]]
    return dataclasses.replace(layer, kind="fc", shape=(layer.rows, cols), codes=codes,
                               pool=0, stride=1, padding=0)


def _chain(model: CompressedModel, n_pe: int):
    """``(layer, geometry or None, input shape, after_conv)`` of each layer, in order;
    FitError for a conv after an fc layer (the one chain rule of the engine)."""
    shape = tuple(model.input_shape)
    prev_conv = False
    for i, layer in enumerate(model.layers):
        geom = None
        if layer.kind == "conv":
            if i > 0 and not prev_conv:
                raise FitError(_AFTER_FC.format(layer.name))
            geom = ConvGeometry.of(layer, shape, n_pe)
        yield layer, geom, shape, prev_conv
        prev_conv = layer.kind == "conv"
        shape = layer.output_shape(shape)


def engine_cols(model: CompressedModel, n_pe: int) -> list:
    """Each layer's engine columns (pointers), as :func:`engine_layers` stores it, without
    building the matrices: a conv's ``ConvGeometry.cols``, an fc after a conv the map's
    ``map_slots``, another fc its ``cols``. FitError for a conv after an fc layer."""
    return [geom.cols if geom is not None else
            map_slots(shape, n_pe) if after_conv else layer.cols
            for layer, geom, shape, after_conv in _chain(model, n_pe)]


def engine_layers(model: CompressedModel, n_pe: int) -> list:
    """Each layer of ``model`` as the engine stores it: a list of ``(matrix, geometry)``,
    ``matrix`` an fc CompressedLayer over engine columns (a conv's filter matrix in
    gather order, an fc after a conv permuted to the map's layout, other fc layers as they
    are), ``geometry`` a ConvGeometry or None. FitError for a conv after an fc layer."""
    out = []
    for layer, geom, shape, after_conv in _chain(model, n_pe):
        if geom is not None:
            out.append((_permuted(layer, geom.cols, kernel_columns(geom)), geom))
        elif after_conv:
            layer.output_shape(shape)                       # validates the length
            index = map_engine_index(shape, n_pe)
            source = np.full(map_slots(shape, n_pe), -1, dtype=np.int64)
            source[index] = np.arange(index.shape[0])
            out.append((_permuted(layer, source.shape[0], source), None))
        else:
            out.append((layer, None))
    return out


def positions(geom: ConvGeometry):
    """The output positions in the engine's order, pool window after pool window.

    Returns int64 arrays (positions,): ``oy``, ``ox`` (the convolution's output pixel),
    ``dest`` (the pooled pixel ``py*out_w + px`` it merges into) and a bool array
    ``first`` (the window's first position: a plain write, the others a max).
    """
    win = geom.win
    py, px, dy, dx = np.meshgrid(np.arange(geom.out_h), np.arange(geom.out_w),
                                 np.arange(win), np.arange(win), indexing="ij")
    py, px, dy, dx = (a.reshape(-1).astype(np.int64) for a in (py, px, dy, dx))
    return py * win + dy, px * win + dx, py * geom.out_w + px, (dy == 0) & (dx == 0)


def patches(geom: ConvGeometry, x_map) -> np.ndarray:
    """The gathered patch of every position (engine order) of input map ``x_map``
    (C, H, W) or its flattening: int64 (positions, cols), zero for padding pixels and
    channels."""
    shape = (geom.in_ch, geom.in_h, geom.in_w)
    x = np.asarray(x_map, dtype=np.int64)
    if x.size != geom.in_ch * geom.in_h * geom.in_w:
        raise FitError(f"x_map must have shape {shape}, not {x.shape}")
    x = x.reshape(shape)
    pad = geom.padding
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    oy, ox, _, _ = positions(geom)
    ky, kx = np.divmod(np.arange(geom.kh * geom.kw), geom.kw)
    iy = oy[:, None] * geom.stride + ky[None, :]          # (P, taps), padded coordinates
    ix = ox[:, None] * geom.stride + kx[None, :]
    vals = xp[:, iy, ix]                                  # (C, P, taps)
    out = np.zeros((oy.shape[0], geom.kh * geom.kw, geom.groups * geom.n_pe), dtype=np.int64)
    out[:, :, :geom.in_ch] = vals.transpose(1, 2, 0)
    return out.reshape(oy.shape[0], geom.cols)


def input_slots(shape: tuple, n_pe: int, conv: bool) -> tuple:
    """``(pe, addr)`` int64 arrays of each input element (flattened (C, H, W) order) in
    bank 0: a conv's map layout, or an fc input's ``j % n_pe, j // n_pe``."""
    if conv:
        e = map_engine_index(shape, n_pe)
    else:
        e = np.arange(int(np.prod(shape)), dtype=np.int64)
    return e % n_pe, e // n_pe


def output_index(geom: ConvGeometry) -> np.ndarray:
    """Position in the engine's output stream (``addr * n_pe + pe``) of each element of a
    conv layer's output map, flattened (C, H, W); int64 (out_ch*out_h*out_w,)."""
    return map_engine_index((geom.out_ch, geom.out_h, geom.out_w), geom.n_pe)


# ------------------------------------------------------------------------------------
# gateware
# ------------------------------------------------------------------------------------

def patch_signature(addr_bits: int, n_pe: int) -> wiring.Signature:
    """Ports of :class:`PatchAddress` (see its docstring)."""
    side = unsigned(addr_bits + 1)
    g = unsigned(GEOM_BITS)
    return wiring.Signature({
        "in_ch": In(unsigned(16)), "in_h": In(side), "in_w": In(side),
        "in_hw": In(side), "stride": In(g), "padding": In(g),
        "oy": In(side), "ox": In(side), "ky": In(g), "kx": In(g), "q": In(side),
        "addr": Out(unsigned(addr_bits)), "mask": Out(unsigned(n_pe)),
    })


class PatchAddress(wiring.Component):
    """The patch gather's address: which local address holds source vector ``(ky, kx,
    q)`` of output pixel ``(oy, ox)``, and which of its ``n_pe`` channels are real.

    Combinational. ``iy = oy*stride + ky - padding``, ``ix`` likewise; ``addr = q*in_hw +
    iy*in_w + ix`` (low ``addr_bits``); ``mask`` bit p = the pixel is inside the map and
    channel ``q*n_pe + p < in_ch`` (0 for a padding pixel: its vector is skipped).
    """

    def __init__(self, addr_bits: int, n_pe: int):
        self.addr_bits = addr_bits
        self.n_pe = n_pe
        super().__init__(patch_signature(addr_bits, n_pe))

    def elaborate(self, platform):
        m = Module()
        w = self.addr_bits + GEOM_BITS + 3
        iy = Signal(signed(w))
        ix = Signal(signed(w))
        inside = Signal()
        m.d.comb += [
            iy.eq(self.oy * self.stride + self.ky - self.padding),
            ix.eq(self.ox * self.stride + self.kx - self.padding),
            inside.eq((iy >= 0) & (iy < self.in_h) & (ix >= 0) & (ix < self.in_w)),
            self.addr.eq(self.q * self.in_hw + iy * self.in_w + ix),
            self.mask.eq(Mux(inside, Cat(self.q * self.n_pe + p < self.in_ch
                                         for p in range(self.n_pe)), 0)),
        ]
        return m


class PoolMax(wiring.Component):
    """The finish stage's pooling merge (combinational): ``out = max(old, new)`` if
    ``merge`` (a later position of a pool window), else ``new``.

    Ports: merge : In(1); old, new : In(signed(act_bits)); out : Out(signed(act_bits)).
    """

    def __init__(self, act_bits: int):
        super().__init__(wiring.Signature({
            "merge": In(1), "old": In(signed(act_bits)), "new": In(signed(act_bits)),
            "out": Out(signed(act_bits))}))

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.out.eq(Mux(self.merge & (self.old > self.new), self.old, self.new))
        return m


def engine_input(layer_index: int, model: CompressedModel, x_in, n_pe: int) -> np.ndarray:
    """A layer's input as the engine reads it, from the fixed kernel's (``trace_fixed``'s
    ``x_in``): a conv layer's (C, H, W) map unchanged, an fc layer after a conv its
    flattened map scattered to the engine's column order (``map_slots``, zeros in
    padding slots), another fc layer's vector unchanged."""
    x = np.asarray(x_in)
    if layer_index == 0 or model.layers[layer_index].kind == "conv" \
            or model.layers[layer_index - 1].kind != "conv":
        return x
    shape = model.layer_shapes()[layer_index - 1][1]
    out = np.zeros(map_slots(shape, n_pe), dtype=x.dtype)
    out[map_engine_index(shape, n_pe)] = x.reshape(-1)
    return out
