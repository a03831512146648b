"""Engine runs on Verilator through the feeder testbench, and first-mismatch location."""

import dataclasses
import re

import numpy as np
import pytest

from dcsim.hw.config import EngineConfig
from dcsim.hw.image import compile_model
from dcsim.hw.sim import first_mismatch, image_run, locate_mismatch, run_job
from dcsim.hw.verilator import build_engine
from dcsim.hw.workloads import lenet_300_100, random_activations, random_layer, \
    single_layer_model
from dcsim.kernels.run import trace_fixed
from dcsim.kernels.spmv import layer_fixed

CONFIG = EngineConfig.preset("small", n_pe=2)     # the build tests/rtl uses for n_pe=2


@pytest.fixture(scope="module")
def build():
    return build_engine(CONFIG)


def test_monitor_sees_every_entry_and_locates_an_injected_fault(build):
    seed = 11
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    fmt = CONFIG.fmt
    layer = random_layer("fc", 37, 50, 0.3, rng)
    x_q = fmt.to_fixed(random_activations(50, 0.6, rng))
    image = compile_model(single_layer_model(layer), CONFIG)
    run = run_job(build, [image_run(image, x_q, monitor=True)])["runs"][0]
    assert first_mismatch(run["outputs"], layer_fixed(layer, x_q, fmt), 2, "fc") is None
    li = image.layers[0]
    writes = np.array(run["writes"])
    # one accumulator write per stored entry (fillers included) of an active column
    assert writes.shape[0] == int(li.col_entries[:, x_q != 0].sum())
    rows_local = li.rows_local
    run_first, run_last = 1 + rows_local + 1, run["cycles"][0] - rows_local - 1
    assert run_first <= writes[:, 0].min() and writes[:, 0].max() <= run_last
    assert locate_mismatch(single_layer_model(layer), [x_q], run, 2, fmt) is None

    # A deliberately wrong expectation: one weight's code changed in the kernel's copy.
    active = np.argwhere((layer.codes != 0) & (x_q[None, :] != 0))
    i, j = (int(v) for v in active[active.shape[0] // 2])
    codes = layer.codes.copy()
    codes[i, j] = codes[i, j] % 15 + 1
    wrong = dataclasses.replace(layer, codes=codes)
    msg = locate_mismatch(single_layer_model(wrong), [x_q], run, 2, fmt)
    at = writes[(writes[:, 1] == i % 2) & (writes[:, 2] == i // 2) & (writes[:, 3] == j)]
    assert at.shape[0] == 1
    assert msg is not None and re.fullmatch(
        rf"layer fc: first wrong accumulator write at cycle {at[0, 0]} of the layer: "
        rf"column {j}, row {i} \(PE {i % 2}, local row {i // 2}\): got {at[0, 4]}, "
        rf"want -?\d+ \(\d+ of {writes.shape[0]} writes differ\)", msg), msg


def test_whole_network_monitored_and_loaded_by_feeder_or_python(build):
    seed = 12
    rng = np.random.default_rng(seed)
    model = lenet_300_100(rng)
    fmt = CONFIG.fmt
    x = rng.random(784).astype(np.float32)
    x[x < 0.7] = 0.0
    trace = trace_fixed(model, x, fmt)
    image = compile_model(model, CONFIG)
    runs = [image_run(image, trace[0][0], monitor=True)]
    fed = run_job(build, runs)["runs"][0]
    by_python = run_job(build, runs, seed=seed, load_pause=0.2)["runs"][0]
    assert fed["outputs"] == trace[-1][1].tolist() == by_python["outputs"]
    assert fed["cycles"] == by_python["cycles"]
    assert fed["writes"] == by_python["writes"]
    inputs = [x_in for x_in, _ in trace]
    assert locate_mismatch(model, inputs, fed, 2, fmt) is None
    codes = model.layers[2].codes.copy()
    i, j = (int(v) for v in np.argwhere((codes != 0) & (inputs[2][None, :] != 0))[0])
    codes[i, j] = codes[i, j] % 31 + 1
    layers = list(model.layers)
    layers[2] = dataclasses.replace(layers[2], codes=codes)
    msg = locate_mismatch(dataclasses.replace(model, layers=layers), inputs, fed, 2, fmt)
    assert msg is not None and msg.startswith(
        "layer ip3: first wrong accumulator write at cycle ") \
        and f"column {j}, row {i} (PE {i % 2}, local row {i // 2})" in msg, msg


def test_simulate_reports_where_the_first_mismatch_is(monkeypatch):
    """simulate() on an engine image that differs from the model by one weight code."""
    import dcsim.hw.sim as sim

    seed = 5
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    layer = random_layer("fc", 10, 784, 0.3, rng, relu=False)
    model = single_layer_model(layer)
    x = np.zeros((1, 784), dtype=np.float32)
    x[0, ::3] = 0.5
    x_q = CONFIG.fmt.to_fixed(x[0])
    active = np.argwhere((layer.codes != 0) & (x_q[None, :] != 0))
    i, j = (int(v) for v in active[0])
    codes = layer.codes.copy()
    codes[i, j] = codes[i, j] % 15 + 1
    faulty = single_layer_model(dataclasses.replace(layer, codes=codes))
    monkeypatch.setattr(sim, "compile_model", lambda m, c: compile_model(faulty, c))
    result = sim.simulate(model, x, CONFIG)
    assert result["outputs_match"] is False
    assert re.match(rf"image 0: layer fc: first wrong accumulator write at cycle \d+ of the "
                    rf"layer: column {j}, row {i} \(PE {i % 2}, local row {i // 2}\)",
                    result["first_mismatch"]), result["first_mismatch"]


def test_a_simulation_that_writes_no_result_names_its_kept_log(tmp_path, monkeypatch):
    """The whole log goes to a file beside the builds; the error is one line naming it."""
    from dcsim.errors import ToolError
    from dcsim.hw.verilator import EngineBuild

    long_log = "".join(f"line {i}: simulator chatter\n" for i in range(400))

    class NoResultRunner:
        def test(self, log_file, **kwargs):
            with open(log_file, "w") as f:
                f.write(long_log)

    fake = EngineBuild(CONFIG, tmp_path / "builds" / "tb_x", "tb", "x")
    monkeypatch.setattr(EngineBuild, "runner", lambda self: NoResultRunner())
    with pytest.raises(ToolError) as err:
        run_job(fake, [])
    message = str(err.value)
    assert "\n" not in message and len(message) < 300
    kept = re.search(r"its full log is (\S+)$", message).group(1)
    assert kept.startswith(str(tmp_path / "builds" / "logs"))
    with open(kept) as f:
        assert f.read() == long_log
