"""CPU timing of the sparse weight-shared kernels on the papers' fc layer shapes, batch 1.

Random layers with the shapes and densities of Deep Compression's Table 8 (AlexNet and
VGG-16 fc6-fc8; 5-bit codes, 4-bit relative indices, as the paper's AlexNet/VGG fc
layers), a dense input vector (every activation non-zero, so the CSC kernel skips
nothing). Compared on the same float32 weights: dense numpy GEMV (BLAS, default
threads), scipy.sparse CSR matvec of the same non-zeros, our CSR kernel (serial and on
both cores), our CSC kernel (both cores) and the fixed-point kernel (engine interleave,
n_pe=1 serial and n_pe=2 on both cores). Warm: the data stays in cache between runs;
cold: a 1 GiB buffer is touched before each run. Times are medians, in microseconds.

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_spmv.py
Writes benchmarks/results/spmv.json.
"""

from __future__ import annotations

import json
import platform
import subprocess
import time
from pathlib import Path

import numba
import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_info

from dcsim.compress.sparse import encode, interleave
from dcsim.kernels.fixed import FixedFormat
from dcsim.kernels.spmv import dense_gemv, spmv_csc, spmv_csr, spmv_fixed

# (name, rows = out, cols = in, density) -- Deep Compression Table 8 / EIE Table III
LAYERS = [
    ("Alex-6", 4096, 9216, 0.09), ("Alex-7", 4096, 4096, 0.09),
    ("Alex-8", 1000, 4096, 0.25), ("VGG-6", 4096, 25088, 0.04),
    ("VGG-7", 4096, 4096, 0.04), ("VGG-8", 1000, 4096, 0.23),
]
# the paper's CPU figures (Core i7-5930K, MKL), microseconds
PAPER_DENSE = {"Alex-6": 7516.2, "Alex-7": 6187.1, "Alex-8": 1134.9, "VGG-6": 35022.8,
               "VGG-7": 5372.8, "VGG-8": 774.2}
PAPER_SPARSE = {"Alex-6": 3066.5, "Alex-7": 1282.1, "Alex-8": 890.5, "VGG-6": 3774.3,
                "VGG-7": 545.1, "VGG-8": 777.3}
CODE_BITS = 5
INDEX_BITS = 4
SEED = 0
WARM_REPS = 15
COLD_REPS = 5
FLUSH_BYTES = 1 << 30
OUT = Path(__file__).parent / "results" / "spmv.json"


def random_codes(rng, rows, cols, density):
    codes = np.empty((rows, cols), dtype=np.uint8)
    for r in range(0, rows, 512):
        block = codes[r:r + 512]
        block[:] = rng.integers(1, 2 ** CODE_BITS, size=block.shape, dtype=np.uint8)
        block *= rng.random(block.shape, dtype=np.float32) < density
    return codes


def timed(fn, reps, flush=None):
    fn()
    times = []
    for _ in range(reps):
        if flush is not None:
            flush += 1.0  # touch every page and line: evicts the caches
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e6


