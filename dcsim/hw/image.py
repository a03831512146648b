"""The engine's compiler: a CompressedModel -> per-PE memory images and load words.

Layout (``docs/engine.md`` has the picture): PE p holds rows ``i % n_pe == p`` of every
layer (``sparse.interleave``), re-encoded from the decoded codes with the engine's
``idx_bits``. Each PE's entries of all layers are packed back to back into
``entries_per_word`` slots per sparse word (slot 0 in the low bits); column pointers
are ``word << slot_bits | slot`` of the column's first entry; layer l's pointers start
at the even index ``ptr_base[l]``, the same on every PE. Codebooks and biases come from
``kernels.spmv.quantize_layer`` (the engine's integers are the fixed kernel's).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dcsim.compress.layer import CompressedModel
from dcsim.compress.sparse import interleave
from dcsim.errors import ConfigError, FitError
from dcsim.hw.config import EngineConfig
from dcsim.hw.layouts import Target, desc_layout, pack
from dcsim.kernels.spmv import quantize_layer


@dataclass(frozen=True, eq=False)
class LayerImage:
    """Where one layer lives in the engine.

    name : str; rows, cols : int; relu : bool.
    ptr_base : int -- index of pointer p[0] (even), on every PE.
    bias_base : int -- bias address of local row 0, on every PE.
    rows_local : int -- ``ceil(rows / n_pe)``; vectors : int -- ``ceil(cols / n_pe)``.
    entries : int64 (n_pe,) -- stored entries (fillers included) per PE.
    col_entries : int64 (n_pe, cols) -- stored entries of each (PE, column).
    codebook_q : int64 (codebook_entries,) -- padded with zeros to the engine's width.
    """

    name: str
    rows: int
    cols: int
    relu: bool
    ptr_base: int
    bias_base: int
    rows_local: int
    vectors: int
    entries: np.ndarray
    col_entries: np.ndarray
    codebook_q: np.ndarray


@dataclass(frozen=True, eq=False)
class EngineImage:
    """Every memory image of a model for one EngineConfig.

    sparse : list (n_pe) of uint64 arrays -- sparse-matrix SRAM words.
    pointers : list (n_pe) of int64 arrays -- pointer SRAM, by pointer index.
    biases : list (n_pe) of int64 arrays -- biases in the activation format.
    descs : list of int -- packed layer descriptors (``layouts.desc_layout``).
    layers : tuple of LayerImage.
    """

    config: EngineConfig
    sparse: list
    pointers: list
    biases: list
    descs: list
    layers: tuple

    @property
    def n_layers(self) -> int:
        """Layers in the image."""
        return len(self.layers)

    def load_words(self) -> list:
        """``(target, pe, bcast, addr, data)`` tuples that write every image through the
        engine's load stream (codebooks and descriptors once, broadcast)."""
        words = []
        for p in range(self.config.n_pe):
            words += [(Target.SPARSE, p, 0, a, int(d)) for a, d in enumerate(self.sparse[p])]
            words += [(Target.POINTER, p, 0, a, int(d)) for a, d in enumerate(self.pointers[p])]
            words += [(Target.BIAS, p, 0, a, _unsigned(int(d), self.config.act_bits))
                      for a, d in enumerate(self.biases[p])]
        entries = self.config.codebook_entries
        for l, layer in enumerate(self.layers):
            words += [(Target.CODEBOOK, 0, 1, l * entries + c,
                       _unsigned(int(v), self.config.act_bits))
                      for c, v in enumerate(layer.codebook_q)]
        words += [(Target.DESC, 0, 1, l, d) for l, d in enumerate(self.descs)]
        return words

    def input_words(self, x_q) -> list:
        """Load words that put input activations ``x_q`` (int64, (cols of layer 0,)) in
        bank 0: activation j on PE ``j % n_pe`` at ``j // n_pe``."""
        x_q = np.asarray(x_q, dtype=np.int64)
        cols = self.layers[0].cols
        if x_q.shape != (cols,):
            raise ConfigError(f"x_q must have shape ({cols},), not {x_q.shape}")
        n = self.config.n_pe
        return [(Target.ACT, j % n, 0, j // n, _unsigned(int(v), self.config.act_bits))
                for j, v in enumerate(x_q)]


def _unsigned(value: int, bits: int) -> int:
    return value & ((1 << bits) - 1)


def fit_error(model: CompressedModel, config: EngineConfig) -> str | None:
    """Why ``model`` does not fit ``config`` (the FitError message), or None if it fits."""
    try:
        compile_model(model, config)
    except FitError as err:
        return str(err)
    return None


def compile_model(model: CompressedModel, config: EngineConfig) -> EngineImage:
    """Memory images of ``model`` on an engine of ``config``; FitError if it does not fit.

    Only fc layers run on the engine; each layer's input length must be the previous
    layer's output length.
    """
    if not isinstance(model, CompressedModel):
        raise ConfigError(f"model must be a CompressedModel, not {type(model).__name__}")
    if not isinstance(config, EngineConfig):
        raise ConfigError(f"config must be an EngineConfig, not {config!r}")
    c = config
    n = c.n_pe
    fmt = c.fmt
    _check_model(model, c)
    pe_entries = np.zeros(n, dtype=np.int64)          # entries used so far, per PE
    pointers = [[] for _ in range(n)]
    biases = [[] for _ in range(n)]
    entry_z = [[] for _ in range(n)]
    entry_code = [[] for _ in range(n)]
    layers = []
    ptr_base = 0
    bias_base = 0
    for layer in model.layers:
        codebook_q, bias_acc = quantize_layer(layer, fmt)
        bias_q = bias_acc >> c.frac_bits
        rows_local = -(-layer.rows // n)
        vectors = -(-layer.cols // n)
        pes = interleave(layer.codes, n, c.idx_bits)
        col_entries = np.stack([np.diff(m.line_ptr) for m in pes])
        for p, m in enumerate(pes):
            start = pe_entries[p] + np.asarray(m.line_ptr, dtype=np.int64)
            pointers[p] += [0] * (ptr_base - len(pointers[p]))
            pointers[p] += _pointers(start, c).tolist()
            local_bias = np.zeros(rows_local, dtype=np.int64)
            own = bias_q[p::n]
            local_bias[:own.shape[0]] = own
            biases[p] += local_bias.tolist()
            entry_z[p].append(np.asarray(m.z, dtype=np.int64))
            entry_code[p].append(np.asarray(m.code, dtype=np.int64))
            pe_entries[p] += m.n_entries
        padded = np.zeros(c.codebook_entries, dtype=np.int64)
        padded[:codebook_q.shape[0]] = codebook_q
        layers.append(LayerImage(
            name=layer.name, rows=layer.rows, cols=layer.cols, relu=bool(layer.relu),
            ptr_base=ptr_base, bias_base=bias_base, rows_local=rows_local, vectors=vectors,
            entries=np.array([m.n_entries for m in pes], dtype=np.int64),
            col_entries=col_entries, codebook_q=padded))
        ptr_base += layer.cols + 1 + (layer.cols + 1) % 2
        bias_base += rows_local
    ptr_end = layers[-1].ptr_base + layers[-1].cols + 1
    _check_sizes(model, c, pe_entries, ptr_end, bias_base)
    sparse = [_pack_words(np.concatenate(entry_z[p]), np.concatenate(entry_code[p]), c)
              for p in range(n)]
    dl = desc_layout(c)
    descs = [pack(dl, cols=li.cols, vectors=li.vectors, rows=li.rows, rows_local=li.rows_local,
                  ptr_base=li.ptr_base, bias_base=li.bias_base, relu=int(li.relu))
             for li in layers]
    return EngineImage(
        config=c, sparse=sparse, pointers=[np.array(p, dtype=np.int64) for p in pointers],
        biases=[np.array(b, dtype=np.int64) for b in biases], descs=descs,
        layers=tuple(layers))


def _pointers(entries: np.ndarray, c: EngineConfig) -> np.ndarray:
    """Column pointers ``word << slot_bits | slot`` of entry indices (int64 array)."""
    word, slot = np.divmod(entries, c.entries_per_word)
    return (word << c.slot_bits) | slot


def _pack_words(z: np.ndarray, code: np.ndarray, c: EngineConfig) -> np.ndarray:
    per = c.entries_per_word
    n_words = -(-z.shape[0] // per)
    entry = np.zeros(n_words * per, dtype=np.uint64)
    entry[:z.shape[0]] = (z.astype(np.uint64)
                          | (code.astype(np.uint64) << np.uint64(c.idx_bits)))
    slots = entry.reshape(n_words, per)
    shifts = (np.arange(per, dtype=np.uint64) * np.uint64(c.entry_bits))
    return np.bitwise_or.reduce(slots << shifts[None, :], axis=1).astype(np.uint64) \
        if n_words else np.zeros(0, dtype=np.uint64)


def _check_model(model: CompressedModel, c: EngineConfig) -> None:
    if len(model.layers) > c.max_layers:
        raise FitError(f"Model {model.arch!r} has {len(model.layers)} layers but the engine's "
                       f"descriptor table holds {c.max_layers}; raise max_layers")
    prev_rows = int(np.prod(model.input_shape))
    for layer in model.layers:
        if layer.kind != "fc":
            raise FitError(f"Layer {layer.name!r} is a {layer.kind} layer; the engine runs "
                           f"fc layers only")
        if layer.code_bits > c.code_bits:
            raise FitError(f"Layer {layer.name!r} needs {layer.code_bits} code bits but the "
                           f"engine has code_bits={c.code_bits}; build with "
                           f"code_bits={layer.code_bits}")
        if layer.cols != prev_rows:
            raise FitError(f"Layer {layer.name!r} has {layer.cols} inputs but receives "
                           f"{prev_rows} values")
        for what, length in (("inputs", layer.cols), ("outputs", layer.rows)):
            if -(-length // c.n_pe) > c.act_depth:
                raise FitError(
                    f"Layer {layer.name!r} has {length} {what}: {-(-length // c.n_pe)} per "
                    f"PE overflow the activation memory of {c.act_depth} by "
                    f"{-(-length // c.n_pe) - c.act_depth}; raise act_depth or n_pe")
        try:
            c.fmt.check_cols(layer.cols)
        except ConfigError as err:
            raise FitError(f"Layer {layer.name!r}: {err}") from None
        prev_rows = layer.rows


def _check_sizes(model, c: EngineConfig, pe_entries, ptr_used: int, bias_used: int) -> None:
    words = -(-int(pe_entries.max()) // c.entries_per_word)
    if words > c.sparse_words:
        raise FitError(
            f"Model {model.arch!r} needs {words} sparse-matrix words on its busiest PE "
            f"(PE {int(pe_entries.argmax())}) but the engine has {c.sparse_words}: over by "
            f"{words - c.sparse_words} words; raise sparse_words or n_pe")
    if ptr_used > c.ptr_depth:
        raise FitError(
            f"Model {model.arch!r} needs {ptr_used} column pointers per PE but the engine "
            f"has {c.ptr_depth}: over by {ptr_used - c.ptr_depth}; raise ptr_depth")
    if bias_used > c.bias_depth:
        raise FitError(
            f"Model {model.arch!r} needs {bias_used} biases per PE but the engine has "
            f"{c.bias_depth}: over by {bias_used - c.bias_depth}; raise bias_depth or n_pe")
