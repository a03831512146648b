"""The fixed-point format: conversion, rounding, saturation, ReLU, accumulator bound."""

import pytest

from dcsim.errors import ConfigError
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
