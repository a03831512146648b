"""The fixed-point number format and its rounding and saturation rules.

This module is the single source of truth for integer arithmetic in dcsim: the fixed
kernel, the RTL engine and the cycle model's functional half all follow it, and
"bit-exact" means they agree integer for integer.

Format (EIE, section IV: 16-bit fixed point):

- activations and codebook values are signed two's complement integers of ``act_bits``
  bits standing for ``value / 2**frac_bits``;
- a float is converted by rounding half up (``floor(x * 2**frac_bits + 0.5)``), then
  saturated to ``[-2**(act_bits-1), 2**(act_bits-1) - 1]``;
- a row's accumulator starts at ``bias << frac_bits`` (bias in the activation format),
  then adds exact products ``a_j * w_ij`` (``2*frac_bits`` fraction bits);
- the output is ``(acc + 2**(frac_bits-1)) >> frac_bits`` (arithmetic shift: round
  half up), saturated to ``act_bits``, then ReLU'd (``max(0, y)``) if the layer has one.

Accumulator bound: each product has magnitude at most ``2**(2*act_bits-2)``; with the
bias term, a layer of ``cols`` inputs never overflows a signed ``acc_bits`` accumulator
while ``cols <= max_cols = 2**(acc_bits-1-(2*act_bits-2)) - 1`` (for 16/48 bits:
131071 inputs, more than VGG-6's 25088). ``FixedFormat.check_cols`` enforces it, so
wrap-around never happens and the final saturation is the only one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dcsim.errors import ConfigError, FormatError


@dataclass(frozen=True)
class FixedFormat:
    """Signed fixed-point format of activations, codebook values and biases.

    act_bits : int -- width of activations and codebook values (EIE: 16).
    frac_bits : int -- fractional bits, ``1 <= frac_bits < act_bits``.
    acc_bits : int -- accumulator width, at least ``2*act_bits``.
    """

    act_bits: int = 16
    frac_bits: int = 10
    acc_bits: int = 48

    def __post_init__(self):
        for name in ("act_bits", "frac_bits", "acc_bits"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise ConfigError(f"{name} must be an integer, not {value!r}")
        if not 2 <= self.act_bits <= 32:
            raise ConfigError(f"act_bits must be in 2..32, not {self.act_bits!r}")
        if not 1 <= self.frac_bits < self.act_bits:
            raise ConfigError(
                f"frac_bits must be in 1..{self.act_bits - 1} (below act_bits), "
                f"not {self.frac_bits!r}")
        if not 2 * self.act_bits <= self.acc_bits <= 64:
            raise ConfigError(
                f"acc_bits must be in {2 * self.act_bits}..64 (at least 2*act_bits), "
                f"not {self.acc_bits!r}")

    @property
    def min_int(self) -> int:
        """Smallest representable activation integer."""
        return -(1 << (self.act_bits - 1))

    @property
    def max_int(self) -> int:
        """Largest representable activation integer."""
        return (1 << (self.act_bits - 1)) - 1

    @property
    def scale(self) -> float:
        """Value of one unit in the last place: ``2**-frac_bits``."""
        return 2.0 ** -self.frac_bits

    @property
    def max_cols(self) -> int:
        """Largest layer fan-in whose sums cannot overflow the accumulator."""
        return (1 << (self.acc_bits - 1 - (2 * self.act_bits - 2))) - 1

    def check_cols(self, cols: int) -> None:
        """Raise ConfigError if a layer of ``cols`` inputs could overflow the accumulator."""
        if cols > self.max_cols:
            raise ConfigError(
                f"Layer fan-in must be at most {self.max_cols} for a {self.acc_bits}-bit "
                f"accumulator with {self.act_bits}-bit operands, not {cols}; "
                f"raise acc_bits")

    def to_fixed(self, x) -> np.ndarray:
        """Floats -> int64 fixed-point integers (round half up, saturate)."""
        x = np.asarray(x, dtype=np.float64)
        q = np.floor(x * (1 << self.frac_bits) + 0.5)
        return np.clip(q, self.min_int, self.max_int).astype(np.int64)

    def to_float(self, q) -> np.ndarray:
        """Fixed-point integers -> float64 values."""
        return np.asarray(q, dtype=np.float64) * self.scale

    def bias_to_acc(self, bias) -> np.ndarray:
        """Float biases -> int64 accumulator initial values (``to_fixed(b) << frac``)."""
        return self.acc_start(self.to_fixed(bias))

    def acc_start(self, bias_q) -> np.ndarray:
        """Biases in the activation format -> accumulator initial values
        (``bias_q << frac_bits``), what the engine's PE loads at a layer's start."""
        return np.asarray(bias_q, dtype=np.int64) << self.frac_bits

    def bias_word(self, bias_acc) -> np.ndarray:
        """Accumulator initial values -> the biases in the activation format that the
        engine stores (the inverse of :meth:`acc_start`); FormatError unless every value
        is an activation-format bias shifted left by ``frac_bits``."""
        bias_acc = np.asarray(bias_acc, dtype=np.int64)
        self.check_acc_start("bias_acc", bias_acc)
        return bias_acc >> self.frac_bits

    def check_act(self, name: str, v) -> None:
        """FormatError unless every integer of ``v`` is an activation-format value."""
        _check_range(name, np.asarray(v), self.min_int, self.max_int, self)

    def check_acc_start(self, name: str, v) -> None:
        """FormatError unless every integer of ``v`` is ``acc_start`` of an activation."""
        v = np.asarray(v, dtype=np.int64)
        _check_range(name, v, self.min_int << self.frac_bits, self.max_int << self.frac_bits,
                     self)
        if v.size and np.any(v & ((1 << self.frac_bits) - 1)):
            raise FormatError(f"{name} must be biases shifted left by {self.frac_bits} "
                              f"bits (FixedFormat.bias_to_acc), not values with low bits set")

    def partial_sums(self, bias_acc, w_q, x_q) -> np.ndarray:
        """The accumulator after each input: ``bias_acc + cumsum(w_q * x_q)`` along the
        last axis, exact in int64 (no rounding until :meth:`finish`).

        bias_acc int64 (R,); w_q int64 (R, C) codebook integers; x_q int64 (C,).
        Returns int64 (R, C): entry [i, j] is row i's accumulator once inputs 0..j are in.
        """
        prods = np.asarray(w_q, dtype=np.int64) * np.asarray(x_q, dtype=np.int64)[None, :]
        return np.cumsum(prods, axis=1) + np.asarray(bias_acc, dtype=np.int64)[:, None]

    def finish(self, acc, relu: bool) -> np.ndarray:
        """Accumulator int64 values -> output activations: round, saturate, ReLU."""
        acc = np.asarray(acc, dtype=np.int64)
        y = (acc + (1 << (self.frac_bits - 1))) >> self.frac_bits
        y = np.clip(y, self.min_int, self.max_int)
        if relu:
            y = np.maximum(y, 0)
        return y.astype(np.int64)


def _check_range(name: str, v: np.ndarray, lo: int, hi: int, fmt: FixedFormat) -> None:
    if v.size and (int(v.min()) < lo or int(v.max()) > hi):
        raise FormatError(
            f"{name} must lie in {lo}..{hi} ({fmt.act_bits}-bit fixed point), not "
            f"{int(v.min())}..{int(v.max())}; quantize with FixedFormat.to_fixed")
