"""Whole-model inference, evaluation and the per-layer fixed-point trace."""

import numpy as np
import pytest

from dcsim.compress.layer import CompressedModel
from dcsim.errors import FormatError
from dcsim.kernels.fixed import FixedFormat
from dcsim.kernels.run import evaluate, run, run_fixed, trace_fixed
from dcsim.kernels.spmv import layer_fixed

from kernel_reference import dense_forward, random_model_layer, tiny_model

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
    fixed = run(model, x, "fixed")
    np.testing.assert_allclose(fixed, want, atol=0.05)  # 10 fraction bits, 4 layers


def test_fixed_trace_chains_layers_and_matches_kernel():
    rng = np.random.default_rng(SEED + 1)
    model = tiny_model(rng)
    fmt = FixedFormat(frac_bits=8)
    x = rng.normal(0, 1, size=(2, 128)).astype(np.float32)
    trace = trace_fixed(model, x[1], fmt)
    assert [t[0].shape for t in trace] == [(2, 8, 8), (3, 4, 4), (4,), (12,)]
    assert [t[1].shape for t in trace] == [(3, 4, 4), (4, 1, 1), (12,), (10,)]
    np.testing.assert_array_equal(trace[0][0], fmt.to_fixed(x[1].reshape(2, 8, 8)))
    for (_, y_prev), (x_next, _) in zip(trace, trace[1:]):
        np.testing.assert_array_equal(y_prev.reshape(-1), x_next.reshape(-1))
    ip2 = model.layer("ip2")
    np.testing.assert_array_equal(trace[3][1], layer_fixed(ip2, trace[3][0], fmt, n_pe=3))
    np.testing.assert_array_equal(trace[3][1], run_fixed(model, x, fmt)[1])


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
