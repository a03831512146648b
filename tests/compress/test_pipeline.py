"""The pipeline on a small MNIST slice: densities, masks held, codes and meta."""

import dataclasses

import numpy as np
import pytest

from dcsim.compress.pipeline import PAPER_DENSITY, CompressionConfig, DeepCompression
from dcsim.errors import ConfigError
from dcsim.nn import models
from dcsim.nn.datasets import load_mnist


@pytest.fixture(scope="module")
def run():
    data = load_mnist()
    data = dataclasses.replace(data, train_x=data.train_x[:1000], train_y=data.train_y[:1000],
                               test_x=data.test_x[:500], test_y=data.test_y[:500])
    config = CompressionConfig(arch="lenet300", baseline_epochs=1, prune_steps=2,
                               retrain_epochs=1, finetune_epochs=1, code_bits_fc=4)
    model = models.build("lenet300", seed=0)
    seen = []
    compressed = DeepCompression(
        config, progress=False, log=lambda msg: None,
        on_stage=lambda stage, m: seen.append((stage, m.params()["ip1.W"].copy()))).run(model, data)
    return model, compressed, seen


def test_on_stage_sees_every_stage_in_order(run):
    _, compressed, seen = run
    assert [stage for stage, _ in seen] == ["baseline", "prune 1", "prune 2", "shared", "finetuned"]
    ip1 = compressed.layer("ip1")
    assert np.count_nonzero(seen[0][1]) == ip1.n_weights
    assert np.array_equal(seen[2][1] != 0, ip1.codes != 0)
    assert np.array_equal(seen[-1][1], ip1.weights())


def test_densities_reach_the_paper_targets(run):
    _, compressed, _ = run
    for layer in compressed.layers:
        assert layer.density == pytest.approx(PAPER_DENSITY["lenet300"][layer.name], abs=0.002)


def test_model_weights_are_the_decoded_codes(run):
    model, compressed, _ = run
    params = model.params()
    for layer in compressed.layers:
        assert np.array_equal(params[f"{layer.name}.W"], layer.weights())
        assert layer.code_bits == 4 and layer.codebook.shape == (16,)
        assert np.array_equal(params[f"{layer.name}.b"], layer.bias)


def test_meta_records_every_stage(run):
    _, compressed, _ = run
    for key in ("baseline_error", "pruned_error", "shared_error", "compressed_error"):
        assert 0 <= compressed.meta[key] <= 100
    assert compressed.meta["config"]["prune_steps"] == 2
    assert [l.relu for l in compressed.layers] == [True, True, False]


@pytest.mark.parametrize("kw, message", [
    (dict(arch="vgg"), "arch must be one of ['imported', 'lenet300', 'lenet5'], not 'vgg'"),
    (dict(density={"ip9": 0.1}), "density names a layer of lenet300: one of ['ip1', 'ip2', 'ip3'], not 'ip9'"),
    (dict(density={"ip1": 0}), "density of ip1 must be in (0, 1], not 0"),
    (dict(prune_steps=0), "prune_steps must be a positive integer, not 0"),
    (dict(code_bits_fc=9), "code_bits_fc must be an integer in 1..8, not 9"),
    (dict(init="kmeans++"), "init must be one of ('linear', 'density', 'forgy'), not 'kmeans++'"),
    (dict(code_bits={"ip9": 4}), "code_bits names a layer of lenet300: one of ['ip1', 'ip2', 'ip3'], not 'ip9'"),
    (dict(code_bits={"ip1": 9}), "code bits of ip1 must be an integer in 1..8, not 9"),
])
def test_bad_configs(kw, message):
    with pytest.raises(ConfigError) as info:
        CompressionConfig(**kw)
    assert str(info.value) == message


@pytest.mark.parametrize("n_weights, density", [
    (100, 0.66), (500, 0.66), (1000, 0.26), (25_000, 0.12), (10 ** 7, 0.08),
    # between the paper's 1000 (26%) and 5000 (19%): t = log(2000/1000) / log(5000/1000)
    (2000, 0.26 * (0.19 / 0.26) ** (np.log(2) / np.log(5))),
])
def test_default_density_follows_the_paper_tables(n_weights, density):
    from dcsim.compress.pipeline import default_density
    assert default_density(n_weights) == pytest.approx(density, rel=1e-9)


def test_imported_densities_are_checked_against_the_model():
    model = models.from_graph([10], [{"op": "dense", "name": "a", "in": 10, "out": 500},
                                     {"op": "relu"},
                                     {"op": "dense", "name": "b", "in": 500, "out": 2}])
    config = CompressionConfig(arch=models.IMPORTED, density={"b": 0.5})
    assert config.layer_density(model.layer_specs()) == {"a": 0.19, "b": 0.5}
    with pytest.raises(ConfigError) as info:
        CompressionConfig(arch=models.IMPORTED, density={"c": 0.5}).layer_density(
            model.layer_specs())
    assert str(info.value) == "density names a layer of the model: one of ['a', 'b'], not 'c'"


def test_per_layer_code_bits_override_the_kinds():
    config = CompressionConfig(arch="lenet5", code_bits={"ip2": 3, "conv1": 6})
    assert config.bits("fc", "ip2") == (3, 5)
    assert config.bits("fc", "ip1") == (4, 5)       # LeNet-5's fc default
    assert config.bits("conv", "conv1") == (6, 8)
    assert config.bits("conv") == (8, 8)
