"""Tests of dcsim.report: the per-layer table agrees with the file."""

import os

import numpy as np
import pytest

from dcsim import container
from dcsim import report
from dcsim.compress.layer import CompressedLayer, CompressedModel
from dcsim.errors import ConfigError

ROW_KEYS = {"name", "shape", "weights", "density", "weight_bits_pq", "weight_bits_pqh",
            "index_bits_pq", "index_bits_pqh", "ratio_pq", "ratio_pqh", "n_entries",
            "n_fillers"}


def hand_model():
    # ip: weights at flat positions 0, 6, 15 (row-major) with 2-bit indices (span 4):
    # row-major needs 1 + 2 fillers, column-major (positions 0, 12, 15) needs 2.
    codes = np.zeros((2, 8), dtype=np.uint8)
    codes[0, 0], codes[0, 6], codes[1, 7] = 1, 2, 3
    ip = CompressedLayer(name="ip", kind="fc", shape=(2, 8), codes=codes,
                         codebook=np.array([0, -0.5, 0.25, 1.0], dtype=np.float32),
                         bias=np.array([0.1, -0.2]), code_bits=2, index_bits=2, relu=True)
    rng = np.random.default_rng(3)
    conv_codes = np.where(rng.random((4, 9)) < 0.5, rng.integers(1, 16, (4, 9)), 0)
    conv = CompressedLayer(name="conv", kind="conv", shape=(4, 1, 3, 3), codes=conv_codes,
                           codebook=np.where(np.arange(16) > 0, np.linspace(-1, 1, 16), 0),
                           bias=np.zeros(4), code_bits=4, index_bits=3, pool=2)
    return CompressedModel(arch="hand", input_shape=(1, 5, 6), layers=[conv, ip],
                           meta={"baseline_error": 2.0, "compressed_error": 2.5})


@pytest.fixture
def hand_file(tmp_path):
    path = tmp_path / "hand.dcz"
    container.write(hand_model(), path)
    return path


def test_hand_layer_figures(hand_file):
    model, info = container.load(hand_file)
    rows = report.layer_rows(model, info)
    assert all(set(r) == ROW_KEYS for r in rows)
    ip, ip_info = rows[1], info["layers"][1]
    expect_entries = {"row": (6, 3), "col": (5, 2)}[ip_info["order"]]
    assert (ip["n_entries"], ip["n_fillers"]) == expect_entries
    assert ip["weights"] == 16 and ip["shape"] == [2, 8]
    assert ip["density"] == 3 / 16
    assert ip["weight_bits_pq"] == 2 and ip["index_bits_pq"] == 2
    dense = 4 * (16 + 2)
    # P+Q: entries at 2 + 2 bits, 3 stored codebook floats, 2 bias floats.
    assert ip["ratio_pq"] == dense / (expect_entries[0] * 4 / 8 + 12 + 8)
    assert ip["ratio_pqh"] == dense / ip_info["total_bytes"]
    assert ip["weight_bits_pqh"] * ip["n_entries"] == ip_info["code_stream_bits"]
    assert ip["index_bits_pqh"] * ip["n_entries"] == ip_info["index_stream_bits"]


def test_summary_adds_up(hand_file):
    s = report.summary(hand_file)
    info = container.inspect(hand_file)
    model = container.read(hand_file)
    assert s["file_bytes"] == os.path.getsize(hand_file) == info["total_bytes"]
    assert s["dense_bytes"] == 4 * (36 + 4) + 4 * (16 + 2)
    assert s["ratio"] == s["dense_bytes"] / s["file_bytes"]
    assert s["baseline_error"] == 2.0 and s["compressed_error"] == 2.5
    layer_bytes = [4 * (l.n_weights + l.rows) / r["ratio_pqh"]
                   for l, r in zip(model.layers, s["layers"])]
    assert np.isclose(sum(layer_bytes) + info["header_bytes"] + info["meta_bytes"],
                      s["file_bytes"])
    total = s["total"]
    assert set(total) == ROW_KEYS and total["name"] == "total"
    assert total["weights"] == 52
    assert total["density"] == sum(l.nnz for l in model.layers) / 52
    assert total["n_entries"] == sum(l["n_entries"] for l in info["layers"])
    assert total["ratio_pqh"] == s["ratio"]
    assert total["weight_bits_pqh"] * total["n_entries"] == pytest.approx(
        sum(l["code_stream_bits"] for l in info["layers"]))
    assert total["weight_bits_pq"] == pytest.approx(
        sum(r["n_entries"] * r["weight_bits_pq"] for r in s["layers"]) / total["n_entries"])


def test_missing_errors_are_none(tmp_path):
    model = hand_model()
    plain = CompressedModel(arch=model.arch, input_shape=model.input_shape,
                            layers=model.layers)
    container.write(plain, tmp_path / "p.dcz")
    s = report.summary(tmp_path / "p.dcz")
    assert s["baseline_error"] is None and s["compressed_error"] is None
    assert "error n/a -> n/a" in report.format_table(s)


def test_format_table(hand_file):
    s = report.summary(hand_file)
    text = report.format_table(s)
    lines = text.splitlines()
    assert lines[0] == f"hand: {hand_file}"
    body = [l.split()[0] for l in lines[lines.index("") + 3:]]
    assert body == ["conv", "ip", "total"]
    assert f"{s['file_bytes']} bytes" in text and f"{s['ratio']:.1f}x" in text
    with_paper = report.format_table(s, paper="lenet5")
    assert "paper, LeNet-5 (Table 3)" in with_paper
    # Only the total matches a published row name here.
    assert with_paper.count("  paper") == 1
    assert "2.55% (39x)" in with_paper
    with pytest.raises(ConfigError, match=r"paper must be one of \['lenet300', 'lenet5'\] "
                                          r"or None, not 'alexnet'"):
        report.format_table(s, paper="alexnet")


def test_paper_tables_are_self_consistent():
    # Published sizes (percent of dense) and the stated overall ratios agree.
    for key, ratio in (("lenet300", 40), ("lenet5", 39)):
        total = report.PAPER_TABLES[key]["rows"][-1]
        assert round(100 / total[-1]) == ratio == report.PAPER_TABLES[key]["ratio"]
