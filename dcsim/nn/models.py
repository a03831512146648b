"""The model zoo (LeNet-300-100, Caffe's LeNet-5), imported graphs and their .npz save/load."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from dcsim.errors import ConfigError, DataError
from dcsim.files import write_atomic
from dcsim.nn.layers import Conv2D, Dense, Flatten, Layer, MaxPool2D, ReLU

__all__ = ["Model", "lenet300", "lenet5", "build", "from_graph", "save", "load", "ARCHS",
           "IMPORTED", "N_CLASSES"]

N_CLASSES = 10
IMPORTED = "imported"
"""The arch of a model built from a graph (an imported network) rather than the zoo."""


class Model:
    """A feed-forward stack of layers ending in class scores (logits).

    arch : str -- ``"lenet300"``, ``"lenet5"`` or ``IMPORTED`` (built by
        :func:`from_graph`, e.g. from an ONNX file).
    input_shape : tuple -- one sample's shape as the first layer sees it: ``(784,)``
        or ``(1, 28, 28)``. Inputs are always given as (N, prod(input_shape)) rows and
        reshaped.
    layers : list of Layer -- parameter layers carry a unique ``name``. The first
        layer does not compute the gradient of the input images (nothing needs it).
    source : dict or None -- JSON-able facts about where an imported model came from
        (``dcsim.io``: the file, its input and output names, the ops dropped); it does
        not affect inference.
    """

    def __init__(self, arch: str, input_shape: tuple, layers: list[Layer],
                 source: dict | None = None):
        self.arch = arch
        self.input_shape = tuple(input_shape)
        self.layers = list(layers)
        self.source = source
        names = [layer.name for layer in self.layers if layer.params]
        if len(set(names)) != len(names) or None in names:
            raise ConfigError(f"Model parameter layers must have unique names, "
                              f"not {names!r}")
        self.layers[0].input_grad = False

    def param_layers(self) -> list[Layer]:
        """The layers with weights, in order."""
        return [layer for layer in self.layers if layer.params]

    def params(self) -> dict[str, np.ndarray]:
        """The live parameter arrays keyed ``"<layer>.<W|b>"`` in layer order: editing
        them in place edits the model."""
        return {f"{layer.name}.{key}": value for layer in self.param_layers()
                for key, value in layer.params.items()}

    def layer_specs(self) -> list[dict]:
        """One dict per parameter layer, in order: ``name``, ``kind`` ("fc" or "conv"),
        ``shape`` (W's shape), ``relu`` (a ReLU follows), ``pool`` (size of the max-pool
        that follows, 0 for none), ``stride``, ``padding`` (1 and 0 for fc).

        "Follows" means anywhere before the next parameter layer: ReLU and a max-pool
        commute, so conv-ReLU-pool and conv-pool-ReLU are the same layer."""
        specs = []
        for i, layer in enumerate(self.layers):
            if not layer.params:
                continue
            after = []
            for other in self.layers[i + 1:]:
                if other.params:
                    break
                after.append(other)
            pools = [other.size for other in after if isinstance(other, MaxPool2D)]
            conv = isinstance(layer, Conv2D)
            specs.append({
                "name": layer.name,
                "kind": "conv" if conv else "fc",
                "shape": tuple(layer.params["W"].shape),
                "relu": any(isinstance(other, ReLU) for other in after),
                "pool": pools[0] if pools else 0,
                "stride": layer.stride if conv else 1,
                "padding": layer.padding if conv else 0,
            })
        return specs

    def graph(self) -> list[dict]:
        """The layers as JSON-able dicts, in order (what :func:`from_graph` takes):
        ``{"op": "dense", "name", "in", "out"}``, ``{"op": "conv", "name", "in_ch",
        "out_ch", "kernel", "stride", "padding"}``, ``{"op": "relu"}``,
        ``{"op": "maxpool", "size"}`` and ``{"op": "flatten"}``."""
        ops = []
        for layer in self.layers:
            if isinstance(layer, Dense):
                out, n_in = layer.params["W"].shape
                ops.append({"op": "dense", "name": layer.name, "in": n_in, "out": out})
            elif isinstance(layer, Conv2D):
                out, n_in = layer.params["W"].shape[:2]
                ops.append({"op": "conv", "name": layer.name, "in_ch": n_in,
                            "out_ch": out, "kernel": layer.kernel, "stride": layer.stride,
                            "padding": layer.padding})
            elif isinstance(layer, MaxPool2D):
                ops.append({"op": "maxpool", "size": layer.size})
            elif isinstance(layer, ReLU):
                ops.append({"op": "relu"})
            elif isinstance(layer, Flatten):
                ops.append({"op": "flatten"})
            else:
                raise ConfigError(f"layer must be one of Dense, Conv2D, MaxPool2D, ReLU, "
                                  f"Flatten, not {type(layer).__name__}")
        return ops

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """Class scores (N, classes) for images x (N, prod(input_shape)). float32
        unless x and the parameters are float64."""
        h = self._reshape_input(x)
        for layer in self.layers:
            h = layer.forward(h, train)
        return h

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, dict]:
        """Mean softmax cross-entropy over the batch and its gradient for every
        parameter, keyed as :meth:`params`. x (N, prod(input_shape)), y (N,) labels in
        0..classes-1."""
        y = np.asarray(y)
        logits = self.forward(x, train=True)
        if y.shape != (len(logits),):
            raise ConfigError(f"labels must have shape ({len(logits)},), not {y.shape}")
        loss, g = softmax_cross_entropy(logits, y)
        for layer in reversed(self.layers):
            g = layer.backward(g)
        grads = {f"{layer.name}.{key}": layer.grads[key] for layer in self.param_layers()
                 for key in layer.params}
        return loss, grads

    def predict(self, x: np.ndarray, batch_size: int = 1000,
                blas_threads: int | None = 1) -> np.ndarray:
        """Predicted labels (N,) int64, computed batch_size images at a time with at
        most blas_threads BLAS threads (None: leave the setting alone; one thread was
        faster on the loaded 2-core machine, see :func:`dcsim.nn.train.train`)."""
        x = np.asarray(x)
        out = np.empty(len(x), dtype=np.int64)
        with threadpool_limits(blas_threads, user_api="blas"):
            for start in range(0, len(x), batch_size):
                out[start:start + batch_size] = self.forward(
                    x[start:start + batch_size]).argmax(axis=1)
        return out

    def error(self, x: np.ndarray, y: np.ndarray) -> float:
        """Classification error in percent."""
        return float(100.0 * np.mean(self.predict(x) != np.asarray(y)))

    def _reshape_input(self, x) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype.kind != "f":
            x = x.astype(np.float32)
        n_in = int(np.prod(self.input_shape))
        if x.ndim != 2 or x.shape[1] != n_in:
            raise ConfigError(f"{self.arch} input must have shape (N, {n_in}), "
                              f"not {x.shape}")
        return x.reshape((len(x),) + self.input_shape)


def softmax_cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of softmax(logits) against labels y, and its gradient with
    respect to logits (N, classes), in the logits' dtype."""
    n = len(logits)
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    total = exp.sum(axis=1, keepdims=True)
    log_p = shifted[np.arange(n), y] - np.log(total[:, 0])
    grad = exp / total
    grad[np.arange(n), y] -= 1
    grad /= n
    return float(-log_p.mean()), grad


