"""CPU timing of the sparse weight-shared kernels on the papers' fc layer shapes, batch 1.

Random layers with the shapes and densities of Deep Compression's Table 8 (AlexNet and
VGG-16 fc6-fc8; 5-bit codes, 4-bit relative indices, as the paper's AlexNet/VGG fc
layers) and a dense input vector. Compared on the same float32 weights, in one run:

- dense: numpy ``W @ x + b`` (BLAS sgemv, its default threads; and pinned to 1 thread);
- scipy: ``scipy.sparse`` CSR matvec of the same non-zeros (one thread);
- ours: the packed relative-index CSR kernel (``pack`` + ``spmv_packed``), on both
  cores (the headline) and on one;
- ours CSC, EIE-style: the packed CSC kernel with zero activations skipped, on an input
  of stated activation density (EIE Table III: ~35% for AlexNet) -- a different input,
  so labelled apart and not in the headline ratio; dense GEMV on that same input is
  timed beside it (BLAS gains nothing from the zeros);
- fixed: the engine's bit-exact fixed-point kernel on a prepared plan
  (``plan_fixed`` + ``spmv_fixed_plan``), interleaved over 2 PEs on both cores and 1 PE
  on one core.

The machine is shared: every repetition times all variants in turn (A B C ... A B C),
so load hits them alike, and medians are reported. Warm: each timed call follows three
untimed calls of the same variant (its data in cache as far as it fits, its threads
awake, the previous variant's spinning threads mostly out of the way); cold: the same
three calls, then a 1 GiB buffer is touched before the timed call. Times are microseconds. numba runs on
OpenMP with its threads bound to cores (see the environment set below, before numba
starts).

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_spmv.py
Writes benchmarks/results/spmv.json.
"""

from __future__ import annotations

import os

# Threads for batch-1 calls on this 2-vCPU VM (BENCHMARKS.md section 4, "Threads"): an
# unbound worker woken by the main thread was placed on the main thread's CPU, so a
# 2-block parallel region ran serially (workqueue; OpenMP passive) or stalled for a time
# slice while the main thread spun (OpenMP's default wait: 4-7 ms). Threads bound to
# cores avoid that; OpenMP's wait policy is left at its default (spin a while, then
# sleep), as OpenBLAS's is. Set before numba loads libgomp.
os.environ.setdefault("NUMBA_THREADING_LAYER", "omp")
os.environ.setdefault("OMP_PROC_BIND", "true")

import json
import platform
import subprocess
import time
from pathlib import Path

import numba
import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_info, threadpool_limits

from dcsim.compress.sparse import encode, interleave
from dcsim.kernels.fixed import FixedFormat
from dcsim.kernels.spmv import (
    dense_gemv, pack, plan_fixed, spmv_fixed, spmv_fixed_plan, spmv_packed,
)

# (name, rows = out, cols = in, weight density, activation density) -- Deep Compression
# Table 8 / EIE Table III
LAYERS = [
    ("Alex-6", 4096, 9216, 0.09, 0.351), ("Alex-7", 4096, 4096, 0.09, 0.353),
    ("Alex-8", 1000, 4096, 0.25, 0.375), ("VGG-6", 4096, 25088, 0.04, 0.183),
    ("VGG-7", 4096, 4096, 0.04, 0.375), ("VGG-8", 1000, 4096, 0.23, 0.411),
]
# the paper's CPU figures (Core i7-5930K, MKL), microseconds
PAPER_DENSE = {"Alex-6": 7516.2, "Alex-7": 6187.1, "Alex-8": 1134.9, "VGG-6": 35022.8,
               "VGG-7": 5372.8, "VGG-8": 774.2}
PAPER_SPARSE = {"Alex-6": 3066.5, "Alex-7": 1282.1, "Alex-8": 890.5, "VGG-6": 3774.3,
                "VGG-7": 545.1, "VGG-8": 777.3}
