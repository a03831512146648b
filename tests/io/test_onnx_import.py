"""ONNX import: graphs of every supported op against onnxruntime, PyTorch exports, refusals."""

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx_graphs import GRAPHS, init, model, node, ort_run, rand

from dcsim.errors import FormatError
from dcsim.io.onnx_import import SUPPORTED, import_onnx
from dcsim.nn import models

DATA = Path(__file__).parent.parent / "data"
SEED = 12


def exact(message):
    return f"^{re.escape(message)}$"


def dims_of(proto, batch=5):
    return [d.dim_value or batch for d in proto.graph.input[0].type.tensor_type.shape.dim]


def softmax(z, log=False):
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return log_p if log else np.exp(log_p)


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_import_equals_onnxruntime(tmp_path, name):
    rng = np.random.default_rng(SEED)
    proto = GRAPHS[name](rng)
    path = tmp_path / f"{name}.onnx"
    onnx.save(proto, path)
    m = import_onnx(path)
    assert m.arch == models.IMPORTED
    x = rng.standard_normal(dims_of(proto)).astype(np.float32)
    want = ort_run(proto, x)
    got = m.forward(x.reshape(len(x), -1).astype(np.float64))  # float64: ORT's error only
    dropped = m.source["dropped"]
    if dropped:
        got = softmax(got, log=dropped == ["LogSoftmax"])
    assert np.abs(got - want).max() < 1e-5
    assert got.shape == want.shape


def test_import_records_names_shapes_and_folds(tmp_path):
    rng = np.random.default_rng(SEED)
    onnx.save(GRAPHS["folded"](rng), tmp_path / "f.onnx")
    m = import_onnx(tmp_path / "f.onnx")
    assert m.graph() == [
        {"op": "conv", "name": "K", "in_ch": 1, "out_ch": 3, "kernel": 3, "stride": 1,
         "padding": 1},
        {"op": "relu"}, {"op": "flatten"}, {"op": "dense", "name": "W", "in": 108, "out": 5}]
    assert m.source == {"format": "onnx", "file": "f.onnx", "input": "x", "output": "y",
                        "input_dims": ["N", 1, 6, 6], "dropped": [],
                        "folded_batchnorm": ["K", "W"]}
    onnx.save(GRAPHS["leading_flatten"](rng), tmp_path / "l.onnx")
    m = import_onnx(tmp_path / "l.onnx")
    assert m.input_shape == (16,) and m.source["input_dims"] == [1, 1, 4, 4]


@pytest.mark.parametrize("name, graph", [
    ("mlp", [{"op": "dense", "name": "1", "in": 784, "out": 500}, {"op": "relu"},
             {"op": "dense", "name": "3", "in": 500, "out": 300}, {"op": "relu"},
             {"op": "dense", "name": "5", "in": 300, "out": 10}]),
    ("cnn", [{"op": "conv", "name": "0", "in_ch": 1, "out_ch": 6, "kernel": 5, "stride": 1,
              "padding": 2}, {"op": "relu"}, {"op": "maxpool", "size": 2},
             {"op": "conv", "name": "3", "in_ch": 6, "out_ch": 16, "kernel": 5, "stride": 1,
              "padding": 0}, {"op": "relu"}, {"op": "maxpool", "size": 2},
             {"op": "flatten"}, {"op": "dense", "name": "7", "in": 400, "out": 120},
             {"op": "relu"}, {"op": "dense", "name": "9", "in": 120, "out": 84},
             {"op": "relu"}, {"op": "dense", "name": "11", "in": 84, "out": 10}]),
])
def test_pytorch_exports_equal_onnxruntime(name, graph):
    """Their logits reach 20-40 on these inputs, where float32 (onnxruntime's) rounding
    alone is ~1e-5: the bound is 1e-6 of the largest output, and the labels agree."""
    path = DATA / f"{name}.onnx"
    m = import_onnx(path)
    assert m.graph() == graph
    x = np.random.default_rng(SEED).random((64, 1, 28, 28), dtype=np.float32)
    want = ort_run(path, x)
    got = m.forward(x.reshape(64, -1).astype(np.float64))
    if m.source["dropped"]:
        assert m.source["dropped"] == ["LogSoftmax"]
        got = softmax(got, log=True)
    assert np.abs(got - want).max() < 1e-6 * np.abs(want).max()
    np.testing.assert_array_equal(got.argmax(axis=1), want.argmax(axis=1))


def refusal(tmp_path, proto_or_bytes):
    path = tmp_path / "bad.onnx"
    if isinstance(proto_or_bytes, bytes):
        path.write_bytes(proto_or_bytes)
    else:
        path.write_bytes(proto_or_bytes.SerializeToString())
    return path


