"""Huffman codec benchmark: size against optimal and entropy, encode/decode speed.

Size: the codec's lengths are limited to 16 bits (package-merge); where the plain
Huffman code is deeper than that (rare extreme centroids), the coded size exceeds the
Huffman size by the price of the limit, reported in bits.

Streams shaped like a compressed fc layer's (LeNet-300-100 ip1-like, 8% of weights
kept, 5-bit codes and 5-bit relative indices): weight codes from a linear-initialised
31-level quantization of the surviving weights of a pruned Gaussian layer (a peaked,
two-humped distribution, code 0 for fillers), and relative indices of a random 8%
mask (fillers included). Sizes are compared with the plain (unlimited) Huffman size
(``huffman.optimal_bits``) and with the entropy; speeds with dahuffman and the
bit-by-bit reference decoder.

Run: .venv/bin/python benchmarks/bench_huffman.py [--chunks 4] [--seed 0]
Writes benchmarks/results/huffman.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
from dahuffman import HuffmanCodec

from dcsim.compress import huffman, sparse

DENSITY = 0.08
CODE_BITS = 5
INDEX_BITS = 5


def layer_streams(rng, rows=1000, cols=10_000):
    """(codes, z) of one pruned, 5-bit-quantized layer in one-line relative-index form."""
    w = rng.standard_normal((rows, cols))
    threshold = np.quantile(np.abs(w), 1 - DENSITY)
    kept = np.abs(w) > threshold
    lo, hi = w[kept].min(), w[kept].max()
    levels = 2 ** CODE_BITS - 1
    centroids = np.linspace(lo, hi, levels)
    codes = np.zeros(w.shape, dtype=np.int64)
    codes[kept] = np.abs(w[kept][:, None] - centroids[None, :]).argmin(axis=1) + 1
    m = sparse.encode(codes.reshape(1, -1), INDEX_BITS, "csr")
    return m.code.astype(np.int64), m.z.astype(np.int64)


def entropy_bits(counts):
    p = counts[counts > 0] / counts.sum()
    return float(-np.sum(counts[counts > 0] * np.log2(p)))


def best_time(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_stream(name, symbols, alphabet, subset):
    n = symbols.shape[0]
    counts = np.bincount(symbols, minlength=alphabet)
    stream = huffman.HuffmanStream.compress(symbols, alphabet)
    assert np.array_equal(stream.decode(), symbols)
    optimal = huffman.optimal_bits(counts)
    h = entropy_bits(counts)
    t_enc = best_time(lambda: huffman.encode(symbols, stream.lengths), 3)
    t_dec = best_time(lambda: huffman.decode(stream.data, n, stream.lengths,
                                             n_bits=stream.n_bits), 5)
    part = symbols[:subset]
    codec = HuffmanCodec.from_frequencies(
        {int(s): int(c) for s, c in enumerate(np.bincount(part)) if c})
    part_list = part.tolist()
    da_data = codec.encode(part_list)
    t0 = time.perf_counter()
    da_out = codec.decode(da_data)
    t_da = time.perf_counter() - t0
    assert da_out == part_list
    ref_data, _ = huffman.encode(part, stream.lengths)
    t0 = time.perf_counter()
    ref_out = huffman.decode_reference(ref_data, subset, stream.lengths)
    t_ref = time.perf_counter() - t0
    assert np.array_equal(ref_out, part)
    return {
        "stream": name, "n_symbols": n, "alphabet": alphabet,
        "max_len": int(stream.lengths.max()),
        "huffman_depth": huffman.huffman_depth(counts),
        "coded_bits": stream.n_bits, "optimal_huffman_bits": optimal,
        "equals_optimal": stream.n_bits == optimal,
        "excess_over_huffman_bits": stream.n_bits - optimal,
        "entropy_bits": h, "bits_per_symbol": stream.n_bits / n,
        "entropy_per_symbol": h / n,
        "within_entropy_bound": stream.n_bits <= 1.01 * h + n,
        "table_bytes": len(huffman.pack_lengths(stream.lengths)),
        "encode_msym_s": n / t_enc / 1e6, "decode_msym_s": n / t_dec / 1e6,
        "dahuffman_decode_msym_s": subset / t_da / 1e6,
        "reference_decode_msym_s": subset / t_ref / 1e6,
        "speedup_vs_dahuffman": (n / t_dec) / (subset / t_da),
        "subset_for_slow_decoders": subset,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=4,
                        help="1000x10000 layers to concatenate (~0.8M entries each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--subset", type=int, default=200_000,
                        help="symbols decoded by dahuffman and the reference decoder")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__),
                                                      "results", "huffman.json"))
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    parts = [layer_streams(rng) for _ in range(args.chunks)]
    codes = np.concatenate([p[0] for p in parts])
    z = np.concatenate([p[1] for p in parts])
    warm = huffman.HuffmanStream.compress(codes[:1000], 2 ** CODE_BITS)
    warm.decode()
    results = [bench_stream("weight codes (5-bit)", codes, 2 ** CODE_BITS, args.subset),
               bench_stream("relative indices (5-bit)", z, 2 ** INDEX_BITS, args.subset)]
    head = ("stream", "symbols", "bits/sym", "entropy", "huff depth", "vs huffman",
            "bound", "enc M/s",
            "dec M/s", "dahuff M/s", "ref M/s", "x dahuff")
    print(" | ".join(head))
    for r in results:
        print(" | ".join([
            r["stream"], f"{r['n_symbols']:,}", f"{r['bits_per_symbol']:.4f}",
            f"{r['entropy_per_symbol']:.4f}", str(r["huffman_depth"]),
            "equal" if r["equals_optimal"] else f"+{r['excess_over_huffman_bits']} bits",
            str(r["within_entropy_bound"]), f"{r['encode_msym_s']:.1f}",
            f"{r['decode_msym_s']:.1f}", f"{r['dahuffman_decode_msym_s']:.3f}",
            f"{r['reference_decode_msym_s']:.3f}", f"{r['speedup_vs_dahuffman']:.0f}"]))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"seed": args.seed, "chunks": args.chunks, "machine": platform.processor()
                   or platform.machine(), "results": results}, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
