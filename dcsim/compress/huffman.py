"""Canonical Huffman coding: optimal length-limited code lengths, numba encode and decode.

A code is described by its code *lengths* alone (one per symbol, 0 = unused): the
codes follow from them canonically (DEFLATE, RFC 1951 section 3.2.2: shorter codes
first, ties broken by symbol value), so only the lengths are stored. Lengths come from
the package-merge algorithm (Larmore and Hirschberg, 1990), which gives the optimal
prefix code whose lengths do not exceed ``max_len``: when the plain Huffman code
already fits, its size equals the Huffman size.

Bits are packed MSB first: the first code's first bit is bit 7 of byte 0. The last
byte is padded with zero bits.

Length-table serialisation (:func:`pack_lengths`), a stream of 4-bit nibbles, high
nibble first, for ``alphabet_size`` symbols in order:

- ``1..14``: one symbol of that length;
- ``15, n``: one symbol of length ``15 + n`` (n is 0 or 1, lengths go up to 16);
- ``0, v1, v2, ...``: a run of ``r`` unused symbols, ``r - 1`` written in base 8,
  least significant group first, one nibble per group with bit 3 set on every group
  but the last (a run of 65536 zeros takes 7 nibbles).

The last byte is padded with a zero nibble, which the reader ignores because it stops
once ``alphabet_size`` lengths are read.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numba
import numpy as np

from dcsim.errors import ConfigError, FormatError

MAX_LEN = 16
"""Longest code length supported: decoding tables have up to ``2**MAX_LEN`` entries."""

MAX_ALPHABET = 1 << 16
"""Largest alphabet supported (16-bit symbols)."""


def code_lengths(counts: np.ndarray, max_len: int = MAX_LEN) -> np.ndarray:
    """Optimal length-limited code lengths for symbol ``counts``.

    counts : non-negative integer array, shape ``(alphabet_size,)`` -- occurrences.
    max_len : longest allowed code, 1..16 bits.

    Returns uint8 lengths, shape ``(alphabet_size,)``, 0 for unused symbols. With one
    used symbol its length is 1; with none, all lengths are 0. The coded size
    ``sum(counts * lengths)`` is the minimum over prefix codes with lengths <= max_len
    (package-merge), so it equals the Huffman size when Huffman's code fits.
    """
    counts = _check_counts(counts)
    if not isinstance(max_len, (int, np.integer)) or not 1 <= max_len <= MAX_LEN:
        raise ConfigError(f"max_len must be an integer in 1..{MAX_LEN}, not {max_len!r}")
    lengths = np.zeros(counts.shape[0], dtype=np.uint8)
    used = np.flatnonzero(counts)
    n = used.shape[0]
    if n == 0:
        return lengths
    if n == 1:
        lengths[used] = 1
        return lengths
    if n > 1 << max_len:
        raise ConfigError(f"max_len must be at least {int(np.ceil(np.log2(n)))} bits for "
                          f"{n} used symbols, not {max_len}")
    order = used[np.argsort(counts[used], kind="stable")]
    lengths[order] = _package_merge(counts[order].astype(np.int64), int(max_len))
    return lengths


def optimal_bits(counts: np.ndarray) -> int:
    """Size in bits of the plain (unlimited-length) Huffman code of ``counts``.

    counts : non-negative integer array, shape ``(alphabet_size,)`` -- occurrences.

    Returns the sum of the weights of all merges of Huffman's algorithm, which is
    ``sum(counts * lengths)`` for any Huffman code. As in :func:`code_lengths`, a single
    used symbol costs 1 bit per occurrence and no used symbol costs 0. The size of the
    codec's own code equals this whenever :func:`huffman_depth` is at most its
    ``max_len`` and is larger otherwise (the price of the length limit).
    """
    return _huffman_merge(_check_counts(counts))[0]


def huffman_depth(counts: np.ndarray) -> int:
    """Longest code, in bits, of the plain (unlimited-length) Huffman code of ``counts``.

    counts : as for :func:`optimal_bits`. Ties are merged shallowest first, which gives
    the least depth of any Huffman code (Schwartz, 1964); 1 for a single used symbol,
    0 for none. :func:`code_lengths` reaches :func:`optimal_bits` when this fits its
    ``max_len``.
    """
    return _huffman_merge(_check_counts(counts))[1]


def _huffman_merge(counts: np.ndarray) -> tuple[int, int]:
    """``(bits, depth)`` of Huffman's algorithm on checked ``counts``: repeatedly merge
    the two lightest trees (a heap of (weight, depth, tie-breaker)); bits is the sum of
    the merged weights, depth that of the final tree."""
    heap = [(int(c), 0, i) for i, c in enumerate(counts) if c > 0]
    if len(heap) <= 1:
        return (heap[0][0], 1) if heap else (0, 0)
    heapq.heapify(heap)
    bits = 0
    tie = len(counts)
    while len(heap) > 1:
        (a, da, _), (b, db, _) = heapq.heappop(heap), heapq.heappop(heap)
        bits += a + b
        heapq.heappush(heap, (a + b, max(da, db) + 1, tie))
        tie += 1
    return bits, heap[0][1]


def _package_merge(weights: np.ndarray, max_len: int) -> np.ndarray:
    """Code lengths of ``weights`` (sorted ascending, n >= 2) limited to ``max_len``.

    Each level's list is the leaves merged with the pairs (packages) of the deeper
    level's list, in ascending weight order, leaves first on ties. The optimal code
    takes the first 2n-2 items of the top list; walking back down, every leaf among the
    items taken at a level adds one bit to that leaf, and every package taken there
    stands for two items taken at the next level. Leaves taken at a level are always
    the lightest ones, so a count per level suffices.
    """
    n = weights.shape[0]
    is_leaf_levels = []
    items = weights
    is_leaf = np.ones(n, dtype=bool)
    is_leaf_levels.append(is_leaf)
    for _ in range(max_len - 1):
        n_pairs = items.shape[0] // 2
        packages = items[:2 * n_pairs:2] + items[1:2 * n_pairs:2]
        merged = np.concatenate([weights, packages])
        flags = np.concatenate([np.ones(n, dtype=bool), np.zeros(n_pairs, dtype=bool)])
        order = np.argsort(merged, kind="stable")
        items = merged[order]
        is_leaf = flags[order]
        is_leaf_levels.append(is_leaf)
    lengths = np.zeros(n, dtype=np.int64)
    take = 2 * n - 2
    for is_leaf in reversed(is_leaf_levels):
        n_leaves = int(np.count_nonzero(is_leaf[:take]))
        lengths[:n_leaves] += 1
        take = 2 * (take - n_leaves)
    return lengths


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Canonical codes (uint32, right-aligned in ``lengths[s]`` bits; 0 where unused).

    Codes are assigned in order of (length, symbol), each the previous one plus one,
    shifted left when the length grows (RFC 1951 section 3.2.2). FormatError if the
    lengths overfill the code space (Kraft sum > 1) or exceed 16 bits.
    """
    lengths = _check_lengths(lengths)
    codes = np.zeros(lengths.shape[0], dtype=np.uint32)
    bl_count = np.bincount(lengths, minlength=MAX_LEN + 1)
    bl_count[0] = 0
    next_code = np.zeros(MAX_LEN + 1, dtype=np.int64)
    code = 0
    for bits in range(1, MAX_LEN + 1):
        code = (code + int(bl_count[bits - 1])) << 1
        next_code[bits] = code
    used = np.flatnonzero(lengths)
    order = used[np.lexsort((used, lengths[used]))]
    sorted_len = lengths[order]
    first = np.searchsorted(sorted_len, sorted_len, side="left")
    codes[order] = next_code[sorted_len] + np.arange(order.shape[0]) - first
    return codes