CODE_BITS = 5
INDEX_BITS = 4
SEED = 0
WARM_REPS = 21
COLD_REPS = 7
FLUSH_BYTES = 1 << 30
KEYS = ("dense", "dense_1thr", "scipy_csr", "ours_csr", "ours_csr_1thr", "ours_csc_eie",
        "dense_eie", "fixed_2pe", "fixed_1pe")
WARMUP_CALLS = 3
OUT = Path(__file__).parent / "results" / "spmv.json"

def random_codes(rng, rows, cols, density):
    codes = np.empty((rows, cols), dtype=np.uint8)
    for r in range(0, rows, 512):
        block = codes[r:r + 512]
        block[:] = rng.integers(1, 2 ** CODE_BITS, size=block.shape, dtype=np.uint8)
        block *= rng.random(block.shape, dtype=np.float32) < density
    return codes


def one_thread(fn):
    """fn with BLAS pinned to one thread (the pinning itself is not timed)."""
    def run():
        with threadpool_limits(1):
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0
    return run


def timer(fn):
    def run():
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0
    return run


def interleaved(runs, reps, flush=None):
    """(median, minimum) microseconds per variant; each repetition runs every variant
    once, in turn. The minimum is the run least disturbed by the other users."""
    times = {k: [] for k in runs}
    for run in runs.values():  # one untimed round: compilation, page faults, first wakes
        run()
    for _ in range(reps):
        for key, run in runs.items():
            for _ in range(WARMUP_CALLS):
                run()  # data in cache as far as it fits, this variant's threads awake
            if flush is not None:
                flush += 1.0  # touches every page and line of 1 GiB: evicts the caches
            times[key].append(run())
    return ({k: float(np.median(v)) * 1e6 for k, v in times.items()},
            {k: float(np.min(v)) * 1e6 for k, v in times.items()})


