"""SGD trainer: learning-rate policies, config validation, hooks, reproducibility,
and that a few hundred MNIST images teach both models something."""

import re

import numpy as np
import pytest

from dcsim.errors import ConfigError
from dcsim.nn.datasets import load_mnist
from dcsim.nn.models import build
from dcsim.nn.train import RECOMMENDED, SGDConfig, learning_rate, train

SEED = 7
SMALL = SGDConfig(lr=0.05, epochs=4, batch_size=32, seed=SEED)


def exact(message):
    return f"^{re.escape(message)}$"


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


def test_learning_rate_policies():
    inv = SGDConfig()
    assert learning_rate(inv, 0) == 0.01
    assert learning_rate(inv, 10_000) == pytest.approx(0.01 * 2 ** -0.75)
    step = SGDConfig(lr=0.1, lr_policy="step", step_size=100, step_factor=0.5)
    assert [learning_rate(step, i) for i in (0, 99, 100, 250)] == [0.1, 0.1, 0.05, 0.025]
    assert learning_rate(SGDConfig(lr_policy="fixed"), 10 ** 6) == 0.01


@pytest.mark.parametrize("field, value, message", [
    ("lr", 0, "lr must be a positive float, not 0"),
    ("lr", "0.1", "lr must be a positive float, not '0.1'"),
    ("momentum", 1.0, "momentum must be below 1, not 1.0"),
    ("weight_decay", -1e-4, "weight_decay must be a non-negative float, not -0.0001"),
    ("lr_policy", "cosine", "lr_policy must be one of ('inv', 'step', 'fixed'), "
                            "not 'cosine'"),
    ("epochs", 2.5, "epochs must be a non-negative int, not 2.5"),
    ("batch_size", 0, "batch_size must be a positive int, not 0"),
    ("step_size", True, "step_size must be a positive int, not True"),
    ("seed", -1, "seed must be a non-negative int, not -1"),
])
def test_config_validation(field, value, message):
    with pytest.raises(ConfigError, match=exact(message)):
        SGDConfig(**{field: value})


def test_recommended_configs_are_for_the_zoo():
    assert set(RECOMMENDED) == {"lenet300", "lenet5"}
    assert all(isinstance(c, SGDConfig) and c.epochs > 0 for c in RECOMMENDED.values())


def test_same_seed_same_weights(mnist):
    x, y = mnist.train_x[:256], mnist.train_y[:256]
    runs = []
    for seed in (SEED, SEED, SEED + 1):
        model = build("lenet300", seed=0)
        train(model, x, y, SGDConfig(epochs=2, batch_size=32, seed=seed), progress=False)
        runs.append(model.params())
    for key in runs[0]:
        np.testing.assert_array_equal(runs[0][key], runs[1][key])
    assert not np.array_equal(runs[0]["ip1.W"], runs[2]["ip1.W"])


class MaskHook:
    """Keeps the masked-out weights at exactly zero, the way pruning does."""

    def __init__(self, masks):
        self.masks = masks
        self.grad_calls = self.step_calls = 0
        self.lrs = []

    def on_grads(self, grads, lr):
        self.grad_calls += 1
        self.lrs.append(lr)
        for key, mask in self.masks.items():
            grads[key] *= mask

    def on_step(self, params, lr):
        self.step_calls += 1
        for key, mask in self.masks.items():
            params[key] *= mask


def test_mask_hook_keeps_pruned_weights_zero(mnist):
    print("seed", SEED)
    rng = np.random.default_rng(SEED)
    model = build("lenet300", seed=SEED)
    params = model.params()
    masks = {key: (rng.random(params[key].shape) < 0.3).astype(np.float32)
             for key in ("ip1.W", "ip2.W")}
    for key, mask in masks.items():
        params[key] *= mask
    before = {k: v.copy() for k, v in params.items()}
    hook = MaskHook(masks)
    config = SGDConfig(epochs=2, batch_size=50, seed=SEED)
    history = train(model, mnist.train_x[:300], mnist.train_y[:300], config, hooks=[hook],
                    progress=False)
    assert hook.grad_calls == hook.step_calls == history["steps"] == 12
    assert hook.lrs == [learning_rate(config, i) for i in range(12)]
    for key, mask in masks.items():
        assert np.all(params[key][mask == 0] == 0)
        assert not np.array_equal(params[key][mask == 1], before[key][mask == 1])


def test_hooks_with_one_method_and_in_place_grads(mnist):
    class ZeroGrads:
        def on_grads(self, grads, lr):
            for g in grads.values():
                g[...] = 0

    class SeeParams:
        def __init__(self):
            self.seen = None

        def on_step(self, params, lr):
            self.seen = params

    model = build("lenet300", seed=SEED)
    before = {k: v.copy() for k, v in model.params().items()}
    see = SeeParams()
    train(model, mnist.train_x[:100], mnist.train_y[:100],
          SGDConfig(epochs=1, batch_size=50), hooks=[ZeroGrads(), see], progress=False)
    for key, value in model.params().items():
        np.testing.assert_array_equal(value, before[key])  # weight decay zeroed too
        assert see.seen[key] is value  # the live arrays


@pytest.mark.parametrize("arch, limit", [("lenet300", 25.0), ("lenet5", 25.0)])
def test_few_hundred_images_learn(mnist, arch, limit):
    model = build(arch, seed=SEED)
    evals = []
    history = train(model, mnist.train_x[:500], mnist.train_y[:500], SMALL,
                    progress=False, eval_fn=lambda m: evals.append(1) or len(evals))
    assert history["eval"] == [1.0, 2.0, 3.0, 4.0]
    assert len(history["loss"]) == len(history["epoch_s"]) == 4
    assert history["loss"][-1] < history["loss"][0]
    error = model.error(mnist.val_x[:1000], mnist.val_y[:1000])
    print(arch, "validation error after 500 images x 4 epochs:", error)
    assert error < limit


def test_bad_training_data():
    with pytest.raises(ConfigError, match=exact(
            "training images and labels must be (N, features) and (N,) with N > 0, "
            "not (3, 784) and (2,)")):
        train(build("lenet300"), np.zeros((3, 784), np.float32), np.zeros(2, np.int64),
              SGDConfig(epochs=1), progress=False)
