"""Tests of dcsim.container: round trips, byte accounting, corruption, atomic writes."""

import dataclasses
import json
import os
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from dcsim import container
from dcsim.compress.layer import CompressedLayer, CompressedModel
from dcsim.errors import ContainerError, FormatError


def random_layer(rng, name, kind, shape, density, code_bits, index_bits):
    rows = shape[0]
    cols = int(np.prod(shape[1:]))
    keep = rng.random((rows, cols)) < density
    codes = np.where(keep, rng.integers(1, 2 ** code_bits, size=(rows, cols)), 0)
    codebook = np.concatenate([[0.0], rng.standard_normal(2 ** code_bits - 1)])
    return CompressedLayer(
        name=name, kind=kind, shape=shape, codes=codes, codebook=codebook,
        bias=rng.standard_normal(rows), code_bits=code_bits, index_bits=index_bits,
        relu=bool(rng.integers(2)), pool=int(rng.integers(3)) if kind == "conv" else 0,
        stride=int(rng.integers(1, 3)), padding=int(rng.integers(3)))


def small_model(seed=0):
    rng = np.random.default_rng(seed)
    layers = [random_layer(rng, "conv1", "conv", (3, 1, 3, 3), 0.6, 8, 5),
              random_layer(rng, "ip1", "fc", (6, 27), 0.15, 5, 3)]   # conv1 -> (3, 3, 3)
    return CompressedModel(arch="tiny", input_shape=(1, 8, 8), layers=layers,
                           meta={"baseline_error": 1.5, "compressed_error": 1.25})


@st.composite
def layer_params(draw):
    kind = draw(st.sampled_from(["fc", "conv"]))
    if kind == "fc":
        shape = (draw(st.integers(1, 12)), draw(st.integers(1, 120)))
    else:
        k = draw(st.integers(1, 5))
        shape = (draw(st.integers(1, 6)), draw(st.integers(1, 4)), k, k)
    density = draw(st.one_of(st.just(0.0), st.just(1.0), st.floats(0, 1), st.floats(0, 0.05)))
    code_bits = draw(st.one_of(st.integers(1, 8), st.integers(9, 16)))
    index_bits = draw(st.one_of(st.integers(1, 8), st.integers(9, 16)))
    return kind, shape, density, code_bits, index_bits


def chained_layers(rng, params):
    """Random layers of the drawn kinds and sizes that connect (conv layers first, each
    layer taking the previous one's output), and the model input shape they need."""
    params = sorted(params, key=lambda p: p[0] != "conv")
    kind, shape = params[0][:2]
    shape_in = (shape[1], 12, 12) if kind == "conv" else (shape[1],)
    layers, here = [], shape_in
    for i, (kind, shape, *rest) in enumerate(params):
        if kind == "conv":
            shape = (shape[0], here[0]) + shape[2:]
        else:
            shape = (shape[0], int(np.prod(here)))
        layer = random_layer(rng, f"l{i}", kind, shape, *rest)
        try:
            here = layer.output_shape(here)
        except FormatError:                  # too small a map for this kernel: pad it
            layer = dataclasses.replace(layer, stride=1, pool=0, padding=shape[2])
            here = layer.output_shape(here)
        layers.append(layer)
    return layers, shape_in


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(layer_params(), min_size=1, max_size=3), st.integers(0, 2 ** 32 - 1))
def test_round_trip_random_layers(tmp_path, params, seed):
    print("seed =", seed, "layers =", params)
    rng = np.random.default_rng(seed)
    layers, input_shape = chained_layers(rng, params)
    model = CompressedModel(arch="rand", input_shape=input_shape, layers=layers,
                            meta={"seed": seed})
    path = tmp_path / "m.dcz"
    n = container.write(model, path)
    assert n == os.path.getsize(path)
    back, info = container.load(path)
    assert model.same_as(back)
    assert back.meta == {"seed": seed}
    assert info["total_bytes"] == info["file_bytes"] == n
    assert info["header_bytes"] + info["meta_bytes"] + sum(
        l["total_bytes"] for l in info["layers"]) == n
    for layer, li in zip(model.layers, info["layers"]):
        assert li["n_entries"] - li["n_fillers"] == layer.nnz
        assert li["codebook_bytes"] == 4 * (2 ** layer.code_bits - 1)
        assert li["bias_bytes"] == 4 * layer.rows
        assert li["code_stream_bytes"] == (li["code_stream_bits"] + 7) // 8
        assert li["index_stream_bytes"] == (li["index_stream_bits"] + 7) // 8


