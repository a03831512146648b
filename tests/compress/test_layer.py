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


def square(name):
    return make_layer(name=name, shape=(4, 4), codes=np.array([[0, 1, 2, 3]] * 4),
                      bias=np.zeros(4))


def test_model_checks_names_and_finds_layers():
    a, b = square("ip1"), make_layer(name="ip2")
    model = CompressedModel("lenet300", (4,), [a, b])
    assert model.layer("ip2") is b
    assert model.dense_bytes == 4 * (16 + 4) + 4 * (12 + 3)
    assert model.same_as(CompressedModel("lenet300", (4,), [a, make_layer(name="ip2")]))
    with pytest.raises(FormatError, match=r"^Layer name must be one of \['ip1', 'ip2'\], not 'ip9'$"):
        model.layer("ip9")
    with pytest.raises(FormatError, match="Layer names must be unique"):
        CompressedModel("lenet300", (4,), [a, a])


def conv_layer(name, shape, stride=1, padding=0, pool=0):
    rows, cols = shape[0], int(np.prod(shape[1:]))
    return make_layer(name=name, kind="conv", shape=shape, codes=np.ones((rows, cols), int),
                      bias=np.zeros(rows), stride=stride, padding=padding, pool=pool)


def test_layer_shapes_follow_conv_arithmetic():
    # LeNet-5 by hand: 28 -5+1-> 24 /2-> 12 -5+1-> 8 /2-> 4; 50*4*4 = 800 into ip1.
    conv1 = conv_layer("conv1", (20, 1, 5, 5), pool=2)
    conv2 = conv_layer("conv2", (50, 20, 5, 5), pool=2)
    ip1 = make_layer(name="ip1", shape=(3, 800), codes=np.ones((3, 800), int), bias=np.zeros(3))
    model = CompressedModel("lenet5", (1, 28, 28), [conv1, conv2, ip1])
    assert model.layer_shapes() == [((1, 28, 28), (20, 12, 12)), ((20, 12, 12), (50, 4, 4)),
                                    ((50, 4, 4), (3,))]
    # padding 2 keeps 28 -> 28; stride 2 with a 3x3 kernel: (28 + 0 - 3) // 2 + 1 = 13
    assert conv_layer("c", (6, 1, 5, 5), padding=2).output_shape((1, 28, 28)) == (6, 28, 28)
    assert conv_layer("c", (6, 1, 3, 3), stride=2).output_shape((1, 28, 28)) == (6, 13, 13)


@pytest.mark.parametrize("input_shape, layers, message", [
    ((5,), lambda: [make_layer()], "Layer 'ip1' must get 4 inputs, not 5 (shape (5,))"),
    ((4,), lambda: [square("ip1"), square("ip2"), make_layer(name="ip3"),
                    make_layer(name="ip4")],
     "Layer 'ip4' must get 4 inputs, not 3 (shape (3,))"),
    ((2, 8, 8), lambda: [conv_layer("c1", (3, 1, 2, 2))],
     "Layer 'c1' must get (1, H, W) inputs, not (2, 8, 8)"),
    ((64,), lambda: [conv_layer("c1", (3, 1, 2, 2))],
     "Layer 'c1' must get (1, H, W) inputs, not (64,)"),
    ((1, 3, 3), lambda: [conv_layer("c1", (3, 1, 2, 2), pool=4)],
     "Layer 'c1': an input of (1, 3, 3) leaves no output positions (2x2 kernel, stride 1, "
     "padding 0, pool 4)"),
    ((0,), lambda: [make_layer()], "input_shape must be positive integers, not (0,)"),
])
def test_model_refuses_a_layer_chain_that_does_not_connect(input_shape, layers, message):
    with pytest.raises(FormatError) as info:
        CompressedModel("m", input_shape, layers())
    assert str(info.value) == message
