"""Whole-model inference, evaluation and the per-layer fixed-point trace."""

import numpy as np
import pytest

from dcsim.compress.layer import CompressedModel
from dcsim.errors import FormatError
from dcsim.kernels.fixed import FixedFormat
from dcsim.kernels.run import evaluate, run, run_fixed, trace_fixed, trace_fixed_batch

from kernel_reference import dense_forward, random_model_layer, reference_trace_fixed, tiny_model

SEED = 11


def test_run_matches_dense_forward_on_conv_and_fc():
    print("seed", SEED)
    rng = np.random.default_rng(SEED)
    model = tiny_model(rng)
    x = rng.normal(0, 1, size=(5, 2, 8, 8)).astype(np.float32)
    want = dense_forward(model, x.astype(np.float64))
    for mode in ("dense", "float"):
        got = run(model, x, mode)
        assert got.shape == (5, 10)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=mode)
    np.testing.assert_allclose(run(model, x.reshape(5, -1)), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("frac_bits", [8, 10])
def test_fixed_mode_equals_the_integer_reference_exactly(frac_bits):
    """Conv through im2col, integer max-pool, fc: every integer of every layer equals
    the plain-Python direct-loop reference, for run_fixed, trace_fixed and the batch
    trace (which plans each layer once)."""
    rng = np.random.default_rng(SEED + frac_bits)
    model = tiny_model(rng)
    fmt = FixedFormat(frac_bits=frac_bits)
    x = rng.normal(0, 1.5, size=(3, 128)).astype(np.float32)
    x[0, :5] = [40.0, -40.0, 0.0, -0.5 / 2 ** frac_bits, 0.5 / 2 ** frac_bits]  # edges
    want = [reference_trace_fixed(model, xi, frac_bits, fmt.act_bits) for xi in x]
    assert [t[0].shape for t in want[0]] == [(2, 8, 8), (3, 4, 4), (4,), (12,)]
    assert [t[1].shape for t in want[0]] == [(3, 4, 4), (4, 1, 1), (12,), (10,)]
    np.testing.assert_array_equal(run_fixed(model, x, fmt), [t[-1][1] for t in want])
    batch = trace_fixed_batch(model, x, fmt)
    for i, ref in enumerate(want):
        for (got_in, got_out), (want_in, want_out), (b_in, b_out) in zip(
                trace_fixed(model, x[i], fmt), ref, batch[i]):
            np.testing.assert_array_equal(got_in.reshape(want_in.shape), want_in)
            np.testing.assert_array_equal(got_out.reshape(want_out.shape), want_out)
            np.testing.assert_array_equal(b_in, got_in)
            np.testing.assert_array_equal(b_out, got_out)


def test_evaluate_float_error_equals_dense_error():
    rng = np.random.default_rng(SEED + 2)
    model = CompressedModel("mlp", (64,), [
        random_model_layer(rng, "ip1", "fc", (40, 64), 0.1, relu=True),
        random_model_layer(rng, "ip2", "fc", (10, 40), 0.3)])
    x = rng.random((300, 64)).astype(np.float32)
    labels = np.argmax(dense_forward(model, x), axis=1)
    labels[:30] = (labels[:30] + 1) % 10  # 10% wrong by construction
    result = evaluate(model, x, labels)
    assert result["images"] == 300
    assert result["dense_error"] == pytest.approx(10.0)
    assert result["float_error"] == result["dense_error"]
    assert abs(result["fixed_error"] - result["dense_error"]) <= 1.0


def test_run_rejects_bad_input():
    model = tiny_model(np.random.default_rng(SEED))
    with pytest.raises(FormatError, match=r"^x must have shape \(N, 2, 8, 8\) or \(N, 128\), "
                                          r"not \(3, 100\)$"):
        run(model, np.zeros((3, 100)))
    with pytest.raises(FormatError, match=r"^mode must be one of \('dense', 'float', "
                                          r"'fixed'\), not 'int8'$"):
        run(model, np.zeros((1, 128)), "int8")
    with pytest.raises(FormatError, match=r"^y must have shape \(2,\) like x, not \(3,\)$"):
        evaluate(model, np.zeros((2, 128)), np.zeros(3))