def test_layer_bytes_are_the_files(tmp_path):
    model = small_model()
    path = tmp_path / "m.dcz"
    container.write(model, path)
    info = container.inspect(path)
    assert [container.layer_bytes(layer) for layer in model.layers] == \
        [layer["total_bytes"] for layer in info["layers"]]


def test_long_gaps_use_fillers_across_rows(tmp_path):
    # 1-bit indices: every skipped pair of zeros costs a filler, and rows are bridged.
    codes = np.zeros((4, 10), dtype=np.uint8)
    codes[0, 0] = 1
    codes[3, 9] = 1
    layer = CompressedLayer(name="ip", kind="fc", shape=(4, 10), codes=codes,
                            codebook=np.array([0, 0.5], dtype=np.float32),
                            bias=np.zeros(4), code_bits=1, index_bits=1)
    model = CompressedModel(arch="gap", input_shape=(10,), layers=[layer])
    container.write(model, tmp_path / "g.dcz")
    back, info = container.load(tmp_path / "g.dcz")
    assert back.same_as(model)
    # 38 zeros between the two weights in either order: 19 fillers of 2 positions each.
    assert info["layers"][0]["n_fillers"] == 19
    assert info["layers"][0]["n_entries"] == 21


def test_storage_order_is_the_smaller(tmp_path):
    # 3-bit indices (span 8). Column 0 full: row-major it is positions 0, 8, ..., 56,
    # z = [0, 7, 7, ...] with 7 positions left (< 8): 8 entries, no filler; column-major
    # it is positions 0..7 and then 56 zeros: 56 // 8 = 7 fillers. The transpose (row 0
    # full) is the mirror image.
    one_col = np.zeros((8, 8), dtype=np.uint8)
    one_col[:, 0] = 1
    layers = [CompressedLayer(name=n, kind="fc", shape=c.shape, codes=c,
                              codebook=np.array([0, 1], dtype=np.float32),
                              bias=np.zeros(8), code_bits=1, index_bits=3)
              for n, c in (("col", one_col), ("row", one_col.T.copy()))]
    model = CompressedModel(arch="o", input_shape=(8,), layers=layers)
    container.write(model, tmp_path / "o.dcz")
    info = container.inspect(tmp_path / "o.dcz")
    assert [l["order"] for l in info["layers"]] == ["row", "col"]
    assert [l["n_fillers"] for l in info["layers"]] == [0, 0]
    assert [l["n_entries"] for l in info["layers"]] == [8, 8]
    assert container.read(tmp_path / "o.dcz").same_as(model)


