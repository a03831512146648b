"""``dcsim sweep --verify K``: sweep points rerun on the Verilator engine, cycles compared."""

import json

from conftest import rtl_config
from dcsim.cli import main
from dcsim.sweep.results import read_rows
from dcsim.sweep.runner import verify_points
from dcsim.sweep.spec import load_spec


def test_verify_reruns_points_on_the_rtl(tmp_path, tmp_path_factory, monkeypatch,
                                         engine_build, capsys):
    monkeypatch.setenv("DCSIM_CACHE", str(tmp_path_factory.getbasetemp() / "dcsim-cache"))
    engine_build(2)                      # the RTL tests' build of this config, reused
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text("models: [lenet300]\nseed: 5\nimages: 2\nclock_mhz: [400, 800]\n"
                         "base: small\nconfig: {n_pe: [2]}\n")
    out = tmp_path / "r.csv"
    assert main(["sweep", str(spec_path), "--out", str(out), "--jobs", "1", "--quiet",
                 "--verify", "1", "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    (v,) = report["verify"]
    assert v["config"] == rtl_config(2).to_dict()
    assert v["match"] and v["cycles_rtl"] == v["cycles_model"]
    assert f"verify: point {v['key']}" in captured.err          # the chosen point, printed

    # a row whose cycles were not the model's is caught
    rows = read_rows(out)
    for r in rows:
        cycles = json.loads(r["cycles_per_layer_json"])
        r["cycles_per_layer_json"] = json.dumps([cycles[0] + 1] + cycles[1:])
    (bad,) = verify_points(load_spec(spec_path), rows, 1, seed=5)
    assert not bad["match"] and bad["cycles_rtl"][0] + 1 == bad["cycles_model"][0]
