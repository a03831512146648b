"""One Verilator build per engine configuration per test session (reused across runs)."""

import dataclasses

import pytest

from dcsim.compress.pipeline import CompressionConfig, DeepCompression
from dcsim.hw.config import EngineConfig
from dcsim.hw.native import build_native
from dcsim.hw.verilator import build_engine
from dcsim.nn.datasets import load_mnist
from dcsim.nn.models import build

RTL_N_PE = (1, 2, 4, 8)


def rtl_config(n_pe: int) -> EngineConfig:
    """The configuration every RTL test with ``n_pe`` PEs uses (one build each)."""
    return EngineConfig.preset("small", n_pe=n_pe)


@pytest.fixture(scope="session")
def engine_build():
    """``engine_build(n_pe)`` -> the cached EngineBuild of ``rtl_config(n_pe)``."""
    cache = {}

    def get(n_pe: int):
        if n_pe not in cache:
            cache[n_pe] = build_engine(rtl_config(n_pe))
        return cache[n_pe]

    return get


@pytest.fixture(scope="session")
def native_build():
    """``native_build(n_pe)`` -> the cached NativeBuild (native harness, plain variant)
    of ``rtl_config(n_pe)``."""
    cache = {}

    def get(n_pe: int):
        if n_pe not in cache:
            cache[n_pe] = build_native(rtl_config(n_pe))
        return cache[n_pe]

    return get


@pytest.fixture(scope="session")
def lenet():
    """A LeNet-300-100 through the real pipeline (trained on a slice of MNIST: seconds)."""
    data = load_mnist()
    data = dataclasses.replace(data, train_x=data.train_x[:3000], train_y=data.train_y[:3000])
    config = CompressionConfig(arch="lenet300", baseline_epochs=1, prune_steps=1,
                               retrain_epochs=1, finetune_epochs=1)
    model = DeepCompression(config, progress=False, log=lambda msg: None).run(
        build("lenet300", seed=0), data)
    assert [l.density for l in model.layers] == pytest.approx([0.08, 0.09, 0.26], abs=0.002)
    return model


@pytest.fixture(scope="session")
def mnist_test():
    m = load_mnist()
    return m.test_x, m.test_y
