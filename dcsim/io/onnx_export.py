"""ONNX export: a compressed model's decoded weights as a plain ONNX model.

The exported graph computes what ``run(model, mode="dense")`` computes: every layer's
pruned, weight-shared weights decoded to float32 (``CompressedLayer.weights()``), as
Gemm (fc, ``transB = 1``) and Conv nodes, with Relu, MaxPool and Flatten between them.
A model imported from ONNX (one with a ``graph``) is written op for op as it was
imported, under its original input and output names and input shape; a model of the
zoo gets ``input`` (N, *input_shape) and ``logits``. The batch is symbolic (``N``).
"""

from __future__ import annotations

import os

import numpy as np

from dcsim.compress.layer import CompressedModel
from dcsim.errors import FormatError

__all__ = ["export_onnx", "graph_ops", "OPSET", "IR_VERSION"]

OPSET = 17
"""ONNX opset of the exported file (every op used is unchanged since opset 13)."""
IR_VERSION = 8
"""ONNX IR version of the exported file (read by onnxruntime 1.10 and later)."""


def graph_ops(model: CompressedModel) -> list[dict]:
    """The model's ops in ``dcsim.nn.models.Model.graph()`` form: its recorded graph,
    or, for a model without one, derived from the layers (a flatten before an fc layer
    that gets a (C, H, W) input, then each layer, its max-pool and its ReLU)."""
    if model.graph is not None:
        return [dict(op) for op in model.graph["layers"]]
    ops, spatial = [], len(model.input_shape) > 1
    for layer in model.layers:
        if layer.kind == "fc":
            if spatial:
                ops.append({"op": "flatten"})
                spatial = False
            ops.append({"op": "dense", "name": layer.name, "in": layer.cols,
                        "out": layer.rows})
        else:
            ops.append({"op": "conv", "name": layer.name, "in_ch": layer.shape[1],
                        "out_ch": layer.rows, "kernel": layer.shape[2],
                        "stride": layer.stride, "padding": layer.padding})
            if layer.pool:
                ops.append({"op": "maxpool", "size": layer.pool})
        if layer.relu:
            ops.append({"op": "relu"})
    return ops


def export_onnx(model: CompressedModel, path) -> dict:
    """Write ``model``'s decoded weights to ``path`` as ONNX (atomically: nothing is
    left at ``path`` on failure). Returns ``path``, ``bytes``, ``input``, ``output``,
    ``input_dims`` and ``nodes`` (the op types in order)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from dcsim.files import write_bytes_atomic

    if not isinstance(model, CompressedModel):
        raise FormatError(f"model must be a CompressedModel, not {type(model).__name__}")
    source = model.graph["source"] if model.graph is not None else {}
    in_name, out_name = source.get("input", "input"), source.get("output", "logits")
    dims = ["N", *(source.get("input_dims") or ["N", *model.input_shape])[1:]]
    nodes, inits, x = [], [], in_name

    def emit(op_type, inputs, **attrs):
        nonlocal x
        y = f"{op_type.lower()}_{len(nodes)}"
        nodes.append(helper.make_node(op_type, [x, *inputs], [y], name=y, **attrs))
        x = y

    if tuple(dims[1:]) != model.input_shape:  # the importer dropped a leading flatten
        emit("Flatten", [], axis=1)
    for op in graph_ops(model):
        kind = op["op"]
        if kind in ("dense", "conv"):
            layer = model.layer(op["name"])
            names = [f"{layer.name}.weight", f"{layer.name}.bias"]
            for name, value in zip(names, (layer.weights(), layer.bias)):
                inits.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
            if kind == "dense":
                emit("Gemm", names, transB=1)
            else:
                k, p, s = layer.shape[2], layer.padding, layer.stride
                emit("Conv", names, kernel_shape=[k, k], strides=[s, s], pads=[p] * 4)
        elif kind == "relu":
            emit("Relu", [])
        elif kind == "maxpool":
            emit("MaxPool", [], kernel_shape=[op["size"]] * 2, strides=[op["size"]] * 2)
        else:
            emit("Flatten", [], axis=1)
    nodes[-1].output[0] = out_name
    rows = model.layers[-1].rows
    graph = helper.make_graph(
        nodes, "dcsim_decoded",
        [helper.make_tensor_value_info(in_name, TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["N", rows])], inits)
    proto = helper.make_model(graph, producer_name="dcsim",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto)
    blob = proto.SerializeToString()
    try:
        write_bytes_atomic(path, blob)
    except OSError as e:
        raise FormatError(f"{path}: cannot write the file ({e.strerror or e})") from None
    return {"path": os.fspath(path), "bytes": len(blob), "input": in_name,
            "output": out_name, "input_dims": dims, "nodes": [n.op_type for n in nodes]}
