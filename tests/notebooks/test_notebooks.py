"""Execute the what-if notebooks top to bottom (fast mode) and check what they produce."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
KERNEL = "dcsim-test-python"
CELL_TIMEOUT_S = 300
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _check_compress(r: dict) -> None:
    # Fast mode trains on 10 000 images for a few epochs: errors are higher than the
    # paper's, but compression acts on the paper's densities, so sizes are comparable.
    assert r["fast"] is True
    assert 0 < r["compressed_error"] < 15, r
    assert 0.07 < r["density"] < 0.10, r
    assert 25 < r["ratio"] < 60, r
    assert r["weight_bits_pqh"] < 5 and r["index_bits_pqh"] < 5, r


def _check_engine(r: dict) -> None:
    assert r["fast"] is True
    at8 = [r["cycles_per_image"][f"{n}x8"] for n in (1, 2, 4, 8, 16, 32, 64)]
    assert all(a > b for a, b in zip(at8, at8[1:])), at8          # more PEs, fewer cycles
    for n in (1, 2, 4, 8, 16, 32, 64):                              # deeper queues never hurt
        assert r["cycles_per_image"][f"{n}x1"] >= r["cycles_per_image"][f"{n}x8"], n
    assert 0 < r["efficiency_64pe_fifo8"] < 1, r
    assert 0.85 < r["eie_efficiency_fifo8"]["Alex-7"] <= 1, r
    assert r["smallest_sram_kb"]["4"] > r["smallest_sram_kb"]["64"], r


def _check_sram(r: dict) -> None:
    assert r["fast"] is True
    # compressed fits an order of magnitude past dense, and AlexNet's fc stack does not
    # fit EIE's design point (its column pointers overflow the 32 KB pointer SRAM)
    assert r["compressed_fits_up_to_weights"] > 10 * r["dense16_fits_up_to_weights"], r
    assert r["dense16_fits_up_to_weights"] > r["dense32_fits_up_to_weights"], r
    assert r["compressed_fits_up_to_weights"] < 58_621_952, r
    for net in ("lenet_uj", "alexnet_uj"):
        e = r[net]
        assert 0 < e["sram"] < e["dram_compressed"] < e["dram_dense"], (net, e)


EXPECTED = {
    "01_compress_lenet300.ipynb": (
        ("compress_weights", "compress_codebook", "compress_huffman"), _check_compress),
    "02_engine_what_if.ipynb": (
        ("engine_pe_fifo", "engine_fifo_eie", "engine_sram"), _check_engine),
    "03_sram_vs_dram.ipynb": (("sram_fit", "sram_vs_dram"), _check_sram),
}


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory):
    """A kernel spec that runs this interpreter (the venv's), found first on JUPYTER_PATH,
    so a user's own ``python3`` spec pointing elsewhere cannot win."""
    root = tmp_path_factory.mktemp("jupyter")
    write_kernel_spec(root / "kernels" / KERNEL, overrides={
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "dcsim tests"})
    return root


def test_every_notebook_is_checked():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_is_stored_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs(name, kernel_dir, tmp_path, monkeypatch):
    figures, check = EXPECTED[name]
    docs = tmp_path / "docs"
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_dir))
    monkeypatch.setenv("DCSIM_NB_FAST", "1")
    monkeypatch.setenv("DCSIM_NB_FIGURES", str(docs))
    monkeypatch.delenv("DCSIM_NB_MODEL", raising=False)
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(nb, kernel_name=KERNEL, timeout=CELL_TIMEOUT_S,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    start = time.perf_counter()
    client.execute()     # raises CellExecutionError, naming the cell, if any cell fails
    print(f"{name}: {time.perf_counter() - start:.1f} s")

    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream" and out.name == "stderr":
                assert "Warning" not in out.text, (cell.source[:60], out.text)
    for figure in figures:
        png = docs / f"nb_{figure}.png"
        assert png.is_file(), png
        assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 10_000, png
    assert sorted(p.name for p in docs.iterdir()) == sorted(f"nb_{f}.png" for f in figures)

    summary = [cell for cell in nb.cells if "summary" in cell.metadata.get("tags", [])]
    assert len(summary) == 1, "each notebook ends with one cell tagged 'summary'"
    text = "".join(out.text for out in summary[0].outputs if out.output_type == "stream")
    result = json.loads(text.strip().splitlines()[-1])
    assert sorted(Path(p).name for p in result["figures"]) == sorted(
        f"nb_{f}.png" for f in figures)
    check(result)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_figures_default_to_a_scratch_folder_not_docs(name, monkeypatch):
    """Run for study (no DCSIM_NB_FIGURES), a notebook writes under build/, which git
    ignores; only ``make notebooks-docs`` points it at docs/."""
    monkeypatch.delenv("DCSIM_NB_FIGURES", raising=False)
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    params = next(c for c in nb.cells if c.cell_type == "code" and "FIGURE_DIR =" in c.source)
    scope = {}
    exec(params.source, scope)            # the parameters cell only sets constants
    assert (NOTEBOOKS / scope["FIGURE_DIR"]).resolve() == NOTEBOOKS.parent / "build" / "notebooks"
