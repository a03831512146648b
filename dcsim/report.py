"""The paper's per-layer compression table (Deep Compression, Tables 2 and 3) from real sizes.

Columns, as in the paper: dense weights, fraction kept after pruning, bits per stored
weight and per relative index after pruning + quantization (P+Q: the fixed widths)
and after Huffman coding (P+Q+H: the coded stream bits per stored entry, fillers
included), and the size against dense float32. P+Q sizes count every stored entry at
``code_bits + index_bits`` bits plus the codebook and bias bytes; P+Q+H sizes are the
layer's actual bytes in the ``.dcz`` file (its six sections), and the total is the whole
file, header and meta included.
"""

from __future__ import annotations

import os

from dcsim import container
from dcsim.compress.layer import CompressedModel
from dcsim.errors import ConfigError

PAPER_SOURCE = ("Han, Mao, Dally, Deep Compression, ICLR 2016 (arXiv:1510.00149), "
                "Table 2 (LeNet-300-100) and Table 3 (LeNet-5)")

PAPER_TABLES = {
    "lenet300": {
        "title": "LeNet-300-100 (Table 2)",
        "error": (1.64, 1.58), "size_kb": (1070, 27), "ratio": 40,
        "rows": [
            # name, weights, kept, w P+Q, w P+Q+H, i P+Q, i P+Q+H, P+Q %, P+Q+H %
            ("ip1", 235e3, 0.08, 6, 4.4, 5, 3.7, 3.1, 2.32),
            ("ip2", 30e3, 0.09, 6, 4.4, 5, 4.3, 3.8, 3.04),
            ("ip3", 1e3, 0.26, 6, 4.3, 5, 3.2, 15.7, 12.70),
            ("total", 266e3, 0.08, 6, 5.1, 5, 3.7, 3.1, 2.49),
        ],
    },
    "lenet5": {
        "title": "LeNet-5 (Table 3)",
        "error": (0.80, 0.74), "size_kb": (1720, 44), "ratio": 39,
        "rows": [
            ("conv1", 0.5e3, 0.66, 8, 7.2, 5, 1.5, 78.5, 67.45),
            ("conv2", 25e3, 0.12, 8, 7.2, 5, 3.9, 6.0, 5.28),
            ("ip1", 400e3, 0.08, 5, 4.5, 5, 4.5, 2.7, 2.45),
            ("ip2", 5e3, 0.19, 5, 5.2, 5, 3.7, 6.9, 6.13),
            ("total", 431e3, 0.08, 5.3, 4.1, 5, 4.4, 3.05, 2.55),
        ],
    },
}
"""Published per-layer figures; sizes are percent of the dense float32 model."""


def layer_rows(model: CompressedModel, file_info: dict) -> list[dict]:
    """One row per layer from the model and ``container.inspect`` of its file.

    Keys: ``name``, ``shape`` (list), ``weights`` (dense weights), ``density`` (kept
    fraction), ``weight_bits_pq`` (= code_bits), ``weight_bits_pqh`` (code-stream bits
    per stored entry, None without entries), ``index_bits_pq`` (= index_bits),
    ``index_bits_pqh`` (index-stream bits per stored entry), ``ratio_pq`` (dense
    float32 bytes of weights and biases / P+Q bytes), ``ratio_pqh`` (dense bytes /
    the layer's bytes in the file), ``n_entries`` and ``n_fillers``.
    """
    rows = []
    for layer, info in zip(model.layers, file_info["layers"], strict=True):
        n = info["n_entries"]
        rows.append({
            "name": layer.name, "shape": list(layer.shape), "weights": layer.n_weights,
            "density": layer.density,
            "weight_bits_pq": layer.code_bits,
            "weight_bits_pqh": info["code_stream_bits"] / n if n else None,
            "index_bits_pq": layer.index_bits,
            "index_bits_pqh": info["index_stream_bits"] / n if n else None,
            "ratio_pq": _dense_bytes(layer) / _pq_bytes(layer, info),
            "ratio_pqh": _dense_bytes(layer) / info["total_bytes"],
            "n_entries": n, "n_fillers": info["n_fillers"],
        })
    return rows


def summary(path) -> dict:
    """The whole table for the ``.dcz`` at ``path``.

    Keys: ``path``, ``arch``, ``baseline_error`` and ``compressed_error`` (percent, from
    the model's meta, None if absent), ``dense_bytes`` (float32 weights and biases),
    ``file_bytes`` (the file's size on disk), ``ratio`` (dense / file), ``layers``
    (:func:`layer_rows`) and ``total``: weights summed, overall density, bits averaged
    over stored entries, ``ratio_pq`` over the summed P+Q bytes, ``ratio_pqh`` = ``ratio``;
    ``budget``: the budget search's record (``dcsim.compress.budget``) or None.
    """
    model, info = container.load(path)
    file_bytes = os.path.getsize(path)
    dense = model.dense_bytes
    rows = layer_rows(model, info)
    n = sum(r["n_entries"] for r in rows)
    pq = sum(_pq_bytes(layer, li) for layer, li in zip(model.layers, info["layers"]))

    def per_entry(total_bits):
        return total_bits / n if n else None

    weights = sum(r["weights"] for r in rows)
    total = {
        "name": "total", "shape": None, "weights": weights,
        "density": sum(layer.nnz for layer in model.layers) / weights,
        "weight_bits_pq": per_entry(sum(r["n_entries"] * r["weight_bits_pq"] for r in rows)),
        "weight_bits_pqh": per_entry(sum(li["code_stream_bits"] for li in info["layers"])),
        "index_bits_pq": per_entry(sum(r["n_entries"] * r["index_bits_pq"] for r in rows)),
        "index_bits_pqh": per_entry(sum(li["index_stream_bits"] for li in info["layers"])),
        "ratio_pq": dense / pq, "ratio_pqh": dense / file_bytes,
        "n_entries": n, "n_fillers": sum(r["n_fillers"] for r in rows),
    }
    return {"path": os.fspath(path), "arch": model.arch,
            "baseline_error": model.meta.get("baseline_error"),
            "compressed_error": model.meta.get("compressed_error"),
            "dense_bytes": dense, "file_bytes": file_bytes, "ratio": dense / file_bytes,
            "layers": rows, "total": total, "budget": model.meta.get("budget")}


