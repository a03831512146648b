"""dcsim import / export / compress --onnx: the imported networks through every command."""

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from dcsim import container
from dcsim.cli import main
from dcsim.compress.pipeline import default_density
from dcsim.io.onnx_import import import_onnx
from dcsim.nn import models
from dcsim.nn.datasets import load_mnist

sys.path.insert(0, str(Path(__file__).parent.parent / "io"))
from onnx_graphs import init, model, node, ort_run, rand  # noqa: E402
from test_onnx_import import bad_models  # noqa: E402

DATA = Path(__file__).parent.parent / "data"


@pytest.fixture(scope="module")
def mnist_npz(tmp_path_factory):
    """A small data set file in --data's format: 800 training and 300 test images."""
    mnist = load_mnist()
    path = tmp_path_factory.mktemp("data") / "mnist_small.npz"
    np.savez(path, x_train=mnist.train_x[:800].reshape(-1, 1, 28, 28),
             y_train=mnist.train_y[:800], x_test=mnist.test_x[:300].reshape(-1, 1, 28, 28),
             y_test=mnist.test_y[:300])
    return path


@pytest.fixture(scope="module")
def cnn_dcz(tmp_path_factory, mnist_npz):
    """The PyTorch CNN compressed with a few epochs on the small slice."""
    out = tmp_path_factory.mktemp("cnn") / "cnn.dcz"
    report = out.with_suffix(".json")
    rc = main(["compress", "--onnx", str(DATA / "cnn.onnx"), "--data", str(mnist_npz),
               "--out", str(out), "--report", str(report), "--prune-steps", "1",
               "--retrain-epochs", "1", "--finetune-epochs", "1", "--quiet"])
    assert rc == 0
    return out, json.loads(report.read_text())


