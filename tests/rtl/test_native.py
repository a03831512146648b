"""The native harness (sw/, dcsim.hw.native) against the cocotb flow and the fixed
kernel: every output integer and every cycle counter; file errors; cycle limit; waves."""

import subprocess

import numpy as np
import pytest
import pywellen
from cases import expected, random_cases
from conftest import RTL_N_PE, rtl_config

from dcsim import container
from dcsim.cli import main
from dcsim.errors import ConfigError, FormatError, ToolError
from dcsim.hw.image import compile_model
from dcsim.hw.layouts import load_layout
from dcsim.hw.native import (build_native, cycle_limit, run_native, shards, simulate_native,
                             write_image, write_inputs)
from dcsim.hw.sim import image_run, run_job, simulate
from dcsim.hw.workloads import random_layer, single_layer_model
from dcsim.kernels.run import run_fixed, trace_fixed
from dcsim.perf.cycles import model_cycles

SAME_KEYS = ("images", "outputs_match", "first_mismatch", "labels", "cycles_per_layer",
             "cycles_total", "n_pe")


def _signed_case(rng, config):
    """A layer whose inputs are signed integers including the most negative and the most
    positive activation."""
    fmt = config.fmt
    layer = random_layer("signed", 4 * config.n_pe + 1, 37, 0.5, rng, relu=False)
    x_q = rng.integers(fmt.min_int, fmt.max_int + 1, size=37)
    x_q[0], x_q[5], x_q[9] = fmt.min_int, fmt.max_int, 0
    return layer, x_q


def _run_one(build, image, x_q, tmp_path, limit=None):
    return run_native(build, write_image(image, tmp_path / "image.hex"),
                      write_inputs(np.atleast_2d(x_q), tmp_path / "inputs.bin"),
                      image.n_layers, image.layers[-1].rows,
                      cycle_limit(image) if limit is None else limit)


@pytest.mark.parametrize("n_pe", RTL_N_PE)
def test_random_layers_native_equals_cocotb_and_kernel(native_build, engine_build, n_pe,
                                                       tmp_path):
    seed = 200 + n_pe
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    config = rtl_config(n_pe)
    fmt = config.fmt
    cases = random_cases(rng, config)           # (what, model, x_q), tests/rtl/cases.py
    layer, x_q = _signed_case(rng, config)
    cases.append(("most negative input", single_layer_model(layer), x_q))
    images = [compile_model(model, config) for _, model, _ in cases]
    cocotb = run_job(engine_build(n_pe), [image_run(image, x_q) for image, (_, _, x_q)
                                          in zip(images, cases)], seed=seed)["runs"]
    for (what, model, x_q), image, theirs in zip(cases, images, cocotb):
        mine = _run_one(native_build(n_pe), image, x_q, tmp_path)["runs"][0]
        want = expected(model, x_q, fmt)[-1].tolist()
        assert mine["outputs"] == want, f"{what} (seed {seed})"
        assert theirs["outputs"] == want, f"{what} (seed {seed})"
        assert mine["cycles"] == theirs["cycles"], f"{what} (seed {seed})"


@pytest.mark.parametrize("n_pe", RTL_N_PE)
def test_lenet_native_equals_cocotb_and_kernel(native_build, engine_build, lenet, mnist_test,
                                               n_pe, tmp_path):
    seed = 300 + n_pe
    print(f"seed {seed}")
    config = rtl_config(n_pe)
    # 20 MNIST images, then 4 signed ones saturating both ways (-40 -> the most negative).
    signed = np.random.default_rng(seed).uniform(-40, 40, size=(4, 784)).astype(np.float32)
    signed[0, 0] = -40.0
    x = np.concatenate([mnist_test[0][:20], signed])
    assert config.fmt.to_fixed(x).min() == config.fmt.min_int
    native_build(n_pe), engine_build(n_pe)
    mine = simulate_native(lenet, x, config)
    theirs = simulate(lenet, x, config)
    want = run_fixed(lenet, x, config.fmt)
    assert np.array_equal(mine["outputs"], want) and np.array_equal(theirs["outputs"], want)
    assert {k: mine[k] for k in SAME_KEYS} == {k: theirs[k] for k in SAME_KEYS}
    assert mine["outputs_match"] and mine["first_mismatch"] is None
    assert (mine["harness"], theirs["harness"]) == ("native", "cocotb")
    assert mine["cycles_per_second"] > 0 and theirs["cycles_per_second"] > 0
    # image after image on one loaded model: each image's counters are the cycle model's
    image = compile_model(lenet, config)
    runs = run_native(native_build(n_pe), write_image(image, tmp_path / "image.hex"),
                      write_inputs(config.fmt.to_fixed(x), tmp_path / "inputs.bin"), 3, 10,
                      cycle_limit(image))["runs"]
    for i in (0, 19, 20, 23):
        inputs = [x_in for x_in, _ in trace_fixed(lenet, x[i], config.fmt)]
        assert runs[i]["cycles"] == [lc.cycles for lc in model_cycles(lenet, inputs, config)]


