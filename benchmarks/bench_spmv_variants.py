"""Variants of the CSR inner loop that were tried against the library's, serial, batch 1.

Evidence for BENCHMARKS.md section 4 ("Why Alex-8 and VGG-8 stay below 3x"): each
variant computes the same y = W x as ``spmv_packed(..., parallel=False)`` on the same
packed entries (checked before timing), and only the loop differs:

- library: ``_packed_rows`` (8 entries and 8 accumulators a pass);
- acc4: the same loop as it was before, 4 entries and 4 accumulators a pass;
- four64: four packed words loaded as one uint64, unpacked with shifts;
- table: a per-call product table T[j, code] = codebook[code] * x[j], one load per entry;
- tworows: two rows walked together, four accumulators each.

Rows are padded to a multiple of four entries with (z = 0, code 0) words for the
variants (x padded with zeros to match). Median and minimum microseconds of 100 calls.

Run:  .venv/bin/python benchmarks/bench_spmv_variants.py
"""

from __future__ import annotations

import time

import numba
import numpy as np

from dcsim.compress.sparse import encode
from dcsim.kernels.spmv import pack, spmv_packed

U1, U2, U3, U4 = (np.uint64(k) for k in range(1, 5))
LAYERS = [("Alex-8", 1000, 4096, 0.25), ("Alex-7", 4096, 4096, 0.09),
          ("Alex-6", 4096, 9216, 0.09), ("VGG-6", 4096, 25088, 0.04)]
REPS = 100


