"""Models: structure, full-loss gradient check, prediction, save/load and bad files."""

import os
import re

import numpy as np
import pytest

from dcsim.errors import ConfigError, DataError
from dcsim.nn import models
from dcsim.nn.models import build, lenet5, load, save

SEED = 2024


def exact(message):
    return f"^{re.escape(message)}$"


def test_lenet300_structure():
    model = build("lenet300")
    assert model.arch == "lenet300" and model.input_shape == (784,)
    assert {k: v.shape for k, v in model.params().items()} == {
        "ip1.W": (300, 784), "ip1.b": (300,), "ip2.W": (100, 300), "ip2.b": (100,),
        "ip3.W": (10, 100), "ip3.b": (10,)}
    assert model.layer_specs() == [
        {"name": "ip1", "kind": "fc", "shape": (300, 784), "relu": True, "pool": 0,
         "stride": 1, "padding": 0},
        {"name": "ip2", "kind": "fc", "shape": (100, 300), "relu": True, "pool": 0,
         "stride": 1, "padding": 0},
        {"name": "ip3", "kind": "fc", "shape": (10, 100), "relu": False, "pool": 0,
         "stride": 1, "padding": 0}]
    assert all(v.dtype == np.float32 for v in model.params().values())


def test_lenet5_structure():
    model = build("lenet5")
    assert model.arch == "lenet5" and model.input_shape == (1, 28, 28)
    specs = model.layer_specs()
    assert [(s["name"], s["kind"], s["shape"], s["relu"], s["pool"]) for s in specs] == [
        ("conv1", "conv", (20, 1, 5, 5), False, 2),
        ("conv2", "conv", (50, 20, 5, 5), False, 2),
        ("ip1", "fc", (500, 800), True, 0),
        ("ip2", "fc", (10, 500), False, 0)]
    assert sum(v.size for v in model.params().values()) == 431_080


def test_params_are_live():
    model = build("lenet300")
    x = np.random.default_rng(SEED).random((5, 784), dtype=np.float32)
    before = model.forward(x)
    model.params()["ip3.b"][:] = 0
    model.params()["ip3.b"][7] = 1000
    assert not np.allclose(before, model.forward(x))
    np.testing.assert_array_equal(model.predict(x), np.full(5, 7))


def test_seeds_change_init():
    a, b = build("lenet5", seed=1).params(), build("lenet5", seed=2).params()
    assert not np.array_equal(a["conv2.W"], b["conv2.W"])
    np.testing.assert_array_equal(a["conv2.W"], build("lenet5", seed=1).params()["conv2.W"])


@pytest.mark.parametrize("arch", ["lenet300", "lenet5"])
def test_full_loss_gradient(arch):
    """Central differences of the mean cross-entropy (float64) along one random
    direction per parameter array: d loss = sum(grad * direction)."""
    print("seed", SEED)
    rng = np.random.default_rng(SEED)
    model = build(arch, seed=SEED)
    for layer in model.param_layers():
        layer.params = {k: v.astype(np.float64) for k, v in layer.params.items()}
        layer.params["b"] += 0.1 * rng.standard_normal(layer.params["b"].shape)
    x = rng.random((3, 784))  # noise images: no max-pool ties
    y = rng.integers(0, 10, 3)
    loss, grads = model.loss_and_grads(x, y)
    assert grads.keys() == model.params().keys()
    assert all(g.dtype == np.float64 for g in grads.values())
    eps = 1e-7  # small enough that no max-pool window changes its maximum
    for key, value in model.params().items():
        direction = rng.standard_normal(value.shape)
        value += eps * direction
        up = model.loss_and_grads(x, y)[0]
        value -= 2 * eps * direction
        down = model.loss_and_grads(x, y)[0]
        value += eps * direction
        assert np.sum(grads[key] * direction) == pytest.approx(
            (up - down) / (2 * eps), rel=1e-5, abs=1e-8), key
    # the softmax cross-entropy itself: uniform logits give log(10)
    assert models.softmax_cross_entropy(np.zeros((4, 10)), np.arange(4))[0] == \
        pytest.approx(np.log(10))


def test_predict_batches_and_error():
    model = lenet5(seed=SEED)
    x = np.random.default_rng(SEED).random((7, 784), dtype=np.float32)
    labels = model.forward(x).argmax(axis=1)
    np.testing.assert_array_equal(model.predict(x, batch_size=3), labels)
    assert model.predict(x).dtype == np.int64
    wrong = (labels + 1) % 10
    assert model.error(x, labels) == 0.0
    assert model.error(x, np.where(np.arange(7) < 2, wrong, labels)) == pytest.approx(
        100 * 2 / 7)


def test_bad_arch_and_input():
    with pytest.raises(ConfigError, match=exact(
            "Model arch must be one of ('lenet300', 'lenet5'), not 'alexnet'")):
        build("alexnet")
    with pytest.raises(ConfigError, match=exact(
            "lenet5 input must have shape (N, 784), not (2, 28, 28)")):
        build("lenet5").forward(np.zeros((2, 28, 28), dtype=np.float32))


