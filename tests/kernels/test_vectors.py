"""Golden vector files: keys, consistency with the kernels, atomic write."""

import numpy as np
import pytest

from dcsim.compress.sparse import RelIndexMatrix, decode
from dcsim.errors import FormatError
from dcsim.kernels.fixed import FixedFormat
from dcsim.kernels.run import trace_fixed
from dcsim.kernels.vectors import write_vectors

from kernel_reference import reference_fixed, tiny_model

SEED = 5


def test_vectors_hold_encoded_layer_and_expected_outputs(tmp_path):
    print("seed", SEED)
    model = tiny_model(np.random.default_rng(SEED))
    fmt = FixedFormat()
    path = write_vectors(model, "ip2", tmp_path, n_inputs=6, fmt=fmt, n_pe=3, idx_bits=2)
    assert path == tmp_path / "ip2.npz" and sorted(p.name for p in tmp_path.iterdir()) == ["ip2.npz"]
    v = np.load(path)
    layer = model.layer("ip2")
    assert v["x_q"].shape == (6, 12) and v["y_q"].shape == (6, 10)
    assert np.count_nonzero(v["x_q"] == 0) > 0 and v["x_q"].min() >= 0  # ip1 has a ReLU
    for x_q, y_q in zip(v["x_q"], v["y_q"]):
        np.testing.assert_array_equal(y_q, reference_fixed(
            v["codes"], v["codebook_q"], v["bias_acc"], x_q, fmt.frac_bits, fmt.act_bits,
            False))
    np.testing.assert_allclose(v["y"], v["x"] @ layer.weights().T + layer.bias, atol=1e-5)
    np.testing.assert_array_equal(v["codes"], layer.codes)
    codes = np.zeros((10, 12), dtype=np.int64)
    for pe in range(int(v["n_pe"])):
        lo, hi = v["pe_offset"][pe], v["pe_offset"][pe + 1]
        m = RelIndexMatrix("csc", (len(range(pe, 10, 3)), 12), int(v["idx_bits"]),
                           v["pe_line_ptr"][pe], v["pe_z"][lo:hi], v["pe_code"][lo:hi])
        codes[pe::3] = decode(m, np.int64)
    np.testing.assert_array_equal(codes, layer.codes)
    assert str(v["layer_name"]) == "ip2" and int(v["relu"]) == 0 and int(v["frac_bits"]) == 10


def test_vectors_from_images_are_the_traced_layer_inputs(tmp_path):
    rng = np.random.default_rng(SEED + 1)
    model = tiny_model(rng)
    images = rng.normal(0, 1, size=(3, 2, 8, 8))
    v = np.load(write_vectors(model, "ip1", tmp_path, n_inputs=3, images=images))
    for image, x_q, y_q in zip(images, v["x_q"], v["y_q"]):
        x_in, y_out = trace_fixed(model, image)[2]
        np.testing.assert_array_equal(x_q, x_in)
        np.testing.assert_array_equal(y_q, y_out)
    conv = np.load(write_vectors(model, "conv1", tmp_path, n_inputs=70, images=images))
    assert conv["x_q"].shape == (70, 18)  # 64 patches of image 0, then 6 of image 1


def test_vectors_reject_unknown_layer(tmp_path):
    model = tiny_model(np.random.default_rng(SEED))
    with pytest.raises(FormatError, match=r"^Layer name must be one of \['conv1', 'conv2', "
                                          r"'ip1', 'ip2'\], not 'fc9'$"):
        write_vectors(model, "fc9", tmp_path)
    assert list(tmp_path.iterdir()) == []
