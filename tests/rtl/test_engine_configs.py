"""The engine on Verilator at configurations the ``small`` preset does not reach: queue
depths 1, 2 and 16, index widths 2 and 3, 3 and 16 PEs, 3-, 5- and 8-bit codes, 128-bit
sparse words, and a build with X values drawn per seed (``conftest.VARIANTS``). Every
case is checked by ``cases.check_cases``: outputs against the fixed kernel, layer cycles
against the cycle model, clocks to the first output, event counts."""

import numpy as np
import pytest
from cases import check_cases, random_cases
from conftest import VARIANTS

from dcsim.hw.image import compile_model


@pytest.mark.parametrize("name", [n for n, (_, x_unique) in VARIANTS.items() if not x_unique])
def test_variant_random_cases(variant_build, name):
    seed = 300 + list(VARIANTS).index(name)
    print(f"seed {seed}")
    config = VARIANTS[name][0]
    cases = random_cases(np.random.default_rng(seed), config)
    seen = check_cases(variant_build(name), cases, seed)
    # the cases really contain what the timing rules single out
    assert seen["stalls"] >= 1 and seen["fillers"] >= 1 and seen["empty_pairs"] >= 1
    assert seen["saturated"] >= 1 and seen["negative_hidden"] >= 1
    if config.word_bits > 64:
        # slots above bit 63 are in use (they were lost when words were uint64)
        images = [compile_model(model, config) for _, model, _ in cases]
        assert any(int(w) >> 64 for im in images for words in im.sparse for w in words)


def test_x_unique_build_gives_the_same_results_for_every_seed(variant_build):
    name = next(n for n, (_, x_unique) in VARIANTS.items() if x_unique)
    build = variant_build(name)
    assert build.x_unique and build.plusargs(5) == ["+verilator+seed+5",
                                                   "+verilator+rand+reset+2"]
    for seed in (1, 2):
        print(f"seed {seed}")
        cases = random_cases(np.random.default_rng(400), build.config)
        seen = check_cases(build, cases, seed)
        assert seen["stalls"] >= 1 and seen["fillers"] >= 1