@pytest.mark.parametrize("arch", ["lenet300", "lenet5"])
def test_save_load_round_trip(tmp_path, arch):
    model = build(arch, seed=SEED)
    for value in model.params().values():
        value += 0.01
    path = tmp_path / "m.npz"
    save(model, path)
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temporary left
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would create it
    back = load(path)
    assert back.arch == arch
    for key, value in model.params().items():
        assert back.params()[key].dtype == np.float32
        np.testing.assert_array_equal(back.params()[key], value)
    x = np.random.default_rng(SEED).random((4, 784), dtype=np.float32)
    np.testing.assert_array_equal(back.forward(x), model.forward(x))


def test_load_bad_files(tmp_path):
    good = build("lenet300")
    arrays = {"arch": np.array("lenet300"), **good.params()}

    def write(name, **changes):
        path = tmp_path / name
        data = {**arrays, **changes}
        np.savez(path, **{k: v for k, v in data.items() if v is not None})
        return path

    missing = tmp_path / "nope.npz"
    with pytest.raises(DataError, match=exact(
            f"model file {str(missing)!r} does not exist")):
        load(missing)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(DataError, match=f"^model file {re.escape(repr(str(junk)))} is not "
                                        f"a readable .npz"):
        load(junk)
    path = write("shape.npz", **{"ip2.W": np.zeros((100, 301), np.float32)})
    with pytest.raises(DataError, match=exact(
            f"model file {str(path)!r}: key 'ip2.W' must be a float array of shape "
            f"(100, 300), not float32 (100, 301)")):
        load(path)
    path = write("other.npz", arch=np.array("lenet5"))
    with pytest.raises(DataError, match=exact(
            f"model file {str(path)!r}: key 'conv1.W' is missing for arch 'lenet5'")):
        load(path)
    path = write("noarch.npz", arch=None)
    with pytest.raises(DataError, match=exact(
            f"model file {str(path)!r} must record its arch under key 'arch'")):
        load(path)
    path = write("unknown.npz", arch=np.array("vgg"))
    with pytest.raises(DataError, match=exact(
            f"model file {str(path)!r}: key 'arch' must be one of ('lenet300', 'lenet5'), "
            f"not 'vgg'")):
        load(path)
    path = write("extra.npz", **{"ip4.W": np.zeros(3, np.float32)})
    with pytest.raises(DataError, match=exact(
            f"model file {str(path)!r}: key 'ip4.W' does not belong to arch 'lenet300'")):
        load(path)
    path = write("fine.npz")
    with pytest.raises(DataError, match=exact(
            f"model file {str(path)!r}: key 'arch' must be 'lenet5', not 'lenet300'")):
        load(path, arch="lenet5")
    assert load(path, arch="lenet300").arch == "lenet300"


GRAPH = [{"op": "conv", "name": "c1", "in_ch": 1, "out_ch": 3, "kernel": 3, "stride": 1,
          "padding": 1},
         {"op": "relu"}, {"op": "maxpool", "size": 2}, {"op": "flatten"},
         {"op": "dense", "name": "f1", "in": 48, "out": 7}, {"op": "relu"},
         {"op": "dense", "name": "f2", "in": 7, "out": 3}]


def test_from_graph_builds_any_chain():
    model = models.from_graph([1, 8, 8], GRAPH, source={"file": "x.onnx"})
    assert model.arch == models.IMPORTED and model.input_shape == (1, 8, 8)
    assert model.graph() == GRAPH
    # ReLU before the max-pool still belongs to the conv layer (they commute)
    assert [(s["name"], s["kind"], s["shape"], s["relu"], s["pool"], s["padding"])
            for s in model.layer_specs()] == [
        ("c1", "conv", (3, 1, 3, 3), True, 2, 1), ("f1", "fc", (7, 48), True, 0, 0),
        ("f2", "fc", (3, 7), False, 0, 0)]
    x = np.random.default_rng(SEED).random((5, 64), dtype=np.float32)
    assert model.forward(x).shape == (5, 3)
    loss, grads = model.loss_and_grads(x, np.array([0, 1, 2, 0, 1]))
    assert np.isfinite(loss) and set(grads) == set(model.params())


def test_imported_model_saves_its_graph(tmp_path):
    model = models.from_graph([1, 8, 8], GRAPH, source={"file": "x.onnx"}, seed=3)
    path = tmp_path / "m.npz"
    save(model, path)
    back = load(path)
    assert back.arch == models.IMPORTED and back.graph() == GRAPH
    assert back.source == {"file": "x.onnx"} and back.input_shape == (1, 8, 8)
    x = np.random.default_rng(SEED).random((4, 64), dtype=np.float32)
    np.testing.assert_array_equal(back.forward(x), model.forward(x))


def test_bad_graphs(tmp_path):
    with pytest.raises(ConfigError, match=exact(
            "graph op 1 must be one of ['conv', 'dense', 'flatten', 'maxpool', 'relu'] with "
            "fields ('size',), not {'op': 'maxpool'}")):
        models.from_graph([4], [{"op": "dense", "name": "a", "in": 4, "out": 2},
                                {"op": "maxpool"}])
    path = tmp_path / "bad.npz"
    np.savez(path, arch=np.array(models.IMPORTED), graph=np.array("[1, 2"))
    with pytest.raises(DataError, match=f"^model file {re.escape(repr(str(path)))}: key "
                                        f"'graph' must describe the layers"):
        load(path)