def memory_bandwidth_gbs():
    """Best of 5 numpy copies of a 1 GiB array: (read + write bytes) / time."""
    a = np.ones(FLUSH_BYTES // 8)
    b = np.empty_like(a)
    best = min(timer(lambda: np.copyto(b, a))() for _ in range(5))
    return 2 * a.nbytes / best / 1e9


def bench_layer(name, rows, cols, density, act_density, rng, fmt, flush):
    codes = random_codes(rng, rows, cols, density)
    codebook = np.concatenate([[0], rng.normal(0, 0.02, 2 ** CODE_BITS - 1)]).astype(np.float32)
    bias = rng.normal(0, 0.02, rows).astype(np.float32)
    x = rng.random(cols, dtype=np.float32)
    x_sparse = x * (rng.random(cols) < act_density)
    weights = codebook[codes]
    csr_scipy = sp.csr_matrix(weights)
    csr = pack(encode(codes, INDEX_BITS, "csr"), codebook)
    csc = pack(encode(codes, INDEX_BITS, "csc"), codebook)
    pes1 = interleave(codes, 1, INDEX_BITS)
    pes2 = interleave(codes, 2, INDEX_BITS)
    del codes
    codebook_q, bias_acc, x_q = fmt.to_fixed(codebook), fmt.bias_to_acc(bias), fmt.to_fixed(x)
    plan1 = plan_fixed(pes1, rows, codebook_q, fmt)
    plan2 = plan_fixed(pes2, rows, codebook_q, fmt)
    # every variant computes the same layer: check before timing
    want = dense_gemv(weights, bias, x)
    for got in (spmv_packed(csr, bias, x), spmv_packed(csr, bias, x, parallel=False),
                csr_scipy @ x + bias):
        assert np.allclose(got, want, rtol=1e-3, atol=1e-3), name
    assert np.allclose(spmv_packed(csc, bias, x_sparse), dense_gemv(weights, bias, x_sparse),
                       rtol=1e-3, atol=1e-3), name
    fixed = spmv_fixed(pes1, rows, codebook_q, bias_acc, x_q, fmt, False)
    assert np.array_equal(fixed, spmv_fixed_plan(plan2, bias_acc, x_q, False, parallel=True))
    assert np.array_equal(fixed, spmv_fixed_plan(plan1, bias_acc, x_q, False))
    runs = {
        "dense": timer(lambda: dense_gemv(weights, bias, x)),
        "dense_1thr": one_thread(lambda: dense_gemv(weights, bias, x)),
        "scipy_csr": timer(lambda: csr_scipy @ x + bias),
        "ours_csr": timer(lambda: spmv_packed(csr, bias, x)),
        "ours_csr_1thr": timer(lambda: spmv_packed(csr, bias, x, parallel=False)),
        "ours_csc_eie": timer(lambda: spmv_packed(csc, bias, x_sparse)),
        "dense_eie": timer(lambda: dense_gemv(weights, bias, x_sparse)),
        "fixed_2pe": timer(lambda: spmv_fixed_plan(plan2, bias_acc, x_q, False, parallel=True)),
        "fixed_1pe": timer(lambda: spmv_fixed_plan(plan1, bias_acc, x_q, False)),
    }
    row = {"layer": name, "rows": rows, "cols": cols, "density": density,
           "act_density_csc": act_density, "nnz": int(csr_scipy.nnz),
           "entries_csr": csr.n_entries, "encoded_bytes_csr": csr.nbytes,
           "entry_bytes": csr.entries.itemsize, "dense_bytes": int(weights.nbytes),
           "scipy_bytes": int(csr_scipy.data.nbytes + csr_scipy.indices.nbytes
                              + csr_scipy.indptr.nbytes)}
    row["warm_us"], row["warm_min_us"] = interleaved(runs, WARM_REPS)
    row["cold_us"], row["cold_min_us"] = interleaved(runs, COLD_REPS, flush)
    for t in ("warm", "cold", "warm_min", "cold_min"):
        us = row[f"{t}_us"]
        row[f"{t}_ratio"] = {
            "dense_over_ours": us["dense"] / us["ours_csr"],
            "scipy_over_ours": us["scipy_csr"] / us["ours_csr"],
            "dense_1thr_over_ours_1thr": us["dense_1thr"] / us["ours_csr_1thr"],
            "fixed_2pe_over_ours": us["fixed_2pe"] / us["ours_csr"],
            "dense_eie_over_csc_eie": us["dense_eie"] / us["ours_csc_eie"],
            "fixed_1pe_over_ours_1thr": us["fixed_1pe"] / us["ours_csr_1thr"],
        }
        row[f"{t}_encoded_gbs"] = row["encoded_bytes_csr"] / us["ours_csr"] / 1e3
        row[f"{t}_dense_gbs"] = row["dense_bytes"] / us["dense"] / 1e3
    return row


def loadavg():
    return os.getloadavg()


def main():
    fmt = FixedFormat()
    rng = np.random.default_rng(SEED)
    load_start = loadavg()
    print(f"load average at start: {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}")
    flush = np.zeros(FLUSH_BYTES // 8)
    bandwidth = memory_bandwidth_gbs()
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    facts = dict(l.split(":", 1) for l in cpu.splitlines() if ":" in l)
    model = facts.get("Model name", platform.processor()).strip()
    l3 = facts.get("L3 cache", "?").strip()
    blas = [{k: d.get(k) for k in ("internal_api", "version", "architecture", "num_threads",
                                   "threading_layer")} for d in threadpool_info()]
    print(f"cpu {model}, L3 {l3}, {os.cpu_count()} cpus, numba threads "
          f"{numba.get_num_threads()} ({os.environ['NUMBA_THREADING_LAYER']}, "
          f"OMP_PROC_BIND={os.environ.get('OMP_PROC_BIND')}); "
          f"BLAS {blas}")
    print(f"numpy copy bandwidth {bandwidth:.1f} GB/s (read + write)")
    rows = []
    for name, r, c, d, a in LAYERS:
        rows.append(bench_layer(name, r, c, d, a, rng, fmt, flush))
        print(f"  measured {name}", flush=True)
    load_end = loadavg()
    short = {"dense": "dense", "dense_1thr": "dense1", "scipy_csr": "scipy",
             "ours_csr": "ours", "ours_csr_1thr": "ours1", "ours_csc_eie": "cscEIE",
             "dense_eie": "dnsEIE", "fixed_2pe": "fix2", "fixed_1pe": "fix1"}
    print("batch 1, median microseconds over the repetitions; ours = packed CSR on both cores, ours1 = one "
          "thread; cscEIE = CSC skipping zero inputs at the stated activation density, "
          "dnsEIE = dense on that input, dE/cE their ratio")
    print(f"{'layer':7} {'t':4} " + " ".join(f"{short[k]:>7}" for k in KEYS)
          + f" {'d/ours':>6} {'s/ours':>6} {'d1/o1':>6} {'fx/flt':>6} {'GB/s':>5} {'dE/cE':>6}"
          f" {'paper':>6}")
    for row in rows:
        for t in ("warm", "cold"):
            us, ratio = row[f"{t}_us"], row[f"{t}_ratio"]
            paper = PAPER_DENSE[row["layer"]] / PAPER_SPARSE[row["layer"]]
            print(f"{row['layer']:7} {t:4} " + " ".join(f"{us[k]:7.0f}" for k in KEYS)
                  + f" {ratio['dense_over_ours']:5.1f}x {ratio['scipy_over_ours']:5.2f}x"
                  f" {ratio['dense_1thr_over_ours_1thr']:5.1f}x"
                  f" {ratio['fixed_2pe_over_ours']:5.2f}x {row[f'{t}_encoded_gbs']:5.2f}"
                  f" {ratio['dense_eie_over_csc_eie']:5.1f}x {paper:5.1f}x")
    print("the same, minimum over the repetitions (the least disturbed run of each):")
    for row in rows:
        for t in ("warm_min", "cold_min"):
            us, ratio = row[f"{t}_us"], row[f"{t}_ratio"]
            print(f"{row['layer']:7} {t[:4]:4} " + " ".join(f"{us[k]:7.0f}" for k in KEYS)
                  + f" {ratio['dense_over_ours']:5.1f}x {ratio['scipy_over_ours']:5.2f}x"
                  f" {ratio['dense_1thr_over_ours_1thr']:5.1f}x"
                  f" {ratio['fixed_2pe_over_ours']:5.2f}x {row[f'{t}_encoded_gbs']:5.2f}"
                  f" {ratio['dense_eie_over_csc_eie']:5.1f}x")
    print(f"load average at end: {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "machine": {"cpu": model, "l3": l3, "cpus": os.cpu_count(),
                    "numba_threads": numba.get_num_threads(),
                    "numba_threading_layer": numba.threading_layer(), "blas": blas,
                    "memory_bandwidth_gbs": bandwidth,
                    "openblas_env": {k: v for k, v in os.environ.items()
                                     if k.startswith("OPENBLAS")},
                    "thread_env": {k: v for k, v in os.environ.items()
                                   if k.startswith(("OMP_", "NUMBA_", "GOMP_"))},
                    "load_average_start": load_start, "load_average_end": load_end},
        "config": {"code_bits": CODE_BITS, "index_bits": INDEX_BITS, "seed": SEED,
                   "warm_reps": WARM_REPS, "cold_reps": COLD_REPS, "warmup_calls": WARMUP_CALLS,
                   "flush_bytes": FLUSH_BYTES, "fmt": fmt.__dict__, "order": "interleaved"},
        "paper_us": {"dense": PAPER_DENSE, "sparse": PAPER_SPARSE},
        "layers": rows}, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