def lenet300(seed: int = 0) -> Model:
    """LeNet-300-100: ip1 784->300, ReLU, ip2 300->100, ReLU, ip3 100->10."""
    rng = np.random.default_rng(seed)
    return Model("lenet300", (784,), [
        Dense(784, 300, rng=rng, name="ip1"), ReLU(),
        Dense(300, 100, rng=rng, name="ip2"), ReLU(),
        Dense(100, 10, rng=rng, name="ip3"),
    ])


def lenet5(seed: int = 0) -> Model:
    """Caffe's LeNet ("LeNet-5" in the paper): conv1 5x5x20, max-pool 2, conv2 5x5x50,
    max-pool 2, ip1 800->500, ReLU, ip2 500->10. No ReLU after the convolutions."""
    rng = np.random.default_rng(seed)
    return Model("lenet5", (1, 28, 28), [
        Conv2D(1, 20, 5, rng=rng, name="conv1"), MaxPool2D(2),
        Conv2D(20, 50, 5, rng=rng, name="conv2"), MaxPool2D(2),
        Flatten(),
        Dense(800, 500, rng=rng, name="ip1"), ReLU(),
        Dense(500, 10, rng=rng, name="ip2"),
    ])


ARCHS = {"lenet300": lenet300, "lenet5": lenet5}

_OP_FIELDS = {"dense": ("name", "in", "out"),
              "conv": ("name", "in_ch", "out_ch", "kernel", "stride", "padding"),
              "relu": (), "maxpool": ("size",), "flatten": ()}


