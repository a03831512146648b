"""Conv layers on the Verilator engine (cocotb): random conv layers, a conv -> conv -> fc
stack and LeNet-5 from the pipeline equal the fixed kernel in every integer, their cycles
equal the cycle model's on every layer, and resets mid-conv and stream stalls leave the
results unchanged."""

import numpy as np
import pytest
from cases import check_counts
from conftest import rtl_config

from dcsim.compress.layer import CompressedModel
from dcsim.hw.conv import ConvGeometry, positions
from dcsim.hw.image import code_width_for, compile_model
from dcsim.hw.sim import first_mismatch, image_run, locate_mismatch, run_job, simulate
from dcsim.hw.workloads import random_conv_layer, random_layer
from dcsim.kernels.run import run_fixed, trace_fixed
from dcsim.perf.cycles import model_cycles


def _signed_map(shape, rng, fmt, density=0.7):
    """Integer inputs over the whole format (the most negative value among them), as the
    floats that quantize to them exactly."""
    x = rng.integers(fmt.min_int, fmt.max_int + 1, shape)
    x[rng.random(shape) >= density] = 0
    x.reshape(-1)[rng.choice(x.size, 2, replace=False)] = (fmt.min_int, fmt.max_int)
    return (x / 2.0 ** fmt.frac_bits).astype(np.float32)


def conv_cases(rng, config):
    """Single conv layers over the issue's grid, then a conv -> conv -> fc stack."""
    fmt = config.fmt
    cases = []
    grid = [(1, 1, 1, 0, 0), (2, 3, 1, 2, 2), (3, 5, 1, 0, 2), (1, 5, 2, 2, 0),
            (3, 2, 2, 0, 0), (2, 4, 1, 0, 0), (3, 3, 2, 2, 2), (1, 3, 1, 2, 0)]
    for i, (in_ch, k, stride, padding, pool) in enumerate(grid):
        size = 8 + i % 3
        layer = random_conv_layer(f"conv{i}", 2 + i % 5 + (i == 5) * 7, in_ch, k, 0.6, rng, stride=stride,
                                  padding=padding, pool=pool, relu=bool(i % 2),
                                  scale=0.02, code_bits=config.code_bits)
        model = CompressedModel(arch=f"conv{i}", input_shape=(in_ch, size, size),
                                layers=(layer,))
        cases.append((f"conv in_ch={in_ch} k={k} stride={stride} padding={padding} "
                      f"pool={pool}", model, _signed_map(model.input_shape, rng, fmt)))
    a = random_conv_layer("a", 6, 2, 3, 0.7, rng, padding=2, relu=True, scale=0.2,
                          code_bits=config.code_bits)
    b = random_conv_layer("b", 5, 6, 3, 0.7, rng, pool=2, relu=False, scale=0.2,
                          code_bits=config.code_bits)
    f = random_layer("f", 7, 5 * 4 * 4, 0.5, rng, relu=False, scale=0.1,
                     code_bits=config.code_bits)
    stack = CompressedModel(arch="stack", input_shape=(2, 8, 8), layers=(a, b, f))
    cases.append(("conv -> conv -> fc", stack,
                  rng.random((2, 8, 8)).astype(np.float32) * (rng.random((2, 8, 8)) < 0.8)))
    return cases


def check_conv_cases(build, cases, seed=0, **job):
    """Run ``cases`` in one job; every output, every layer's cycles, the clocks to the
    first output and the event counters against the kernel and the cycle model."""
    config = build.config
    runs, images = [], []
    for _, model, x in cases:
        image = compile_model(model, config)
        images.append(image)
        runs.append(image_run(image, config.fmt.to_fixed(x).reshape(-1)))
    result = run_job(build, runs, seed=seed, **job)
    for (what, model, x), image, got in zip(cases, images, result["runs"]):
        want = run_fixed(model, x[None], config.fmt)[0]
        last = model.layers[-1]
        shape = model.layer_shapes()[-1][1] if last.kind == "conv" else None
        msg = first_mismatch(image.kernel_outputs(got["outputs"]), want, config.n_pe,
                             last.name, shape)
        assert msg is None, f"{what}: {msg}"
        modelled = model_cycles(model, [xi for xi, _ in trace_fixed(model, x, config.fmt)],
                                config)
        assert got["cycles"] == [lc.cycles for lc in modelled], \
            f"{what}: RTL {got['cycles']}, model {[lc.cycles for lc in modelled]}"
        check_counts(got, modelled, what)
    return images, result


@pytest.mark.parametrize("n_pe", [1, 4, 8])
def test_random_conv_layers_and_a_stack_are_bit_exact_and_cycle_exact(engine_build, n_pe):
    config = rtl_config(n_pe)
    cases = conv_cases(np.random.default_rng(n_pe), config)
    images, _ = check_conv_cases(engine_build(n_pe), cases)
    kinds = {(li.geometry.stride, li.geometry.padding, li.geometry.pool)
             for image in images for li in image.layers if li.geometry is not None}
    assert {s for s, _, _ in kinds} == {1, 2} and {p for _, p, _ in kinds} == {0, 2}
    assert {p for _, _, p in kinds} == {0, 2}
    negative = [x.min() for _, _, x in cases]
    assert min(negative) == config.fmt.min_int / 2 ** config.fmt.frac_bits


