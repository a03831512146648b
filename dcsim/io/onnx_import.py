"""ONNX import: a feed-forward graph (MLP or CNN) becomes an ordinary ``dcsim.nn.Model``.

The graph must be one chain from its one input to its one output. On the chain:
Gemm (transA 0, any transB, alpha and beta folded), MatMul (an Add of a constant
right after it is its bias), Conv (group 1, dilation 1, square kernel, the same
stride on both axes, the same padding on every side), Relu, MaxPool (kernel == stride,
no padding, after a Conv), Flatten (axis 1) and Reshape to (N, features), Identity,
Dropout (inference), BatchNormalization right after a Conv or Gemm (folded into its
weights and bias), and a last Softmax or LogSoftmax (dropped: the arg-max, hence the
label, is unchanged). Nodes whose inputs are all constants (Constant, and the
Shape/Gather/Concat arithmetic exporters emit for ``x.view(x.size(0), -1)``) are folded
with ``onnx.reference``. Anything else is refused before any work with one
:class:`~dcsim.errors.FormatError` naming the file, the node, its op type and the
supported set.
"""

from __future__ import annotations

import os

import numpy as np

from dcsim.errors import FormatError
from dcsim.nn.models import Model, from_graph

__all__ = ["import_onnx", "SUPPORTED"]

SUPPORTED = ("Add", "BatchNormalization", "Constant", "Conv", "Dropout", "Flatten",
             "Gemm", "Identity", "LogSoftmax", "MatMul", "MaxPool", "Relu", "Reshape",
             "Softmax")
"""Op types allowed on the chain (plus any op whose inputs are all constants)."""

_PARAM_OPS = ("dense", "conv")
_BATCH = -(2 ** 40) - 7
"""Stands for a symbolic batch size in folded shape arithmetic (never a real size)."""


def import_onnx(path) -> Model:
    """Read the ONNX file at ``path`` as an ``IMPORTED`` :class:`~dcsim.nn.models.Model`
    with the file's weights (float32).

    The model's ``source`` records ``format`` ("onnx"), ``file`` (base name),
    ``input`` and ``output`` (the graph's tensor names), ``input_dims`` (the input's
    shape, the batch as its symbolic name or its size), ``dropped`` (op types dropped:
    a last Softmax/LogSoftmax) and ``folded_batchnorm`` (layers a BatchNormalization
    was folded into). Layers are named after their weight initializers (``fc1.weight``
    -> ``fc1``) when those names are unique, else ``fc1, fc2, ..., conv1, ...``.
    """
    path = os.fspath(path)
    return _Importer(path, _read(path)).run()


def _read(path: str):
    import onnx
    from google.protobuf.message import DecodeError

    if not os.path.isfile(path):
        raise FormatError(f"{path}: no such file")
    try:
        proto = onnx.load(path)
    except (DecodeError, ValueError, OSError, RuntimeError) as e:
        raise FormatError(f"{path}: the file must be an ONNX model, not unreadable "
                          f"bytes ({_one_line(e)})") from None
    try:
        onnx.checker.check_model(proto)
    except (onnx.checker.ValidationError, ValueError) as e:
        raise FormatError(f"{path}: the file must be a valid ONNX model ({_one_line(e)})") \
            from None
    return proto


def _one_line(e: Exception) -> str:
    text = " ".join(str(e).split())
    return text[:200] + ("..." if len(text) > 200 else "")


