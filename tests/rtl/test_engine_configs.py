"""The engine on Verilator at configurations the ``small`` preset does not reach: queue
depths 1 and 16 (2 is ``rtl_config(1)``), index widths 2 and 3, 3 and 16 PEs, 3- and
8-bit codes, 128-bit sparse words, and a build whose X values are drawn per seed
(``conftest.VARIANTS``). Every case is checked by ``cases.check_cases``: outputs against
the fixed kernel, layer cycles against the cycle model, clocks to the first output,
event counts."""

import numpy as np
import pytest
from cases import check_cases, expected, random_cases
from conftest import VARIANTS

from dcsim.hw.image import compile_model
from dcsim.hw.sim import image_run, run_job
from dcsim.hw.workloads import random_activations, random_layer, single_layer_model


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_random_cases(variant_build, name):
    build = variant_build(name)
    config = build.config
    seed = 300 + list(VARIANTS).index(name)
    cases = random_cases(np.random.default_rng(seed), config)
    # an x_unique build runs the same cases under two X seeds: results must not change
    for x_seed in ((seed, seed + 1) if build.x_unique else (seed,)):
        print(f"seed {seed}, X seed {x_seed}")
        seen = check_cases(build, cases, x_seed)
    # the cases really contain what the timing rules single out
    assert seen["stalls"] >= 1 and seen["fillers"] >= 1 and seen["empty_pairs"] >= 1
    assert seen["saturated"] >= 1 and seen["negative_hidden"] >= 1
    if config.word_bits > 64:
        # slots above bit 63 are in use (they were lost when words were uint64)
        images = [compile_model(model, config) for _, model, _ in cases]
        assert any(int(w) >> 64 for im in images for words in im.sparse for w in words)


def test_variants_cover_the_knobs():
    configs = [c for c, _ in VARIANTS.values()]
    assert {c.fifo_depth for c in configs} == {1, 16}
    assert {c.idx_bits for c in configs} == {2, 3} and {c.n_pe for c in configs} == {3, 16}
    assert any(c.word_bits == 128 for c in configs)
    assert [x_unique for _, x_unique in VARIANTS.values()].count(True) == 1


def test_wide_words_load_word_by_word_from_python(variant_build):
    # load pauses switch from the $readmemh feeder to tb.LoadDriver: 128-bit sparse
    # words through cocotb's handle assignment, checked by the same case check
    build = variant_build("narrow")
    config = build.config
    assert config.word_bits == 128
    seed = 310
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    layer = random_layer("dense", 4 * config.n_pe + 3, 24, 1.0, rng, code_bits=config.code_bits)
    model = single_layer_model(layer)
    x_q = config.fmt.to_fixed(random_activations(24, 1.0, rng))
    image = compile_model(model, config)
    assert any(int(w) >> 64 for words in image.sparse for w in words)
    got = run_job(build, [image_run(image, x_q)], seed=seed, load_pause=0.2)["runs"][0]
    assert got["outputs"] == expected(model, x_q, config.fmt)[-1].tolist()