def test_write_failure_leaves_nothing(tmp_path, monkeypatch):
    path = tmp_path / "m.dcz"
    path.write_bytes(b"old contents")

    def boom(fd):
        raise OSError("disk full")

    monkeypatch.setattr(container.os, "fsync", boom)
    with pytest.raises(ContainerError, match=r"m\.dcz: cannot write the file \(disk full\)"):
        container.write(small_model(), path)
    assert sorted(os.listdir(tmp_path)) == ["m.dcz"]
    assert path.read_bytes() == b"old contents"
    monkeypatch.undo()

    def no_replace(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(container.os, "replace", no_replace)
    with pytest.raises(ContainerError, match=r"new\.dcz: cannot write the file \(rename "
                                             r"failed\)"):
        container.write(small_model(), tmp_path / "new.dcz")
    assert sorted(os.listdir(tmp_path)) == ["m.dcz"]


@pytest.fixture
def small_file(tmp_path):
    path = tmp_path / "s.dcz"
    container.write(small_model(), path)
    return path


def sections_of(blob):
    """[(type, payload)] of a valid file (test helper)."""
    _, _, n = struct.unpack_from("<4sHH", blob)
    pos = 8 + 9 * n + 4
    out = []
    for i in range(n):
        kind, length, _ = struct.unpack_from("<BII", blob, 8 + 9 * i)
        out.append((kind, blob[pos:pos + length]))
        pos += length
    return out


def rebuilt(blob, edit_meta=None, edit_section=None):
    """A file with valid checksums whose meta or one section is changed."""
    sections = sections_of(blob)
    if edit_meta is not None:
        meta = json.loads(zlib.decompress(sections[0][1]))
        edit_meta(meta)
        sections[0] = (container.META, zlib.compress(json.dumps(meta).encode()))
    if edit_section is not None:
        index, payload = edit_section
        sections[index] = (sections[index][0], payload)
    return container._assemble(sections)


def test_truncation_at_every_cut_raises(small_file):
    blob = small_file.read_bytes()
    for cut in range(len(blob)):
        small_file.write_bytes(blob[:cut])
        with pytest.raises(ContainerError, match=str(small_file)):
            container.read(small_file)


def test_every_flipped_byte_raises(small_file):
    blob = small_file.read_bytes()
    for pos in range(len(blob)):
        for mask in (0x01, 0x80):
            bad = bytearray(blob)
            bad[pos] ^= mask
            small_file.write_bytes(bytes(bad))
            with pytest.raises(ContainerError, match=str(small_file)):
                container.read(small_file)


def test_extra_bytes_raise(small_file):
    small_file.write_bytes(small_file.read_bytes() + b"\x00")
    with pytest.raises(ContainerError, match="followed by extra bytes"):
        container.read(small_file)


def flipped(path, pos):
    blob = bytearray(path.read_bytes())
    blob[pos] ^= 0x10
    path.write_bytes(bytes(blob))


def section_offset(blob, index):
    n = struct.unpack_from("<H", blob, 6)[0]
    pos = 8 + 9 * n + 4
    for kind, payload in sections_of(blob)[:index]:
        pos += len(payload)
    return pos


def test_wrong_magic(small_file):
    flipped(small_file, 0)
    with pytest.raises(ContainerError, match=r"s\.dcz: not a \.dcz file: magic must be "
                                             r"b'DCZ1', not b'TCZ1'$"):
        container.read(small_file)


def test_version_mismatch_message(small_file):
    blob = bytearray(small_file.read_bytes())
    blob[4:6] = struct.pack("<H", 1)         # version 1 had no fillers at line ends
    small_file.write_bytes(bytes(blob))
    with pytest.raises(ContainerError) as e:
        container.read(small_file)
    assert str(e.value) == (f"{small_file}: format version must be 2, not 1 (written by "
                            "another dcsim version; re-run `dcsim compress`)")


@pytest.mark.parametrize("where, message", [
    ("section_count", "section table is corrupted"),
    ("section_length", "section table is corrupted"),
    ("section_crc", "section table is corrupted"),
    ("table_crc", "section table is corrupted"),
    ("meta", r"section 0 \(meta\) is corrupted \(CRC mismatch\)"),
    ("codebook", r"section 1 \(codebook\) is corrupted"),
    ("code_table", r"section 3 \(code_table\) is corrupted"),
    ("code_stream", r"section 4 \(code_stream\) is corrupted"),
    ("index_table", r"section 5 \(index_table\) is corrupted"),
    ("index_stream", r"section 6 \(index_stream\) is corrupted"),
])
def test_corruption_classes(small_file, where, message):
    blob = small_file.read_bytes()
    n = struct.unpack_from("<H", blob, 6)[0]
    pos = {"section_count": 6, "section_length": 8 + 9 + 1, "section_crc": 8 + 9 + 5,
           "table_crc": 8 + 9 * n,
           "meta": section_offset(blob, 0), "codebook": section_offset(blob, 1),
           "code_table": section_offset(blob, 3), "code_stream": section_offset(blob, 4),
           "index_table": section_offset(blob, 5),
           "index_stream": section_offset(blob, 6)}[where]
    flipped(small_file, pos)
    with pytest.raises(ContainerError, match=message):
        container.read(small_file)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["layers"][0].update(shape=[2 ** 16, 2 ** 16, 1, 1]),
     r"a layer must hold at most 2147483648 weights, not 4294967296"),
    (lambda m: m["layers"][1].update(n_entries=10 ** 9),
     r"layer 'ip1': bad code stream: n_symbols must be at most"),
    (lambda m: m["layers"][1].update(code_nbits=m["layers"][1]["code_nbits"] - 1),
     r"layer 'ip1': bad code stream"),
    (lambda m: m["layers"][1].update(code_bits=20),
     r"layer 'ip1': code_bits must be an integer in 1\.\.16, not 20"),
    (lambda m: m["layers"][1].update(shape=[6, 4]),
     r"layer 'ip1': bad relative indices: Entries run past the end of a line"),
    (lambda m: m["layers"][0].update(shape=[2, 1, 3, 3]),
     r"layer 'conv1': the bias section must hold 8 bytes for 2 rows, not 12"),
    (lambda m: m["layers"].pop(), r"must have 7 sections for 1 layers, not 13"),
    (lambda m: m.update(arch=3), r"meta field 'arch' must be a str, not 3"),
])
def test_consistent_checksums_but_bad_content(small_file, edit, message):
    small_file.write_bytes(rebuilt(small_file.read_bytes(), edit_meta=edit))
    with pytest.raises(ContainerError, match=message):
        container.read(small_file)


