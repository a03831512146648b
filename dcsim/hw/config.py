"""EngineConfig: the sizes and widths of the EIE-style engine, validated and hashable.

Every memory size is per PE; the Verilog depends on these fields only (never on a model).
See ``docs/engine.md`` for what each field means in the micro-architecture.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

from dcsim.errors import ConfigError
from dcsim.kernels.fixed import FixedFormat


def bits_for(value: int) -> int:
    """Bits of an unsigned integer able to hold every value in ``0..value`` (at least 1)."""
    return max(1, int(value).bit_length())


@dataclass(frozen=True)
class EngineConfig:
    """Sizes and widths of the engine (EIE, sections III-IV).

    n_pe : int -- processing elements; row i of a layer lives on PE ``i % n_pe``.
    idx_bits : int -- bits of a relative row index ``z`` in a sparse entry (EIE: 4).
    code_bits : int -- bits of a weight code; a model with wider codes does not fit.
    act_bits, frac_bits, acc_bits : int -- the fixed-point format (``FixedFormat``).
    fifo_depth : int -- entries of each PE's activation queue (EIE: 8).
    word_bits : int -- width of a sparse-matrix SRAM word, packing
        ``word_bits // (idx_bits + code_bits)`` entries (EIE: 64).
    sparse_words : int -- sparse-matrix SRAM depth per PE, in words.
    ptr_depth : int -- column pointers per PE (even/odd banks of ``ptr_depth // 2``).
    act_depth : int -- activations per PE per bank (a power of two); a layer's output
        rows per PE (``ceil(rows / n_pe)``) and input columns per PE must fit in it.
    bias_depth : int -- bias words per PE, all layers together.
    max_layers : int -- entries of the layer descriptor table.
    """

    n_pe: int = 4
    idx_bits: int = 4
    code_bits: int = 4
    act_bits: int = 16
    frac_bits: int = 10
    acc_bits: int = 48
    fifo_depth: int = 8
    word_bits: int = 64
    sparse_words: int = 4096
    ptr_depth: int = 2048
    act_depth: int = 256
    bias_depth: int = 256
    max_layers: int = 8

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"{f.name} must be an integer, not {value!r}")
        ranges = {
            "n_pe": (1, 256), "idx_bits": (1, 8), "code_bits": (1, 8), "fifo_depth": (1, 64),
            "word_bits": (8, 256), "sparse_words": (1, 1 << 20), "ptr_depth": (2, 1 << 20),
            "act_depth": (2, 1 << 16), "bias_depth": (1, 1 << 16), "max_layers": (1, 256),
        }
        for name, (lo, hi) in ranges.items():
            value = getattr(self, name)
            if not lo <= value <= hi:
                raise ConfigError(f"{name} must be in {lo}..{hi}, not {value!r}")
        FixedFormat(self.act_bits, self.frac_bits, self.acc_bits)
        if self.ptr_depth % 2:
            raise ConfigError(
                f"ptr_depth must be even (two pointer banks), not {self.ptr_depth!r}")
        if self.act_depth & (self.act_depth - 1):
            raise ConfigError(
                f"act_depth must be a power of two, not {self.act_depth!r}")
        if self.entry_bits > self.word_bits:
            raise ConfigError(
                f"word_bits must hold one (z, code) entry of {self.entry_bits} bits, "
                f"not {self.word_bits!r}")

    @classmethod
    def preset(cls, name: str, **overrides) -> "EngineConfig":
        """A named configuration (``"small"`` or ``"eie64"``) with optional overrides."""
        if name not in PRESETS:
            raise ConfigError(f"Engine preset must be one of {sorted(PRESETS)}, not {name!r}")
        return dataclasses.replace(PRESETS[name], **overrides)

    @property
    def fmt(self) -> FixedFormat:
        """The fixed-point format of activations, codebook values and accumulators."""
        return FixedFormat(self.act_bits, self.frac_bits, self.acc_bits)

    @property
    def entry_bits(self) -> int:
        """Bits of one sparse entry: ``idx_bits + code_bits``."""
        return self.idx_bits + self.code_bits

    @property
    def entries_per_word(self) -> int:
        """Sparse entries packed in one SRAM word."""
        return self.word_bits // self.entry_bits

    @property
    def slot_bits(self) -> int:
        """Bits of an entry's slot within its word."""
        return bits_for(self.entries_per_word - 1)

    @property
    def ptr_bits(self) -> int:
        """Bits of a column pointer: ``word << slot_bits | slot``, word up to sparse_words."""
        return bits_for(self.sparse_words) + self.slot_bits

    @property
    def codebook_entries(self) -> int:
        """Codebook entries per layer: ``2**code_bits``."""
        return 1 << self.code_bits

    @property
    def pe_bits(self) -> int:
        """Bits of a PE number."""
        return bits_for(self.n_pe - 1)

    @property
    def row_bits(self) -> int:
        """Bits of a local row (or local column) index within a PE."""
        return bits_for(self.act_depth - 1)

    @property
    def max_vector(self) -> int:
        """Largest layer input or output length: ``act_depth * n_pe``."""
        return self.act_depth * self.n_pe

    @property
    def col_bits(self) -> int:
        """Bits of a column index j: up to ``max_vector`` (an fc input) or ``ptr_depth``
        (a conv filter matrix's engine columns, one pointer each)."""
        return bits_for(max(self.max_vector, self.ptr_depth))

    @property
    def sparse_bytes(self) -> int:
        """Sparse-matrix SRAM per PE, in bytes."""
        return self.sparse_words * self.word_bits // 8

    def to_dict(self) -> dict:
        """The fields as a JSON-able dict."""
        return dataclasses.asdict(self)

    def digest(self, extra: str = "") -> str:
        """Short hex digest of the fields (plus ``extra``): names build directories."""
        text = json.dumps(self.to_dict(), sort_keys=True) + extra
        return hashlib.sha256(text.encode()).hexdigest()[:16]


PRESETS = {
    # Test and LeNet size: LeNet-300-100 fits even at n_pe=1 (6-bit codes as in Deep
    # Compression's Table 2), LeNet-5 at 4 and 8 PEs (its conv layers' engine columns
    # take 2,203 pointers at 8 PEs).
    "small": EngineConfig(
        n_pe=4, idx_bits=4, code_bits=6, sparse_words=8192, ptr_depth=4096,
        act_depth=1024, bias_depth=512, max_layers=8),
    # EIE's design point (section IV): 64 PEs, 128 KB sparse-matrix SRAM of 64-bit words,
    # 16K pointers (EIE: 32 KB of 16-bit pointers; ours are wider), 2 x 512 x 16-bit
    # activations (2 KB), 4-bit codes and indices.
    "eie64": EngineConfig(
        n_pe=64, idx_bits=4, code_bits=4, sparse_words=16384, ptr_depth=16384,
        act_depth=512, bias_depth=512, max_layers=16),
}
