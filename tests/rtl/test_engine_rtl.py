"""The engine on Verilator (cocotb): every integer against the fixed kernel, every
layer's cycle count against the cycle model (dcsim.perf.cycles)."""

import numpy as np
import pytest
from conftest import RTL_N_PE, rtl_config

from dcsim.hw.image import compile_model
from dcsim.hw.sim import first_mismatch, image_run, run_job, simulate
from dcsim.hw.workloads import random_activations, random_layer, single_layer_model
from dcsim.kernels.run import run_fixed, trace_fixed
from dcsim.kernels.spmv import layer_fixed
from dcsim.perf.cycles import layer_cycles, model_cycles
from dcsim.perf.estimate import estimate


def _random_cases(rng, n_pe):
    """(description, layer, x float) covering the corner cases of the issue."""
    rows_odd = 4 * n_pe + 3
    cases = [
        ("no weights", random_layer("zero_w", 13, 20, 0.0, rng), random_activations(20, 0.5, rng)),
        ("dense weights", random_layer("dense", rows_odd, 24, 1.0, rng), random_activations(24, 1.0, rng)),
        ("gaps over 15 rows", random_layer("gaps", 70 * n_pe, 30, 0.02, rng),
         random_activations(30, 0.9, rng)),
        ("all-zero activations", random_layer("zero_x", 11, 16, 0.5, rng), np.zeros(16, np.float32)),
        ("saturating", random_layer("sat", 9, 40, 0.8, rng, scale=40.0, bias_scale=20.0, relu=False),
         random_activations(40, 0.9, rng, scale=20.0)),
        ("one row", random_layer("row1", 1, 33, 0.7, rng), random_activations(33, 0.6, rng)),
        ("one column", random_layer("col1", 17, 1, 0.7, rng), np.array([0.75], np.float32)),
    ]
    for density in (0.05, 0.3, 0.6):
        layer = random_layer(f"d{int(density * 100)}", rows_odd + 2, 3 * n_pe + 5, density, rng)
        cases.append((f"density {density}", layer, random_activations(layer.cols, 0.5, rng)))
    empty = random_layer("empty_cols", 10, 12, 0.6, rng)
    empty.codes[:, ::3] = 0
    cases.append(("empty columns", empty, random_activations(12, 1.0, rng)))
    return cases


@pytest.mark.parametrize("n_pe", RTL_N_PE)
def test_random_layers(engine_build, n_pe):
    seed = 100 + n_pe
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    config = rtl_config(n_pe)
    fmt = config.fmt
    cases = _random_cases(rng, n_pe)
    runs, wants = [], []
    images, inputs = [], []
    for _, layer, x in cases:
        x_q = fmt.to_fixed(x)
        images.append(compile_model(single_layer_model(layer), config))
        inputs.append(x_q)
        runs.append(image_run(images[-1], x_q))
        wants.append(layer_fixed(layer, x_q, fmt))
    result = run_job(engine_build(n_pe), runs, seed=seed)
    saturated = 0
    for (what, layer, _), want, got in zip(cases, wants, result["runs"]):
        msg = first_mismatch(got["outputs"], want, n_pe, layer.name)
        assert msg is None, f"{what}: {msg} (seed {seed})"
        saturated += int(np.any(np.abs(want) >= 2 ** 15 - 1))
    assert saturated >= 1
    for (what, layer, _), image, x_q, got in zip(cases, images, inputs, result["runs"]):
        li = image.layers[0]
        model = layer_cycles(li.col_entries, x_q, li.rows, config, name=li.name)
        assert got["cycles"] == [model.cycles], f"{what}: RTL {got['cycles']}, model {model.cycles}"