def pad4(p):
    """(line_ptr, entries) with every row padded to a multiple of 4 entries."""
    lp = p.line_ptr
    n = np.diff(lp)
    out_ptr = np.zeros_like(lp)
    np.cumsum((n + 3) // 4 * 4, out=out_ptr[1:])
    ent = np.zeros(out_ptr[-1], np.uint16)
    for i in range(len(n)):
        ent[out_ptr[i]:out_ptr[i] + n[i]] = p.entries[lp[i]:lp[i + 1]]
    return out_ptr, ent


@numba.njit(fastmath={"contract"})
def acc4(line_ptr, ent, shift, cb, bias, x, y, r0, r1):
    """The library's loop before this change: 4 entries, 4 accumulators a pass."""
    sh = np.uint32(shift)
    mask = (np.uint32(1) << sh) - np.uint32(1)
    for i in range(r0, r1):
        a0 = np.float32(0.0)
        a1 = np.float32(0.0)
        a2 = np.float32(0.0)
        a3 = np.float32(0.0)
        e = np.uint64(line_ptr[i])
        end = np.uint64(line_ptr[i + 1])
        q = np.uint64(0)
        while e + U4 <= end:
            w0 = np.uint32(ent[e])
            w1 = np.uint32(ent[e + U1])
            w2 = np.uint32(ent[e + U2])
            w3 = np.uint32(ent[e + U3])
            q0 = q + np.uint64(w0 >> sh)
            q1 = q0 + np.uint64(w1 >> sh)
            q2 = q1 + np.uint64(w2 >> sh)
            q3 = q2 + np.uint64(w3 >> sh)
            a0 += cb[w0 & mask] * x[q0]
            a1 += cb[w1 & mask] * x[q1 + U1]
            a2 += cb[w2 & mask] * x[q2 + U2]
            a3 += cb[w3 & mask] * x[q3 + U3]
            q = q3 + U4
            e += U4
        while e < end:
            w = np.uint32(ent[e])
            q += np.uint64(w >> sh)
            a0 += cb[w & mask] * x[q]
            q += U1
            e += U1
        y[i] = ((a0 + a1) + (a2 + a3)) + bias[i]


@numba.njit(fastmath={"contract"})
def rows64(lp, ent64, sh, cb, x, y):
    mask = (np.uint64(1) << np.uint64(sh)) - U1
    s = np.uint64(sh)
    M = np.uint64(0xFFFF)
    for i in range(y.shape[0]):
        a0 = np.float32(0); a1 = np.float32(0); a2 = np.float32(0); a3 = np.float32(0)
        q = np.uint64(0)
        for e in range(np.uint64(lp[i]) >> np.uint64(2), np.uint64(lp[i + 1]) >> np.uint64(2)):
            W = ent64[e]
            w0 = W & M; w1 = (W >> np.uint64(16)) & M; w2 = (W >> np.uint64(32)) & M; w3 = W >> np.uint64(48)
            q0 = q + (w0 >> s); q1 = q0 + (w1 >> s); q2 = q1 + (w2 >> s); q3 = q2 + (w3 >> s)
            a0 += cb[w0 & mask] * x[q0]
            a1 += cb[w1 & mask] * x[q1 + U1]
            a2 += cb[w2 & mask] * x[q2 + U2]
            a3 += cb[w3 & mask] * x[q3 + U3]
            q = q3 + U4
        y[i] = (a0 + a1) + (a2 + a3)


@numba.njit(fastmath={"contract"})
def build_T(cb, x, T, ncode):
    # T[(j << sh) | c] = cb[c] * x[j]
    for j in range(x.shape[0]):
        for c in range(ncode):
            T[j * ncode + c] = cb[c] * x[j]


@numba.njit
def rowsT(lp, ent64, sh, T, y):
    ncode = np.uint64(1) << np.uint64(sh)
    HI = np.uint64(0xFFFF) ^ (ncode - U1)
    M = np.uint64(0xFFFF)
    for i in range(y.shape[0]):
        a0 = np.float32(0); a1 = np.float32(0); a2 = np.float32(0); a3 = np.float32(0)
        P = np.uint64(0)
        for e in range(np.uint64(lp[i]) >> np.uint64(2), np.uint64(lp[i + 1]) >> np.uint64(2)):
            W = ent64[e]
            w0 = W & M; w1 = (W >> np.uint64(16)) & M; w2 = (W >> np.uint64(32)) & M; w3 = W >> np.uint64(48)
            a0 += T[P + w0]
            P1 = P + (w0 & HI)
            a1 += T[P1 + w1 + ncode]
            P2 = P1 + (w1 & HI)
            a2 += T[P2 + w2 + ncode * U2]
            P3 = P2 + (w2 & HI)
            a3 += T[P3 + w3 + ncode * U3]
            P = P3 + (w3 & HI) + ncode * U4
        y[i] = (a0 + a1) + (a2 + a3)


@numba.njit(fastmath={"contract"})
def rows4x2(lp, ent, sh, cb, x, y):
    """two rows at a time, 4 accumulators each (independent q chains)."""
    s = np.uint32(sh)
    mask = (np.uint32(1) << s) - np.uint32(1)
    for i in range(0, y.shape[0] - 1, 2):
        a0 = np.float32(0); a1 = np.float32(0); a2 = np.float32(0); a3 = np.float32(0)
        b0 = np.float32(0); b1 = np.float32(0); b2 = np.float32(0); b3 = np.float32(0)
        q = np.uint64(0); r = np.uint64(0)
        e = np.uint64(lp[i]); end = np.uint64(lp[i + 1])
        f = np.uint64(lp[i + 1]); fend = np.uint64(lp[i + 2])
        while e < end and f < fend:
            w0 = np.uint32(ent[e]); w1 = np.uint32(ent[e + np.uint64(1)]); w2 = np.uint32(ent[e + np.uint64(2)]); w3 = np.uint32(ent[e + np.uint64(3)])
            v0 = np.uint32(ent[f]); v1 = np.uint32(ent[f + np.uint64(1)]); v2 = np.uint32(ent[f + np.uint64(2)]); v3 = np.uint32(ent[f + np.uint64(3)])
            q0 = q + np.uint64(w0 >> s); q1 = q0 + np.uint64(w1 >> s); q2 = q1 + np.uint64(w2 >> s); q3 = q2 + np.uint64(w3 >> s)
            r0 = r + np.uint64(v0 >> s); r1 = r0 + np.uint64(v1 >> s); r2 = r1 + np.uint64(v2 >> s); r3 = r2 + np.uint64(v3 >> s)
            a0 += cb[w0 & mask] * x[q0]
            b0 += cb[v0 & mask] * x[r0]
            a1 += cb[w1 & mask] * x[q1 + np.uint64(1)]
            b1 += cb[v1 & mask] * x[r1 + np.uint64(1)]
            a2 += cb[w2 & mask] * x[q2 + np.uint64(2)]
            b2 += cb[v2 & mask] * x[r2 + np.uint64(2)]
            a3 += cb[w3 & mask] * x[q3 + np.uint64(3)]
            b3 += cb[v3 & mask] * x[r3 + np.uint64(3)]
            q = q3 + np.uint64(4); r = r3 + np.uint64(4)
            e += np.uint64(4); f += np.uint64(4)
        while e < end:
            w0 = np.uint32(ent[e]); w1 = np.uint32(ent[e + np.uint64(1)]); w2 = np.uint32(ent[e + np.uint64(2)]); w3 = np.uint32(ent[e + np.uint64(3)])
            q0 = q + np.uint64(w0 >> s); q1 = q0 + np.uint64(w1 >> s); q2 = q1 + np.uint64(w2 >> s); q3 = q2 + np.uint64(w3 >> s)
            a0 += cb[w0 & mask] * x[q0]
            a1 += cb[w1 & mask] * x[q1 + np.uint64(1)]
            a2 += cb[w2 & mask] * x[q2 + np.uint64(2)]
            a3 += cb[w3 & mask] * x[q3 + np.uint64(3)]
            q = q3 + np.uint64(4); e += np.uint64(4)
        while f < fend:
            v0 = np.uint32(ent[f]); v1 = np.uint32(ent[f + np.uint64(1)]); v2 = np.uint32(ent[f + np.uint64(2)]); v3 = np.uint32(ent[f + np.uint64(3)])
            r0 = r + np.uint64(v0 >> s); r1 = r0 + np.uint64(v1 >> s); r2 = r1 + np.uint64(v2 >> s); r3 = r2 + np.uint64(v3 >> s)
            b0 += cb[v0 & mask] * x[r0]
            b1 += cb[v1 & mask] * x[r1 + np.uint64(1)]
            b2 += cb[v2 & mask] * x[r2 + np.uint64(2)]
            b3 += cb[v3 & mask] * x[r3 + np.uint64(3)]
            r = r3 + np.uint64(4); f += np.uint64(4)
        y[i] = (a0 + a1) + (a2 + a3)
        y[i + 1] = (b0 + b1) + (b2 + b3)


def timed(fn):
    ts = []
    for _ in range(REPS):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return np.median(ts) * 1e6, np.min(ts) * 1e6


def main():
    rng = np.random.default_rng(0)
    print(f"{'layer':7} {'entries':>9} " + " ".join(
        f"{k:>15}" for k in ("library", "acc4", "four64", "table", "tworows"))
        + "   (median/min us, serial)")
    for name, rows, cols, density in LAYERS:
        codes = (rng.integers(1, 32, (rows, cols))
                 * (rng.random((rows, cols)) < density)).astype(np.uint8)
        cb = np.concatenate([[0], rng.normal(0, .02, 31)]).astype(np.float32)
        p = pack(encode(codes, 4, "csr"), cb)
        x = rng.random(cols, dtype=np.float32)
        b = np.zeros(rows, np.float32)
        want = spmv_packed(p, b, x, parallel=False)
        lp, ent = pad4(p)
        ent64 = ent.view(np.uint64)
        xp = np.zeros(cols + 4, np.float32)
        xp[:cols] = x
        y = np.empty(rows, np.float32)
        table = np.empty((cols + 4) * 32, np.float32)

        def table_call():
            build_T(p.codebook, xp, table, 32)
            rowsT(lp, ent64, p.code_bits, table, y)

        runs = {"library": lambda: spmv_packed(p, b, x, parallel=False),
                "acc4": lambda: acc4(p.line_ptr, p.entries, p.code_bits, p.codebook, b, x,
                                     y, 0, rows),
                "four64": lambda: rows64(lp, ent64, p.code_bits, p.codebook, xp, y),
                "table": table_call,
                "tworows": lambda: rows4x2(lp, ent, p.code_bits, p.codebook, xp, y)}
        for key, run in runs.items():
            run()
            got = want if key == "library" else y
            assert np.allclose(got, want, atol=1e-4), (name, key)
        res = {k: timed(f) for k, f in runs.items()}
        print(f"{name:7} {p.n_entries:9d} " + " ".join(
            f"{res[k][0]:7.0f}/{res[k][1]:7.0f}" for k in runs), flush=True)


if __name__ == "__main__":
    main()
