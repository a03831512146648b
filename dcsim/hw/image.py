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

import dataclasses
from dataclasses import dataclass

import numpy as np

from dcsim.compress.layer import CompressedModel
from dcsim.compress.sparse import interleave
from dcsim.errors import ConfigError, FitError, FormatError
from dcsim.hw.config import EngineConfig
from dcsim.hw.conv import GEOM_MAX, ConvGeometry, engine_cols, engine_layers, input_slots, \
    output_index
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
    kind : "fc" or "conv"; geometry : ``conv.ConvGeometry`` of a conv layer, else None.
    cols is the engine's column count (``conv.engine_layers``: a conv's gather order, an
    fc after a conv its map's slots); outputs : values the output stream gives if this
    layer is the last (fc: rows; conv: ``geometry.out_slots``).
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
    kind: str = "fc"
    geometry: ConvGeometry | None = None

    @property
    def outputs(self) -> int:
        """Values the output stream gives when this layer is the last."""
        return self.rows if self.geometry is None else self.geometry.out_slots


@dataclass(frozen=True, eq=False)
class EngineImage:
    """Every memory image of a model for one EngineConfig.

    sparse : list (n_pe) of object arrays of Python ints -- sparse-matrix SRAM words
        (``word_bits`` wide, up to 256).
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
        fmt = self.config.fmt
        for p in range(self.config.n_pe):
            words += [(Target.SPARSE, p, 0, a, int(d)) for a, d in enumerate(self.sparse[p])]
            words += [(Target.POINTER, p, 0, a, int(d)) for a, d in enumerate(self.pointers[p])]
            words += [(Target.BIAS, p, 0, a, _act_word(int(d), fmt, f"PE {p} bias {a}"))
                      for a, d in enumerate(self.biases[p])]
        entries = self.config.codebook_entries
        for l, layer in enumerate(self.layers):
            words += [(Target.CODEBOOK, 0, 1, l * entries + c,
                       _act_word(int(v), fmt, f"layer {layer.name!r} codebook value {c}"))
                      for c, v in enumerate(layer.codebook_q)]
        words += [(Target.DESC, 0, 1, l, d) for l, d in enumerate(self.descs)]
        return words

    @property
    def input_size(self) -> int:
        """Input activations of layer 0 (a conv's whole input map)."""
        first = self.layers[0]
        if first.geometry is None:
            return first.cols
        g = first.geometry
        return g.in_ch * g.in_h * g.in_w

    @property
    def n_outputs(self) -> int:
        """Values the output stream gives per run (``LayerImage.outputs`` of the last)."""
        return self.layers[-1].outputs

    def input_words(self, x_q) -> list:
        """Load words that put input activations ``x_q`` (int64, (input_size,), a map
        flattened in (C, H, W) order) in bank 0: for an fc layer 0 activation j on PE
        ``j % n_pe`` at ``j // n_pe``, for a conv the map layout (``conv.input_slots``)."""
        x_q = np.asarray(x_q, dtype=np.int64).reshape(-1)
        size = self.input_size
        if x_q.shape != (size,):
            raise ConfigError(f"x_q must have {size} values, not {x_q.shape[0]}")
        first = self.layers[0]
        g = first.geometry
        shape = (size,) if g is None else (g.in_ch, g.in_h, g.in_w)
        pe, addr = input_slots(shape, self.config.n_pe, g is not None)
        fmt = self.config.fmt
        return [(Target.ACT, int(p), 0, int(a), _act_word(int(v), fmt, f"input activation {j}"))
                for j, (p, a, v) in enumerate(zip(pe, addr, x_q))]

    def engine_inputs(self, x_q) -> np.ndarray:
        """Inputs ``x_q`` (N, input_size) in the order of the engine's index ``addr * n_pe +
        pe`` (N, slots), for a loader that writes value e at PE ``e % n_pe``, address
        ``e // n_pe`` (the native harness): an fc layer 0 takes ``x_q`` as it is, a conv's
        map is scattered to its layout with zeros in the padding channels' slots."""
        x_q = np.asarray(x_q, dtype=np.int64)
        g = self.layers[0].geometry
        if g is None:
            return x_q
        pe, addr = input_slots((g.in_ch, g.in_h, g.in_w), self.config.n_pe, True)
        out = np.zeros((x_q.shape[0], int((addr * self.config.n_pe + pe).max()) + 1),
                       dtype=np.int64)
        out[:, addr * self.config.n_pe + pe] = x_q.reshape(x_q.shape[0], -1)
        return out

    def kernel_outputs(self, stream) -> np.ndarray:
        """The output stream's values (N, n_outputs) or (n_outputs,) -> the last layer's
        outputs as the fixed kernel gives them (a conv map flattened in (C, H, W) order)."""
        stream = np.asarray(stream, dtype=np.int64)
        g = self.layers[-1].geometry
        if g is None:
            return stream
        return stream[..., output_index(g)]


def _act_word(value: int, fmt, what: str) -> int:
    """A signed activation-format value as the load stream's unsigned two's complement
    field; ConfigError if it does not fit the format (nothing is masked silently)."""
    if not fmt.min_int <= value <= fmt.max_int:
        raise ConfigError(f"{what} must be in {fmt.min_int}..{fmt.max_int} "
                          f"({fmt.act_bits}-bit fixed point), not {value}")
    return value & ((1 << fmt.act_bits) - 1)


@dataclass(frozen=True)
class FitCheck:
    """Required vs available room per on-chip memory (per PE): the one fit comparison,
    for a compiled model (:func:`memory_use`) and for analytic stand-ins
    (``perf.energy.paper_network_events``) alike.

    memories : tuple of (name, required, capacity) triples.
    units : tuple of each memory's unit, same order (default: bytes).
    """

    memories: tuple
    units: tuple = ()

    @property
    def fits(self) -> bool:
        """Every memory holds what it must."""
        return all(req <= cap for _, req, cap in self.memories)

    @property
    def overflows(self) -> tuple:
        """The (name, required, capacity) triples that do not fit."""
        return tuple(m for m in self.memories if m[1] > m[2])

    def as_list(self) -> list:
        """``{"memory", "required", "capacity", "unit"}`` dicts, JSON-ready."""
        units = self.units or ("bytes",) * len(self.memories)
        return [{"memory": n, "required": int(r), "capacity": int(c), "unit": u}
                for (n, r, c), u in zip(self.memories, units)]

    def require(self) -> None:
        """Raise FitError naming every memory that overflows."""
        if not self.fits:
            raise FitError("The model must fit on chip, but " + "; ".join(
                f"{n} needs {req} bytes per PE and holds {cap}"
                for n, req, cap in self.overflows)
                + " (use more PEs or larger memories)")


def fits_on_chip(required_bytes, capacity_bytes) -> FitCheck:
    """Compare per-PE required bytes with capacities, memory by memory.

    required_bytes, capacity_bytes : mappings with the same keys (e.g. ``sparse_sram``,
    ``ptr_sram``), values in bytes.
    """
    if set(required_bytes) != set(capacity_bytes):
        raise ConfigError(
            f"required_bytes and capacity_bytes must name the same memories, not "
            f"{sorted(required_bytes)} and {sorted(capacity_bytes)}")
    for label, mapping in (("required_bytes", required_bytes),
                           ("capacity_bytes", capacity_bytes)):
        for name, value in mapping.items():
            if (isinstance(value, bool) or not isinstance(value, (int, float, np.integer))
                    or not value >= 0):
                raise ConfigError(
                    f"{label}[{name!r}] must be a non-negative number, not {value!r}")
    return FitCheck(tuple((n, required_bytes[n], capacity_bytes[n]) for n in required_bytes))


def placement(model: CompressedModel, config: EngineConfig) -> tuple:
    """Where each layer's pointers and biases start, the same on every PE.

    Returns ``(ptr_base, bias_base, ptr_end, bias_end)``: lists of each layer's first
    pointer index (even: the pointer banks are read in pairs) and first bias address,
    then the pointers and biases the whole model takes per PE.
    """
    ptr_base, bias_base, ptr, bias = [], [], 0, 0
    cols = engine_cols(model, config.n_pe)
    for layer, n_cols in zip(model.layers, cols):
        ptr_base.append(ptr)
        bias_base.append(bias)
        ptr += n_cols + 1 + (n_cols + 1) % 2
        bias += -(-layer.rows // config.n_pe)
    ptr_end = ptr_base[-1] + cols[-1] + 1
    return ptr_base, bias_base, ptr_end, bias


def memory_use(model: CompressedModel, config: EngineConfig, col_entries=None) -> FitCheck:
    """Per-PE need vs capacity of every engine memory for the whole model resident:
    the rules ``compile_model`` refuses a model by.

    col_entries : optional list of each layer's (n_pe, cols) stored-entry counts
        (``perf.cycles.engine_col_entries``); computed from ``sparse.interleave`` if None.
    """
    c = config
    if col_entries is None:
        col_entries = [np.stack([np.diff(m.line_ptr) for m in
                                 interleave(matrix.codes, c.n_pe, c.idx_bits)])
                       for matrix, _ in engine_layers(model, c.n_pe)]
    entries = sum(np.asarray(ce, dtype=np.int64).sum(axis=1) for ce in col_entries)
    _, _, ptr_end, bias_end = placement(model, c)
    act = max(need for _, _, need in activation_use(model, c.n_pe))
    return FitCheck(
        memories=(("sparse_words", -(-int(entries.max()) // c.entries_per_word),
                   c.sparse_words),
                  ("ptr_depth", ptr_end, c.ptr_depth),
                  ("bias_depth", bias_end, c.bias_depth),
                  ("act_depth", act, c.act_depth),
                  ("max_layers", len(model.layers), c.max_layers)),
        units=(f"{c.word_bits}-bit words", "pointers", "biases", "activations per bank",
               "layer descriptors"))


def activation_use(model: CompressedModel, n_pe: int) -> list:
    """``(layer name, what, activations per PE per bank)`` of each layer's input and
    output as the engine lays them out (a conv map: ``groups * H * W`` per PE)."""
    out = []
    shape = tuple(model.input_shape)
    prev_conv = False
    for layer, n_cols in zip(model.layers, engine_cols(model, n_pe)):
        if layer.kind == "conv":
            g = ConvGeometry.of(layer, shape, n_pe)
            out += [(layer.name, "input map", g.in_local), (layer.name, "output map",
                                                            g.out_local)]
        else:
            out += [(layer.name, "input vector", -(-n_cols // n_pe)),
                    (layer.name, "output vector", -(-layer.rows // n_pe))]
        prev_conv = layer.kind == "conv"
        shape = layer.output_shape(shape)
    return out


def fit_error(model: CompressedModel, config: EngineConfig) -> str | None:
    """Why ``model`` does not fit ``config`` (the FitError message), or None if it fits."""
    try:
        compile_model(model, config)
    except FitError as err:
        return str(err)
    return None


def code_width_for(model: CompressedModel, config: EngineConfig) -> EngineConfig:
    """``config`` with ``code_bits`` raised to the model's widest codebook, if narrower.

    The rule "the engine's code width follows the model" (DESIGN.md): an engine of
    ``code_bits`` runs codes of at most that width (narrower ones zero-extend), so a
    config is widened only when the model needs more bits, never narrowed. Callers that
    pin ``code_bits`` skip this and let :func:`compile_model` refuse the model instead.
    """
    widest = max((layer.code_bits for layer in model.layers), default=config.code_bits)
    if widest <= config.code_bits:
        return config
    return dataclasses.replace(config, code_bits=widest)


def compile_model(model: CompressedModel, config: EngineConfig) -> EngineImage:
    """Memory images of ``model`` on an engine of ``config``; FitError if it does not fit.

    fc and conv layers run on the engine (conv layers on the input map or after another
    conv, ``dcsim.hw.conv``); each layer's input must be the previous layer's output.
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
    ptr_bases, bias_bases, _, _ = placement(model, c)
    for (layer, geom), ptr_base, bias_base in zip(engine_layers(model, n), ptr_bases,
                                                  bias_bases):
        codebook_q, bias_acc = quantize_layer(layer, fmt)
        bias_q = fmt.bias_word(bias_acc)
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
            col_entries=col_entries, codebook_q=padded,
            kind="fc" if geom is None else "conv", geometry=geom))
    _check_sizes(model, c, pe_entries, memory_use(
        model, c, [li.col_entries for li in layers]))
    sparse = [_pack_words(np.concatenate(entry_z[p]), np.concatenate(entry_code[p]), c)
              for p in range(n)]
    dl = desc_layout(c)
    descs = [pack(dl, **_desc_fields(li)) for li in layers]
    return EngineImage(
        config=c, sparse=sparse, pointers=[np.array(p, dtype=np.int64) for p in pointers],
        biases=[np.array(b, dtype=np.int64) for b in biases], descs=descs,
        layers=tuple(layers))


def _desc_fields(li: LayerImage) -> dict:
    """The descriptor fields of one layer (``layouts.desc_layout``)."""
    fields = dict(cols=li.cols, vectors=li.vectors, rows=li.outputs, rows_local=li.rows_local,
                  ptr_base=li.ptr_base, bias_base=li.bias_base, relu=int(li.relu))
    g = li.geometry
    if g is not None:
        fields.update(conv=1, in_ch=g.in_ch, in_h=g.in_h, in_w=g.in_w, in_hw=g.in_h * g.in_w,
                      groups=g.groups, kh=g.kh, kw=g.kw, stride=g.stride, padding=g.padding,
                      win=g.win, out_h=g.out_h, out_w=g.out_w, out_hw=g.out_h * g.out_w,
                      vectors=g.vectors)
    return fields


def _pointers(entries: np.ndarray, c: EngineConfig) -> np.ndarray:
    """Column pointers ``word << slot_bits | slot`` of entry indices (int64 array)."""
    word, slot = np.divmod(entries, c.entries_per_word)
    return (word << c.slot_bits) | slot


def _pack_words(z: np.ndarray, code: np.ndarray, c: EngineConfig) -> np.ndarray:
    """Entries -> sparse words as an object array of Python ints (``word_bits`` may
    exceed 64), slot s of a word at bits ``s * entry_bits`` up."""
    per = c.entries_per_word
    n_words = -(-z.shape[0] // per)
    entry = np.zeros(n_words * per, dtype=np.int64)
    entry[:z.shape[0]] = z | (code << c.idx_bits)
    words = np.zeros(n_words, dtype=object)
    for s in range(per):
        words |= entry[s::per].astype(object) << (s * c.entry_bits)
    return words


def _check_model(model: CompressedModel, c: EngineConfig) -> None:
    if len(model.layers) > c.max_layers:
        raise FitError(f"Model {model.arch!r} has {len(model.layers)} layers but the engine's "
                       f"descriptor table holds {c.max_layers}; raise max_layers")
    shape = tuple(model.input_shape)
    for layer in model.layers:
        if layer.code_bits > c.code_bits:
            raise FitError(f"Layer {layer.name!r} needs {layer.code_bits} code bits but the "
                           f"engine has code_bits={c.code_bits}; build with "
                           f"code_bits={layer.code_bits}")
        try:
            next_shape = layer.output_shape(shape)
        except FormatError as err:
            raise FitError(str(err)) from None
        if layer.kind == "conv":
            _, _, kh, kw = layer.shape
            for what, value in (("kernel height", kh), ("kernel width", kw),
                                ("stride", layer.stride), ("padding", layer.padding),
                                ("pool", layer.pool)):
                if value > GEOM_MAX:
                    raise FitError(f"Layer {layer.name!r} has {what} {value} but the "
                                   f"engine's conv descriptor holds at most {GEOM_MAX}")
        try:
            c.fmt.check_cols(layer.cols)
        except ConfigError as err:
            raise FitError(f"Layer {layer.name!r}: {err}") from None
        shape = next_shape
    for name, what, need in activation_use(model, c.n_pe):
        if need > c.act_depth:
            raise FitError(
                f"Layer {name!r}: its {what} needs {need} activations per PE but the "
                f"activation memory holds {c.act_depth}: over by {need - c.act_depth}; "
                f"raise act_depth or n_pe")


def _check_sizes(model, c: EngineConfig, pe_entries, use: FitCheck) -> None:
    need = {name: (req, cap) for name, req, cap in use.memories}
    words, _ = need["sparse_words"]
    if words > c.sparse_words:
        raise FitError(
            f"Model {model.arch!r} needs {words} sparse-matrix words on its busiest PE "
            f"(PE {int(pe_entries.argmax())}) but the engine has {c.sparse_words}: over by "
            f"{words - c.sparse_words} words; raise sparse_words or n_pe")
    ptr_used, _ = need["ptr_depth"]
    if ptr_used > c.ptr_depth:
        raise FitError(
            f"Model {model.arch!r} needs {ptr_used} column pointers per PE but the engine "
            f"has {c.ptr_depth}: over by {ptr_used - c.ptr_depth}; raise ptr_depth")
    bias_used, _ = need["bias_depth"]
    if bias_used > c.bias_depth:
        raise FitError(
            f"Model {model.arch!r} needs {bias_used} biases per PE but the engine has "
            f"{c.bias_depth}: over by {bias_used - c.bias_depth}; raise bias_depth or n_pe")