def test_bad_huffman_table_with_valid_crc(small_file):
    blob = small_file.read_bytes()
    small_file.write_bytes(rebuilt(blob, edit_section=(3, b"\x11\x10\xcf\x30")))
    with pytest.raises(ContainerError, match=r"layer 'conv1': bad code stream: code lengths "
                                             r"must satisfy Kraft"):
        container.read(small_file)


def test_negative_zero_codebook_is_refused(tmp_path):
    layer = CompressedLayer(name="ip", kind="fc", shape=(1, 2), codes=np.array([[1, 0]]),
                            codebook=np.array([-0.0, 1.0]), bias=np.zeros(1), code_bits=1,
                            index_bits=1)
    with pytest.raises(FormatError, match=r"Layer 'ip': codebook\[0\] must be \+0\.0"):
        container.write(CompressedModel(arch="z", input_shape=(2,), layers=[layer]),
                        tmp_path / "z.dcz")
    assert os.listdir(tmp_path) == []


def test_unwritable_directory_raises(tmp_path):
    with pytest.raises(ContainerError, match=r"no/such/dir/m\.dcz: cannot write the file"):
        container.write(small_model(), tmp_path / "no" / "such" / "dir" / "m.dcz")


def test_missing_file_raises(tmp_path):
    with pytest.raises(ContainerError, match=r"nope\.dcz: cannot read the file"):
        container.read(tmp_path / "nope.dcz")


GRAPH = {"layers": [{"op": "conv", "name": "conv1", "in_ch": 1, "out_ch": 3, "kernel": 3,
                     "stride": 1, "padding": 0}, {"op": "relu"}, {"op": "flatten"},
                    {"op": "dense", "name": "ip1", "in": 40, "out": 6}],
         "source": {"format": "onnx", "input": "image", "output": "logits"}}


def test_graph_section_round_trips_and_is_counted(tmp_path):
    plain = small_model()
    model = CompressedModel(arch=plain.arch, input_shape=plain.input_shape,
                            layers=plain.layers, meta=plain.meta, graph=GRAPH)
    container.write(plain, tmp_path / "plain.dcz")
    n = container.write(model, tmp_path / "graph.dcz")
    back, info = container.load(tmp_path / "graph.dcz")
    assert back.same_as(model) and back.graph == GRAPH
    assert not back.same_as(container.read(tmp_path / "plain.dcz"))
    graph_json = json.dumps({"version": container.GRAPH_VERSION, **GRAPH},
                            separators=(",", ":")).encode()
    assert info["graph_bytes"] == len(zlib.compress(graph_json, 9))
    assert info["total_bytes"] == info["file_bytes"] == n
    # the graph is one more section (9-byte table entry) at the end; the rest is unchanged
    plain_info = container.inspect(tmp_path / "plain.dcz")
    assert plain_info["graph_bytes"] == 0
    assert n == plain_info["file_bytes"] + 9 + info["graph_bytes"]


def test_graph_must_name_the_layers():
    plain = small_model()
    bad = dict(GRAPH, layers=GRAPH["layers"][:2])
    with pytest.raises(FormatError, match="^graph must be a dict whose 'layers' ops name "
                                          r"the layers \['conv1', 'ip1'\] in order"):
        CompressedModel(arch=plain.arch, input_shape=plain.input_shape, layers=plain.layers,
                        graph=bad)


