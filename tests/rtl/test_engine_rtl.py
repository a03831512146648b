"""The engine on Verilator (cocotb): every integer against the fixed kernel, every
layer's cycle count against the cycle model (dcsim.perf.cycles)."""

import numpy as np
import pytest
from cases import check_cases, random_cases
from conftest import RTL_N_PE, rtl_config

from dcsim.hw.image import compile_model
from dcsim.hw.sim import first_mismatch, image_run, run_job, simulate
from dcsim.hw.workloads import single_layer_model
from dcsim.kernels.run import run_fixed, trace_fixed
from dcsim.perf.cycles import layer_cycles, model_cycles
from dcsim.perf.estimate import estimate


@pytest.mark.parametrize("n_pe", RTL_N_PE)
def test_random_layers(engine_build, n_pe):
    seed = 100 + n_pe
    print(f"seed {seed}")
    seen = check_cases(engine_build(n_pe), random_cases(np.random.default_rng(seed),
                                                         rtl_config(n_pe)), seed)
    assert seen["saturated"] >= 1 and seen["fillers"] >= 1 and seen["stalls"] >= 1
    assert seen["negative_inputs"] >= 1 and seen["negative_hidden"] >= 1
    assert seen["empty_pairs"] >= 1


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
    # Load idles and output back-pressure on the RTL; outputs against the fixed kernel,
    # layer cycles against the cycle model, clocks against the stall-free minimum.
    n_pe, seed = 4, 7
    config = rtl_config(n_pe)
    image = compile_model(lenet, config)
    traces = [trace_fixed(lenet, x, config.fmt) for x in mnist_test[0][:2]]
    runs = [image_run(image, traces[0][0][0]), image_run(image, traces[1][0][0], load=False)]
    busy = run_job(engine_build(n_pe), runs, seed=seed, load_pause=0.3, out_pause=0.5)
    for x, trace, run, got in zip(mnist_test[0][:2], traces, runs, busy["runs"]):
        assert first_mismatch(got["outputs"], trace[-1][1], n_pe, "ip3") is None
        assert got["cycles"] == _model_cycles(lenet, config, x)
        # one clock per load word, the layers, one per output: what no stall would take;
        # the pauses add p / (1 - p) idle clocks per transfer on average
        words = len(run["load"]) + len(run["input"])
        stall_free = words + sum(got["cycles"]) + run["n_out"]
        idles = words * 0.3 / 0.7 + run["n_out"] * 0.5 / 0.5
        assert got["clocks"] - stall_free >= idles / 2


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
