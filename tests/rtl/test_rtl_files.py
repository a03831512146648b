"""The committed Verilog under rtl/ is what write_rtl generates today."""

from pathlib import Path

import pytest
from conftest import VARIANTS

from dcsim.errors import ToolError
from dcsim.hw.build import config_tag, write_rtl
from dcsim.hw.config import EngineConfig
from dcsim.hw.verilator import lint_engine, lint_verilog
from dcsim.hw.workloads import random_layer, single_layer_model

RTL = Path(__file__).resolve().parents[2] / "rtl"


@pytest.mark.parametrize("preset", ["small", "eie64"])
def test_committed_rtl_is_fresh(tmp_path, preset):
    paths = write_rtl(EngineConfig.preset(preset), tmp_path)
    assert [p.name for p in paths] == [f"{preset}_pe.v", f"{preset}_engine.v", f"{preset}.json"]
    for path in paths:
        committed = RTL / path.name
        assert committed.exists(), f"{committed} is missing: run `make rtl`"
        assert committed.read_text() == path.read_text(), f"{committed} is stale: run `make rtl`"


def test_verilog_does_not_depend_on_the_model(tmp_path):
    import numpy as np
    config = EngineConfig(n_pe=2, sparse_words=64, ptr_depth=64, act_depth=32, bias_depth=32)
    plain = write_rtl(config, tmp_path / "a")
    model = single_layer_model(random_layer("l", 6, 9, 0.5, np.random.default_rng(0)))
    with_model = write_rtl(config, tmp_path / "b", model=model)
    tag = config_tag(config)
    assert tag.startswith("engine_")
    assert [p.name for p in with_model] == [p.name for p in plain] + [f"{tag}_load.hex"]
    for a, b in zip(plain, with_model):
        assert a.read_text() == b.read_text()
    lines = with_model[-1].read_text().split()
    assert len(lines) > 10 and all(len(line) == len(lines[0]) for line in lines)


@pytest.mark.parametrize("config", [EngineConfig.preset("small"),
                                    *(c for c, _ in VARIANTS.values())], ids=["small", *VARIANTS])
def test_verilog_passes_verilator_lint_wall(tmp_path, config):
    # -Wall with the waivers of dcsim/hw/lint_waivers.vlt (each explained there); the
    # eie64 preset passes too but takes ~40 s and 2.5 GB to lint, so it is left out here
    out = lint_engine(config, tmp_path)
    assert "%Warning" not in out and (tmp_path / "lint.log").read_text() == out


def test_lint_reports_a_warning_it_does_not_waive(tmp_path):
    source = tmp_path / "t.v"
    source.write_text("module t (input a, output b);\n  wire stray;\n"
                      "  assign b = a & stray;\nendmodule\n")
    with pytest.raises(ToolError, match=r"^Verilog of t must pass verilator --lint-only -Wall, "
                                        r"not warn \(\d+ messages, first: %Warning-UNDRIVEN: "
                                        r".*\); see .*lint\.log$"):
        lint_verilog([source], "t", tmp_path)
