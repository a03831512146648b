"""Tests of the sparse kernels against slow, obviously right references."""

import numpy as np
import pytest

from dcsim.compress.layer import CompressedLayer
from dcsim.compress.sparse import RelIndexMatrix, encode, interleave
from dcsim.errors import ConfigError, FormatError
from dcsim.kernels.fixed import FixedFormat
from dcsim.kernels.spmv import (
    FixedPlan, PackedMatrix, dense_gemv, layer_dense, layer_fixed, layer_float, pack,
    plan_fixed, quantize_layer, spmv_csc, spmv_csr, spmv_fixed, spmv_fixed_plan, spmv_packed,
)

from kernel_reference import reference_fixed

SEEDS = [0, 1, 2, 3, 4, 5]


def random_codes(rng, rows, cols, density, code_bits, empty_cols=0):
    codes = rng.integers(1, 2 ** code_bits, size=(rows, cols))
    codes = codes * (rng.random((rows, cols)) < density)
    if empty_cols:
        codes[:, rng.choice(cols, size=empty_cols, replace=False)] = 0
    return codes.astype(np.uint8)


def random_layer(rng, rows, cols, density=0.2, code_bits=4, index_bits=4, relu=False,
                 spread=1.0):
    codes = random_codes(rng, rows, cols, density, code_bits, empty_cols=min(3, cols // 4))
    codebook = np.concatenate([[0.0], rng.normal(0, spread, 2 ** code_bits - 1)])
    bias = rng.normal(0, spread, rows)
    return CompressedLayer("ip1", "fc", (rows, cols), codes, codebook, bias, code_bits,
                           index_bits, relu=relu)


@pytest.mark.parametrize("seed", SEEDS)
def test_fixed_matches_integer_reference(seed):
    print("seed", seed)
    rng = np.random.default_rng(seed)
    fmt = FixedFormat(act_bits=16, frac_bits=int(rng.integers(6, 13)))
    rows = int(rng.integers(1, 40))  # mostly not a multiple of n_pe
    cols = int(rng.integers(1, 80))
    relu = bool(seed % 2)
    layer = random_layer(rng, rows, cols, density=float(rng.uniform(0.02, 0.6)),
                         index_bits=int(rng.integers(1, 5)), relu=relu,
                         spread=float(rng.choice([0.1, 1.0, 30.0])))
    codebook_q, bias_acc = quantize_layer(layer, fmt)
    x_q = rng.integers(fmt.min_int, fmt.max_int + 1, size=(4, cols))
    x_q[1] = 0  # all-zero input
    x_q[2] *= rng.random(cols) < 0.3  # mostly zero
    x_q[3] = np.where(rng.random(cols) < 0.5, fmt.min_int, fmt.max_int)  # saturating
    want = np.stack([reference_fixed(layer.codes, codebook_q, bias_acc, x, fmt.frac_bits,
                                     fmt.act_bits, relu) for x in x_q])
    for n_pe in (1, 2, 3, 4, 7, 64):
        pes = interleave(layer.codes, n_pe, layer.index_bits)
        got = spmv_fixed(pes, rows, codebook_q, bias_acc, x_q, fmt, relu)
        np.testing.assert_array_equal(got, want, err_msg=f"n_pe={n_pe}")
        one = spmv_fixed(pes, rows, codebook_q, bias_acc, x_q[0], fmt, relu, parallel=True)
        np.testing.assert_array_equal(one, want[0], err_msg=f"n_pe={n_pe} parallel")


def test_fixed_saturates_and_uses_negative_values():
    fmt = FixedFormat()
    codes = np.array([[1, 1], [2, 2], [1, 2], [0, 0]], dtype=np.uint8)
    codebook_q = np.array([0, fmt.max_int, fmt.min_int, 0], dtype=np.int64)
    bias_acc = np.array([0, 0, -5 << fmt.frac_bits, 3 << fmt.frac_bits], dtype=np.int64)
    x_q = np.array([fmt.max_int, fmt.max_int], dtype=np.int64)
    pes = interleave(codes, 2, 4)
    got = spmv_fixed(pes, 4, codebook_q, bias_acc, x_q, fmt, relu=False)
    # row 2: max*max + max*min = -max, then (-max - 5*2**f + half) >> f
    row2 = (fmt.max_int * fmt.max_int + fmt.max_int * fmt.min_int - (5 << fmt.frac_bits)
            + (1 << (fmt.frac_bits - 1))) >> fmt.frac_bits
    np.testing.assert_array_equal(got, [fmt.max_int, fmt.min_int, row2, 3])
    relu = spmv_fixed(pes, 4, codebook_q, bias_acc, x_q, fmt, relu=True)
    np.testing.assert_array_equal(relu, [fmt.max_int, 0, 0, 3])


def test_fixed_with_fillers_and_wide_fan_in():
    rng = np.random.default_rng(7)
    print("seed", 7)
    fmt = FixedFormat()
    codes = np.zeros((70, 300), dtype=np.uint8)
    codes[69, :] = 3  # the last row only: every PE slice but one needs fillers
    codes[0, 299] = 1
    layer = CompressedLayer("ip2", "fc", codes.shape, codes,
                            np.r_[0.0, 0.5, -0.25, 0.125], rng.normal(0, 1, 70), 2, 2)
    pes = interleave(codes, 4, 2)
    assert sum(m.n_fillers for m in pes) > 0
    x_q = rng.integers(-2000, 2000, size=300)
    codebook_q, bias_acc = quantize_layer(layer, fmt)
    want = reference_fixed(codes, codebook_q, bias_acc, x_q, fmt.frac_bits, fmt.act_bits,
                           False)
    np.testing.assert_array_equal(layer_fixed(layer, x_q, fmt, n_pe=4, idx_bits=2), want)
    np.testing.assert_array_equal(layer_fixed(layer, x_q, fmt, n_pe=5, idx_bits=8), want)


def test_quantize_layer_maps_floats_with_fixed_format():
    from dcsim.compress.layer import CompressedLayer

    fmt = FixedFormat(frac_bits=8)
    layer = CompressedLayer("q", "fc", (2, 2), np.array([[1, 2], [3, 4]]),
                            np.array([0, 0.5, -0.25, 1 / 3, 200, -0.5 / 256, 0, 0]),
                            np.array([0.1, -0.002]), 3, 4)
    codebook_q, bias_acc = quantize_layer(layer, fmt)
    # by hand, x 256: 128, -64, 85.33 -> 85, 51200 saturates to 32767, -0.5 -> 0 (half up)
    assert codebook_q.tolist() == [0, 128, -64, 85, 32767, 0, 0, 0]
    # biases 25.6 -> 26 and -0.512 -> -1, then << 8 into the accumulator
    assert bias_acc.tolist() == [26 * 256, -256]
    assert codebook_q.dtype == np.int64 and bias_acc.dtype == np.int64


@pytest.mark.parametrize("seed", SEEDS[:3])
@pytest.mark.parametrize("parallel", [False, True])
def test_float_kernels_match_dense(seed, parallel):
    print("seed", seed)
    rng = np.random.default_rng(seed)
    rows, cols = int(rng.integers(1, 90)), int(rng.integers(1, 120))
    layer = random_layer(rng, rows, cols, density=float(rng.uniform(0.01, 0.5)),
                         code_bits=5, index_bits=int(rng.integers(2, 6)))
    x = rng.normal(0, 1, size=(5, cols)).astype(np.float32)
    x[0, rng.random(cols) < 0.5] = 0
    want = layer_dense(layer, x).astype(np.float64)
    # float32 sums in another order: error bounded by cols * eps * sum |w x|
    tol = 4 * cols * np.finfo(np.float32).eps * (
        np.abs(layer.weights()) @ np.abs(x.T).astype(np.float64)).T + 1e-6
    for order, kernel in (("csr", spmv_csr), ("csc", spmv_csc)):
        m = encode(layer.codes, layer.index_bits, order)
        batched = kernel(m, layer.codebook, layer.bias, x, parallel=parallel)
        assert batched.shape == (5, rows) and batched.dtype == np.float32
        assert np.all(np.abs(batched - want) <= tol), order
        single = kernel(m, layer.codebook, layer.bias, x[0], parallel=parallel)
        assert single.shape == (rows,)
        assert np.all(np.abs(single - want[0]) <= tol[0]), order
    np.testing.assert_allclose(layer_float(layer, x, "csc"), layer_float(layer, x, "csr"),
                               rtol=1e-5, atol=1e-5)


def test_dense_gemv_is_w_x_plus_b():
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([1, -1], dtype=np.float32)
    x = np.array([1, 2, 3], dtype=np.float32)
    np.testing.assert_array_equal(dense_gemv(w, b, x), [9, 25])
    np.testing.assert_array_equal(dense_gemv(w, b, np.stack([x, 2 * x])), [[9, 25], [17, 51]])


def _pes_and_args():
    fmt = FixedFormat()
    codes = np.array([[1, 0, 2], [0, 3, 0], [2, 2, 0]], dtype=np.uint8)
    pes = interleave(codes, 2, 4)
    return fmt, pes, np.array([0, 100, -100, 50]), np.zeros(3, dtype=np.int64)


def test_fixed_rejects_shape_mismatch():
    fmt, pes, cbq, bias = _pes_and_args()
    with pytest.raises(FormatError, match=r"^x_q must have shape \(3,\) or \(batch, 3\), "
                                          r"not \(4,\)$"):
        spmv_fixed(pes, 3, cbq, bias, np.zeros(4, dtype=np.int64), fmt, False)
    with pytest.raises(FormatError, match=r"^bias_acc must have shape \(3,\), not \(2,\)$"):
        spmv_fixed(pes, 3, cbq, bias[:2], np.zeros(3, dtype=np.int64), fmt, False)
    with pytest.raises(FormatError, match=r"^PE 0's slice must have shape \(3, 3\) for 5 "
                                          r"rows on 2 PEs, not \(2, 3\)$"):
        spmv_fixed(pes, 5, cbq, np.zeros(5, dtype=np.int64), np.zeros(3, dtype=np.int64),
                   fmt, False)
    with pytest.raises(FormatError, match=r"^x_q must be integers, not float64$"):
        spmv_fixed(pes, 3, cbq, bias, np.zeros(3), fmt, False)


def test_fixed_rejects_codes_outside_codebook_and_bad_values():
    fmt, pes, cbq, bias = _pes_and_args()
    x = np.ones(3, dtype=np.int64)
    with pytest.raises(FormatError, match=r"^PE 1's slice codes must index the codebook of "
                                          r"3 entries, not 3; encode the layer with its own "
                                          r"codebook$"):
        spmv_fixed(pes, 3, cbq[:3], bias, x, fmt, False)
    with pytest.raises(FormatError, match=r"^codebook_q\[0\] must be 0 \(the filler and "
                                          r"pruned weight\), not \[7\]$"):
        spmv_fixed(pes, 3, np.r_[7, cbq[1:]], bias, x, fmt, False)
    with pytest.raises(FormatError, match=r"^x_q must lie in -32768\.\.32767 \(16-bit fixed "
                                          r"point\), not 1\.\.40000; quantize with "
                                          r"FixedFormat\.to_fixed$"):
        spmv_fixed(pes, 3, cbq, bias, np.array([1, 40000, 1]), fmt, False)
    with pytest.raises(ConfigError, match=r"^Layer fan-in must be at most 15 "):
        spmv_fixed(interleave(np.ones((2, 16), dtype=np.uint8), 1, 4), 2, cbq, bias[:2],
                   np.ones(16, dtype=np.int64), FixedFormat(act_bits=16, acc_bits=35), False)


def test_kernels_reject_inconsistent_pointers():
    fmt, pes, cbq, bias = _pes_and_args()
    bad = RelIndexMatrix("csc", pes[0].shape, 4, np.array([0, 2, 1, 3]), pes[0].z,
                         pes[0].code)
    with pytest.raises(FormatError, match=r"^line_ptr must rise from 0 to the entry count"):
        spmv_fixed([bad, pes[1]], 3, cbq, bias, np.ones(3, dtype=np.int64), fmt, False)
    past = RelIndexMatrix("csc", pes[0].shape, 4, pes[0].line_ptr,
                          np.full_like(pes[0].z, 9), pes[0].code)
    with pytest.raises(FormatError, match=r"^Entries run past the end of a line"):
        spmv_fixed([past, pes[1]], 3, cbq, bias, np.ones(3, dtype=np.int64), fmt, False)
    m = encode(np.array([[1, 0], [0, 2]], dtype=np.uint8), 4, "csr")
    with pytest.raises(FormatError, match=r"^matrix must be in 'csc' order, not 'csr'$"):
        spmv_csc(m, np.zeros(4), np.zeros(2), np.ones(2))
    with pytest.raises(FormatError, match=r"^matrix codes must index the codebook of 2 "
                                          r"entries, not 2"):
        spmv_csr(m, np.zeros(2), np.zeros(2), np.ones(2))
    with pytest.raises(FormatError, match=r"^x must have shape \(2,\) or \(batch, 2\), "
                                          r"not \(2, 3\)$"):
        spmv_csr(m, np.zeros(4), np.zeros(2), np.ones((2, 3)))


@pytest.mark.parametrize("seed", SEEDS[:4])
def test_fixed_plan_gives_the_same_integers(seed):
    print("seed", seed)
    rng = np.random.default_rng(seed)
    fmt = FixedFormat(frac_bits=8)
    rows, cols = int(rng.integers(1, 50)), int(rng.integers(1, 90))
    layer = random_layer(rng, rows, cols, density=float(rng.uniform(0.02, 0.6)),
                         code_bits=int(rng.integers(1, 9)), index_bits=int(rng.integers(1, 9)),
                         spread=0.5)
    codebook_q, bias_acc = quantize_layer(layer, fmt)
    x_q = rng.integers(-3000, 3000, size=(3, cols)) * (rng.random((3, cols)) < 0.6)
    want = np.stack([reference_fixed(layer.codes, codebook_q, bias_acc, x, fmt.frac_bits,
                                     fmt.act_bits, True) for x in x_q])
    for n_pe in (1, 2, 5):
        plan = plan_fixed(interleave(layer.codes, n_pe, layer.index_bits), rows, codebook_q,
                          fmt)
        assert isinstance(plan, FixedPlan) and plan.n_pe == n_pe
        for parallel in (False, True):
            got = spmv_fixed_plan(plan, bias_acc, x_q, True, parallel=parallel)
            np.testing.assert_array_equal(got, want, err_msg=f"n_pe={n_pe}")
            one = spmv_fixed_plan(plan, bias_acc, x_q[2], True, parallel=parallel)
            np.testing.assert_array_equal(one, want[2], err_msg=f"n_pe={n_pe}")


def test_fixed_plan_still_checks_inputs():
    fmt, pes, cbq, bias = _pes_and_args()
    plan = plan_fixed(pes, 3, cbq, fmt)
    with pytest.raises(FormatError, match=r"^x_q must lie in -32768\.\.32767 \(16-bit fixed "
                                          r"point\), not 1\.\.40000; quantize with "
                                          r"FixedFormat\.to_fixed$"):
        spmv_fixed_plan(plan, bias, np.array([1, 40000, 1]), False)
    with pytest.raises(FormatError, match=r"^bias_acc must have shape \(3,\), not \(2,\)$"):
        spmv_fixed_plan(plan, bias[:2], np.ones(3, dtype=np.int64), False)
    with pytest.raises(FormatError, match=r"^plan must be a FixedPlan \(from plan_fixed\), "
                                          r"not None$"):
        spmv_fixed_plan(None, bias, np.ones(3, dtype=np.int64), False)
    with pytest.raises(FormatError, match=r"^fmt must be a FixedFormat, not 16$"):
        plan_fixed(pes, 3, cbq, 16)


@pytest.mark.parametrize("seed", SEEDS[:4])
@pytest.mark.parametrize("parallel", [False, True])
def test_packed_kernels_match_dense(seed, parallel):
    print("seed", seed)
    rng = np.random.default_rng(seed)
    rows, cols = int(rng.integers(1, 90)), int(rng.integers(1, 120))
    code_bits = int(rng.integers(1, 9))
    layer = random_layer(rng, rows, cols, density=float(rng.uniform(0.01, 0.5)),
                         code_bits=code_bits, index_bits=int(rng.integers(1, 17 - code_bits)))
    x = rng.normal(0, 1, size=(4, cols)).astype(np.float32)
    x[0, rng.random(cols) < 0.5] = 0
    want = layer_dense(layer, x).astype(np.float64)
    tol = 4 * cols * np.finfo(np.float32).eps * (
        np.abs(layer.weights()) @ np.abs(x.T).astype(np.float64)).T + 1e-6
    for order in ("csr", "csc"):
        p = pack(encode(layer.codes, layer.index_bits, order), layer.codebook)
        assert isinstance(p, PackedMatrix) and p.order == order
        assert p.entries.dtype == np.uint16 and p.index_bits + p.code_bits == 16
        assert p.n_entries == layer.nnz  # the narrow form's fillers are merged away
        batched = spmv_packed(p, layer.bias, x, parallel=parallel)
        assert batched.shape == (4, rows) and batched.dtype == np.float32
        assert np.all(np.abs(batched - want) <= tol), order
        for b in range(4):
            single = spmv_packed(p, layer.bias, x[b], parallel=parallel)
            assert single.shape == (rows,)
            assert np.all(np.abs(single - want[b]) <= tol[b]), order


def test_packed_rows_split_evenly_by_entries():
    codes = np.zeros((100, 50), dtype=np.uint8)
    codes[:10] = 1  # all the entries in the first tenth of the rows
    p = pack(encode(codes, 4, "csr"), np.r_[0.0, 1.0])
    bounds = p.bounds
    assert bounds[0] == 0 and bounds[-1] == 100 and np.all(np.diff(bounds) >= 0)
    work = np.diff(p.line_ptr[bounds])
    assert work.max() - work.min() <= 50  # at most one row apart
    np.testing.assert_array_equal(spmv_packed(p, np.zeros(100), np.ones(50)),
                                  np.r_[np.full(10, 50.0), np.zeros(90)])


def test_pack_rejects_bad_matrices():
    m = encode(np.array([[1, 0], [0, 3]], dtype=np.uint8), 4, "csr")
    with pytest.raises(FormatError, match=r"^matrix codes must index the codebook of 3 "
                                          r"entries, not 3"):
        pack(m, np.zeros(3))
    with pytest.raises(FormatError, match=r"^matrix must be a PackedMatrix \(from pack\), "):
        spmv_packed(m, np.zeros(2), np.ones(2))
    with pytest.raises(FormatError, match=r"^x must have shape \(2,\) or \(batch, 2\), "
                                          r"not \(3,\)$"):
        spmv_packed(pack(m, np.zeros(4)), np.zeros(2), np.ones(3))


def test_batches_across_input_blocks_match_single_inputs():
    # 150 inputs: three blocks of up to BATCH_BLOCK = 64 (a ragged last one)
    print("seed", 9)
    rng = np.random.default_rng(9)
    fmt = FixedFormat()
    layer = random_layer(rng, 37, 53, density=0.3, code_bits=5, index_bits=3, spread=0.5)
    x = rng.normal(0, 1, size=(150, 53)).astype(np.float32)
    x[:, rng.random(53) < 0.3] = 0
    p = pack(encode(layer.codes, layer.index_bits, "csr"), layer.codebook)
    codebook_q, bias_acc = quantize_layer(layer, fmt)
    x_q = fmt.to_fixed(x)
    plan = plan_fixed(interleave(layer.codes, 3, layer.index_bits), 37, codebook_q, fmt)
    for parallel in (False, True):
        batched = spmv_packed(p, layer.bias, x, parallel=parallel)
        singles = np.stack([spmv_packed(p, layer.bias, xi, parallel=parallel) for xi in x])
        np.testing.assert_allclose(batched, singles, rtol=1e-5, atol=1e-5)
        fixed = spmv_fixed_plan(plan, bias_acc, x_q, False, parallel=parallel)
        for b in (0, 63, 64, 127, 128, 149):
            want = reference_fixed(layer.codes, codebook_q, bias_acc, x_q[b], fmt.frac_bits,
                                   fmt.act_bits, False)
            np.testing.assert_array_equal(fixed[b], want, err_msg=f"input {b}")


def test_pack_merges_fillers_and_keeps_long_gaps():
    codes = np.zeros((3, 5000), dtype=np.uint8)
    codes[0, [0, 40, 4999]] = [1, 2, 3]  # gaps of 39 and 4958 zeros
    codes[1, 4999] = 1  # one entry after 4999 zeros
    m = encode(codes, 2, "csr")
    assert m.n_fillers > 2000
    p = pack(m, np.r_[0.0, 1.0, 10.0, 100.0])
    assert p.code_bits == 2 and p.index_bits == 14  # gaps up to 16383 need no filler
    np.testing.assert_array_equal(p.line_ptr, [0, 3, 4, 4])
    np.testing.assert_array_equal(p.entries >> 2, [0, 39, 4958, 4999])
    np.testing.assert_array_equal(p.entries & 3, [1, 2, 3, 1])
    x = np.arange(5000, dtype=np.float32)
    np.testing.assert_array_equal(spmv_packed(p, np.zeros(3), x),
                                  [0 + 10 * 40 + 100 * 4999, 4999, 0])
    wide = np.zeros((1, 70000), dtype=np.uint8)
    wide[0, -1] = 1  # 69999 zeros: four fillers of 2**14 positions, then z = 4463
    q = pack(encode(wide, 4, "csr"), np.r_[0.0, 2.0, 0.0, 0.0])
    np.testing.assert_array_equal(q.entries >> 2, [16383] * 4 + [69999 - 4 * 16384])
    np.testing.assert_array_equal(q.entries & 3, [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(spmv_packed(q, [0.5], np.ones(70000)), [2.5])


def test_csr_and_csc_wrappers_are_pack_then_spmv_packed():
    print("seed", 11)
    rng = np.random.default_rng(11)
    layer = random_layer(rng, 23, 31, density=0.3, code_bits=3, index_bits=2)
    x = rng.normal(0, 1, size=(3, 31)).astype(np.float32)
    for order, kernel in (("csr", spmv_csr), ("csc", spmv_csc)):
        m = encode(layer.codes, layer.index_bits, order)
        p = pack(m, layer.codebook)
        for inputs in (x, x[1]):  # a batch and one input take different loops
            want = spmv_packed(p, layer.bias, inputs, parallel=False)
            for check in (True, False):
                got = kernel(m, layer.codebook, layer.bias, inputs, check=check)
                np.testing.assert_array_equal(got, want, err_msg=f"{order} check={check}")
    m = encode(layer.codes, layer.index_bits, "csr")
    with pytest.raises(FormatError, match=r"^matrix must be a RelIndexMatrix in 'csc' "
                                          r"order, not RelIndexMatrix\("):
        spmv_csc(m, layer.codebook, layer.bias, x, check=False)
