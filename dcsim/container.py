"""The ``.dcz`` file: a compressed model, versioned, checksummed, written atomically.

Layout (all integers little-endian)::

    magic      4 bytes  b"DCZ1"
    version    u16      FORMAT_VERSION
    n_sections u16
    table      n_sections x (type u8, length u32, crc32 u32)
    table_crc  u32      CRC-32 of every byte before it
    sections   the payloads, back to back, in table order

Sections: one META (zlib-compressed compact JSON: arch, input_shape, the model's meta
dict, one descriptor per layer), then six per layer, in layer order: CODEBOOK
(float32 ``codebook[1:]``, code 0 is always 0), BIAS (float32), CODE_TABLE and
INDEX_TABLE (Huffman code lengths, :func:`dcsim.compress.huffman.pack_lengths`),
CODE_STREAM and INDEX_STREAM (the Huffman-coded codes and relative indices); then,
for an imported network only, one GRAPH (zlib-compressed compact JSON
``{"version": GRAPH_VERSION, "layers": [...], "source": {...}}``, the model's
``graph``). Files without it (the model zoo's, and every file written before it
existed) read as before.

Storage form of a layer's weights (DESIGN.md): the whole code matrix, flattened
row-major (``order = "row"``) or column-major (``"col"``), is one relative-index line
(:func:`dcsim.compress.sparse.encode` on a ``(1, rows*cols)`` matrix), so no per-row
pointers are stored: fillers bridge row boundaries like any other gap, and run on to
the end of the line (fewer than ``2**index_bits`` positions follow the last entry), so
a layer's declared size is bounded by its streams before anything is allocated. The writer
tries both orders and keeps the smaller. Each stream is coded with its own optimal
length-limited Huffman code (at most 16 bits).

Every count read from a file is bounded by the section sizes or by the declared shapes
(a layer may hold at most ``MAX_LAYER_WEIGHTS`` weights) before anything is allocated,
and every section's CRC is checked before it is parsed: a bad file raises
:class:`~dcsim.errors.ContainerError` with a one-line message naming the file.
"""

from __future__ import annotations

import json
import os
import struct
import zlib

import numpy as np

from dcsim.compress import huffman, sparse
from dcsim.compress.layer import LAYER_KINDS, CompressedLayer, CompressedModel, code_dtype
from dcsim.errors import ContainerError, FormatError
from dcsim.files import write_bytes_atomic

MAGIC = b"DCZ1"
FORMAT_VERSION = 2
"""2: fillers run to the end of each layer's line (version 1 stopped at its last weight)."""
MAX_LAYER_WEIGHTS = 2 ** 31
"""Largest layer a file may declare (weights); larger ones are refused unread."""
MAX_META_BYTES = 16 * 2 ** 20
"""Largest decompressed META (or GRAPH) section accepted."""
GRAPH_VERSION = 1
"""Version of the GRAPH section's JSON."""

_HEAD = struct.Struct("<4sHH")
_ENTRY = struct.Struct("<BII")
_CRC = struct.Struct("<I")

META, CODEBOOK, BIAS, CODE_TABLE, CODE_STREAM, INDEX_TABLE, INDEX_STREAM, GRAPH = \
    range(1, 9)
LAYER_SECTIONS = (CODEBOOK, BIAS, CODE_TABLE, CODE_STREAM, INDEX_TABLE, INDEX_STREAM)
SECTION_NAMES = {META: "meta", CODEBOOK: "codebook", BIAS: "bias",
                 CODE_TABLE: "code_table", CODE_STREAM: "code_stream",
                 INDEX_TABLE: "index_table", INDEX_STREAM: "index_stream",
                 GRAPH: "graph"}
ORDERS = ("row", "col")


def write(model: CompressedModel, path) -> int:
    """Write ``model`` to ``path`` atomically; return the bytes written.

    The file is written to a temporary file in the same directory and renamed over
    ``path`` only when complete, so a failure leaves ``path`` as it was.
    """
    if not isinstance(model, CompressedModel):
        raise FormatError(f"model must be a CompressedModel, not {type(model).__name__}")
    descriptors = []
    sections = []
    for layer in model.layers:
        desc, payloads = _encode_layer(layer)
        descriptors.append(desc)
        sections.extend(zip(LAYER_SECTIONS, payloads))
    meta = {"arch": model.arch, "input_shape": list(model.input_shape),
            "meta": model.meta, "layers": descriptors}
    try:
        meta_json = json.dumps(meta, separators=(",", ":")).encode()
    except (TypeError, ValueError) as e:
        raise FormatError(f"model.meta must be JSON-serialisable, not {model.meta!r} "
                          f"({e})") from None
    sections.insert(0, (META, zlib.compress(meta_json, 9)))
    if model.graph is not None:
        graph_json = json.dumps({"version": GRAPH_VERSION, **model.graph},
                                separators=(",", ":")).encode()
        sections.append((GRAPH, zlib.compress(graph_json, 9)))
    blob = _assemble(sections)
    _write_atomic(os.fspath(path), blob)
    return len(blob)