def kraft_sum(lengths: np.ndarray) -> float:
    """Sum of ``2**-length`` over used symbols: 1 for a complete code, <= 1 for any."""
    lengths = np.asarray(lengths, dtype=np.int64)
    used = lengths[lengths > 0]
    return float(np.sum(np.ldexp(1.0, -used)))


def _check_table(name: str, table) -> np.ndarray:
    """``table`` as a 1-D integer array of one entry per symbol of the alphabet."""
    table = np.asarray(table)
    if table.ndim != 1 or table.dtype.kind not in "ui":
        raise FormatError(f"{name} must be a 1-D integer array, not {table.ndim}-D "
                          f"{table.dtype}")
    if table.shape[0] > MAX_ALPHABET:
        raise FormatError(f"alphabet size must be at most {MAX_ALPHABET}, not "
                          f"{table.shape[0]}")
    return table


def _check_counts(counts) -> np.ndarray:
    counts = _check_table("counts", counts)
    if counts.size and counts.min() < 0:
        raise FormatError(f"counts must be non-negative, not {int(counts.min())}")
    return counts


def _check_lengths(lengths) -> np.ndarray:
    lengths = _check_table("code lengths", lengths)
    if lengths.size and (lengths.min() < 0 or lengths.max() > MAX_LEN):
        raise FormatError(f"code lengths must be in 0..{MAX_LEN}, not "
                          f"{int(lengths.min())}..{int(lengths.max())}")
    lengths = lengths.astype(np.int64)
    kraft = int(np.sum(np.left_shift(1, MAX_LEN - lengths[lengths > 0])))
    if kraft > 1 << MAX_LEN:
        raise FormatError(f"code lengths must satisfy Kraft's inequality (sum of "
                          f"2**-length <= 1), not {kraft / (1 << MAX_LEN)!r}")
    return lengths


