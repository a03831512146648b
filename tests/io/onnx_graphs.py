"""Small ONNX graphs built with onnx.helper for the import and export tests."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def init(name, value):
    return numpy_helper.from_array(np.asarray(value), name)


def model(nodes, inits, in_dims, out_dims=("N", None), inputs=None, opset=17):
    """A checked ModelProto with input 'x' of in_dims and output 'y'."""
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_dims))]
    graph = helper.make_graph(
        nodes, "g", inputs,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_dims))], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    return proto


def node(op, inputs, outputs, **attrs):
    return helper.make_node(op, inputs, outputs, name=f"{op.lower()}_{outputs[0]}", **attrs)


def rand(rng, *shape, scale=0.3):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def fc_graph(rng):
    """Gemm (transB 1, alpha, beta, C (M,)) - Relu - Gemm (transB 0, C (1, M)) - Softmax."""
    return model([
        node("Gemm", ["x", "W1", "b1"], ["h1"], transB=1, alpha=0.5, beta=2.0),
        node("Relu", ["h1"], ["h2"]),
        node("Gemm", ["h2", "W2", "b2"], ["h3"], transB=0),
        node("Softmax", ["h3"], ["y"], axis=-1),
    ], [init("W1", rand(rng, 16, 12)), init("b1", rand(rng, 16)),
        init("W2", rand(rng, 16, 5)), init("b2", rand(rng, 1, 5))], ("N", 12))


def matmul_graph(rng):
    """MatMul + Add - Relu - Dropout - MatMul (no bias) - Identity - LogSoftmax."""
    return model([
        node("MatMul", ["x", "W1"], ["h1"]),
        node("Add", ["h1", "b1"], ["h2"]),
        node("Relu", ["h2"], ["h3"]),
        node("Dropout", ["h3"], ["h4"]),
        node("MatMul", ["h4", "W2"], ["h5"]),
        node("Identity", ["h5"], ["h6"]),
        node("LogSoftmax", ["h6"], ["y"], axis=1),
    ], [init("W1", rand(rng, 20, 9)), init("b1", rand(rng, 9)),
        init("W2", rand(rng, 9, 4))], ("batch", 20))


def conv_graph(rng):
    """Conv (pads 1, bias) - Relu - MaxPool 2 - Conv (stride 2, VALID, no bias) - Add
    (1, C, 1, 1) - MaxPool 2 - Relu - Flatten - Gemm."""
    return model([
        node("Conv", ["x", "K1", "c1"], ["h1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        node("Relu", ["h1"], ["h2"]),
        node("MaxPool", ["h2"], ["h3"], kernel_shape=[2, 2], strides=[2, 2]),
        node("Conv", ["h3", "K2"], ["h4"], strides=[2, 2], auto_pad="VALID"),
        node("Add", ["h4", "c2"], ["h5"]),
        node("MaxPool", ["h5"], ["h6"], kernel_shape=[2, 2], strides=[2, 2]),
        node("Relu", ["h6"], ["h7"]),
        node("Flatten", ["h7"], ["h8"], axis=1),
        node("Gemm", ["h8", "W", "b"], ["y"], transB=1),
    ], [init("K1", rand(rng, 4, 2, 3, 3)), init("c1", rand(rng, 4)),
        init("K2", rand(rng, 6, 4, 3, 3)), init("c2", rand(rng, 1, 6, 1, 1)),
        init("W", rand(rng, 7, 6 * 2 * 2)), init("b", rand(rng, 7))], ("N", 2, 18, 18))


def folded_graph(rng):
    """Conv (SAME_UPPER, stride 1) - BatchNormalization - Relu - Reshape through
    Shape/Gather/Unsqueeze/Concat and a Constant -1 - Gemm - BatchNormalization."""
    shape_nodes = [
        node("Shape", ["h2"], ["s"]),
        node("Constant", [], ["zero"], value=init("zero_v", np.array(0, np.int64))),
        node("Gather", ["s", "zero"], ["n"], axis=0),
        node("Unsqueeze", ["n", "axes"], ["n1"]),
        node("Constant", [], ["minus1"], value_ints=[-1]),
        node("Concat", ["n1", "minus1"], ["target"], axis=0),
    ]
    return model([
        node("Conv", ["x", "K", "c"], ["h1"], kernel_shape=[3, 3], auto_pad="SAME_UPPER"),
        node("BatchNormalization", ["h1", "g1", "be1", "m1", "v1"], ["h1b"], epsilon=1e-3),
        node("Relu", ["h1b"], ["h2"]),
        *shape_nodes,
        node("Reshape", ["h2", "target"], ["h3"]),
        node("Gemm", ["h3", "W", "b"], ["h4"], transB=1),
        node("BatchNormalization", ["h4", "g2", "be2", "m2", "v2"], ["y"]),
    ], [init("K", rand(rng, 3, 1, 3, 3)), init("c", rand(rng, 3)),
        init("g1", 1 + rand(rng, 3)), init("be1", rand(rng, 3)), init("m1", rand(rng, 3)),
        init("v1", 0.5 + np.abs(rand(rng, 3))), init("axes", np.array([0], np.int64)),
        init("W", rand(rng, 5, 3 * 6 * 6)), init("b", rand(rng, 5)),
        init("g2", 1 + rand(rng, 5)), init("be2", rand(rng, 5)), init("m2", rand(rng, 5)),
        init("v2", 0.5 + np.abs(rand(rng, 5)))], ("N", 1, 6, 6))


def leading_flatten_graph(rng):
    """Reshape of a fixed-batch (1, 1, 4, 4) input to [1, -1], Gemm, Relu, Gemm."""
    return model([
        node("Reshape", ["x", "target"], ["h1"]),
        node("Gemm", ["h1", "W1", "b1"], ["h2"], transB=1),
        node("Relu", ["h2"], ["h3"]),
        node("Gemm", ["h3", "W2", "b2"], ["y"], transB=1),
    ], [init("target", np.array([1, -1], np.int64)), init("W1", rand(rng, 8, 16)),
        init("b1", rand(rng, 8)), init("W2", rand(rng, 3, 8)), init("b2", rand(rng, 3))],
        (1, 1, 4, 4), out_dims=(1, 3))


GRAPHS = {"fc": fc_graph, "matmul": matmul_graph, "conv": conv_graph,
          "folded": folded_graph, "leading_flatten": leading_flatten_graph}


def ort_run(proto_or_path, x):
    import onnxruntime as ort

    src = proto_or_path.SerializeToString() if hasattr(proto_or_path, "SerializeToString") \
        else str(proto_or_path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(src, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return session.run(None, {name: x})[0]