def read(path) -> CompressedModel:
    """The model stored in ``path``; ContainerError if the file is not a valid .dcz."""
    return load(path)[0]


def inspect(path) -> dict:
    """Section-by-section byte accounting of ``path``.

    Returns a JSON-able dict: ``path``, ``file_bytes``, ``version``, ``arch``,
    ``header_bytes`` (magic, version, section table and its CRC), ``meta_bytes`` and
    ``layers``, one dict per layer with ``name``, ``order`` (``"row"``/``"col"``),
    ``n_entries``, ``n_fillers``, ``code_stream_bits``, ``index_stream_bits``, the
    bytes of each of its sections (``codebook_bytes``, ``bias_bytes``,
    ``code_table_bytes``, ``code_stream_bytes``, ``index_table_bytes``,
    ``index_stream_bytes``) and their sum ``total_bytes``; ``graph_bytes`` (0 without a
    GRAPH section). ``total_bytes`` at the top is header + meta + every layer's total +
    graph, which equals ``file_bytes``.
    """
    return load(path)[1]


def load(path) -> tuple[CompressedModel, dict]:
    """``(read(path), inspect(path))`` from a single read of the file."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as e:
        raise ContainerError(f"{path}: cannot read the file ({e.strerror})") from None
    return _Reader(path, blob).parse()


def layer_bytes(layer: CompressedLayer) -> int:
    """The bytes ``layer`` takes in a ``.dcz`` (its six sections, in the smaller order):
    what :func:`inspect` reports as the layer's ``total_bytes``, without a file."""
    return sum(len(p) for p in _encode_layer(layer)[1])


def _encode_layer(layer: CompressedLayer) -> tuple[dict, list]:
    """The layer's descriptor and its six section payloads, in the smaller order."""
    if np.signbit(layer.codebook[0]):
        raise FormatError(f"Layer {layer.name!r}: codebook[0] must be +0.0 (the file "
                          f"does not store it), not -0.0")
    fixed = [layer.codebook[1:].astype("<f4").tobytes(), layer.bias.astype("<f4").tobytes()]
    best = None
    for order in ORDERS:
        line = layer.codes if order == "row" else layer.codes.T
        z_line, code_line = line_entries(np.ascontiguousarray(line).reshape(-1),
                                         layer.index_bits)
        code = huffman.HuffmanStream.compress(code_line, 2 ** layer.code_bits)
        z = huffman.HuffmanStream.compress(z_line, 2 ** layer.index_bits)
        payloads = fixed + [huffman.pack_lengths(code.lengths), code.data,
                            huffman.pack_lengths(z.lengths), z.data]
        size = sum(len(p) for p in payloads)
        if best is None or size < best[0]:
            best = (size, order, z_line.shape[0], code.n_bits, z.n_bits, payloads)
    _, order, n_entries, code_bits, z_bits, payloads = best
    desc = {"name": layer.name, "kind": layer.kind, "shape": list(layer.shape),
            "code_bits": layer.code_bits, "index_bits": layer.index_bits,
            "relu": bool(layer.relu), "pool": int(layer.pool), "stride": int(layer.stride),
            "padding": int(layer.padding), "order": order, "n_entries": n_entries,
            "code_nbits": code_bits, "index_nbits": z_bits}
    return desc, payloads


