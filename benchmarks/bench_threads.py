"""Does a 2-block parallel call of the CSR kernel use both cores? One threading setup
per child process (the layer and OpenMP's variables are read when numba starts).

For each setup: the Alex-8-shaped layer (1000 x 4096, 25% of 5-bit codes, seed 0) is
packed once, then timed batch 1 as (a) serial, (b) parallel back to back, (c) parallel
called 0.2 s after the previous call (an idle pause, as between requests), and (d)
parallel right after a dense numpy GEMV of the same layer (OpenBLAS's worker thread
then spins on the other core for ~0.1 s). Medians and minima in microseconds over the
repetitions; "par/ser" near 0.5 means the split works.

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_threads.py
Writes benchmarks/results/threads.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SETUPS = {
    "workqueue": {"NUMBA_THREADING_LAYER": "workqueue"},
    "omp": {"NUMBA_THREADING_LAYER": "omp"},
    "omp passive": {"NUMBA_THREADING_LAYER": "omp", "OMP_WAIT_POLICY": "passive"},
    "omp bound": {"NUMBA_THREADING_LAYER": "omp", "OMP_PROC_BIND": "true"},
    "omp bound passive": {"NUMBA_THREADING_LAYER": "omp", "OMP_PROC_BIND": "true",
                          "OMP_WAIT_POLICY": "passive"},
}
REPS = 60
OUT = Path(__file__).parent / "results" / "threads.json"


def child() -> None:
    import time

    import numba
    import numpy as np

    from dcsim.compress.sparse import encode
    from dcsim.kernels.spmv import dense_gemv, pack, spmv_packed

    rng = np.random.default_rng(0)
    rows, cols = 1000, 4096
    codes = (rng.integers(1, 32, (rows, cols))
             * (rng.random((rows, cols)) < 0.25)).astype(np.uint8)
    codebook = np.concatenate([[0], rng.normal(0, 0.02, 31)]).astype(np.float32)
    p = pack(encode(codes, 4, "csr"), codebook)
    weights = codebook[codes]
    x = rng.random(cols, dtype=np.float32)
    bias = np.zeros(rows, dtype=np.float32)

    def timed(fn, before=None, pause=0.0):
        out = []
        for _ in range(REPS):
            if pause:
                time.sleep(pause)
            if before is not None:
                before()
            t0 = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t0) * 1e6)
        return {"median_us": float(np.median(out)), "min_us": float(np.min(out))}

    def serial():
        spmv_packed(p, bias, x, parallel=False)

    def parallel():
        spmv_packed(p, bias, x)

    def dense():
        dense_gemv(weights, bias, x)

    for fn in (serial, parallel, dense, parallel, serial):
        fn()
    result = {"layer": numba.threading_layer(), "entries": p.n_entries,
              "serial": timed(serial), "parallel": timed(parallel),
              "parallel_after_pause": timed(parallel, pause=0.2),
              "parallel_after_dense": timed(parallel, before=dense)}
    print(json.dumps(result))


def main() -> None:
    results = {}
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("OMP_", "GOMP_", "NUMBA_THREADING"))}
    print(f"{'setup':18} {'serial':>7} {'par':>7} {'par/ser':>7} {'pause':>7} "
          f"{'a.dense':>7}   (median us; minima in the JSON)")
    for name, env in SETUPS.items():
        run = subprocess.run([sys.executable, __file__, "--child"], env={**base, **env},
                             capture_output=True, text=True, check=True)
        r = json.loads(run.stdout.strip().splitlines()[-1])
        results[name] = {"env": env, **r}
        ser, par = r["serial"]["median_us"], r["parallel"]["median_us"]
        print(f"{name:18} {ser:7.0f} {par:7.0f} {par / ser:7.2f} "
              f"{r['parallel_after_pause']['median_us']:7.0f} "
              f"{r['parallel_after_dense']['median_us']:7.0f}", flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"reps": REPS, "load_average": os.getloadavg(),
                               "setups": results}, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    child() if sys.argv[1:] == ["--child"] else main()