def test_graph_of_another_version_is_refused(tmp_path):
    plain = small_model()
    model = CompressedModel(arch=plain.arch, input_shape=plain.input_shape,
                            layers=plain.layers, graph=GRAPH)
    path = tmp_path / "g.dcz"
    container.write(model, path)
    blob = path.read_bytes()
    _, _, n_sections = struct.unpack_from("<4sHH", blob)
    entries = [struct.unpack_from("<BII", blob, 8 + 9 * i) for i in range(n_sections)]
    header = 8 + 9 * n_sections + 4
    graph = json.dumps({"version": 2, **GRAPH}).encode()
    sections = [blob[header + sum(e[1] for e in entries[:i]):][:entries[i][1]]
                for i in range(n_sections - 1)]
    payloads = list(zip([e[0] for e in entries], sections + [zlib.compress(graph)]))
    path.write_bytes(container._assemble(payloads))
    with pytest.raises(ContainerError, match=re_exact(
            f"{path}: graph version must be 1, not 2 (written by another dcsim version; "
            f"re-run `dcsim compress`)")):
        container.read(path)


def re_exact(message):
    import re
    return f"^{re.escape(message)}$"
def test_fillers_run_to_the_end_of_the_line(tmp_path):
    # 2-bit indices (span 4): one weight at position 0 of 11, then 10 zeros: 10 // 4 = 2
    # tail fillers, leaving 2 positions (< 4) after the last entry.
    codes = np.zeros((1, 11), dtype=np.uint8)
    codes[0, 0] = 1
    layer = CompressedLayer(name="ip", kind="fc", shape=(1, 11), codes=codes,
                            codebook=np.array([0, 0.5], dtype=np.float32), bias=np.zeros(1),
                            code_bits=1, index_bits=2)
    container.write(CompressedModel(arch="t", input_shape=(11,), layers=[layer]),
                    tmp_path / "t.dcz")
    back, info = container.load(tmp_path / "t.dcz")
    assert back.same_as(layer_model := CompressedModel("t", (11,), [layer]))
    assert layer_model.layers[0].nnz == 1
    assert (info["layers"][0]["n_entries"], info["layers"][0]["n_fillers"]) == (3, 2)


def test_a_small_file_declaring_a_huge_layer_is_refused_unallocated(small_file):
    import tracemalloc

    blob = small_file.read_bytes()
    small_file.write_bytes(rebuilt(blob, edit_meta=lambda m: m["layers"][1].update(
        shape=[6, 2 ** 28])))
    tracemalloc.start()
    with pytest.raises(ContainerError) as err:
        container.read(small_file)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    n_entries = json.loads(zlib.decompress(sections_of(blob)[0][1]))["layers"][1]["n_entries"]
    assert str(err.value) == (
        f"{small_file}: layer 'ip1': its shape [6, {2 ** 28}] declares {6 * 2 ** 28} weights "
        f"but its {n_entries} entries of 3-bit indices cover at most {(n_entries + 1) * 8 - 1}")
    assert peak < 2 ** 20                  # nothing of the declared size was allocated


def test_a_tail_without_fillers_is_refused(small_file):
    blob = small_file.read_bytes()
    meta = json.loads(zlib.decompress(sections_of(blob)[0][1]))
    rows, cols = meta["layers"][1]["shape"]
    # 8 more columns of zeros, without the fillers the writer puts at the end
    small_file.write_bytes(rebuilt(blob, edit_meta=lambda m: m["layers"][1].update(
        shape=[rows, cols + 8])))
    with pytest.raises(ContainerError, match=r"layer 'ip1': fillers must run to the end of "
                                             r"the layer, leaving fewer than 8 positions"):
        container.read(small_file)


@pytest.mark.parametrize("section, what", [(1, "codebook values"), (2, "biases")])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_codebook_or_bias_is_refused(small_file, section, what, value):
    blob = small_file.read_bytes()
    payload = bytearray(sections_of(blob)[section][1])
    payload[:4] = np.float32(value).tobytes()
    small_file.write_bytes(rebuilt(blob, edit_section=(section, bytes(payload))))
    with pytest.raises(ContainerError, match=rf"^{small_file}: bad layer: Layer 'conv1': "
                                             rf"{what} must be finite, not \[{value}\]$"):
        container.read(small_file)
