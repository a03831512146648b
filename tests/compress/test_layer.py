"""CompressedLayer / CompressedModel validation and decoding."""

import numpy as np
import pytest

from dcsim.compress.layer import CompressedLayer, CompressedModel
from dcsim.errors import FormatError


def make_layer(**kw):
    args = dict(name="ip1", kind="fc", shape=(3, 4), codes=np.array([[0, 1, 2, 3]] * 3),
                codebook=np.array([0, -0.5, 0.25, 1.0]), bias=np.zeros(3), code_bits=2,
                index_bits=4)
    args.update(kw)
    return CompressedLayer(**args)


def test_weights_decode_through_codebook():
    layer = make_layer()
    assert layer.weights().tolist() == [[0, -0.5, 0.25, 1.0]] * 3
    assert layer.nnz == 9 and layer.density == 0.75
    assert layer.codes.dtype == np.uint8


def test_conv_layer_flattens_to_matrix():
    layer = make_layer(kind="conv", shape=(3, 1, 2, 2))
    assert layer.matrix_shape == (3, 4)
    assert layer.weights().shape == (3, 1, 2, 2)


@pytest.mark.parametrize("kw, message", [
    (dict(kind="lstm"), "Layer kind must be one of ('fc', 'conv'), not 'lstm'"),
    (dict(codes=np.zeros((4, 3), int)), "Layer 'ip1': codes must have shape (3, 4), not (4, 3)"),
    (dict(codes=np.full((3, 4), 4)), "Layer 'ip1': codes must be in 0..3 for 2 code bits, not 4..4"),
    (dict(codebook=np.array([0.1, 0, 0, 0])), "Layer 'ip1': codebook[0] must be exactly 0 (the pruned weight), not 0.10000000149011612"),
    (dict(codebook=np.zeros(3)), "Layer 'ip1': codebook must have 4 entries for 2 code bits, not shape (3,)"),
    (dict(bias=np.zeros(2)), "Layer 'ip1': bias must have shape (3,), not (2,)"),
    (dict(code_bits=0), "Layer 'ip1': code_bits must be in 1..16, not 0"),
])
def test_bad_layers_are_refused(kw, message):
    with pytest.raises(FormatError) as info:
        make_layer(**kw)
    assert str(info.value) == message


def test_model_checks_names_and_finds_layers():
    a, b = make_layer(), make_layer(name="ip2")
    model = CompressedModel("lenet300", (4,), [a, b])
    assert model.layer("ip2") is b
    assert model.dense_bytes == 2 * 4 * (12 + 3)
    assert model.same_as(CompressedModel("lenet300", (4,), [a, make_layer(name="ip2")]))
    with pytest.raises(FormatError, match=r"^Layer name must be one of \['ip1', 'ip2'\], not 'ip9'$"):
        model.layer("ip9")
    with pytest.raises(FormatError, match="Layer names must be unique"):
        CompressedModel("lenet300", (4,), [a, a])
