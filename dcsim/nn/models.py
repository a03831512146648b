"""The model zoo (LeNet-300-100, Caffe's LeNet-5) and its .npz save/load."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from dcsim.errors import ConfigError, DataError
from dcsim.files import write_atomic
from dcsim.nn.layers import Conv2D, Dense, Flatten, Layer, MaxPool2D, ReLU

__all__ = ["Model", "lenet300", "lenet5", "build", "save", "load", "ARCHS", "N_CLASSES"]

N_CLASSES = 10


class Model:
    """A feed-forward stack of layers ending in class scores (logits).

    arch : str -- ``"lenet300"`` or ``"lenet5"``.
    input_shape : tuple -- one sample's shape as the first layer sees it: ``(784,)``
        or ``(1, 28, 28)``. Inputs are always given as (N, 784) rows and reshaped.
    layers : list of Layer -- parameter layers carry a unique ``name``. The first
        layer does not compute the gradient of the input images (nothing needs it).
    """

    def __init__(self, arch: str, input_shape: tuple, layers: list[Layer]):
        self.arch = arch
        self.input_shape = tuple(input_shape)
        self.layers = list(layers)
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
        that follows, 0 for none), ``stride``, ``padding`` (1 and 0 for fc)."""
        specs = []
        for i, layer in enumerate(self.layers):
            if not layer.params:
                continue
            after = self.layers[i + 1] if i + 1 < len(self.layers) else None
            conv = isinstance(layer, Conv2D)
            specs.append({
                "name": layer.name,
                "kind": "conv" if conv else "fc",
                "shape": tuple(layer.params["W"].shape),
                "relu": isinstance(after, ReLU),
                "pool": after.size if isinstance(after, MaxPool2D) else 0,
                "stride": layer.stride if conv else 1,
                "padding": layer.padding if conv else 0,
            })
        return specs

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """Class scores (N, 10) for images x (N, 784). float32 unless x and the
        parameters are float64."""
        h = self._reshape_input(x)
        for layer in self.layers:
            h = layer.forward(h, train)
        return h

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, dict]:
        """Mean softmax cross-entropy over the batch and its gradient for every
        parameter, keyed as :meth:`params`. x (N, 784), y (N,) labels in 0..9."""
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


def build(arch: str, seed: int = 0) -> Model:
    """A freshly initialised model of the named architecture (Caffe xavier weights,
    zero biases, drawn from ``np.random.default_rng(seed)``)."""
    if arch not in ARCHS:
        raise ConfigError(f"Model arch must be one of {tuple(ARCHS)}, not {arch!r}")
    return ARCHS[arch](seed)


def save(model: Model, path: str | os.PathLike) -> None:
    """Write the model's parameters and arch to an .npz file (atomically: a temporary
    file in the same folder, then a rename)."""
    path = Path(path)
    arrays = {"arch": np.array(model.arch)}
    arrays.update(model.params())
    write_atomic(path, lambda f: np.savez(f, **arrays))


def load(path: str | os.PathLike, arch: str | None = None) -> Model:
    """Read a model written by :func:`save`. Raises :class:`DataError` naming the file
    and the key if the file is missing, not an .npz, of an unknown arch (or not of
    ``arch`` when given), or has missing, extra or mis-shaped parameters."""
    where, arch_wanted = str(path), arch
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except FileNotFoundError:
        raise DataError(f"model file {where!r} does not exist") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"model file {where!r} is not a readable .npz ({exc})") from None
    arch = arrays.pop("arch", None)
    if arch is None or arch.shape != () or arch.dtype.kind != "U":
        raise DataError(f"model file {where!r} must record its arch under key 'arch'")
    if str(arch) not in ARCHS:
        raise DataError(f"model file {where!r}: key 'arch' must be one of "
                        f"{tuple(ARCHS)}, not {str(arch)!r}")
    if arch_wanted is not None and str(arch) != arch_wanted:
        raise DataError(f"model file {where!r}: key 'arch' must be {arch_wanted!r}, "
                        f"not {str(arch)!r}")
    model = build(str(arch))
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