def _harness(build, image, inputs, rows, limit=100000):
    """Run the harness binary itself; (exit status, stdout, stderr)."""
    proc = subprocess.run([str(build.binary), "--image", str(image), "--inputs", str(inputs),
                           "--layers", "1", "--outputs", str(rows), "--cycle-limit", str(limit)],
                          capture_output=True, text=True)
    return proc.returncode, proc.stdout, proc.stderr


def test_bad_files_exit_2_with_one_line_naming_the_file(native_build, tmp_path):
    n_pe = 2
    config = rtl_config(n_pe)
    build = native_build(n_pe)
    layer = random_layer("fc", 7, 12, 0.5, np.random.default_rng(0))
    image = compile_model(single_layer_model(layer), config)
    good_image = write_image(image, tmp_path / "image.hex")
    good_inputs = write_inputs(np.zeros((2, 12), dtype=np.int64), tmp_path / "inputs.bin")
    bits = load_layout(config).size
    first = good_image.read_text().splitlines()[0]
    corrupt = tmp_path / "corrupt.hex"
    corrupt.write_text("x" + good_image.read_text()[1:])
    short_line = tmp_path / "short.hex"
    short_line.write_text(first[:-1] + "\n")
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(good_inputs.read_bytes()[:-3])
    wide = write_inputs(np.full((1, 12), 1 << 15, dtype=np.int64), tmp_path / "wide.bin")
    missing = tmp_path / "missing.hex"
    digits = -(-bits // 4)
    cases = [
        (corrupt, good_inputs, f"{corrupt}: line 1 must hold a {bits}-bit hex word, not "
                               f"'x{first[1:]}'; rewrite the image with dcsim"),
        (short_line, good_inputs, f"{short_line}: line 1 must be a load word of {digits} hex "
                                  f"digits, not {digits - 1} characters; rewrite the image "
                                  f"with dcsim"),
        (good_image, truncated, f"{truncated}: must hold 2 x 12 int32 inputs (112 bytes) with "
                                f"both counts above 0, not 109 bytes; rewrite it with dcsim"),
        (good_image, wide, f"{wide}: input 0 of image 0 must be a signed 16-bit value in "
                           f"-32768..32767, not 32768"),
        (missing, good_inputs, f"{missing}: no such file or not readable"),
    ]
    for image_path, inputs_path, message in cases:
        rc, out, err = _harness(build, image_path, inputs_path, layer.rows)
        assert (rc, out, err) == (2, "", message + "\n")
        with pytest.raises(FormatError) as info:
            run_native(build, image_path, inputs_path, 1, layer.rows, 100000)
        assert str(info.value) == message


def test_cycle_limit_stops_the_run_and_names_the_layer(native_build, lenet, mnist_test,
                                                      tmp_path):
    n_pe = 2
    config = rtl_config(n_pe)
    image = compile_model(lenet, config)
    x_q = config.fmt.to_fixed(mnist_test[0][:1])
    inputs = [x_in for x_in, _ in trace_fixed(lenet, mnist_test[0][0], config.fmt)]
    cycles = [lc.cycles for lc in model_cycles(lenet, inputs, config)]
    limit = cycles[0] + cycles[1] // 2          # half-way through layer 1
    with pytest.raises(ToolError) as info:
        run_native(native_build(n_pe), write_image(image, tmp_path / "image.hex"),
                   write_inputs(x_q, tmp_path / "inputs.bin"), 3, 10, limit,
                   log=tmp_path / "run.log")
    assert str(info.value) == (f"dcsim_harness: image 0 must finish within the cycle limit "
                               f"of {limit} clocks, not still run in layer 1; full log: "
                               f"{tmp_path / 'run.log'}")
    with pytest.raises(ToolError, match="image 40 must finish"):   # a shard's first image
        run_native(native_build(n_pe), tmp_path / "image.hex", tmp_path / "inputs.bin", 3, 10,
                   limit, log=tmp_path / "run.log", first_image=40)
    generous = cycle_limit(image)
    assert generous > 4 * sum(cycles)
    assert _run_one(native_build(n_pe), image, x_q, tmp_path, generous)["runs"][0]["cycles"] \
        == cycles


@pytest.fixture(scope="module")
def lenet_file(lenet, tmp_path_factory):
    path = tmp_path_factory.mktemp("native") / "lenet.dcz"
    container.write(lenet, path)
    return path


def _one_line_error(capsys):
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


def test_sim_bad_inputs_exit_2_naming_the_file(lenet, lenet_file, tmp_path, capsys):
    missing = tmp_path / "missing.dcz"
    assert main(["sim", str(missing), "--json"]) == 2
    assert _one_line_error(capsys) == f"dcsim sim: error: {missing}: no such file"
    corrupt = tmp_path / "corrupt.dcz"
    data = bytearray(lenet_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    assert main(["sim", str(corrupt), "--json"]) == 2
    assert _one_line_error(capsys).startswith(f"dcsim sim: error: {corrupt}: ")
    # eie64's code width follows a wider model unless pinned (issue 11); pinned, it refuses
    assert main(["sim", str(lenet_file), "--config", "eie64", "--set", "code_bits=4",
                 "--json"]) == 2
    bits = lenet.layers[0].code_bits
    assert bits > 4
    assert _one_line_error(capsys) == (
        f"dcsim sim: error: {lenet_file}: Layer 'ip1' needs {bits} code bits but the engine "
        f"has code_bits=4; build with code_bits={bits}")
    assert main(["sim", str(lenet_file), "--jobs", "0"]) == 2
    assert _one_line_error(capsys) == "dcsim sim: error: --jobs must be a positive integer, not 0"
    assert main(["sim", str(lenet_file), "--harness", "cocotb", "--jobs", "2"]) == 2
    assert _one_line_error(capsys).startswith(
        "dcsim sim: error: --jobs must be 1 with --harness cocotb or --waves")
    assert main(["sim", str(lenet_file), "--harness", "cocotb", "--threads", "2"]) == 2
    assert _one_line_error(capsys) == (
        f"dcsim sim: error: {lenet_file}: --threads must be 1 with --harness cocotb (it sets "
        f"the native harness's Verilator threads), not 2")


def test_sim_json_is_the_same_on_both_harnesses(native_build, engine_build, lenet_file,
                                                capsys):
    import json

    native_build(2), engine_build(2)
    assert main(["sim", str(lenet_file), "--images", "3", "--n-pe", "2", "--json"]) == 0
    mine = json.loads(capsys.readouterr().out)
    assert main(["sim", str(lenet_file), "--images", "3", "--n-pe", "2", "--json",
                 "--harness", "cocotb"]) == 0
    theirs = json.loads(capsys.readouterr().out)
    assert mine.keys() == theirs.keys()
    assert (mine["harness"], theirs["harness"]) == ("native", "cocotb")
    for key in SAME_KEYS + ("errors", "test_error"):
        assert mine[key] == theirs[key], key


def test_threads_2_gives_the_same_integers_and_cycles(native_build, lenet, mnist_test):
    n_pe = 2
    config = rtl_config(n_pe)
    build_native(config, threads=2)
    x = mnist_test[0][:4]
    one = simulate_native(lenet, x, config)
    two = simulate_native(lenet, x, config, threads=2)
    assert {k: one[k] for k in SAME_KEYS} == {k: two[k] for k in SAME_KEYS}
    assert np.array_equal(one["outputs"], two["outputs"])


def test_shards_cover_the_images_evenly():
    assert shards(7, 3) == [(0, 2), (2, 5), (5, 7)]
    assert shards(3, 10) == [(0, 1), (1, 2), (2, 3)]           # no empty shard
    assert shards(5, 1) == [(0, 5)]
    with pytest.raises(ConfigError, match="jobs must be a positive integer, not 0"):
        shards(5, 0)


def test_jobs_give_the_same_integers_and_cycles(native_build, lenet, mnist_test):
    n_pe = 2
    config = rtl_config(n_pe)
    native_build(n_pe)
    x = mnist_test[0][:7]
    one = simulate_native(lenet, x, config)
    three = simulate_native(lenet, x, config, jobs=3)
    assert (one["jobs"], three["jobs"]) == (1, 3)
    assert one["outputs_match"] and three["outputs_match"]
    assert {k: one[k] for k in SAME_KEYS} == {k: three[k] for k in SAME_KEYS}
    assert np.array_equal(one["outputs"], three["outputs"])
    assert three["compute_clocks"] == one["compute_clocks"]     # each image's run is the same
    with pytest.raises(ConfigError, match="jobs must be 1 to write waves"):
        simulate_native(lenet, x, config, jobs=2, waves="unused.fst")


def _port_names(path) -> set:
    """Names of the variables in the top scope of a waveform file (read by pywellen)."""
    return {var.name for scope in pywellen.Waveform(str(path)).scopes() for var in scope.vars()}


@pytest.mark.parametrize("harness", ["native", "cocotb"])
def test_waves_name_the_top_ports(lenet_file, harness, tmp_path, capsys):
    waves = tmp_path / f"{harness}.fst"
    assert main(["sim", str(lenet_file), "--n-pe", "2", "--harness", harness,
                 "--waves", str(waves), "--json"]) == 0
    capsys.readouterr()
    assert waves.stat().st_size > 1000
    assert not waves.with_name(waves.name + ".part").exists()
    assert {"clk", "rst", "load__valid", "load__payload", "start__valid", "out__valid",
            "out__payload", "busy", "done"} <= _port_names(waves)