def encode(symbols: np.ndarray, lengths: np.ndarray) -> tuple[bytes, int]:
    """Huffman-code ``symbols`` with the canonical code of ``lengths``.

    symbols : integer array, shape ``(n,)``, each a symbol with a non-zero length.
    Returns ``(data, n_bits)``: the MSB-first packed bits, ``ceil(n_bits / 8)`` bytes.
    """
    lengths = _check_lengths(lengths)
    symbols = np.asarray(symbols)
    if symbols.ndim != 1 or symbols.dtype.kind not in "ui":
        raise FormatError(f"symbols must be a 1-D integer array, not {symbols.ndim}-D "
                          f"{symbols.dtype}")
    if symbols.size == 0:
        return b"", 0
    lo, hi = int(symbols.min()), int(symbols.max())
    if lo < 0 or hi >= lengths.shape[0]:
        raise FormatError(f"symbols must be in 0..{lengths.shape[0] - 1}, not {lo}..{hi}")
    symbols = symbols.astype(np.int64)
    sym_len = lengths[symbols]
    if not sym_len.all():
        bad = int(symbols[np.argmin(sym_len)])
        raise FormatError(f"every symbol must have a code (non-zero length), not symbol "
                          f"{bad} of length 0")
    n_bits = int(sym_len.sum())
    out = np.zeros((n_bits + 7) // 8, dtype=np.uint8)
    _pack(symbols, lengths, canonical_codes(lengths).astype(np.int64), out)
    return out.tobytes(), n_bits


@numba.njit(cache=True)
def _pack(symbols, lengths, codes, out):
    acc = 0
    n_acc = 0
    pos = 0
    for i in range(symbols.shape[0]):
        s = symbols[i]
        acc = (acc << lengths[s]) | codes[s]
        n_acc += lengths[s]
        while n_acc >= 8:
            n_acc -= 8
            out[pos] = (acc >> n_acc) & 0xFF
            pos += 1
        acc &= (1 << n_acc) - 1
    if n_acc > 0:
        out[pos] = (acc << (8 - n_acc)) & 0xFF


def decode_table(lengths: np.ndarray) -> tuple[np.ndarray, int]:
    """The decoding table of ``lengths``: ``(table, table_bits)``.

    ``table`` is int32 of shape ``(2**table_bits,)``, indexed by the next
    ``table_bits`` = max length bits of the stream; each entry is ``symbol << 5 |
    length``, or 0 where no code starts with those bits (possible when the Kraft sum is
    below 1).
    """
    lengths = _check_lengths(lengths)
    table_bits = int(lengths.max()) if lengths.size else 0
    table = np.zeros(1 << table_bits, dtype=np.int32)
    codes = canonical_codes(lengths).astype(np.int64)
    _fill_table(lengths, codes, table_bits, table)
    return table, table_bits


@numba.njit(cache=True)
def _fill_table(lengths, codes, table_bits, table):
    for s in range(lengths.shape[0]):
        n = lengths[s]
        if n == 0:
            continue
        start = codes[s] << (table_bits - n)
        for k in range(start, start + (1 << (table_bits - n))):
            table[k] = (s << 5) | n


def decode(data: bytes, n_symbols: int, lengths: np.ndarray, n_bits: int | None = None,
           dtype=np.int64) -> np.ndarray:
    """Decode ``n_symbols`` symbols from ``data`` coded with the canonical ``lengths``.

    data : the packed bits (bytes-like).
    n_symbols : symbols to decode; at most ``8 * len(data)`` since each takes >= 1 bit.
    n_bits : if given, the stream's exact length in bits: decoding must end there.
    dtype : dtype of the returned array, shape ``(n_symbols,)``.

    FormatError if the stream is truncated (a code runs past the data or ``n_bits``),
    holds a bit pattern that is no code, or does not end at ``n_bits``. Never reads
    past ``data`` and never allocates more than ``n_symbols`` outputs.
    """
    buf = np.frombuffer(bytes(data), dtype=np.uint8)
    if not isinstance(n_symbols, (int, np.integer)) or n_symbols < 0:
        raise FormatError(f"n_symbols must be a non-negative integer, not {n_symbols!r}")
    total_bits = 8 * buf.shape[0]
    if n_bits is not None:
        if not isinstance(n_bits, (int, np.integer)) or not 0 <= n_bits <= total_bits \
                or (n_bits + 7) // 8 != buf.shape[0]:
            raise FormatError(f"n_bits must be within the last of the {buf.shape[0]} data "
                              f"bytes, not {n_bits!r}")
        total_bits = int(n_bits)
    if n_symbols > total_bits:
        raise FormatError(f"n_symbols must be at most the {total_bits} bits of data "
                          f"(each symbol takes at least one bit), not {n_symbols}")
    table, table_bits = decode_table(lengths)
    dtype = np.dtype(dtype)
    top = np.asarray(lengths).shape[0] - 1
    if dtype.kind not in "ui" or np.iinfo(dtype).max < top:
        raise FormatError(f"dtype must be an integer type holding symbols up to {top}, "
                          f"not {dtype}")
    out = np.empty(int(n_symbols), dtype=dtype)
    if n_symbols == 0:
        used = 0
    elif table_bits == 0:
        raise FormatError(f"a code with no symbols cannot decode {n_symbols} symbols")
    else:
        used = _unpack(buf, total_bits, table, table_bits, out)
    if used == -1:
        raise FormatError("Huffman stream holds a bit pattern that is no code (corrupt)")
    if used == -2:
        raise FormatError(f"Huffman stream is truncated: {n_symbols} symbols need more "
                          f"than its {total_bits} bits")
    if n_bits is not None and used != n_bits:
        raise FormatError(f"Huffman stream must end at bit {n_bits}, not at bit {used}")
    return out


@numba.njit(cache=True)
def _unpack(data, total_bits, table, table_bits, out):
    """Decode into ``out``; return bits used, -1 for an invalid code, -2 if truncated.

    Bits past the data read as zeros; the loop is bounded by ``out``'s length, and
    running past ``total_bits`` is reported once at the end.
    """
    n_bytes = data.shape[0]
    mask = (1 << table_bits) - 1
    acc = 0
    n_acc = 0
    byte_pos = 0
    used = 0
    for i in range(out.shape[0]):
        if n_acc < table_bits:
            if byte_pos + 5 <= n_bytes:
                # Fewer than 16 valid bits are left: keep them, append 5 bytes.
                acc = (((acc & 0xFFFF) << 40) | (np.int64(data[byte_pos]) << 32)
                       | (np.int64(data[byte_pos + 1]) << 24)
                       | (np.int64(data[byte_pos + 2]) << 16)
                       | (np.int64(data[byte_pos + 3]) << 8) | np.int64(data[byte_pos + 4]))
                byte_pos += 5
                n_acc += 40
            else:
                while n_acc <= 40:
                    acc = (acc & 0xFFFFFFFFFF) << 8
                    if byte_pos < n_bytes:
                        acc |= data[byte_pos]
                    byte_pos += 1
                    n_acc += 8
        entry = table[(acc >> (n_acc - table_bits)) & mask]
        n = entry & 31
        if n == 0:
            return -1
        used += n
        n_acc -= n
        out[i] = entry >> 5
    if used > total_bits:
        return -2
    return used


def decode_reference(data: bytes, n_symbols: int, lengths: np.ndarray) -> np.ndarray:
    """Slow, obviously right bit-by-bit decoder (for tests and benchmarks)."""
    lengths = _check_lengths(lengths)
    codes = canonical_codes(lengths)
    lookup = {(int(lengths[s]), int(codes[s])): s for s in np.flatnonzero(lengths)}
    bits = np.unpackbits(np.frombuffer(bytes(data), dtype=np.uint8))
    out = []
    pos = 0
    for _ in range(n_symbols):
        code, n = 0, 0
        while (n, code) not in lookup:
            if pos >= bits.shape[0] or n >= MAX_LEN:
                raise FormatError("Huffman stream is truncated or corrupt")
            code = (code << 1) | int(bits[pos])
            pos += 1
            n += 1
        out.append(lookup[(n, code)])
    return np.array(out, dtype=np.int64)


def compress(symbols: np.ndarray, alphabet_size: int, max_len: int = MAX_LEN
             ) -> tuple[np.ndarray, bytes, int]:
    """Count, build the optimal code and encode: ``(lengths, data, n_bits)``."""
    symbols = np.asarray(symbols)
    if not isinstance(alphabet_size, (int, np.integer)) or \
            not 1 <= alphabet_size <= MAX_ALPHABET:
        raise FormatError(f"alphabet_size must be an integer in 1..{MAX_ALPHABET}, not "
                          f"{alphabet_size!r}")
    if symbols.ndim != 1 or symbols.dtype.kind not in "ui":
        raise FormatError(f"symbols must be a 1-D integer array, not {symbols.ndim}-D "
                          f"{symbols.dtype}")
    if symbols.size and (symbols.min() < 0 or symbols.max() >= alphabet_size):
        raise FormatError(f"symbols must be in 0..{alphabet_size - 1}, not "
                          f"{int(symbols.min())}..{int(symbols.max())}")
    counts = np.bincount(symbols.astype(np.int64), minlength=int(alphabet_size))
    lengths = code_lengths(counts, max_len)
    data, n_bits = encode(symbols, lengths)
    return lengths, data, n_bits


@dataclass(frozen=True, eq=False)
class HuffmanStream:
    """A Huffman-coded symbol stream with its code.

    lengths : uint8, shape ``(alphabet_size,)`` -- canonical code lengths.
    data : the packed bits; n_bits : their exact count; n_symbols : symbols coded.
    """

    lengths: np.ndarray
    data: bytes
    n_bits: int
    n_symbols: int

    @classmethod
    def compress(cls, symbols: np.ndarray, alphabet_size: int, max_len: int = MAX_LEN
                 ) -> "HuffmanStream":
        """Code ``symbols`` (integers in ``0..alphabet_size-1``) optimally."""
        lengths, data, n_bits = compress(symbols, alphabet_size, max_len)
        return cls(lengths=lengths, data=data, n_bits=n_bits,
                   n_symbols=int(np.asarray(symbols).shape[0]))

    def decode(self, dtype=np.int64) -> np.ndarray:
        """The symbols, shape ``(n_symbols,)``."""
        return decode(self.data, self.n_symbols, self.lengths, n_bits=self.n_bits,
                      dtype=dtype)


def pack_lengths(lengths: np.ndarray) -> bytes:
    """Serialise a code-length table (format in the module docstring)."""
    lengths = _check_lengths(lengths)
    nibbles = []
    i = 0
    n = lengths.shape[0]
    while i < n:
        length = int(lengths[i])
        if length == 0:
            j = i
            while j < n and lengths[j] == 0:
                j += 1
            nibbles.append(0)
            rest = j - i - 1
            while True:
                group, rest = rest & 7, rest >> 3
                nibbles.append(group | (8 if rest else 0))
                if not rest:
                    break
            i = j
            continue
        if length < 15:
            nibbles.append(length)
        else:
            nibbles.extend((15, length - 15))
        i += 1
    if len(nibbles) % 2:
        nibbles.append(0)
    pairs = np.array(nibbles, dtype=np.uint8).reshape(-1, 2)
    return ((pairs[:, 0] << 4) | pairs[:, 1]).astype(np.uint8).tobytes()


def unpack_lengths(data: bytes, alphabet_size: int) -> tuple[np.ndarray, int]:
    """Read a code-length table of ``alphabet_size`` symbols from the start of ``data``.

    Returns ``(lengths, n_bytes_read)``. FormatError if the table is truncated, a zero
    run passes the alphabet's end, a length exceeds 16 or the lengths overfill the
    code space.
    """
    if not isinstance(alphabet_size, (int, np.integer)) or \
            not 1 <= alphabet_size <= MAX_ALPHABET:
        raise FormatError(f"alphabet_size must be an integer in 1..{MAX_ALPHABET}, not "
                          f"{alphabet_size!r}")
    raw = np.frombuffer(bytes(data), dtype=np.uint8)
    nibbles = np.empty(2 * raw.shape[0], dtype=np.uint8)
    nibbles[0::2] = raw >> 4
    nibbles[1::2] = raw & 15
    lengths = np.zeros(int(alphabet_size), dtype=np.uint8)
    k = 0
    i = 0

    def take():
        nonlocal k
        if k >= nibbles.shape[0]:
            raise FormatError(f"code-length table is truncated: {i} of {alphabet_size} "
                              f"lengths read from {raw.shape[0]} bytes")
        k += 1
        return int(nibbles[k - 1])

    while i < alphabet_size:
        v = take()
        if v == 0:
            run, shift = 0, 0
            while True:
                g = take()
                run |= (g & 7) << shift
                shift += 3
                if not g & 8:
                    break
                if shift > 18:
                    raise FormatError("code-length table has a zero run longer than "
                                      f"any alphabet ({MAX_ALPHABET} symbols)")
            run += 1
            if i + run > alphabet_size:
                raise FormatError(f"code-length table zero run must end within the "
                                  f"{alphabet_size} symbols, not at {i + run}")
            i += run
        else:
            length = v if v < 15 else 15 + take()
            if length > MAX_LEN:
                raise FormatError(f"code lengths must be at most {MAX_LEN}, not {length}")
            lengths[i] = length
            i += 1
    _check_lengths(lengths)
    return lengths, (k + 1) // 2
