"""One Verilator build per engine configuration per test session (reused across runs)."""

import pytest

from dcsim.hw.config import EngineConfig
from dcsim.hw.verilator import build_engine

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