def memory_bandwidth_gbs():
    """Best of 5 numpy copies of a 1 GiB array: (read + write bytes) / time."""
    a = np.ones(FLUSH_BYTES // 8)
    b = np.empty_like(a)
    best = min(timed(lambda: np.copyto(b, a), 1) for _ in range(5))
    return 2 * a.nbytes / best / 1e3


def bench_layer(name, rows, cols, density, rng, fmt, flush):
    codes = random_codes(rng, rows, cols, density)
    codebook = np.concatenate([[0], rng.normal(0, 0.02, 2 ** CODE_BITS - 1)]).astype(np.float32)
    bias = rng.normal(0, 0.02, rows).astype(np.float32)
    x = rng.random(cols, dtype=np.float32)
    weights = codebook[codes]
    csr_scipy = sp.csr_matrix(weights)
    csr = encode(codes, INDEX_BITS, "csr")
    csc = encode(codes, INDEX_BITS, "csc")
    pes1 = interleave(codes, 1, INDEX_BITS)
    pes2 = interleave(codes, 2, INDEX_BITS)
    del codes
    codebook_q, bias_acc, x_q = fmt.to_fixed(codebook), fmt.bias_to_acc(bias), fmt.to_fixed(x)
    # one checked call each (validates the encoded matrices), then time unchecked calls
    want = dense_gemv(weights, bias, x)
    for m, kernel in ((csr, spmv_csr), (csc, spmv_csc)):
        got = kernel(m, codebook, bias, x, parallel=True)
        assert np.allclose(got, want, rtol=1e-3, atol=1e-3), name
    fixed1 = spmv_fixed(pes1, rows, codebook_q, bias_acc, x_q, fmt, False)
    assert np.array_equal(fixed1, spmv_fixed(pes2, rows, codebook_q, bias_acc, x_q, fmt, False,
                                             parallel=True)), name
    runs = {
        "dense": lambda: dense_gemv(weights, bias, x),
        "scipy_csr": lambda: csr_scipy @ x + bias,
        "csr_serial": lambda: spmv_csr(csr, codebook, bias, x, check=False),
        "csr_parallel": lambda: spmv_csr(csr, codebook, bias, x, parallel=True, check=False),
        "csc_parallel": lambda: spmv_csc(csc, codebook, bias, x, parallel=True, check=False),
        "fixed_serial": lambda: spmv_fixed(pes1, rows, codebook_q, bias_acc, x_q, fmt, False),
        "fixed_parallel": lambda: spmv_fixed(pes2, rows, codebook_q, bias_acc, x_q, fmt, False,
                                             parallel=True),
    }
    row = {"layer": name, "rows": rows, "cols": cols, "density": density,
           "nnz": int(csr_scipy.nnz), "entries_csr": csr.n_entries,
           "encoded_bytes_csr": int(csr.z.nbytes + csr.code.nbytes + csr.line_ptr.nbytes),
           "dense_bytes": int(weights.nbytes), "warm_us": {}, "cold_us": {}}
    for key, fn in runs.items():
        row["warm_us"][key] = timed(fn, WARM_REPS)
        row["cold_us"][key] = timed(fn, COLD_REPS, flush)
    for t in ("warm", "cold"):
        us = row[f"{t}_us"]
        best = min(us["csr_serial"], us["csr_parallel"])
        row[f"{t}_speedup_vs_dense"] = us["dense"] / best
        row[f"{t}_speedup_vs_scipy"] = us["scipy_csr"] / best
        row[f"{t}_fixed_over_float"] = us["fixed_serial"] / us["csr_serial"]
        row[f"{t}_encoded_gbs"] = row["encoded_bytes_csr"] / best / 1e3
    return row


def main():
    fmt = FixedFormat()
    rng = np.random.default_rng(SEED)
    flush = np.zeros(FLUSH_BYTES // 8)
    bandwidth = memory_bandwidth_gbs()
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((l.split(":", 1)[1].strip() for l in cpu.splitlines()
                  if l.startswith("Model name")), platform.processor())
    rows = []
    for name, r, c, d in LAYERS:
        rows.append(bench_layer(name, r, c, d, rng, fmt, flush))
        print(f"  measured {name}", flush=True)
    head = (f"{'layer':8} {'t':4} {'dense':>8} {'scipy':>8} {'csr1':>8} {'csr2':>8} "
            f"{'csc2':>8} {'fix1':>8} {'fix2':>8} {'x dense':>8} {'x scipy':>8} "
            f"{'fix/flt':>8} {'GB/s':>6} {'paper d/s':>9}")
    print(f"batch 1, microseconds (median); memory bandwidth {bandwidth:.1f} GB/s; "
          f"{numba.get_num_threads()} numba threads")
    print(head)
    for row in rows:
        for t in ("warm", "cold"):
            us = row[f"{t}_us"]
            paper = PAPER_DENSE[row["layer"]] / PAPER_SPARSE[row["layer"]]
            print(f"{row['layer']:8} {t:4} " + " ".join(
                f"{us[k]:8.0f}" for k in ("dense", "scipy_csr", "csr_serial", "csr_parallel",
                                          "csc_parallel", "fixed_serial", "fixed_parallel"))
                  + f" {row[f'{t}_speedup_vs_dense']:7.1f}x {row[f'{t}_speedup_vs_scipy']:7.2f}x"
                  f" {row[f'{t}_fixed_over_float']:7.2f}x {row[f'{t}_encoded_gbs']:6.2f}"
                  f" {paper:8.1f}x")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "machine": {"cpu": model, "cores": numba.config.NUMBA_NUM_THREADS,
                    "numba_threads": numba.get_num_threads(),
                    "blas": threadpool_info(), "memory_bandwidth_gbs": bandwidth},
        "config": {"code_bits": CODE_BITS, "index_bits": INDEX_BITS, "seed": SEED,
                   "warm_reps": WARM_REPS, "cold_reps": COLD_REPS,
                   "flush_bytes": FLUSH_BYTES, "fmt": fmt.__dict__},
        "paper_us": {"dense": PAPER_DENSE, "sparse": PAPER_SPARSE},
        "layers": rows}, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
