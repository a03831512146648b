"""The image compiler: words decode back to the interleaved CSC, FitError messages."""

import dataclasses

import numpy as np
import pytest

from dcsim.compress.layer import CompressedModel
from dcsim.compress.sparse import interleave
from dcsim.errors import ConfigError, FitError
from dcsim.hw.config import EngineConfig
from dcsim.hw.image import code_width_for, compile_model
from dcsim.hw.layouts import Target
from dcsim.hw.workloads import lenet_300_100, random_conv_layer, random_layer, single_layer_model


def _entries(image, p):
    """(z, code) of every stored entry of PE p, unpacked from its sparse words."""
    c = image.config
    z, code = [], []
    for word in image.sparse[p]:
        for s in range(c.entries_per_word):
            e = (int(word) >> (s * c.entry_bits)) & ((1 << c.entry_bits) - 1)
            z.append(e & ((1 << c.idx_bits) - 1))
            code.append(e >> c.idx_bits)
    return np.array(z), np.array(code)


def _entry_index(pointer, c):
    return (pointer >> c.slot_bits) * c.entries_per_word + (pointer & ((1 << c.slot_bits) - 1))


@pytest.mark.parametrize("n_pe", [1, 3, 4])
def test_words_and_pointers_decode_to_interleave(n_pe):
    rng = np.random.default_rng(10 + n_pe)
    model = CompressedModel("m", (40,), [random_layer("a", 23, 40, 0.2, rng),
                                         random_layer("b", 9, 23, 0.5, rng, relu=False)])
    c = EngineConfig(n_pe=n_pe, sparse_words=256, ptr_depth=256, act_depth=64, bias_depth=64)
    image = compile_model(model, c)
    for li, layer in zip(image.layers, model.layers):
        assert li.ptr_base % 2 == 0
        for p, m in enumerate(interleave(layer.codes, n_pe, c.idx_bits)):
            z, code = _entries(image, p)
            ptr = image.pointers[p][li.ptr_base:li.ptr_base + layer.cols + 1]
            first = _entry_index(ptr, c)
            assert np.array_equal(first - first[0], m.line_ptr)
            sl = slice(int(first[0]), int(first[-1]))
            assert np.array_equal(z[sl], m.z) and np.array_equal(code[sl], m.code)
            assert np.array_equal(li.col_entries[p], np.diff(m.line_ptr))


@pytest.mark.parametrize("word_bits, idx_bits, code_bits", [(128, 2, 3), (256, 4, 4),
                                                            (72, 3, 6)])
def test_wide_words_keep_every_slot(word_bits, idx_bits, code_bits):
    # slots above bit 63 used to be lost in uint64 words
    rng = np.random.default_rng(word_bits)
    layer = random_layer("a", 61, 30, 0.7, rng, code_bits=code_bits)
    c = EngineConfig(n_pe=2, idx_bits=idx_bits, code_bits=code_bits, word_bits=word_bits,
                     sparse_words=256, ptr_depth=256, act_depth=64, bias_depth=64)
    assert c.entries_per_word * c.entry_bits > 64
    image = compile_model(single_layer_model(layer), c)
    for p, m in enumerate(interleave(layer.codes, 2, idx_bits)):
        assert all(0 <= int(w) < 1 << word_bits for w in image.sparse[p])
        assert max(int(w) for w in image.sparse[p]) >= 1 << 64
        z, code = _entries(image, p)
        n = m.n_entries
        assert np.array_equal(z[:n], m.z) and np.array_equal(code[:n], m.code)
        assert not z[m.n_entries:].any() and not code[m.n_entries:].any()
        sparse = [d for t, q, _, _, d in image.load_words() if t == Target.SPARSE and q == p]
        assert sparse == [int(w) for w in image.sparse[p]]


def test_biases_and_codebooks_are_the_fixed_kernels_integers():
    rng = np.random.default_rng(5)
    layer = random_layer("a", 10, 8, 0.5, rng)
    c = EngineConfig(n_pe=3)
    image = compile_model(single_layer_model(layer), c)
    bias_q = c.fmt.to_fixed(layer.bias)
    for p in range(3):
        own = bias_q[p::3]
        assert image.biases[p][:own.shape[0]].tolist() == own.tolist()
    words = image.load_words()
    cb = [d for t, _, b, a, d in words if t == Target.CODEBOOK]
    assert len(cb) == 16 and cb[0] == 0
    want = c.fmt.to_fixed(layer.codebook) & 0xFFFF
    assert cb == want.tolist()
    assert [t for t, *_ in words].count(Target.DESC) == 1


def test_input_words_interleave():
    rng = np.random.default_rng(6)
    image = compile_model(single_layer_model(random_layer("a", 4, 7, 0.5, rng)), EngineConfig(n_pe=3))
    words = image.input_words(np.array([1, -2, 3, 4, 5, 6, 7]))
    assert [(p, a, d) for _, p, _, a, d in words][:3] == [(0, 0, 1), (1, 0, 0xFFFE), (2, 0, 3)]
    assert words[6][1:4] == (0, 0, 2)
    # the ends of the 16-bit format go in as two's complement; one past them is refused
    ends = image.input_words(np.array([-32768, 32767, 0, 0, 0, 0, 0]))
    assert [d for *_, d in ends[:2]] == [0x8000, 0x7FFF]
    for j, bad in ((0, -32769), (3, 32768), (6, 1 << 20)):
        x = np.zeros(7, dtype=np.int64)
        x[j] = bad
        with pytest.raises(ConfigError, match=rf"^input activation {j} must be in "
                                              rf"-32768..32767 \(16-bit fixed point\), "
                                              rf"not {bad}$"):
            image.input_words(x)


