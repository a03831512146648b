"""The dcsim command on a small MNIST slice: JSON output, exit codes, files written."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dcsim import container
from dcsim.cli import main
from dcsim.hw.config import EngineConfig

FAST = ["--train-images", "1500", "--baseline-epochs", "1", "--prune-steps", "1",
        "--retrain-epochs", "1", "--finetune-epochs", "1", "--quiet"]


@pytest.fixture(scope="module")
def compressed(tmp_path_factory):
    """A LeNet-300-100 compressed on 1500 images (seconds, not minutes)."""
    out = tmp_path_factory.mktemp("cli") / "m.dcz"
    report = out.with_suffix(".json")
    rc = main(["compress", "--model", "lenet300", "--out", str(out), "--report", str(report),
               "--save-baseline", str(out.with_name("float.npz"))] + FAST)
    assert rc == 0
    return out, json.loads(report.read_text())


def test_compress_writes_file_and_report(compressed):
    path, report = compressed
    assert report["file_bytes"] == path.stat().st_size
    assert report["ratio"] == pytest.approx(report["dense_bytes"] / report["file_bytes"])
    assert [layer["name"] for layer in report["layers"]] == ["ip1", "ip2", "ip3"]
    for key in ("baseline_error", "compressed_error"):
        assert 0 <= report[key] <= 100
    for layer in report["layers"]:
        for key in ("shape", "weights", "density", "weight_bits_pq", "weight_bits_pqh",
                    "index_bits_pq", "index_bits_pqh", "ratio_pq", "ratio_pqh"):
            assert key in layer
    assert report["layers"][0]["density"] == pytest.approx(0.08, abs=0.002)


def test_saved_baseline_is_reused_with_weights(compressed, capsys):
    path, report = compressed
    again = path.with_name("again.dcz")
    assert main(["compress", "--model", "lenet300", "--weights", str(path.with_name("float.npz")),
                 "--out", str(again), "--json"] + FAST) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["baseline_error"] == report["baseline_error"]
    assert main(["compress", "--model", "lenet5", "--weights", str(path.with_name("float.npz")),
                 "--out", str(again)] + FAST) == 2
    assert "lenet" in capsys.readouterr().err


def test_inspect_json_matches_report(compressed, capsys):
    path, report = compressed
    assert main(["inspect", str(path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["file_bytes"] == report["file_bytes"]
    assert shown["layers"] == report["layers"]


def test_eval_float_kernel_equals_dense(compressed, capsys):
    path, _ = compressed
    assert main(["eval", str(path), "--images", "300", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 300
    assert result["float_error"] == result["dense_error"]
    assert abs(result["fixed_error"] - result["dense_error"]) <= 1.0


def test_vectors_written(compressed, tmp_path, capsys):
    path, _ = compressed
    assert main(["vectors", str(path), "--layer", "ip2", "--out", str(tmp_path),
                 "--images", "3", "--json"]) == 0
    written = json.loads(capsys.readouterr().out)["path"]
    data = np.load(written)
    assert data["x_q"].shape == (3, 300) and data["y_q"].shape == (3, 100)


def test_bad_input_exits_2_with_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.dcz"
    bad.write_bytes(b"not a dcz file at all")
    assert main(["inspect", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"dcsim inspect: error: {bad}") and "\n" not in err
    assert main(["inspect", str(tmp_path / "missing.dcz")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_bad_layer_name_names_the_file(compressed, tmp_path, capsys):
    path, _ = compressed
    assert main(["vectors", str(path), "--layer", "ip9", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"dcsim vectors: error: {path}: Layer name must be one of ['ip1', 'ip2', 'ip3'], not 'ip9'")
    assert not list(tmp_path.iterdir())


def test_usage_error_exits_2():
    proc = subprocess.run([sys.executable, "-m", "dcsim.cli", "compress", "--model", "vgg"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "invalid choice: 'vgg'" in proc.stderr


def test_sim_and_estimate_print_the_same_cycles(compressed, capsys):
    """DESIGN.md: for the same model, config and N, the RTL and the model agree."""
    path, _ = compressed
    assert main(["sim", str(path), "--images", "2", "--n-pe", "4", "--json"]) == 0
    sim = json.loads(capsys.readouterr().out)
    assert main(["estimate", str(path), "--images", "2", "--n-pe", "4", "--json"]) == 0
    est = json.loads(capsys.readouterr().out)
    assert sim["outputs_match"] is True and sim["images"] == est["images"] == 2
    assert len(sim["cycles_per_layer"]) == 3 and all(c > 0 for c in sim["cycles_per_layer"])
    assert sim["cycles_per_layer"] == est["cycles_per_layer"]
    assert sim["cycles_total"] == est["cycles_total"] == sum(est["cycles_per_layer"])
    assert est["fits_on_chip"] is True
    energy = est["energy_pj"]
    assert energy["sram"]["total"] < energy["dram_compressed"]["total"] < energy["dram_dense"]["total"]


@pytest.mark.parametrize("command", [["eval"], ["vectors", "--layer", "ip", "--out", "v"],
                                     ["sim"], ["estimate"]])
def test_model_of_another_input_size_is_refused_in_one_line(tmp_path, capsys, command):
    from dcsim import container
    from dcsim.compress.layer import CompressedLayer, CompressedModel

    layer = CompressedLayer(name="ip", kind="fc", shape=(3, 10), codes=np.ones((3, 10), int),
                            codebook=np.array([0.0, 0.5]), bias=np.zeros(3), code_bits=1,
                            index_bits=4)
    path = tmp_path / "ten.dcz"
    container.write(CompressedModel("ten", (10,), [layer]), path)
    argv = [command[0], str(path)] + [a if a != "v" else str(tmp_path / "v") for a in command[1:]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"dcsim {command[0]}: error: {path}: the model's input must be an MNIST "
                   f"image of 784 values (28 x 28), not shape (10,); this command feeds it "
                   f"MNIST test images")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ten.dcz"]


# --- eie64 end to end: the engine's code width and one rule for sim and estimate -----

def _run(capsys, argv):
    """``main(argv)`` -> (exit status, stdout, stderr lines)."""
    rc = main(argv)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err.strip().splitlines()


def test_pinned_narrow_code_width_is_refused_alike_by_sim_and_estimate(compressed, capsys):
    path, _ = compressed
    reason = (f"{path}: Layer 'ip1' needs 5 code bits but the engine has code_bits=4; "
              f"build with code_bits=5")
    rc, out, err = _run(capsys, ["sim", str(path), "--set", "code_bits=4"])
    assert rc == 2 and out == "" and err == [f"dcsim sim: error: {reason}"]
    rc, out, err = _run(capsys, ["estimate", str(path), "--set", "code_bits=4", "--json"])
    assert rc == 2 and err == [f"dcsim estimate: error: {reason} (dcsim sim refuses this "
                               f"model; the printed figures are a what-if)"]
    shown = json.loads(out)                      # the what-if figures are still printed
    assert shown["fits_on_chip"] is False and shown["config"]["code_bits"] == 4


def test_eie64_code_width_follows_a_wider_model(compressed, capsys):
    path, _ = compressed                         # 5-bit fc codes, eie64 has 4
    rc, out, err = _run(capsys, ["estimate", str(path), "--config", "eie64", "--json"])
    assert rc == 0
    assert err == ["dcsim estimate: note: engine code_bits 4 -> 5 to hold the model's "
                   "5-bit codebooks (pin it with --set code_bits=N, or compress with "
                   "--code-bits-fc 4)"]
    shown = json.loads(out)
    assert shown["fits_on_chip"] is True and shown["n_pe"] == 64
    assert shown["config"]["code_bits"] == 5 and shown["config"]["sparse_words"] == 16384


@pytest.fixture(scope="module")
def eie_model(tmp_path_factory):
    """LeNet-300-100 compressed for EIE's design point: 4-bit fc codes and indices,
    ip1 kept at 5%, from the same 1500 images."""
    out = tmp_path_factory.mktemp("eie") / "eie.dcz"
    report = out.with_suffix(".json")
    assert main(["compress", "--model", "lenet300", "--out", str(out), "--report", str(report),
                 "--code-bits-fc", "4", "--index-bits-fc", "4", "--density", "ip1=0.05",
                 "--density", "ip3=0.5", "--finetune-lr-scale", "0.02"] + FAST) == 0
    return out, json.loads(report.read_text())


def test_compress_study_knobs_reach_the_file(eie_model):
    path, report = eie_model
    rows = {row["name"]: row for row in report["layers"]}
    assert rows["ip1"]["density"] == pytest.approx(0.05, abs=0.002)
    assert rows["ip2"]["density"] == pytest.approx(0.09, abs=0.002)     # the paper's
    assert rows["ip3"]["density"] == pytest.approx(0.5, abs=0.01)
    assert all(row["weight_bits_pq"] == 4 and row["index_bits_pq"] == 4
               for row in rows.values())
    meta = container.read(path).meta["config"]
    assert meta["finetune_lr_scale"] == 0.02 and meta["code_bits_fc"] == 4


def test_eie64_runs_a_4_bit_model_as_is(eie_model, capsys):
    path, _ = eie_model
    rc, out, err = _run(capsys, ["estimate", str(path), "--config", "eie64", "--images", "3",
                                 "--json"])
    assert rc == 0 and err == []
    shown = json.loads(out)
    assert shown["config"] == EngineConfig.preset("eie64").to_dict()
    assert shown["fits_on_chip"] is True and shown["images"] == 3


@pytest.mark.parametrize("argv, message", [
    (["--density", "ip9=0.1"], "compression options: density names a layer of lenet300: "
                               "one of ['ip1', 'ip2', 'ip3'], not 'ip9'"),
    (["--density", "ip1"], "--density must be NAME=VALUE, not 'ip1'"),
    (["--density", "ip1=lots"], "--density ip1= must be a fraction in (0, 1], not 'lots'"),
    (["--density", "ip1=1.5"], "compression options: density of ip1 must be in (0, 1], "
                               "not 1.5"),
    (["--code-bits-fc", "9"], "compression options: code_bits_fc must be an integer in "
                              "1..8, not 9"),
    (["--retrain-lr-scale", "0"], "compression options: retrain_lr_scale must be a "
                                  "positive number, not 0.0"),
])
def test_bad_compress_knob_exits_2_before_training(argv, message, tmp_path, capsys):
    out = tmp_path / "m.dcz"
    rc, _, err = _run(capsys, ["compress", "--model", "lenet300", "--out", str(out),
                               "--mnist", str(tmp_path / "no-mnist")] + argv)
    assert rc == 2 and err == [f"dcsim compress: error: {message}"]
    assert not out.exists()


# --- every EngineConfig field from the shell: --config small|eie64|FILE.json, --set ---

def test_set_reaches_the_engine_and_a_shallower_fifo_never_helps(compressed, capsys):
    path, _ = compressed
    cycles = {}
    for depth in (1, 8):
        rc, out, _ = _run(capsys, ["estimate", str(path), "--n-pe", "8", "--images", "2",
                                   "--set", f"fifo_depth={depth}", "--json"])
        assert rc == 0
        shown = json.loads(out)
        assert shown["config"]["fifo_depth"] == depth and shown["config"]["n_pe"] == 8
        cycles[depth] = shown["cycles_total"]
    assert cycles[1] > cycles[8]


@pytest.mark.parametrize("item, message", [
    ("fifo_depth=0", "--set fifo_depth=0: fifo_depth must be in 1..64, not 0"),
    ("fifo_depth=deep", "--set fifo_depth must be an integer, not 'deep'"),
    ("ptr_depth=7", "--set ptr_depth=7: ptr_depth must be even (two pointer banks), not 7"),
    ("fifo=4", "--set FIELD must be one of ['acc_bits', 'act_bits', 'act_depth', "
               "'bias_depth', 'code_bits', 'fifo_depth', 'frac_bits', 'idx_bits', "
               "'max_layers', 'n_pe', 'ptr_depth', 'sparse_words', 'word_bits'], not 'fifo'"),
    ("fifo_depth", "--set must be NAME=VALUE, not 'fifo_depth'"),
])
def test_bad_set_exits_2_with_the_fields_own_message(compressed, item, message, capsys):
    path, _ = compressed
    rc, out, err = _run(capsys, ["estimate", str(path), "--set", item])
    assert rc == 2 and out == "" and err == [f"dcsim estimate: error: {message}"]


def test_config_file_written_by_rtl_is_read_back(compressed, tmp_path, capsys):
    path, _ = compressed
    rc, out, _ = _run(capsys, ["rtl", "--config", "small", "--set", "n_pe=2",
                               "--set", "fifo_depth=4", "--out", str(tmp_path), "--json"])
    assert rc == 0
    config_file = next(p for p in json.loads(out)["files"] if p.endswith(".json"))
    want = EngineConfig.preset("small", n_pe=2, fifo_depth=4).to_dict()
    assert json.loads(Path(config_file).read_text()) == want
    rc, out, _ = _run(capsys, ["estimate", str(path), "--config", config_file, "--json"])
    assert rc == 0 and json.loads(out)["config"] == want

    partial = tmp_path / "partial.json"
    partial.write_text('{"n_pe": 4, "code_bits": 6}')
    rc, out, _ = _run(capsys, ["estimate", str(path), "--config", str(partial), "--json"])
    assert rc == 0
    assert json.loads(out)["config"] == dict(EngineConfig().to_dict(), n_pe=4, code_bits=6)

    for text, why in (("[1, 2]", "must be a JSON object of EngineConfig fields, not a list"),
                      ('{"fifo": 2}', "fields must be EngineConfig's ['acc_bits', "
                       "'act_bits', 'act_depth', 'bias_depth', 'code_bits', 'fifo_depth', "
                       "'frac_bits', 'idx_bits', 'max_layers', 'n_pe', 'ptr_depth', "
                       "'sparse_words', 'word_bits'], not ['fifo']"),
                      ('{"fifo_depth": 99}', "fifo_depth must be in 1..64, not 99")):
        partial.write_text(text)
        rc, _, err = _run(capsys, ["estimate", str(path), "--config", str(partial)])
        assert rc == 2 and err == [f"dcsim estimate: error: {partial}: {why}"]
    file_pinned = tmp_path / "narrow.json"
    file_pinned.write_text('{"code_bits": 4, "sparse_words": 8192, "act_depth": 1024}')
    rc, _, err = _run(capsys, ["sim", str(path), "--config", str(file_pinned)])
    assert rc == 2 and "needs 5 code bits but the engine has code_bits=4" in err[0]


# --- output paths are checked before any work, and nothing is left behind ------------

@pytest.mark.parametrize("option", ["--out", "--report", "--save-baseline"])
def test_compress_output_paths_checked_before_training(option, tmp_path, capsys):
    (tmp_path / "folder").mkdir()
    base = {"--out": str(tmp_path / "m.dcz")}
    for target, why in ((tmp_path / "missing" / "x", "must be in an existing folder, not in "
                         f"missing {str(tmp_path / 'missing')!r}; create the folder first"),
                        (tmp_path / "folder", "must name a file, not a directory")):
        paths = dict(base, **{option: str(target)})
        argv = ["compress", "--model", "lenet300", "--mnist", str(tmp_path / "no-mnist")]
        for name, value in paths.items():
            argv += [name, value]
        rc, out, err = _run(capsys, argv)
        assert rc == 2 and out == ""
        assert err == [f"dcsim compress: error: {target}: {option} {why}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]


def test_rtl_and_vectors_out_naming_a_file_exit_2(compressed, tmp_path, capsys):
    path, _ = compressed
    regular = tmp_path / "regular"
    regular.write_text("keep me")
    for argv in (["rtl", "--out", str(regular)],
                 ["vectors", str(path), "--layer", "ip1", "--out", str(regular)]):
        rc, out, err = _run(capsys, argv)
        assert rc == 2 and out == ""
        assert err == [f"dcsim {argv[0]}: error: {regular}: --out must name a folder, "
                       f"not a file"]
    rc, _, err = _run(capsys, ["rtl", "--out", str(regular / "sub")])
    assert rc == 2 and err == [f"dcsim rtl: error: {regular / 'sub'}: --out must be under a "
                               f"folder, not under the file {str(regular)!r}"]
    assert regular.read_text() == "keep me"


def test_rtl_model_that_does_not_fit_writes_nothing(compressed, tmp_path, capsys):
    path, _ = compressed
    out = tmp_path / "rtl"
    rc, _, err = _run(capsys, ["rtl", "--model", str(path), "--set", "sparse_words=64",
                               "--out", str(out)])
    assert rc == 2 and len(err) == 1
    assert err[0].startswith(f"dcsim rtl: error: {path}: Model 'lenet300' needs ")
    assert err[0].endswith("words on its busiest PE (PE 0) but the engine has 64: over by "
                           + err[0].split("over by ")[1])
    assert not out.exists()


# --- reproducible files ---------------------------------------------------------------

def test_same_command_and_seed_give_a_byte_identical_file(compressed, tmp_path, capsys):
    path, _ = compressed
    again = tmp_path / "again.dcz"
    assert main(["compress", "--model", "lenet300", "--out", str(again), "--json"] + FAST) == 0
    shown = json.loads(capsys.readouterr().out)
    assert again.read_bytes() == path.read_bytes()
    assert shown["total_seconds"] > 0                 # the run's time: in the JSON only
    assert "seconds" not in json.dumps(container.read(again).meta)


# --- small things a user notices ------------------------------------------------------

def test_version_is_the_installed_distributions():
    from importlib.metadata import version
    proc = subprocess.run([sys.executable, "-m", "dcsim.cli", "--version"],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == f"dcsim {version('dcsim')}"


def test_unknown_option_prints_the_commands_usage():
    proc = subprocess.run([sys.executable, "-m", "dcsim.cli", "inspect", "m.dcz", "--bogus"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == ["usage: dcsim inspect [-h] [--json] M.dcz",
                                        "dcsim inspect: error: unrecognized arguments: --bogus"]


def test_ctrl_c_prints_interrupted_and_exits_130(tmp_path):
    import signal
    import time
    out = tmp_path / "m.dcz"
    proc = subprocess.Popen([sys.executable, "-m", "dcsim.cli", "compress", "--model",
                             "lenet300", "--out", str(out), "--baseline-epochs", "50"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline()       # training has started: dcsim's handler is live
        assert first.startswith("baseline:"), first
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == "dcsim compress: interrupted"
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_inspect_a_directory_says_so(tmp_path, capsys):
    rc, _, err = _run(capsys, ["inspect", str(tmp_path)])
    assert rc == 2 and err == [f"dcsim inspect: error: {tmp_path}: is a directory, not a file"]


@pytest.mark.parametrize("argv, why", [
    (["--n-pe", "0"], "--n-pe 0 --idx-bits 4: n_pe must be in 1..256, not 0"),
    (["--n-pe", "1000"], "--n-pe 1000 --idx-bits 4: n_pe must be in 1..256, not 1000"),
    (["--idx-bits", "9"], "--n-pe 4 --idx-bits 9: idx_bits must be in 1..8, not 9"),
])
def test_vectors_engine_options_validated(compressed, argv, why, tmp_path, capsys):
    path, _ = compressed
    rc, _, err = _run(capsys, ["vectors", str(path), "--layer", "ip1", "--out",
                               str(tmp_path / "v")] + argv)
    assert rc == 2 and err == [f"dcsim vectors: error: {why}"]
    assert not (tmp_path / "v").exists()


def test_vector_files_are_readable_by_others(compressed, tmp_path, capsys):
    import os
    path, _ = compressed
    umask = os.umask(0o022)
    try:
        assert main(["vectors", str(path), "--layer", "ip3", "--out", str(tmp_path),
                     "--images", "1", "--json"]) == 0
    finally:
        os.umask(umask)
    written = Path(json.loads(capsys.readouterr().out)["path"])
    assert written.stat().st_mode & 0o777 == 0o644


def test_vectors_of_a_conv_layer_say_what_and_for_whom(tmp_path, capsys):
    from dcsim.compress.layer import CompressedLayer, CompressedModel
    rng = np.random.default_rng(3)
    conv = CompressedLayer(name="conv1", kind="conv", shape=(4, 1, 5, 5),
                           codes=rng.integers(0, 16, (4, 25)), code_bits=4, index_bits=4,
                           codebook=np.r_[0.0, rng.normal(0, 0.3, 15)].astype(np.float32),
                           bias=np.zeros(4, np.float32), relu=True, pool=2)
    fc = CompressedLayer(name="ip1", kind="fc", shape=(10, 576),
                         codes=rng.integers(0, 16, (10, 576)) * (rng.random((10, 576)) < 0.1),
                         codebook=np.r_[0.0, rng.normal(0, 0.3, 15)].astype(np.float32),
                         bias=np.zeros(10, np.float32), code_bits=4, index_bits=4)
    model_path = tmp_path / "conv.dcz"
    container.write(CompressedModel(arch="lenet5", input_shape=(1, 28, 28),
                                    layers=[conv, fc]), model_path)
    rc, out, err = _run(capsys, ["vectors", str(model_path), "--layer", "conv1", "--out",
                                 str(tmp_path / "v"), "--images", "2"])
    assert rc == 0 and err == []
    assert out.splitlines() == [
        f"wrote {tmp_path / 'v' / 'conv1.npz'}: layer conv1, 4 x 25 weights interleaved "
        f"over 4 PEs (4-bit relative indices), 2 inputs and their expected outputs",
        "  conv1 is a conv layer: its filters are one 4 x 25 matrix and the inputs are "
        "im2col patch vectors of MNIST test images 0..1, for an outside testbench of a "
        "matrix-vector engine; dcsim's own engine (sim, estimate) gathers the patches itself"]
    assert np.load(tmp_path / "v" / "conv1.npz")["x_q"].shape == (2, 25)


def test_code_width_note_names_the_flag_of_the_wide_layers(tmp_path, capsys):
    from dcsim.compress.layer import CompressedModel
    from dcsim.hw.workloads import random_conv_layer, random_layer
    rng = np.random.default_rng(4)
    conv = random_conv_layer("conv1", 4, 1, 5, 0.5, rng, pool=2, code_bits=8)
    fc = random_layer("ip1", 10, 576, 0.1, rng, code_bits=4)
    path = tmp_path / "cnn.dcz"
    container.write(CompressedModel(arch="cnn", input_shape=(1, 28, 28), layers=[conv, fc]),
                    path)
    rc, out, err = _run(capsys, ["estimate", str(path), "--config", "small", "--images", "1",
                                 "--json"])
    assert rc == 0                               # small: 6-bit codes, the fc layer's fit
    assert err == ["dcsim estimate: note: engine code_bits 6 -> 8 to hold the model's "
                   "8-bit codebooks (pin it with --set code_bits=N, or compress with "
                   "--code-bits-conv 6)"]
    assert json.loads(out)["config"]["code_bits"] == 8


def test_estimate_text_says_all_images_and_per_inference(compressed, capsys):
    path, _ = compressed
    rc, out, _ = _run(capsys, ["estimate", str(path), "--images", "4"])
    rc_json, shown, _ = _run(capsys, ["estimate", str(path), "--images", "4", "--json"])
    shown = json.loads(shown)
    assert rc == rc_json == 0
    lines = out.splitlines()
    assert lines[1].startswith(f"  cycles per layer, all 4 images: {shown['cycles_per_layer']}, "
                               f"total {shown['cycles_total']} (")
    assert lines[2] == (f"  per inference (mean of 4): {shown['cycles_total'] / 4:.1f} cycles "
                        f"({shown['time_us_per_image']:.2f} us)")
    assert "  energy per inference (mean of 4):" in lines


def test_tables_cite_the_papers(compressed, capsys):
    path, _ = compressed
    rc, out, _ = _run(capsys, ["inspect", str(path)])
    assert rc == 0
    assert ("source: Han, Mao, Dally, Deep Compression, ICLR 2016 (arXiv:1510.00149), "
            "Table 2 (LeNet-300-100) and Table 3 (LeNet-5))") in out
    assert "ANCHORS" not in out


# --- first runs say what they do; times named plainly ---------------------------------

def test_sim_reports_progress_in_plain_lines_and_its_times(compressed, capsys):
    path, _ = compressed
    # the image bar follows the cocotb testbench; the native harness runs the batch in one go
    rc, out, err = _run(capsys, ["sim", str(path), "--images", "4", "--json",
                                 "--harness", "cocotb"])
    assert rc == 0
    shown = json.loads(out)
    assert all(shown[k] > 0 for k in ("build_seconds", "sim_seconds", "total_seconds"))
    assert shown["total_seconds"] >= shown["build_seconds"] + shown["sim_seconds"]
    progress = [line for line in err if line.startswith("images on the RTL: ")]
    assert progress[0] in ("images on the RTL: 0/4 images", "images on the RTL: 1/4 images")
    assert progress[-1].startswith("images on the RTL: 4/4 images in ")
    assert not any("\r" in line for line in err)


def test_first_eval_says_numba_compiles_once(compressed, monkeypatch, tmp_path, capsys):
    path, _ = compressed
    monkeypatch.setenv("DCSIM_CACHE", str(tmp_path / "fresh"))
    rc, _, err = _run(capsys, ["eval", str(path), "--images", "20", "--json"])
    assert rc == 0
    assert err == ["dcsim eval: compiling the numba kernels, once (~15 s; cached afterwards)"]
    rc, out, err = _run(capsys, ["eval", str(path), "--images", "20", "--json"])
    assert rc == 0 and err == [] and json.loads(out)["total_seconds"] > 0


def test_cache_info_and_clear(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("DCSIM_CACHE", str(tmp_path / "c"))
    (tmp_path / "c" / "verilator" / "small_x").mkdir(parents=True)
    (tmp_path / "c" / "verilator" / "small_x" / "blob").write_bytes(b"y" * 2000)
    rc, out, _ = _run(capsys, ["cache", "info", "--json"])
    assert rc == 0
    assert json.loads(out) == {"path": str(tmp_path / "c"), "bytes": 2000, "entries": [
        {"kind": "verilator", "name": "small_x", "bytes": 2000,
         "path": str(tmp_path / "c" / "verilator" / "small_x")}]}
    rc, out, _ = _run(capsys, ["cache", "clear"])
    assert rc == 0 and out.strip() == f"{tmp_path / 'c'}: removed 1 entries, 0.0 MB freed"
    assert json.loads(_run(capsys, ["cache", "info", "--json"])[1])["entries"] == []