def test_import_prints_the_layers_and_writes_the_float_model(tmp_path, capsys):
    out = tmp_path / "mlp.npz"
    assert main(["import", str(DATA / "mlp.onnx"), "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [(l["name"], l["kind"], l["shape"], l["relu"]) for l in result["layers"]] == [
        ("1", "fc", [500, 784], True), ("3", "fc", [300, 500], True),
        ("5", "fc", [10, 300], False)]
    assert result["weights"] == 784 * 500 + 500 * 300 + 300 * 10
    assert result["input_dims"] == ["batch", 1, 28, 28] and result["dropped"] == []
    back = models.load(out)
    x = load_mnist().test_x[:50]
    np.testing.assert_array_equal(back.forward(x), import_onnx(DATA / "mlp.onnx").forward(x))
    assert main(["import", str(DATA / "cnn.onnx"), "--out", str(tmp_path / "c.npz")]) == 0
    text = capsys.readouterr().out
    assert "dropped the last LogSoftmax" in text
    assert "0            conv 1 -> 6 channels, 5x5, stride 1, padding 2, ReLU, max-pool 2" in text


def test_compress_onnx_reports_and_round_trips(cnn_dcz, tmp_path, capsys):
    """import -> compress -> .dcz -> export -> import gives the same decoded weights,
    and the exported file's error in onnxruntime is eval's dense error."""
    path, report = cnn_dcz
    assert report["arch"] == models.IMPORTED and report["retrained"] is True
    assert report["source"]["dropped"] == ["LogSoftmax"]
    assert [l["name"] for l in report["layers"]] == ["0", "3", "7", "9", "11"]
    assert report["file_bytes"] == path.stat().st_size
    exported = tmp_path / "cnn_out.onnx"
    assert main(["export", str(path), "--onnx", str(exported), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["input"] == "image" and info["output"] == "logits"
    compressed = container.read(path)
    again = import_onnx(exported)
    assert again.graph() == compressed.graph["layers"]
    for layer, live in zip(compressed.layers, again.param_layers()):
        assert live.params["W"].tobytes() == layer.weights().tobytes()
        assert live.params["b"].tobytes() == layer.bias.tobytes()
    mnist = load_mnist()
    n = 500
    labels = ort_run(exported, mnist.test_x[:n].reshape(-1, 1, 28, 28)).argmax(axis=1)
    assert main(["eval", str(path), "--images", str(n), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["dense_error"] == 100 * np.count_nonzero(labels != mnist.test_y[:n]) / n


def test_inspect_and_vectors_take_the_imported_model(cnn_dcz, tmp_path, capsys):
    path, report = cnn_dcz
    assert main(["inspect", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["layers"] == report["layers"]
    assert main(["vectors", str(path), "--layer", "9", "--out", str(tmp_path),
                 "--images", "2"]) == 0
    data = np.load(next(tmp_path.glob("*.npz")))
    assert data["x_q"].shape == (2, 120) and data["y_q"].shape == (2, 84)


def test_no_retrain_needs_only_a_test_split(tmp_path, capsys):
    mnist = load_mnist()
    data = tmp_path / "test_only.npz"
    np.savez(data, x_test=mnist.test_x[:400], y_test=mnist.test_y[:400])
    out = tmp_path / "mlp.dcz"
    assert main(["compress", "--onnx", str(DATA / "mlp.onnx"), "--data", str(data),
                 "--out", str(out), "--no-retrain", "--quiet", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["retrained"] is False
    model = container.read(out)
    assert model.meta["config"]["retrain_epochs"] == model.meta["config"]["finetune_epochs"] == 0
    # the paper's densities by layer size: 8% (392K), 8.2% (150K), 21% (3000 weights)
    assert [l["density"] for l in summary["layers"]] == pytest.approx(
        [default_density(l["weights"]) for l in summary["layers"]], abs=0.001)
    assert [round(default_density(l["weights"]), 3) for l in summary["layers"]] == [
        0.08, 0.082, 0.21]
    float_model = import_onnx(DATA / "mlp.onnx")
    assert summary["baseline_error"] == float_model.error(mnist.test_x[:400], mnist.test_y[:400])
    assert main(["compress", "--onnx", str(DATA / "mlp.onnx"), "--data", str(data),
                 "--out", str(tmp_path / "x.dcz"), "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"dcsim compress: error: {data}: key 'x_train' is missing; the file must hold "
        f"x_train, y_train, x_test, y_test")
    assert not (tmp_path / "x.dcz").exists()


@pytest.mark.parametrize("case", ["unsupported op", "grouped conv", "dilated conv",
                                  "asymmetric padding", "two inputs", "not onnx",
                                  "truncated"])
@pytest.mark.parametrize("command", ["import", "compress"])
def test_bad_networks_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, case,
                                                             command):
    bad = tmp_path / "bad.onnx"
    if case == "not onnx":
        bad.write_text("ir_version: 8\nthis is text, not an ONNX protobuf\n")
    elif case == "truncated":
        blob = (DATA / "mlp.onnx").read_bytes()
        bad.write_bytes(blob[:len(blob) - 1000])
    else:
        onnx.save(bad_models()[case][0], bad)
    out = tmp_path / ("out.npz" if command == "import" else "out.dcz")
    argv = (["import", str(bad), "--out", str(out)] if command == "import" else
            ["compress", "--onnx", str(bad), "--out", str(out), "--quiet"])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"dcsim {command}: error: {bad}: ") and "\n" not in err
    if case in bad_models():
        assert err.endswith(bad_models()[case][1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.onnx"]


def test_imported_fc_net_runs_on_the_engine(tmp_path, capsys):
    """An fc-only network dcsim did not define through sim and estimate: the RTL's
    integers equal the fixed kernel's and both commands print the same cycles."""
    rng = np.random.default_rng(5)
    proto = model([node("Flatten", ["x"], ["f"]),
                   node("Gemm", ["f", "fc1.weight", "fc1.bias"], ["h"], transB=1),
                   node("Relu", ["h"], ["r"]),
                   node("Gemm", ["r", "fc2.weight", "fc2.bias"], ["y"], transB=1)],
                  [init("fc1.weight", rand(rng, 48, 784, scale=0.05)),
                   init("fc1.bias", rand(rng, 48)),
                   init("fc2.weight", rand(rng, 10, 48)), init("fc2.bias", rand(rng, 10))],
                  ("N", 1, 28, 28))
    onnx.save(proto, tmp_path / "fc.onnx")
    out = tmp_path / "fc.dcz"
    assert main(["compress", "--onnx", str(tmp_path / "fc.onnx"), "--out", str(out),
                 "--no-retrain", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["sim", str(out), "--images", "2", "--n-pe", "4", "--json"]) == 0
    sim = json.loads(capsys.readouterr().out)
    assert main(["estimate", str(out), "--images", "2", "--n-pe", "4", "--json"]) == 0
    est = json.loads(capsys.readouterr().out)
    assert sim["outputs_match"] is True
    assert sim["cycles_per_layer"] == est["cycles_per_layer"] and len(est["cycles_per_layer"]) == 2
