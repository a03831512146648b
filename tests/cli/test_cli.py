"""The dcsim command on a small MNIST slice: JSON output, exit codes, files written."""

import json
import subprocess
import sys

import numpy as np
import pytest

from dcsim.cli import main

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