def from_graph(input_shape, graph: list, source: dict | None = None,
               seed: int = 0) -> Model:
    """An ``IMPORTED`` model of the layers described by ``graph`` (see
    :meth:`Model.graph`), freshly initialised from ``seed`` as the zoo's models.

    input_shape : one sample's shape (``(features,)`` or ``(C, H, W)``).
    Raises :class:`ConfigError` naming the first malformed op.
    """
    if not isinstance(graph, list) or not graph:
        raise ConfigError(f"graph must be a non-empty list of ops, not {graph!r}")
    if not isinstance(input_shape, (list, tuple)) or not input_shape or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in input_shape):
        raise ConfigError(f"input_shape must be positive integers, not {input_shape!r}")
    rng = np.random.default_rng(seed)
    layers = []
    for i, op in enumerate(graph):
        kind = op.get("op") if isinstance(op, dict) else None
        if kind not in _OP_FIELDS or set(op) != {"op", *_OP_FIELDS[kind]} or (
                "name" in op and not (isinstance(op["name"], str) and op["name"])):
            raise ConfigError(f"graph op {i} must be one of {sorted(_OP_FIELDS)} with "
                              f"fields {_OP_FIELDS.get(kind, '...')}, not {op!r}")
        if kind == "dense":
            layers.append(Dense(op["in"], op["out"], rng=rng, name=op["name"]))
        elif kind == "conv":
            layers.append(Conv2D(op["in_ch"], op["out_ch"], op["kernel"], op["stride"],
                                 op["padding"], rng=rng, name=op["name"]))
        elif kind == "maxpool":
            layers.append(MaxPool2D(op["size"]))
        elif kind == "relu":
            layers.append(ReLU())
        else:
            layers.append(Flatten())
    return Model(IMPORTED, tuple(input_shape), layers, source=source)


def build(arch: str, seed: int = 0) -> Model:
    """A freshly initialised model of the named architecture (Caffe xavier weights,
    zero biases, drawn from ``np.random.default_rng(seed)``)."""
    if arch not in ARCHS:
        raise ConfigError(f"Model arch must be one of {tuple(ARCHS)}, not {arch!r}")
    return ARCHS[arch](seed)


def save(model: Model, path: str | os.PathLike) -> None:
    """Write the model's parameters and arch to an .npz file (atomically: a temporary
    file in the same folder, then a rename). A model outside the zoo also gets key
    ``graph``: JSON of its input shape, :meth:`Model.graph` and ``source``."""
    path = Path(path)
    arrays = {"arch": np.array(model.arch)}
    if model.arch not in ARCHS:
        arrays["graph"] = np.array(json.dumps({
            "input_shape": list(model.input_shape), "layers": model.graph(),
            "source": model.source}))
    arrays.update(model.params())
    write_atomic(path, lambda f: np.savez(f, **arrays))


def load(path: str | os.PathLike, arch: str | None = None) -> Model:
    """Read a model written by :func:`save`. Raises :class:`DataError` naming the file
    and the key if the file is missing, not an .npz, of an unknown arch (or not of
    ``arch`` when given), has a malformed ``graph``, or has missing, extra or
    mis-shaped parameters."""
    where, arch_wanted = str(path), arch
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except FileNotFoundError:
        raise DataError(f"model file {where!r} does not exist") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"model file {where!r} is not a readable .npz ({exc})") from None
    arch = arrays.pop("arch", None)
    graph = arrays.pop("graph", None)
    if arch is None or arch.shape != () or arch.dtype.kind != "U":
        raise DataError(f"model file {where!r} must record its arch under key 'arch'")
    if str(arch) not in ARCHS and not (str(arch) == IMPORTED and graph is not None):
        raise DataError(f"model file {where!r}: key 'arch' must be one of "
                        f"{tuple(ARCHS)}, not {str(arch)!r}")
    if arch_wanted is not None and str(arch) != arch_wanted:
        raise DataError(f"model file {where!r}: key 'arch' must be {arch_wanted!r}, "
                        f"not {str(arch)!r}")
    if str(arch) in ARCHS:
        model = build(str(arch))
    else:
        model = _model_of_graph(where, graph)
    params = model.params()
    for key, live in params.items():
        if key not in arrays:
            raise DataError(f"model file {where!r}: key {key!r} is missing for arch "
                            f"{str(arch)!r}")
        value = arrays[key]
        if value.shape != live.shape or value.dtype.kind != "f":
            raise DataError(f"model file {where!r}: key {key!r} must be a float array "
                            f"of shape {live.shape}, not {value.dtype} {value.shape}")
    extra = sorted(set(arrays) - set(params))
    if extra:
        raise DataError(f"model file {where!r}: key {extra[0]!r} does not belong to arch "
                        f"{str(arch)!r}")
    for key, live in params.items():
        live[...] = arrays[key]
    return model


def _model_of_graph(where: str, graph: np.ndarray) -> Model:
    try:
        spec = json.loads(str(graph)) if graph.shape == () else None
        if not isinstance(spec, dict) or set(spec) != {"input_shape", "layers", "source"}:
            raise ValueError("it must hold input_shape, layers and source")
        return from_graph(spec["input_shape"], spec["layers"], source=spec["source"])
    except (ValueError, ConfigError) as exc:
        raise DataError(f"model file {where!r}: key 'graph' must describe the layers "
                        f"(dcsim.nn.models.save writes it), not this ({exc})") from None