def test_lenet_fits_small_at_every_test_n_pe():
    model = lenet_300_100(np.random.default_rng(7))
    for n in (1, 2, 4, 8):
        image = compile_model(model, EngineConfig.preset("small", n_pe=n))
        assert image.n_layers == 3


def test_fit_errors_name_the_memory_and_overflow():
    rng = np.random.default_rng(8)
    model = single_layer_model(random_layer("big", 64, 64, 1.0, rng))
    with pytest.raises(FitError, match=r"^Model 'layer-big' needs 512 sparse-matrix words on its "
                                       r"busiest PE \(PE 0\) but the engine has 100: over by 412 "
                                       r"words; raise sparse_words or n_pe$"):
        compile_model(model, EngineConfig(n_pe=1, sparse_words=100, act_depth=64))
    with pytest.raises(FitError, match=r"^Layer 'big': its input vector needs 64 activations per "
                                       r"PE but the activation memory holds 32: over by 32; "
                                       r"raise act_depth or n_pe$"):
        compile_model(model, EngineConfig(n_pe=1, act_depth=32))
    with pytest.raises(FitError, match=r"needs 65 column pointers per PE but the engine has 64: "
                                       r"over by 1; raise ptr_depth$"):
        compile_model(model, EngineConfig(n_pe=1, ptr_depth=64, act_depth=64, sparse_words=1000))
    wide = single_layer_model(random_layer("w", 4, 4, 1.0, rng, code_bits=5))
    with pytest.raises(FitError, match=r"^Layer 'w' needs 5 code bits but the engine has "
                                       r"code_bits=4; build with code_bits=5$"):
        compile_model(wide, EngineConfig())
    deep = CompressedModel("d", (4,), [random_layer(f"l{i}", 4, 4, 1.0, rng) for i in range(3)])
    with pytest.raises(FitError, match=r"has 3 layers but the engine's descriptor table holds 2"):
        compile_model(deep, EngineConfig(max_layers=2))


def test_code_width_follows_a_wider_model_and_never_narrows():
    rng = np.random.default_rng(5)
    model = CompressedModel(arch="two", input_shape=(12,), layers=(
        random_layer("a", 9, 12, 0.5, rng, code_bits=3),
        random_layer("b", 4, 9, 0.5, rng, code_bits=5)))
    eie = EngineConfig.preset("eie64")                               # code_bits 4
    assert code_width_for(model, eie) == dataclasses.replace(eie, code_bits=5)
    wide = EngineConfig.preset("small")                              # code_bits 6
    assert code_width_for(model, wide) is wide
    with pytest.raises(FitError, match=r"^Layer 'b' needs 5 code bits but the engine has "
                                       r"code_bits=4; build with code_bits=5$"):
        compile_model(model, eie)
    compile_model(model, code_width_for(model, eie))


def test_load_words_refuse_values_outside_the_format():
    import dataclasses

    rng = np.random.default_rng(9)
    image = compile_model(single_layer_model(random_layer("a", 4, 7, 0.5, rng)), EngineConfig(n_pe=2))
    biases = [b.copy() for b in image.biases]
    biases[1][0] = 1 << 15
    with pytest.raises(ConfigError, match=r"^PE 1 bias 0 must be in -32768..32767 \(16-bit "
                                          r"fixed point\), not 32768$"):
        dataclasses.replace(image, biases=biases).load_words()


def test_memory_use_is_the_rule_compile_model_refuses_by():
    import dataclasses

    from dcsim.hw.image import memory_use

    model = lenet_300_100(np.random.default_rng(10))
    c = EngineConfig.preset("small", n_pe=4)
    use = {name: req for name, req, _ in memory_use(model, c).memories}
    # by hand: pointers 785 (+1 to stay even) + 301 (+1) + 101; biases 75 + 25 + 3
    assert use["ptr_depth"] == 786 + 302 + 101 and use["bias_depth"] == 103
    assert use["act_depth"] == 196 and use["max_layers"] == 3
    entries = max(sum(int(np.diff(m.line_ptr).sum()) for m in
                      [interleave(layer.codes, 4, c.idx_bits)[p] for layer in model.layers])
                  for p in range(4))
    assert use["sparse_words"] == -(-entries // c.entries_per_word)
    for field, ok, short in (("sparse_words", use["sparse_words"], use["sparse_words"] - 1),
                             ("ptr_depth", use["ptr_depth"] + 1, use["ptr_depth"] - 1),
                             ("bias_depth", use["bias_depth"], use["bias_depth"] - 1)):
        compile_model(model, dataclasses.replace(c, **{field: ok}))
        with pytest.raises(FitError, match="over by 1"):
            compile_model(model, dataclasses.replace(c, **{field: short}))


def test_a_cnn_that_does_not_fit_gets_one_line_naming_the_memory():
    """LeNet-5's input map is one channel: all 784 pixels on PE 0, whatever n_pe."""
    rng = np.random.default_rng(0)
    conv = random_conv_layer("conv1", 20, 1, 5, 0.5, rng, pool=2)
    fc = random_layer("ip1", 10, 20 * 12 * 12, 0.1, rng)
    model = CompressedModel("cnn", (1, 28, 28), (conv, fc))
    with pytest.raises(FitError, match=r"^Layer 'conv1': its input map needs 784 activations "
                                       r"per PE but the activation memory holds 512: over by "
                                       r"272; raise act_depth or n_pe$"):
        compile_model(model, EngineConfig.preset("small", n_pe=8, act_depth=512))
    image = compile_model(model, EngineConfig.preset("small", n_pe=8))
    conv_image, fc_image = image.layers
    assert conv_image.geometry.positions == 576 and conv_image.cols == 25 * 8
    assert fc_image.cols == 3 * 144 * 8 and image.n_outputs == 10
