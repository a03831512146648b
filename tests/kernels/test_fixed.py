"""The fixed-point format: conversion, rounding, saturation, ReLU, accumulator bound."""

import pytest

from dcsim.errors import ConfigError, FormatError
from dcsim.kernels.fixed import FixedFormat


def test_to_fixed_rounds_half_up_and_saturates():
    fmt = FixedFormat(act_bits=8, frac_bits=4, acc_bits=16)
    assert fmt.to_fixed([0.03125, -0.03125, 1.0, 100.0, -100.0]).tolist() == [1, 0, 16, 127, -128]
    assert fmt.to_float([16, -8]).tolist() == [1.0, -0.5]


def test_finish_rounds_saturates_then_relus():
    fmt = FixedFormat(act_bits=8, frac_bits=4, acc_bits=16)
    # acc has 8 fraction bits: 24 = 1.5 units -> rounds half up to 2; -24 -> -1.
    assert fmt.finish([24, -24, 8, 7, 10 ** 6, -10 ** 6], relu=False).tolist() == [2, -1, 1, 0, 127, -128]
    assert fmt.finish([24, -24, -10 ** 6], relu=True).tolist() == [2, 0, 0]


def test_bias_initialises_accumulator_in_product_scale():
    fmt = FixedFormat(act_bits=16, frac_bits=10)
    assert fmt.bias_to_acc([1.0]).tolist() == [1 << 20]
    assert fmt.finish(fmt.bias_to_acc([0.75]), relu=False).tolist() == [768]


def test_accumulator_bound_holds_at_the_limit():
    fmt = FixedFormat()
    n = fmt.max_cols
    worst = n * (fmt.min_int * fmt.min_int) + (fmt.max_int << fmt.frac_bits)
    assert worst < 2 ** (fmt.acc_bits - 1)
    fmt.check_cols(n)
    with pytest.raises(ConfigError, match=f"Layer fan-in must be at most {n} for a 48-bit"):
        fmt.check_cols(n + 1)


@pytest.mark.parametrize("kw, message", [
    (dict(frac_bits=16), "frac_bits must be in 1..15 (below act_bits), not 16"),
    (dict(acc_bits=20), "acc_bits must be in 32..64 (at least 2*act_bits), not 20"),
    (dict(act_bits=1.5), "act_bits must be an integer, not 1.5"),
])
def test_bad_formats(kw, message):
    with pytest.raises(ConfigError) as info:
        FixedFormat(**kw)
    assert str(info.value) == message


def test_bias_words_and_accumulator_starts_are_inverse():
    fmt = FixedFormat(16, 10, 48)
    assert fmt.acc_start([3, -2, -32768]).tolist() == [3072, -2048, -32768 * 1024]
    assert fmt.bias_to_acc([3 / 1024, -0.0019]).tolist() == [3072, -2048]   # -1.95 -> -2
    assert fmt.bias_word([3072, -2048, 32767 * 1024]).tolist() == [3, -2, 32767]
    with pytest.raises(FormatError, match=r"^bias_acc must be biases shifted left by 10 bits "
                                          r"\(FixedFormat.bias_to_acc\), not values with low "
                                          r"bits set$"):
        fmt.bias_word([3073])
    with pytest.raises(FormatError, match=r"^bias_acc must lie in -33554432..33553408 "
                                          r"\(16-bit fixed point\), not 0..33554432"):
        fmt.bias_word([0, 32768 * 1024])
    with pytest.raises(FormatError, match=r"^x_q must lie in -32768..32767"):
        fmt.check_act("x_q", [0, -32769])


def test_partial_sums_by_hand():
    fmt = FixedFormat(16, 10, 48)
    # row 0: 1024 + 2*5, + 3*(-1), + 0*7 ; row 1: -1024 + (-4)*5, + 1*(-1), + 2*7
    got = fmt.partial_sums([1024, -1024], [[2, 3, 0], [-4, 1, 2]], [5, -1, 7])
    assert got.tolist() == [[1034, 1031, 1031], [-1044, -1045, -1031]]