class _Importer:
    """Walks the nodes in order, following the one chain of computed tensors."""

    def __init__(self, path: str, proto):
        self.path = path
        self.proto = proto
        self.graph = proto.graph
        self.opsets = {o.domain or "": o.version for o in proto.opset_import}
        self.consts: dict[str, np.ndarray] = {}
        self.shapes: dict[str, tuple] = {}    # computed tensors: shape without batch
        self.current: set[str] = set()        # names of the chain's latest tensor
        self.raw: dict[str, int] = {}          # tensor -> weights index of a bare layer
        self.ops: list[dict] = []              # dcsim.nn graph ops
        self.weights: list[list] = []          # [W, b, weight name] per param op
        self.pooled: set[int] = set()          # param ops already followed by a max-pool
        self.dropped: list[str] = []
        self.folded_bn: list[int] = []
        self.final = False                     # a Softmax/LogSoftmax was dropped

    def fail(self, what: str):
        raise FormatError(f"{self.path}: {what}")

    def node_fail(self, node, what: str):
        self.fail(f"node {node.name or '(unnamed)'!r} ({node.op_type}): {what}")

    def run(self) -> Model:
        from onnx import numpy_helper

        for init in self.graph.initializer:
            self.consts[init.name] = numpy_helper.to_array(init)
        self.input_name, self.input_dims = self.graph_input()
        self.shapes[self.input_name] = self.input_shape = tuple(self.input_dims[1:])
        self.current = {self.input_name}
        self.batch = self.input_dims[0] if isinstance(self.input_dims[0], int) else _BATCH
        for node in self.graph.node:
            self.node(node)
        return self.finish()

    def graph_input(self) -> tuple[str, list]:
        from onnx import TensorProto

        inputs = [i for i in self.graph.input if i.name not in self.consts]
        if len(inputs) != 1:
            self.fail(f"the graph must have one input, not {len(inputs)} "
                      f"({[i.name for i in inputs]!r})")
        value = inputs[0]
        tensor = value.type.tensor_type
        if not value.type.HasField("tensor_type") or tensor.elem_type != TensorProto.FLOAT:
            self.fail(f"input {value.name!r} must be a float32 tensor, not "
                      f"{value.type!r}".replace("\n", " "))
        dims = []
        for i, d in enumerate(tensor.shape.dim):
            if d.HasField("dim_value") and d.dim_value >= 1:
                dims.append(int(d.dim_value))
            elif i == 0:
                dims.append(d.dim_param or "N")
            else:
                self.fail(f"input {value.name!r} must have a fixed size in every dimension "
                          f"but the batch, not {d.dim_param or '?'!r} in dimension {i}")
        if len(dims) < 2 or not tensor.HasField("shape"):
            self.fail(f"input {value.name!r} must have a shape (batch, ...) of at least "
                      f"2 dimensions, not {dims!r}")
        return value.name, dims

    # -- the walk ---------------------------------------------------------------------

    def node(self, node) -> None:
        if node.domain not in ("", "ai.onnx"):
            self.unsupported(node)
        inputs = [name for name in node.input if name]
        computed = [name for name in inputs if name not in self.consts]
        if node.op_type == "Shape" and len(computed) == 1 and computed[0] in self.shapes:
            self.fold_shape(node, computed[0])
            return
        if not computed:
            if not inputs and node.op_type != "Constant":
                self.unsupported(node)
            self.fold(node)
            return
        unknown = [name for name in computed if name not in self.shapes]
        if unknown:
            self.node_fail(node, f"input {unknown[0]!r} must be a constant or the chain's "
                                 f"tensor, not a tensor dcsim does not compute")
        if len(computed) > 1 or computed[0] not in self.current:
            self.node_fail(node, "the graph must be a single chain (no branches or "
                                 "merges of computed tensors)")
        if self.final:
            self.node_fail(node, f"a {self.dropped[-1]} must be the last node, but this "
                                 f"node reads its output")
        handler = getattr(self, "op_" + node.op_type, None)
        if handler is None or node.op_type not in SUPPORTED:
            self.unsupported(node)
        x = computed[0]
        if node.input[0] != x and node.op_type not in ("Add",):
            self.node_fail(node, f"the chain's tensor must be input 0, not input "
                                 f"{list(node.input).index(x)}")
        for extra in node.output[1:]:
            if extra and self.used(extra):
                self.node_fail(node, f"output {extra!r} must be unused, as dcsim only "
                                     f"follows output 0")
        shape = handler(node, x, self.shapes[x])
        out = node.output[0]
        self.shapes[out] = shape
        if node.op_type in ("Identity", "Dropout"):
            self.current.add(out)
            if x in self.raw:
                self.raw[out] = self.raw[x]
        else:
            self.current = {out}

    def used(self, name: str) -> bool:
        return any(name in n.input for n in self.graph.node) or any(
            o.name == name for o in self.graph.output)

    def unsupported(self, node):
        self.fail(f"op type of node {node.name or '(unnamed)'!r} must be one of "
                  f"{', '.join(SUPPORTED)} (or have only constant inputs), not "
                  f"{(node.domain + '.' if node.domain else '') + node.op_type!r}")

    def fold(self, node) -> None:
        from onnx.reference import ReferenceEvaluator

        try:
            values = ReferenceEvaluator(node, opsets=self.opsets).run(
                None, {name: self.consts[name] for name in node.input if name})
        except Exception as e:  # noqa: BLE001 -- onnx.reference raises anything
            self.node_fail(node, f"folding its constant inputs must succeed, not fail "
                                 f"({_one_line(e)})")
        for name, value in zip(node.output, values):
            if name:
                self.consts[name] = np.asarray(value)

    def fold_shape(self, node, x) -> None:
        full = [self.batch, *self.shapes[x]]
        attrs = _attrs(node)
        start, end = attrs.get("start", 0), attrs.get("end", len(full))
        self.consts[node.output[0]] = np.array(full[start:end], dtype=np.int64)

    # -- parameter layers ---------------------------------------------------------

    def add_param(self, op: dict, W: np.ndarray, b: np.ndarray, weight: str, out: str):
        self.ops.append(op)
        self.weights.append([W.astype(np.float32), b.astype(np.float32), weight])
        self.raw[out] = len(self.weights) - 1

    def const(self, node, i: int, what: str) -> np.ndarray:
        if len(node.input) <= i or not node.input[i]:
            return None
        name = node.input[i]
        if name not in self.consts:
            self.node_fail(node, f"{what} (input {i}) must be a constant, not computed")
        return np.asarray(self.consts[name], dtype=np.float64)

    def flat_input(self, node, shape):
        if len(shape) != 1:
            self.node_fail(node, f"input must be (N, features), not (N, "
                                 f"{', '.join(map(str, shape))}); flatten it first")

    def op_Gemm(self, node, x, shape):
        self.flat_input(node, shape)
        a = _attrs(node)
        if a.get("transA", 0):
            self.node_fail(node, "transA must be 0 (the batch is the first axis of the "
                                 "chain's tensor), not 1")
        B = self.const(node, 1, "B")
        if B is None or B.ndim != 2:
            self.node_fail(node, f"B must be a 2-D constant, not {None if B is None else B.shape}")
        W = (B if a.get("transB", 0) else B.T) * a.get("alpha", 1.0)
        if W.shape[1] != shape[0]:
            self.node_fail(node, f"B must take {shape[0]} inputs, not {W.shape[1]}")
        C = self.const(node, 2, "C")
        b = np.zeros(len(W)) if C is None else self.bias(node, C * a.get("beta", 1.0),
                                                         (len(W),))
        self.add_param({"op": "dense", "name": None, "in": W.shape[1], "out": W.shape[0]},
                       W, b, node.input[1], node.output[0])
        return (W.shape[0],)

    def op_MatMul(self, node, x, shape):
        self.flat_input(node, shape)
        B = self.const(node, 1, "the weight")
        if B is None or B.ndim != 2 or B.shape[0] != shape[0]:
            self.node_fail(node, f"the weight must be a 2-D constant of {shape[0]} rows, "
                                 f"not {None if B is None else B.shape}")
        self.add_param({"op": "dense", "name": None, "in": B.shape[0], "out": B.shape[1]},
                       B.T, np.zeros(B.shape[1]), node.input[1], node.output[0])
        return (B.shape[1],)

    def op_Add(self, node, x, shape):
        other = [name for name in node.input if name != x]
        if x not in self.raw or len(other) != 1:
            self.node_fail(node, "an Add must add a constant bias right after a Gemm, "
                                 "MatMul or Conv")
        layer = self.weights[self.raw[x]]
        layer[1] = layer[1] + self.bias(node, np.asarray(self.consts[other[0]], np.float64),
                                        shape)
        self.raw[node.output[0]] = self.raw.pop(x)
        return shape

    def bias(self, node, value: np.ndarray, shape: tuple) -> np.ndarray:
        """A constant broadcast onto outputs of ``shape`` (no batch) as one value per
        output row (fc) or channel (conv)."""
        try:
            full = np.broadcast_to(value, (1, *shape))[0]
        except ValueError:
            self.node_fail(node, f"the bias must broadcast to (N, "
                                 f"{', '.join(map(str, shape))}), not shape {value.shape}")
        per_row = full.reshape(shape[0], -1)[:, 0]
        spread = per_row.reshape((-1,) + (1,) * (len(shape) - 1))
        if not np.array_equal(full, np.broadcast_to(spread, shape)):
            self.node_fail(node, f"the bias must be one value per channel, not shape "
                                 f"{value.shape}")
        return per_row

    def op_Conv(self, node, x, shape):
        if len(shape) != 3:
            self.node_fail(node, f"input must be (N, C, H, W), not (N, "
                                 f"{', '.join(map(str, shape))})")
        a = _attrs(node)
        if a.get("group", 1) != 1:
            self.node_fail(node, f"group must be 1 (grouped convolutions are not "
                                 f"supported), not {a['group']}")
        W = self.const(node, 1, "W")
        if W is None or W.ndim != 4 or W.shape[1] != shape[0]:
            self.node_fail(node, f"W must be a (out, {shape[0]}, kh, kw) constant, "
                                 f"not {None if W is None else W.shape}")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            self.node_fail(node, f"dilations must be 1, not {a['dilations']}")
        kh, kw = W.shape[2:]
        if kh != kw:
            self.node_fail(node, f"the kernel must be square, not {kh} x {kw}")
        strides = a.get("strides", [1, 1])
        if strides[0] != strides[1]:
            self.node_fail(node, f"strides must be equal on both axes, not {strides}")
        pads = self.conv_pads(node, a, kh, strides[0], shape)
        out_h = (shape[1] + 2 * pads - kh) // strides[0] + 1
        out_w = (shape[2] + 2 * pads - kw) // strides[0] + 1
        if out_h < 1 or out_w < 1:
            self.node_fail(node, f"the input must be at least {kh} x {kw} after padding, "
                                 f"not {shape[1] + 2 * pads} x {shape[2] + 2 * pads}")
        B = self.const(node, 2, "B")
        b = np.zeros(len(W)) if B is None else self.bias(node, B, (len(W),))
        self.add_param({"op": "conv", "name": None, "in_ch": W.shape[1], "out_ch": len(W),
                        "kernel": int(kh), "stride": int(strides[0]), "padding": pads},
                       W, b, node.input[1], node.output[0])
        return (len(W), out_h, out_w)

    def conv_pads(self, node, a, k, stride, shape) -> int:
        auto = a.get("auto_pad", "NOTSET")
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            totals = [max(0, (-(-n // stride) - 1) * stride + k - n) for n in shape[1:]]
            pads = [t // 2 for t in totals] + [t - t // 2 for t in totals]
        elif auto == "VALID":
            pads = [0, 0, 0, 0]
        else:
            pads = list(a.get("pads", [0, 0, 0, 0]))
        if len(set(pads)) != 1:
            self.node_fail(node, f"pads must be the same on every side, not {pads}"
                                 + (f" (auto_pad {auto})" if auto != "NOTSET" else ""))
        return int(pads[0])

    # -- ops between parameter layers -------------------------------------------------

    def after_param(self, node, what: str) -> int:
        if not self.ops:
            self.node_fail(node, f"a {what} must follow a Gemm, MatMul or Conv, not come "
                                 f"before the first one")
        return max(i for i, op in enumerate(self.ops) if op["op"] in _PARAM_OPS)

    def op_Relu(self, node, x, shape):
        self.after_param(node, "Relu")
        self.ops.append({"op": "relu"})
        return shape

    def op_MaxPool(self, node, x, shape):
        last = self.after_param(node, "MaxPool")
        a = _attrs(node)
        k = list(a.get("kernel_shape", []))
        if self.ops[last]["op"] != "conv" or len(shape) != 3:
            self.node_fail(node, "a MaxPool must follow a Conv")
        if last in self.pooled:
            self.node_fail(node, "a Conv must be followed by one MaxPool at most, not two")
        if len(k) != 2 or k[0] != k[1] or list(a.get("strides", [1, 1])) != k:
            self.node_fail(node, f"kernel_shape must be square and equal to strides, not "
                                 f"kernel_shape {k} and strides {a.get('strides', [1, 1])}")
        if any(a.get("pads", [0])) or a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID") \
                or any(d != 1 for d in a.get("dilations", [1])) or a.get("ceil_mode", 0):
            self.node_fail(node, "pads must be 0, dilations 1 and ceil_mode 0")
        if shape[1] % k[0] or shape[2] % k[0]:
            self.node_fail(node, f"the input's height and width must be multiples of "
                                 f"{k[0]}, not {shape[1]} x {shape[2]}")
        self.pooled.add(last)
        self.ops.append({"op": "maxpool", "size": int(k[0])})
        return (shape[0], shape[1] // k[0], shape[2] // k[0])

    def flatten(self, shape) -> tuple:
        if len(shape) > 1:
            if self.ops:
                self.ops.append({"op": "flatten"})
            else:  # a leading flatten: the model takes (N, features) rows anyway
                self.input_shape = (int(np.prod(shape)),)
        return (int(np.prod(shape)),)

    def op_Flatten(self, node, x, shape):
        axis = _attrs(node).get("axis", 1)
        if axis != 1:
            self.node_fail(node, f"axis must be 1 (keep the batch), not {axis}")
        return self.flatten(shape)

    def op_Reshape(self, node, x, shape):
        target = self.consts.get(node.input[1]) if len(node.input) > 1 else None
        if target is None:
            self.node_fail(node, "the shape (input 1) must be a constant")
        target = [int(t) for t in np.asarray(target).ravel()]
        n = int(np.prod(shape))
        zero_copies = not _attrs(node).get("allowzero", 0)
        batch_ok = (target[:1] == [self.batch] or (zero_copies and target[:1] == [0])
                    or (target[:1] == [-1] and target[1:] == [n]))
        if len(target) != 2 or not batch_ok or target[1] not in (n, -1):
            shown = ["N" if t == _BATCH else t for t in target]
            self.node_fail(node, f"the shape must flatten to (N, {n}), not {shown}")
        return self.flatten(shape)

    def op_Identity(self, node, x, shape):
        return shape

    def op_Dropout(self, node, x, shape):
        mode = self.consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if mode is not None and bool(np.asarray(mode)):
            self.node_fail(node, "training_mode must be false (inference), not true")
        return shape

    def op_BatchNormalization(self, node, x, shape):
        if x not in self.raw:
            self.node_fail(node, "a BatchNormalization must follow a Conv or Gemm directly "
                                 "(it is folded into its weights)")
        a = _attrs(node)
        if a.get("training_mode", 0):
            self.node_fail(node, "training_mode must be 0, not 1")
        scale, beta, mean, var = (self.const(node, i, what) for i, what in
                                  enumerate(("scale", "B", "mean", "var"), start=1))
        if any(v is None or v.shape != (shape[0],) for v in (scale, beta, mean, var)):
            self.node_fail(node, f"scale, B, mean and var must be constants of shape "
                                 f"({shape[0]},)")
        s = scale / np.sqrt(var + a.get("epsilon", 1e-5))
        index = self.raw.pop(x)
        layer = self.weights[index]
        layer[0] = (layer[0] * s.reshape((-1,) + (1,) * (layer[0].ndim - 1))).astype(
            np.float32)
        layer[1] = (layer[1] - mean) * s + beta
        self.folded_bn.append(index)
        self.raw[node.output[0]] = index
        return shape

    def softmax(self, node, x, shape):
        axis = _attrs(node).get("axis", -1 if self.opsets.get("", 13) >= 13 else 1)
        if len(shape) != 1 or axis not in (-1, 1):
            self.node_fail(node, f"a {node.op_type} must be over the classes of (N, "
                                 f"classes) scores (axis 1), not axis {axis} of (N, "
                                 f"{', '.join(map(str, shape))})")
        self.dropped.append(node.op_type)
        self.final = True
        return shape

    op_Softmax = op_LogSoftmax = softmax

    # -- the end ----------------------------------------------------------------------

    def finish(self) -> Model:
        outputs = [o.name for o in self.graph.output]
        if len(outputs) != 1:
            self.fail(f"the graph must have one output, not {len(outputs)} ({outputs!r})")
        if outputs[0] not in self.current:
            self.fail(f"output {outputs[0]!r} must be the end of the chain of "
                      f"supported nodes from input {self.input_name!r}")
        if not any(op["op"] in _PARAM_OPS for op in self.ops):
            self.fail("the graph must have at least one Gemm, MatMul or Conv")
        if self.shapes[outputs[0]] != (self.shapes[outputs[0]][0],):
            self.fail(f"output {outputs[0]!r} must be (N, classes) scores, not (N, "
                      f"{', '.join(map(str, self.shapes[outputs[0]]))}); flatten it")
        names = self.layer_names()
        params = [i for i, op in enumerate(self.ops) if op["op"] in _PARAM_OPS]
        for i, name in zip(params, names):
            self.ops[i]["name"] = name
        source = {"format": "onnx", "file": os.path.basename(self.path),
                  "input": self.input_name, "output": outputs[0],
                  "input_dims": self.input_dims, "dropped": self.dropped,
                  "folded_batchnorm": [names[i] for i in self.folded_bn]}
        model = from_graph(list(self.input_shape), self.ops, source=source)
        for layer, (W, b, _) in zip(model.param_layers(), self.weights):
            layer.params["W"][...] = W.reshape(layer.params["W"].shape)
            layer.params["b"][...] = b
        return model

    def layer_names(self) -> list[str]:
        """Initializer names without their ``.weight`` suffix if unique, else kind + count."""
        from_init = []
        for W_name in (w[2] for w in self.weights):
            base = W_name
            for suffix in (".weight", "_weight", ".W"):
                base = base[:-len(suffix)] if base.endswith(suffix) else base
            from_init.append(base if W_name in {i.name for i in self.graph.initializer}
                             else "")
        if all(from_init) and len(set(from_init)) == len(from_init):
            return from_init
        counts = {"dense": 0, "conv": 0}
        names = []
        for op in self.ops:
            if op["op"] in counts:
                counts[op["op"]] += 1
                names.append(f"{'fc' if op['op'] == 'dense' else 'conv'}{counts[op['op']]}")
        return names


def _attrs(node) -> dict:
    """The node's attributes as Python values (strings decoded, int lists as lists)."""
    from onnx import helper

    values = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        values[a.name] = v.decode() if isinstance(v, bytes) else (
            list(v) if isinstance(v, (list, tuple)) else v)
    return values