def line_entries(line: np.ndarray, index_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """The one-line relative-index entries ``(z, code)`` of a flattened code matrix, with
    fillers to the end of the line: after the last entry fewer than ``2**index_bits``
    positions are left, so the declared size of a layer is bounded by its streams."""
    m = sparse.encode(line.reshape(1, -1), index_bits, "csr")
    span = 1 << index_bits
    end = int(sparse.positions(m)[-1]) + 1 if m.n_entries else 0
    tail = (line.shape[0] - end) // span
    z = np.concatenate([m.z, np.full(tail, span - 1, dtype=m.z.dtype)])
    code = np.concatenate([m.code, np.zeros(tail, dtype=m.code.dtype)])
    return z, code


def _assemble(sections: list) -> bytes:
    head = bytearray(_HEAD.pack(MAGIC, FORMAT_VERSION, len(sections)))
    for kind, payload in sections:
        head += _ENTRY.pack(kind, len(payload), zlib.crc32(payload))
    head += _CRC.pack(zlib.crc32(head))
    return bytes(head) + b"".join(payload for _, payload in sections)


def _write_atomic(path: str, blob: bytes) -> None:
    """``files.write_bytes_atomic``, its OSError as a ContainerError naming the file."""
    try:
        write_bytes_atomic(path, blob)
    except OSError as e:
        raise ContainerError(f"{path}: cannot write the file ({e})") from e


class _Reader:
    """Parses one file's bytes; every error names the file."""

    def __init__(self, path: str, blob: bytes):
        self.path = path
        self.blob = blob

    def fail(self, what: str):
        raise ContainerError(f"{self.path}: {what}")

    def parse(self) -> tuple[CompressedModel, dict]:
        sections, header_bytes = self.section_table()
        if sections[0][0] != META:
            self.fail(f"the first section must be meta, not type {sections[0][0]}")
        meta = self.meta(sections[0][1])
        descs = meta["layers"]
        graph, graph_bytes = None, 0
        if len(sections) > 1 and sections[-1][0] == GRAPH:
            graph_bytes = len(sections[-1][1])
            graph = self.graph(sections.pop()[1])
        if len(sections) != 1 + len(LAYER_SECTIONS) * len(descs):
            self.fail(f"the file must have {1 + len(LAYER_SECTIONS) * len(descs)} sections "
                      f"for {len(descs)} layers, not {len(sections)}")
        layers, infos = [], []
        for i, desc in enumerate(descs):
            chunk = sections[1 + len(LAYER_SECTIONS) * i: 1 + len(LAYER_SECTIONS) * (i + 1)]
            for want, (kind, _) in zip(LAYER_SECTIONS, chunk):
                if kind != want:
                    self.fail(f"layer {desc['name']!r}: section must be "
                              f"{SECTION_NAMES[want]}, not type {kind}")
            layer, info = self.layer(desc, [payload for _, payload in chunk])
            layers.append(layer)
            infos.append(info)
        try:
            model = CompressedModel(arch=meta["arch"], input_shape=meta["input_shape"],
                                    layers=layers, meta=meta["meta"], graph=graph)
        except FormatError as e:
            self.fail(f"bad model: {e}")
        info = {"path": self.path, "file_bytes": len(self.blob), "version": FORMAT_VERSION,
                "arch": model.arch, "header_bytes": header_bytes,
                "meta_bytes": len(sections[0][1]), "layers": infos,
                "graph_bytes": graph_bytes}
        info["total_bytes"] = (header_bytes + info["meta_bytes"]
                               + sum(l["total_bytes"] for l in infos) + graph_bytes)
        return model, info

    def section_table(self) -> tuple[list, int]:
        blob = self.blob
        if len(blob) < _HEAD.size:
            self.fail(f"the file is truncated: {len(blob)} bytes is shorter than the "
                      f"{_HEAD.size}-byte header")
        magic, version, n_sections = _HEAD.unpack_from(blob)
        if magic != MAGIC:
            self.fail(f"not a .dcz file: magic must be {MAGIC!r}, not {magic!r}")
        if version != FORMAT_VERSION:
            self.fail(f"format version must be {FORMAT_VERSION}, not {version} (written by "
                      f"another dcsim version; re-run `dcsim compress`)")
        if n_sections < 1:
            self.fail("the file must have at least one section, not 0")
        header_bytes = _HEAD.size + n_sections * _ENTRY.size + _CRC.size
        if len(blob) < header_bytes:
            self.fail(f"the file is truncated: {len(blob)} bytes is shorter than its "
                      f"{header_bytes}-byte section table")
        (table_crc,) = _CRC.unpack_from(blob, header_bytes - _CRC.size)
        if zlib.crc32(blob[:header_bytes - _CRC.size]) != table_crc:
            self.fail("the section table is corrupted (CRC mismatch)")
        entries = [_ENTRY.unpack_from(blob, _HEAD.size + i * _ENTRY.size)
                   for i in range(n_sections)]
        want = header_bytes + sum(length for _, length, _ in entries)
        if len(blob) != want:
            state = "truncated" if len(blob) < want else "followed by extra bytes"
            self.fail(f"the file is {state}: its sections need {want} bytes, the file "
                      f"has {len(blob)}")
        sections = []
        pos = header_bytes
        for i, (kind, length, crc) in enumerate(entries):
            payload = blob[pos:pos + length]
            pos += length
            if kind not in SECTION_NAMES:
                self.fail(f"section {i} type must be one of {sorted(SECTION_NAMES)}, "
                          f"not {kind}")
            if zlib.crc32(payload) != crc:
                self.fail(f"section {i} ({SECTION_NAMES[kind]}) is corrupted (CRC mismatch)")
            sections.append((kind, payload))
        return sections, header_bytes

    def json_section(self, payload: bytes, what: str) -> dict:
        """The JSON object in a zlib-compressed section."""
        inflater = zlib.decompressobj()
        try:
            raw = inflater.decompress(payload, MAX_META_BYTES)
        except zlib.error as e:
            self.fail(f"the {what} section is not valid zlib data ({e})")
        if inflater.unconsumed_tail:
            self.fail(f"the {what} section must inflate to at most {MAX_META_BYTES} bytes")
        if not inflater.eof or inflater.unused_data:
            self.fail(f"the {what} section's zlib data is truncated or followed by extra "
                      f"bytes")
        try:
            obj = json.loads(raw)
        except (UnicodeDecodeError, ValueError) as e:
            self.fail(f"the {what} section is not valid JSON ({e})")
        if not isinstance(obj, dict):
            self.fail(f"the {what} section must be a JSON object, not {type(obj).__name__}")
        return obj

    def graph(self, payload: bytes) -> dict:
        graph = self.json_section(payload, "graph")
        if graph.get("version") != GRAPH_VERSION:
            self.fail(f"graph version must be {GRAPH_VERSION}, not {graph.get('version')!r} "
                      f"(written by another dcsim version; re-run `dcsim compress`)")
        if set(graph) != {"version", "layers", "source"} or not isinstance(
                graph["layers"], list) or not isinstance(graph["source"], dict):
            self.fail(f"the graph section must hold version, layers (a list) and source "
                      f"(an object), not keys {sorted(graph)}")
        del graph["version"]
        return graph

    def meta(self, payload: bytes) -> dict:
        meta = self.json_section(payload, "meta")
        for key, kind in (("arch", str), ("input_shape", list), ("meta", dict),
                          ("layers", list)):
            if not isinstance(meta.get(key), kind):
                self.fail(f"meta field {key!r} must be a {kind.__name__}, "
                          f"not {meta.get(key)!r}")
        if not all(_is_int(s) and s >= 0 for s in meta["input_shape"]):
            self.fail(f"meta input_shape must be non-negative integers, "
                      f"not {meta['input_shape']!r}")
        if not all(isinstance(d, dict) for d in meta["layers"]):
            self.fail("meta layers must be JSON objects")
        for d in meta["layers"]:
            self.descriptor(d)
        return meta

    def descriptor(self, d: dict) -> None:
        name = d.get("name")
        if not isinstance(name, str):
            self.fail(f"a layer name must be a string, not {name!r}")

        def need(key, ok, what):
            if key not in d or not ok(d[key]):
                self.fail(f"layer {name!r}: {key} must be {what}, not {d.get(key)!r}")

        need("kind", lambda v: v in LAYER_KINDS, f"one of {LAYER_KINDS}")
        need("shape", lambda v: isinstance(v, list) and len(v) in (2, 4)
             and all(_is_int(s) and s >= 1 for s in v), "2 or 4 positive integers")
        n_weights = int(np.prod(d["shape"], dtype=object))
        if n_weights > MAX_LAYER_WEIGHTS:
            self.fail(f"layer {name!r}: a layer must hold at most {MAX_LAYER_WEIGHTS} "
                      f"weights, not {n_weights} (shape {d['shape']})")
        for key in ("code_bits", "index_bits"):
            need(key, lambda v: _is_int(v) and 1 <= v <= 16, "an integer in 1..16")
        need("relu", lambda v: isinstance(v, bool), "a boolean")
        for key in ("pool", "stride", "padding"):
            need(key, lambda v: _is_int(v) and 0 <= v <= 2 ** 16, "an integer in 0..65536")
        need("order", lambda v: v in ORDERS, f"one of {ORDERS}")
        for key in ("n_entries", "code_nbits", "index_nbits"):
            need(key, lambda v: _is_int(v) and 0 <= v <= 2 ** 40, "a non-negative integer")

    def layer(self, d: dict, payloads: list) -> tuple[CompressedLayer, dict]:
        name = d["name"]
        codebook_raw, bias_raw, code_table, code_data, z_table, z_data = payloads
        shape = tuple(d["shape"])
        rows, n_weights = shape[0], int(np.prod(shape))
        code_bits, index_bits, n_entries = d["code_bits"], d["index_bits"], d["n_entries"]
        if len(codebook_raw) != 4 * (2 ** code_bits - 1):
            self.fail(f"layer {name!r}: the codebook section must hold "
                      f"{4 * (2 ** code_bits - 1)} bytes for {code_bits} code bits, "
                      f"not {len(codebook_raw)}")
        if len(bias_raw) != 4 * rows:
            self.fail(f"layer {name!r}: the bias section must hold {4 * rows} bytes for "
                      f"{rows} rows, not {len(bias_raw)}")
        span = 2 ** index_bits
        if n_weights >= (n_entries + 1) * span:
            self.fail(f"layer {name!r}: its shape {list(shape)} declares {n_weights} weights "
                      f"but its {n_entries} entries of {index_bits}-bit indices cover at "
                      f"most {(n_entries + 1) * span - 1}")
        codebook = np.zeros(2 ** code_bits, dtype=np.float32)
        codebook[1:] = np.frombuffer(codebook_raw, dtype="<f4")
        bias = np.frombuffer(bias_raw, dtype="<f4").astype(np.float32)
        code = self.stream(name, "code", code_table, code_data, 2 ** code_bits, n_entries,
                           d["code_nbits"])
        z = self.stream(name, "index", z_table, z_data, 2 ** index_bits, n_entries,
                        d["index_nbits"])
        codes = self.scatter(name, n_weights, index_bits, code_bits, z, code)
        if d["order"] == "row":
            matrix = codes.reshape(rows, n_weights // rows)
        else:
            matrix = codes.reshape(n_weights // rows, rows).T
        try:
            layer = CompressedLayer(
                name=name, kind=d["kind"], shape=shape, codes=np.ascontiguousarray(matrix),
                codebook=codebook, bias=bias, code_bits=code_bits, index_bits=index_bits,
                relu=d["relu"], pool=d["pool"], stride=d["stride"], padding=d["padding"])
        except FormatError as e:
            self.fail(f"bad layer: {e}")
        sizes = {f"{SECTION_NAMES[k]}_bytes": len(p) for k, p in zip(LAYER_SECTIONS, payloads)}
        info = {"name": name, "order": d["order"], "n_entries": n_entries,
                "n_fillers": int(np.count_nonzero(code == 0)),
                "code_stream_bits": d["code_nbits"], "index_stream_bits": d["index_nbits"],
                **sizes, "total_bytes": sum(sizes.values())}
        return layer, info

    def stream(self, name, what, table, data, alphabet, n_symbols, n_bits) -> np.ndarray:
        try:
            lengths, used = huffman.unpack_lengths(table, alphabet)
            if used != len(table):
                raise FormatError(f"the table must take all {len(table)} bytes of its "
                                  f"section, not {used}")
            return huffman.decode(data, n_symbols, lengths, n_bits=n_bits)
        except FormatError as e:
            self.fail(f"layer {name!r}: bad {what} stream: {e}")

    def scatter(self, name, n_weights, index_bits, code_bits, z, code) -> np.ndarray:
        """The flattened codes from the one-line relative-index entries."""
        zmax = 2 ** index_bits - 1
        if np.any((code == 0) & (z != zmax)):
            self.fail(f"layer {name!r}: a filler entry (code 0) must have z = {zmax}")
        m = sparse.RelIndexMatrix(order="csr", shape=(1, n_weights), index_bits=index_bits,
                                  line_ptr=np.array([0, z.shape[0]], dtype=np.int64),
                                  z=z, code=code)
        try:
            pos = sparse.positions(m)
        except FormatError as e:
            self.fail(f"layer {name!r}: bad relative indices: {e}")
        end = int(pos[-1]) + 1 if pos.size else 0
        if n_weights - end > zmax:
            self.fail(f"layer {name!r}: fillers must run to the end of the layer, leaving "
                      f"fewer than {zmax + 1} positions, not {n_weights - end}")
        codes = np.zeros(n_weights, dtype=code_dtype(code_bits))
        codes[pos] = code
        return codes


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)