def test_stalls_and_a_reset_mid_conv_leave_the_results_unchanged(engine_build):
    n_pe = 4
    config = rtl_config(n_pe)
    cases = conv_cases(np.random.default_rng(40), config)[-3:]
    # streams idle or back-pressured 30% of cycles: same integers, same cycles
    check_conv_cases(engine_build(n_pe), cases, seed=3, load_pause=0.3, out_pause=0.3)
    _, model, x = cases[-1]
    image = compile_model(model, config)
    x_q = config.fmt.to_fixed(x).reshape(-1)
    runs = [image_run(image, x_q, reset_after=after) for after in (40, 700, 1500)]
    runs.append(image_run(image, x_q, load=False))
    got = run_job(engine_build(n_pe), runs)["runs"]
    assert [r["busy_at_reset"] for r in got[:3]] == [True, True, True]
    want = run_fixed(model, x[None], config.fmt)[0]
    assert np.array_equal(image.kernel_outputs(got[3]["outputs"]), want)


@pytest.mark.parametrize("n_pe", [4, 8])
def test_lenet5_from_the_pipeline_runs_whole_on_the_engine(lenet5, mnist_test, n_pe):
    """12 MNIST test images through LeNet-5 (8-bit conv codes) on the RTL: every integer and
    label equal to the fixed kernel's, every layer's cycles equal to the cycle model's."""
    config = code_width_for(lenet5, rtl_config(n_pe))
    x = mnist_test[0][:12]
    result = simulate(lenet5, x, config)
    assert result["outputs_match"], result["first_mismatch"]
    want = run_fixed(lenet5, x, config.fmt)
    assert result["labels"] == [int(v) for v in want.argmax(axis=1)]
    modelled = np.zeros(len(lenet5.layers), dtype=np.int64)
    for image in x:
        trace = trace_fixed(lenet5, image, config.fmt)
        modelled += [lc.cycles for lc in model_cycles(lenet5, [xi for xi, _ in trace],
                                                      config)]
    assert result["cycles_per_layer"] == modelled.tolist()
    assert [layer.kind for layer in lenet5.layers] == ["conv", "conv", "fc", "fc"]


def test_conv_stack_on_the_native_harness_equals_the_kernel_and_cocotb(native_build,
                                                                       engine_build):
    from dcsim.hw.native import simulate_native
    n_pe = 4
    config = rtl_config(n_pe)
    rng = np.random.default_rng(77)
    _, model, _ = conv_cases(rng, config)[-1]
    x = (rng.random((5, 2 * 8 * 8)) * (rng.random((5, 2 * 8 * 8)) < 0.8)).astype(np.float32)
    native_build(n_pe), engine_build(n_pe)
    mine, theirs = simulate_native(model, x, config), simulate(model, x, config)
    want = run_fixed(model, x, config.fmt)
    assert np.array_equal(mine["outputs"], want) and mine["outputs_match"]
    assert mine["cycles_per_layer"] == theirs["cycles_per_layer"]


def test_a_wrong_conv_write_is_located_by_position_channel_and_pe(engine_build):
    """The accumulator monitor's writes of a conv -> conv -> fc run match the kernel's
    partial sums position by position; one corrupted write is named by layer, output
    position, channel, PE and cycle."""
    n_pe = 4
    config = rtl_config(n_pe)
    _, model, x = conv_cases(np.random.default_rng(5), config)[-1]
    image = compile_model(model, config)
    trace = trace_fixed(model, x, config.fmt)
    run = run_job(engine_build(n_pe), [image_run(image, config.fmt.to_fixed(x).reshape(-1),
                                                 monitor=True)])["runs"][0]
    inputs = [xi for xi, _ in trace]
    assert locate_mismatch(model, inputs, run, n_pe, config.fmt) is None
    writes = np.asarray(run["writes"], dtype=np.int64)
    layer_b = (writes[:, 0] > run["cycles"][0]) & (writes[:, 0] <= sum(run["cycles"][:2]))
    k = int(np.flatnonzero(layer_b & (writes[:, 5] == 7))[3])
    cycle, pe, local, col, value, pos = (int(v) for v in writes[k])
    writes[k, 4] += 1
    msg = locate_mismatch(model, inputs, dict(run, writes=writes), n_pe, config.fmt)
    oy, ox, _, _ = positions(ConvGeometry.of(model.layers[1], (6, 10, 10), n_pe))
    assert msg.startswith(
        f"layer b output position 7 (y {oy[7]}, x {ox[7]}): first wrong accumulator write at "
        f"cycle {cycle - run['cycles'][0]} of the layer: column {col}, channel "
        f"{local * n_pe + pe} (PE {pe}, local row {local}): got {value + 1}, want {value}")
