"""Relative-index sparse encoding (CSC and CSR) with filler entries.

Within a *line* (a column for CSC, a row for CSR) each stored entry carries ``z``, the
number of zero positions skipped since the previous stored entry (or the line's start),
and a weight ``code``. A gap longer than ``2**index_bits - 1`` is bridged by *filler*
entries: ``z = 2**index_bits - 1`` and code 0, each standing at a zero position, so one
filler covers ``2**index_bits`` positions (Deep Compression, Figure 3; EIE, section III).
EIE's example with 4-bit z: the column ``[0,0,1,2,0 x 18,3]`` is stored as
``code=[1,2,0,3], z=[2,0,15,2]``. Trailing zeros of a line are not stored.

``line_ptr[i]:line_ptr[i+1]`` are line i's entries, fillers included.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from dcsim.errors import FormatError
from dcsim.compress.layer import code_dtype

ORDERS = ("csc", "csr")


@dataclass(frozen=True, eq=False)
class RelIndexMatrix:
    """A (rows, cols) code matrix in relative-index form.

    order : ``"csc"`` (lines are columns) or ``"csr"`` (lines are rows).
    shape : ``(rows, cols)``.
    index_bits : bits of each ``z``.
    line_ptr : int64 array, shape ``(n_lines + 1,)``, ``line_ptr[0] == 0``.
    z : uint8/uint16 array, shape ``(n_entries,)`` -- zeros skipped before each entry.
    code : uint8/uint16 array, shape ``(n_entries,)`` -- 0 only for fillers.
    """

    order: str
    shape: tuple
    index_bits: int
    line_ptr: np.ndarray
    z: np.ndarray
    code: np.ndarray

    @property
    def n_lines(self) -> int:
        """Columns for CSC, rows for CSR."""
        return self.shape[1] if self.order == "csc" else self.shape[0]

    @property
    def line_len(self) -> int:
        """Positions in one line: rows for CSC, cols for CSR."""
        return self.shape[0] if self.order == "csc" else self.shape[1]

    @property
    def n_entries(self) -> int:
        """Stored entries, fillers included."""
        return int(self.z.shape[0])

    @property
    def n_fillers(self) -> int:
        """Stored entries with code 0."""
        return int(np.count_nonzero(self.code == 0))

    def validate(self) -> None:
        """Raise FormatError unless pointers, indices and positions are consistent."""
        _check_encoded(self)


def encode(codes: np.ndarray, index_bits: int, order: str = "csc") -> RelIndexMatrix:
    """Encode a (rows, cols) integer code matrix (0 = zero) in relative-index form."""
    if order not in ORDERS:
        raise FormatError(f"Sparse order must be one of {ORDERS}, not {order!r}")
    if not isinstance(index_bits, (int, np.integer)) or not 1 <= index_bits <= 16:
        raise FormatError(f"index_bits must be an integer in 1..16, not {index_bits!r}")
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.dtype.kind not in "ui":
        raise FormatError(
            f"codes must be a 2-D integer matrix, not {codes.ndim}-D {codes.dtype}")
    if codes.size and codes.min() < 0:
        raise FormatError(f"codes must be non-negative, not {int(codes.min())}")
    lines = codes.T if order == "csc" else codes
    lines = np.ascontiguousarray(lines, dtype=np.int64)
    span = 1 << int(index_bits)
    counts = _count_entries(lines, span)
    line_ptr = np.zeros(lines.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=line_ptr[1:])
    z = np.empty(line_ptr[-1], dtype=np.int64)
    code = np.empty(line_ptr[-1], dtype=np.int64)
    _fill_entries(lines, span, line_ptr, z, code)
    max_code = int(codes.max()) if codes.size else 0
    return RelIndexMatrix(
        order=order, shape=tuple(int(s) for s in codes.shape), index_bits=int(index_bits),
        line_ptr=line_ptr, z=z.astype(code_dtype(int(index_bits))),
        code=code.astype(np.uint8 if max_code < 256 else np.uint16))


def decode(m: RelIndexMatrix, dtype=np.uint8) -> np.ndarray:
    """The dense (rows, cols) code matrix of ``m``; FormatError if ``m`` is malformed."""
    _check_encoded(m)
    lines = np.zeros((m.n_lines, m.line_len), dtype=np.int64)
    _scatter_entries(m.line_ptr, m.z.astype(np.int64), m.code.astype(np.int64), lines)
    out = lines.T if m.order == "csc" else lines
    return np.ascontiguousarray(out).astype(dtype)


def positions(m: RelIndexMatrix) -> np.ndarray:
    """Absolute position within its line of every stored entry, int64 (n_entries,)."""
    _check_encoded(m)
    out = np.empty(m.n_entries, dtype=np.int64)
    _entry_positions(m.line_ptr, m.z.astype(np.int64), out)
    return out


def interleave(codes: np.ndarray, n_pe: int, index_bits: int) -> list:
    """Split a code matrix over ``n_pe`` PEs the EIE way and encode each slice as CSC.

    Row i goes to PE ``i % n_pe`` as its local row ``i // n_pe`` (EIE, section III-B).
    Returns one :class:`RelIndexMatrix` per PE, each of shape (local_rows, cols); a PE
    with no rows gets shape (0, cols) and no entries.
    """
    if not isinstance(n_pe, (int, np.integer)) or n_pe < 1:
        raise FormatError(f"n_pe must be a positive integer, not {n_pe!r}")
    codes = np.asarray(codes)
    return [encode(codes[pe::n_pe, :], index_bits, "csc") for pe in range(int(n_pe))]


def _check_encoded(m: RelIndexMatrix) -> None:
    if m.order not in ORDERS:
        raise FormatError(f"Sparse order must be one of {ORDERS}, not {m.order!r}")
    ptr = np.asarray(m.line_ptr)
    if ptr.shape != (m.n_lines + 1,):
        raise FormatError(
            f"line_ptr must have {m.n_lines + 1} entries for {m.n_lines} lines, "
            f"not {ptr.shape[0] if ptr.ndim == 1 else ptr.shape}")
    if ptr[0] != 0 or np.any(np.diff(ptr) < 0) or ptr[-1] != m.z.shape[0]:
        raise FormatError(
            f"line_ptr must rise from 0 to the entry count {m.z.shape[0]}, "
            f"not {ptr[0]}..{ptr[-1]} (or falling somewhere)")
    if m.z.shape != m.code.shape:
        raise FormatError(f"z and code must have the same length, not {m.z.shape} and "
                          f"{m.code.shape}")
    if m.z.size and int(m.z.max()) >= (1 << m.index_bits):
        raise FormatError(
            f"Relative indices must fit {m.index_bits} bits, not {int(m.z.max())}")
    end = _max_line_end(ptr, m.z.astype(np.int64))
    if end > m.line_len:
        raise FormatError(
            f"Entries run past the end of a line: position {end - 1} in a line of "
            f"{m.line_len}")


@numba.njit(cache=True)
def fillers_for_gap(gap, span):
    """Fillers a stored weight needs after ``gap`` zeros of its line: ``gap // span``
    (``span = 2**index_bits``; each filler stands for ``span`` positions). The one filler
    rule: the encoder, the cycle model, the kernels' re-packing and the energy model's
    expectation all count with it. Works on integers and on integer arrays."""
    return gap // span


@numba.njit(cache=True)
def _count_entries(lines, span):
    counts = np.zeros(lines.shape[0], dtype=np.int64)
    for i in range(lines.shape[0]):
        gap = 0
        n = 0
        for k in range(lines.shape[1]):
            if lines[i, k] != 0:
                n += fillers_for_gap(gap, span) + 1
                gap = 0
            else:
                gap += 1
        counts[i] = n
    return counts


@numba.njit(cache=True)
def _fill_entries(lines, span, line_ptr, z, code):
    zmax = span - 1
    for i in range(lines.shape[0]):
        e = line_ptr[i]
        gap = 0
        for k in range(lines.shape[1]):
            c = lines[i, k]
            if c != 0:
                for _ in range(fillers_for_gap(gap, span)):
                    z[e] = zmax
                    code[e] = 0
                    e += 1
                gap -= fillers_for_gap(gap, span) * span
                z[e] = gap
                code[e] = c
                e += 1
                gap = 0
            else:
                gap += 1


@numba.njit(cache=True)
def _scatter_entries(line_ptr, z, code, lines):
    for i in range(line_ptr.shape[0] - 1):
        pos = -1
        for e in range(line_ptr[i], line_ptr[i + 1]):
            pos += z[e] + 1
            lines[i, pos] = code[e]


@numba.njit(cache=True)
def _entry_positions(line_ptr, z, out):
    for i in range(line_ptr.shape[0] - 1):
        pos = -1
        for e in range(line_ptr[i], line_ptr[i + 1]):
            pos += z[e] + 1
            out[e] = pos


@numba.njit(cache=True)
def _max_line_end(line_ptr, z):
    end = 0
    for i in range(line_ptr.shape[0] - 1):
        pos = -1
        for e in range(line_ptr[i], line_ptr[i + 1]):
            pos += z[e] + 1
        if pos + 1 > end:
            end = pos + 1
    return end