@pytest.mark.parametrize("n_pe", RTL_N_PE)
def test_every_lenet_layer(engine_build, lenet, mnist_test, n_pe):
    config = rtl_config(n_pe)
    trace = trace_fixed(lenet, mnist_test[0][0], config.fmt)
    runs = [image_run(compile_model(single_layer_model(layer), config), x_in)
            for layer, (x_in, _) in zip(lenet.layers, trace)]
    result = run_job(engine_build(n_pe), runs)
    for layer, (x_in, y), run, got in zip(lenet.layers, trace, runs, result["runs"]):
        assert first_mismatch(got["outputs"], y, n_pe, layer.name) is None
        li = compile_model(single_layer_model(layer), config).layers[0]
        assert got["cycles"] == [layer_cycles(li.col_entries, x_in, li.rows, config).cycles]


def _model_cycles(model, config, x_image) -> list:
    """The cycle model's per-layer cycles of a whole-network run on one image."""
    inputs = [x_in for x_in, _ in trace_fixed(model, x_image, config.fmt)]
    return [lc.cycles for lc in model_cycles(model, inputs, config)]


@pytest.mark.parametrize("n_pe", RTL_N_PE)
def test_lenet_network_on_mnist(engine_build, lenet, mnist_test, n_pe):
    x = mnist_test[0][:20]
    config = rtl_config(n_pe)
    engine_build(n_pe)
    result = simulate(lenet, x, config)
    want = run_fixed(lenet, x, config.fmt)
    assert result["outputs_match"], first_mismatch(result["outputs"][0], want[0], n_pe, "ip3")
    assert np.array_equal(result["outputs"], want)
    assert result["labels"] == want.argmax(axis=1).tolist()
    assert result["images"] == 20 and len(result["cycles_per_layer"]) == 3
    assert result["cycles_total"] == sum(result["cycles_per_layer"])
    # `dcsim estimate` must print the cycles `dcsim sim` measures (same model, config, N)
    est = estimate(lenet, x, config)
    assert est["cycles_per_layer"] == result["cycles_per_layer"]
    assert est["cycles_total"] == result["cycles_total"]


def test_stalls_change_clocks_not_results(engine_build, lenet, mnist_test):
    n_pe, seed = 4, 7
    config = rtl_config(n_pe)
    image = compile_model(lenet, config)
    x_q = [trace_fixed(lenet, x, config.fmt)[0][0] for x in mnist_test[0][:2]]
    runs = [image_run(image, x_q[0]), image_run(image, x_q[1], load=False)]
    calm = run_job(engine_build(n_pe), runs, seed=seed)
    busy = run_job(engine_build(n_pe), runs, seed=seed, load_pause=0.3, out_pause=0.5)
    for a, b in zip(calm["runs"], busy["runs"]):
        assert a["outputs"] == b["outputs"]
        assert a["cycles"] == b["cycles"]            # compute cycles do not see the streams
        assert b["clocks"] > a["clocks"]
    for x, a in zip(mnist_test[0][:2], calm["runs"]):
        assert a["cycles"] == _model_cycles(lenet, config, x)


def test_reset_mid_layer_then_clean_rerun(engine_build, lenet, mnist_test):
    n_pe = 2
    config = rtl_config(n_pe)
    image = compile_model(lenet, config)
    trace = trace_fixed(lenet, mnist_test[0][3], config.fmt)
    x_q, want = trace[0][0], trace[-1][1]
    runs = [image_run(image, x_q, reset_after=300),        # inside ip1's RUN phase
            image_run(image, x_q, load=False),
            image_run(image, x_q, reset_after=1500, load=False),
            image_run(image, x_q, load=False)]
    result = run_job(engine_build(n_pe), runs)
    assert result["runs"][0] == {"reset": True, "busy_at_reset": True}
    assert result["runs"][2]["busy_at_reset"]
    assert first_mismatch(result["runs"][1]["outputs"], want, n_pe, "ip3") is None
    assert result["runs"][3]["outputs"] == result["runs"][1]["outputs"]
    assert result["runs"][3]["cycles"] == result["runs"][1]["cycles"]
    assert result["runs"][1]["cycles"] == _model_cycles(lenet, config, mnist_test[0][3])