def conv_model(**attrs):
    rng = np.random.default_rng(SEED)
    k = attrs.pop("k", rand(rng, 4, 2, 3, 3))
    return model([node("Conv", ["x", "K"], ["h"], **attrs),
                  node("Flatten", ["h"], ["h2"]),
                  node("Gemm", ["h2", "W"], ["y"], transB=1)],
                 [init("K", k), init("W", rand(rng, 3, 4 * 16))], ("N", 2, 8, 8))


def bad_models():
    rng = np.random.default_rng(SEED)
    fc = [init("W", rand(rng, 3, 4))]
    supported = ", ".join(SUPPORTED)
    two_inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 4])
                  for n in ("x", "x2")]
    return {
        "unsupported op": (model([node("Gemm", ["x", "W"], ["h"], transB=1),
                                  node("Sigmoid", ["h"], ["y"])], fc, ("N", 4)),
                           f"op type of node 'sigmoid_y' must be one of {supported} (or have "
                           f"only constant inputs), not 'Sigmoid'"),
        "grouped conv": (conv_model(group=2, k=rand(rng, 4, 1, 3, 3), pads=[1, 1, 1, 1]),
                         "node 'conv_h' (Conv): group must be 1 (grouped convolutions are "
                         "not supported), not 2"),
        "dilated conv": (conv_model(dilations=[2, 2], pads=[2, 2, 2, 2]),
                         "node 'conv_h' (Conv): dilations must be 1, not [2, 2]"),
        "asymmetric padding": (conv_model(pads=[1, 1, 0, 1]),
                               "node 'conv_h' (Conv): pads must be the same on every side, "
                               "not [1, 1, 0, 1]"),
        "two inputs": (model([node("Add", ["x", "x2"], ["h"]),
                              node("Gemm", ["h", "W"], ["y"], transB=1)], fc, ("N", 4),
                             inputs=two_inputs),
                       "the graph must have one input, not 2 (['x', 'x2'])"),
        "branch": (model([node("Gemm", ["x", "W"], ["h"], transB=1),
                          node("Relu", ["h"], ["r"]), node("Add", ["h", "r"], ["y"])],
                         fc, ("N", 4)),
                   "node 'add_y' (Add): the graph must be a single chain (no branches or "
                   "merges of computed tensors)"),
        "transA": (model([node("Gemm", ["x", "W"], ["y"], transA=1)],
                         [init("W", rand(rng, 4, 3))], (4, 4)),
                   "node 'gemm_y' (Gemm): transA must be 0 (the batch is the first axis of "
                   "the chain's tensor), not 1"),
        "pool with kernel != stride": (model([
            node("Conv", ["x", "K"], ["h"], pads=[1, 1, 1, 1]),
            node("MaxPool", ["h"], ["p"], kernel_shape=[2, 2], strides=[1, 1]),
            node("Flatten", ["p"], ["f"]), node("Gemm", ["f", "W"], ["y"], transB=1)],
            [init("K", rand(rng, 4, 2, 3, 3)), init("W", rand(rng, 3, 4 * 49))],
            ("N", 2, 8, 8)),
            "node 'maxpool_p' (MaxPool): kernel_shape must be square and equal to "
            "strides, not kernel_shape [2, 2] and strides [1, 1]"),
        "relu first": (model([node("Relu", ["x"], ["h"]),
                              node("Gemm", ["h", "W"], ["y"], transB=1)], fc, ("N", 4)),
                       "node 'relu_h' (Relu): a Relu must follow a Gemm, MatMul or Conv, "
                       "not come before the first one"),
    }


@pytest.mark.parametrize("case", sorted(bad_models()))
def test_refused_graphs_name_the_node(tmp_path, case):
    proto, message = bad_models()[case]
    path = refusal(tmp_path, proto)
    with pytest.raises(FormatError, match=exact(f"{path}: {message}")):
        import_onnx(path)


def test_not_onnx_and_truncated_files(tmp_path):
    path = refusal(tmp_path, b"this is not an ONNX model\n" * 10)
    with pytest.raises(FormatError, match=f"^{re.escape(str(path))}: the file must be "):
        import_onnx(path)
    blob = (DATA / "cnn.onnx").read_bytes()
    path = refusal(tmp_path, blob[:len(blob) // 2])
    with pytest.raises(FormatError, match=f"^{re.escape(str(path))}: the file must be an "
                                          f"ONNX model, not unreadable bytes"):
        import_onnx(path)
    with pytest.raises(FormatError, match=exact(f"{tmp_path / 'nope.onnx'}: no such file")):
        import_onnx(tmp_path / "nope.onnx")
