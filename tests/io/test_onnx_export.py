"""ONNX export: onnxruntime on the exported file equals run(model, mode="dense")."""

import numpy as np
import onnx
import pytest
from onnx_graphs import GRAPHS, ort_run

from dcsim import container
from dcsim.compress.layer import CompressedLayer, CompressedModel
from dcsim.io.onnx_export import export_onnx, graph_ops
from dcsim.io.onnx_import import import_onnx
from dcsim.kernels import run

SEED = 7


def shared_layer(rng, name, kind, shape, relu=False, pool=0, stride=1, padding=0, bits=4):
    rows, cols = shape[0], int(np.prod(shape[1:]))
    codes = np.where(rng.random((rows, cols)) < 0.4,
                     rng.integers(1, 2 ** bits, (rows, cols)), 0)
    codebook = np.concatenate([[0.0], rng.standard_normal(2 ** bits - 1) * 0.3])
    return CompressedLayer(name=name, kind=kind, shape=shape, codes=codes,
                           codebook=codebook, bias=rng.standard_normal(rows) * 0.1,
                           code_bits=bits, index_bits=4, relu=relu, pool=pool,
                           stride=stride, padding=padding)


def zoo_models():
    """Models without a graph (as the LeNets): fc only, and conv + fc."""
    rng = np.random.default_rng(SEED)
    fc = CompressedModel(arch="fc", input_shape=(30,), layers=[
        shared_layer(rng, "ip1", "fc", (20, 30), relu=True),
        shared_layer(rng, "ip2", "fc", (6, 20))])
    conv = CompressedModel(arch="conv", input_shape=(2, 12, 12), layers=[
        shared_layer(rng, "conv1", "conv", (4, 2, 3, 3), relu=True, pool=2, padding=1),
        shared_layer(rng, "conv2", "conv", (5, 4, 3, 3), pool=2, stride=1),
        shared_layer(rng, "ip1", "fc", (7, 5 * 2 * 2), relu=True),
        shared_layer(rng, "ip2", "fc", (3, 7))])
    return {"fc": fc, "conv": conv}


@pytest.mark.parametrize("name", ["fc", "conv"])
def test_export_equals_dense_run(tmp_path, name):
    model = zoo_models()[name]
    info = export_onnx(model, tmp_path / "m.onnx")
    assert info["input"] == "input" and info["output"] == "logits"
    onnx.checker.check_model(onnx.load(tmp_path / "m.onnx"))
    x = np.random.default_rng(SEED).standard_normal((9, *model.input_shape)).astype(
        np.float32)
    want = run(model, x, mode="dense")
    got = ort_run(tmp_path / "m.onnx", x)
    assert np.abs(got - want).max() < 1e-5


def test_derived_ops_of_a_conv_model():
    assert [op["op"] for op in graph_ops(zoo_models()["conv"])] == [
        "conv", "maxpool", "relu", "conv", "maxpool", "flatten", "dense", "relu", "dense"]


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_imported_graph_exports_under_its_names(tmp_path, name):
    """An imported model, weight-shared by hand, keeps its input and output names and
    input shape; the exported file equals run(dense) and imports back to the same
    weights."""
    from dcsim.compress.pipeline import CompressionConfig, to_compressed
    from dcsim.compress.quantize import share_weights

    rng = np.random.default_rng(SEED)
    proto = GRAPHS[name](rng)
    onnx.save(proto, tmp_path / "in.onnx")
    model = import_onnx(tmp_path / "in.onnx")
    shared = {}
    for key, value in model.params().items():
        if key.endswith(".W"):
            value[np.abs(value) < 0.1] = 0
            codes, codebook = share_weights(value, 4, "linear", seed=0)
            shared[key] = (codes, codebook)
            value[...] = codebook[codes]
    config = CompressionConfig(arch=model.arch, code_bits_fc=4, code_bits_conv=4)
    compressed = to_compressed(model, shared, config, meta={})
    container.write(compressed, tmp_path / "m.dcz")
    back = container.read(tmp_path / "m.dcz")
    info = export_onnx(back, tmp_path / "out.onnx")
    exported = onnx.load(tmp_path / "out.onnx")
    assert exported.graph.input[0].name == proto.graph.input[0].name
    assert exported.graph.output[0].name == proto.graph.output[0].name
    dims = [d.dim_value or d.dim_param for d in exported.graph.input[0].type.tensor_type.shape.dim]
    assert dims == info["input_dims"] == ["N", *model.source["input_dims"][1:]]
    batch = 1 if name == "leading_flatten" else 4
    x = rng.standard_normal((batch, *dims[1:])).astype(np.float32)
    np.testing.assert_allclose(ort_run(tmp_path / "out.onnx", x),
                               run(back, x.reshape(batch, -1), mode="dense"), atol=1e-5)
    again = import_onnx(tmp_path / "out.onnx")
    for layer, name_w in zip(back.layers, again.param_layers()):
        assert name_w.params["W"].tobytes() == layer.weights().tobytes()
        assert name_w.params["b"].tobytes() == layer.bias.tobytes()

