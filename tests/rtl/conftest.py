"""Verilator builds shared by the RTL tests: one per engine configuration per session."""

import dataclasses

import pytest

from dcsim.compress.pipeline import CompressionConfig, DeepCompression
from dcsim.hw.config import EngineConfig
from dcsim.hw.native import build_native
from dcsim.hw.verilator import build_engine
from dcsim.nn.datasets import load_mnist
from dcsim.nn.models import build

RTL_N_PE = (1, 2, 4, 8)
_SMALL_MEMORIES = dict(sparse_words=512, ptr_depth=512, act_depth=64, bias_depth=256,
                       max_layers=4)
#: Builds that vary the knobs the ``small`` preset fixes, several knobs per build to keep
#: the suite's build time down: name -> (config, built with X_UNIQUE_ARGS).
VARIANTS = {
    # the shallowest queue, the narrowest index (fillers every 4 rows), an odd PE count,
    # 3-bit codes in 128-bit words (25 entries a word, slots up to bit 124); built with
    # --x-assign unique --x-initial unique
    "narrow": (EngineConfig(n_pe=3, fifo_depth=1, idx_bits=2, code_bits=3, word_bits=128,
                            **_SMALL_MEMORIES), True),
    # a deep queue, 16 PEs, 3-bit index, 8-bit codes (5 entries of 11 bits a 64-bit word)
    "wide": (EngineConfig(n_pe=16, fifo_depth=16, idx_bits=3, code_bits=8,
                          **dict(_SMALL_MEMORIES, act_depth=16)), False),
}


def rtl_config(n_pe: int) -> EngineConfig:
    """The configuration every RTL test with ``n_pe`` PEs uses (one build each): the
    ``small`` preset, with a 2-deep queue at n_pe=1 (queue depths 1 and 16 are in
    ``VARIANTS``)."""
    if n_pe == 1:
        return EngineConfig.preset("small", n_pe=1, fifo_depth=2)
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
def variant_build():
    """``variant_build(name)`` -> the cached EngineBuild of ``VARIANTS[name]``."""
    cache = {}

    def get(name: str):
        if name not in cache:
            config, x_unique = VARIANTS[name]
            cache[name] = build_engine(config, x_unique=x_unique)
        return cache[name]

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


@pytest.fixture(scope="session")
def lenet5():
    """A LeNet-5 through the real pipeline (trained on a slice of MNIST: seconds); its
    conv layers get 8-bit codes as in the paper."""
    data = load_mnist()
    data = dataclasses.replace(data, train_x=data.train_x[:1000], train_y=data.train_y[:1000])
    config = CompressionConfig(arch="lenet5", baseline_epochs=1, prune_steps=1,
                               retrain_epochs=1, finetune_epochs=1)
    return DeepCompression(config, progress=False, log=lambda msg: None).run(
        build("lenet5", seed=0), data)