def format_table(summary: dict, paper: str | None = None) -> str:
    """A plain-text table of ``summary``; with ``paper`` ("lenet300" or "lenet5") each of
    our rows is followed by the published one (sizes as percent of dense)."""
    if paper is not None and paper not in PAPER_TABLES:
        raise ConfigError(f"paper must be one of {sorted(PAPER_TABLES)} or None, "
                         f"not {paper!r}")
    published = PAPER_TABLES[paper] if paper else None
    head = ("layer", "weights", "kept", "w P+Q", "w P+Q+H", "i P+Q", "i P+Q+H",
            "P+Q", "P+Q+H")
    lines = [head]
    for row in summary["layers"] + [summary["total"]]:
        total = row["name"] == "total"
        lines.append((
            row["name"], _count(row["weights"]),
            f"{100 * row['density']:.1f}%" + (f" ({1 / row['density']:.0f}x)"
                                              if total and row["density"] else ""),
            _bits(row["weight_bits_pq"]), _bits(row["weight_bits_pqh"]),
            _bits(row["index_bits_pq"]), _bits(row["index_bits_pqh"]),
            _size(row["ratio_pq"], total), _size(row["ratio_pqh"], total)))
        ref = _paper_row(published, row["name"])
        if ref is not None:
            _, w, kept, wpq, wpqh, ipq, ipqh, pq, pqh = ref
            lines.append((
                "  paper", _count(w),
                f"{100 * kept:.0f}%" + (f" ({1 / kept:.0f}x)" if total else ""),
                _bits(wpq), _bits(wpqh), _bits(ipq), _bits(ipqh),
                _size(100 / pq, total), _size(100 / pqh, total)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    text = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                      for i, (cell, w) in enumerate(zip(line, widths))).rstrip()
            for line in lines]
    text.insert(1, "-" * len(text[0]))
    out = [f"{summary['arch']}: {summary['path']}",
           f"dense {summary['dense_bytes'] / 1000:.1f} KB -> file "
           f"{summary['file_bytes'] / 1000:.1f} KB ({summary['file_bytes']} bytes), "
           f"{summary['ratio']:.1f}x; error {_err(summary['baseline_error'])} -> "
           f"{_err(summary['compressed_error'])}"]
    if published:
        out.append(f"paper, {published['title']}: {published['size_kb'][0]} KB -> "
                   f"{published['size_kb'][1]} KB, {published['ratio']}x; error "
                   f"{published['error'][0]:.2f}% -> {published['error'][1]:.2f}% "
                   f"(source: {PAPER_SOURCE})")
    out.append("sizes are percent of dense float32 (weights and biases); bits are per "
               "stored entry, fillers included")
    if summary.get("budget"):
        out.extend(_budget_lines(summary["budget"]))
    return "\n".join(out + [""] + text)


def _budget_lines(budget: dict) -> list:
    """What the budget search chose and measured, on the validation split."""
    val = budget["val_error"]
    return [
        f"budget +{budget['budget_points']:g} points on {budget['n_val']} validation "
        f"images: {'met' if budget['budget_met'] else 'NOT met'} after "
        f"{len(budget['attempts'])} attempt(s); search {budget['search_seconds']:.0f} s"
        f" ({budget['grid'].get('scan', 'one-shot')} scan"
        f"{', reused' if budget.get('scan_reused') else ''}), "
        f"compression {budget['compress_seconds']:.0f} s",
        "  chosen: " + ", ".join(f"{n} {100 * d:g}% x {budget['code_bits'][n]} bits"
                                 for n, d in budget["density"].items()),
        f"  validation error: baseline {budget['baseline_val_error']:.2f}%, pruned "
        f"{val['pruned']:.2f}%, shared {val['shared']:.2f}%, fine-tuned "
        f"{val['compressed']:.2f}%"]


def _dense_bytes(layer) -> int:
    return 4 * (layer.n_weights + layer.rows)


def _pq_bytes(layer, info) -> float:
    """Entries at fixed widths plus the stored codebook and bias."""
    return (info["n_entries"] * (layer.code_bits + layer.index_bits) / 8
            + info["codebook_bytes"] + info["bias_bytes"])


def _paper_row(published, name):
    if not published:
        return None
    return next((r for r in published["rows"] if r[0] == name), None)


def _count(n) -> str:
    return f"{n / 1000:.1f}K" if n >= 1000 else f"{n:.0f}"


def _bits(v) -> str:
    return "-" if v is None else f"{v:.1f}"


def _size(ratio, total) -> str:
    text = f"{100 / ratio:.2f}%"
    return f"{text} ({ratio:.0f}x)" if total else text


def _err(v) -> str:
    return "n/a" if v is None else f"{v:.2f}%"
