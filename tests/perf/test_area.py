"""Tests of dcsim.perf.area: cited cell areas, the SRAM fit, table errors, composition."""

import numpy as np
import pytest

from dcsim.errors import ConfigError
from dcsim.hw.config import EngineConfig
from dcsim.perf.area import default_area, engine_area, load_area

SMALL = dict(sparse_words=256, ptr_depth=256, act_depth=128, bias_depth=128, max_layers=2)


def test_cells_are_nangate_x1_areas():
    t = default_area()
    # NanGate 45 nm X1 cells are 1.4 um tall; a NAND2 is 0.57 um wide, a DFF 3.23 um
    assert t.cell_um2("$_NAND_") == pytest.approx(0.57 * 1.4)
    assert t.cell_um2("$_DFF_P_") == pytest.approx(3.23 * 1.4)
    assert t.logic_um2({"$_NAND_": 10, "$_DFF_P_": 2}) == pytest.approx(10 * 0.798 + 2 * 4.522)


def test_sram_fit_through_the_macros():
    t = default_area()
    # within the fit's worst error of every tabulated macro; 512 x 64 is 152.57 x 113.4 um
    for r in t.rows:
        if r.component == "sram":
            got = t.sram_um2(r.depth, r.width_bits)
            assert abs(got / r.area_um2 - 1) <= t.sram_fit_max_rel_error + 1e-12
    assert t.sram_um2(512, 64) == pytest.approx(152.57 * 113.4, rel=t.sram_fit_max_rel_error)
    assert 0.8 < t.sram_fit_p < 1.0           # periphery amortised over more bits
    assert t.sram_um2(16384, 64) > 20 * t.sram_um2(512, 64)


def test_area_table_errors_are_all_reported_like_the_energy_tables(tmp_path):
    path = tmp_path / "area.yaml"
    path.write_text(
        "replace: [sram, dram]\n"
        "entries:\n"
        "  - {component: sram, depth: 64, width_bits: 8, area_um2: -3, source: me}\n"
        "  - {component: sram, width_bits: 8, area_um2: 10, source: me}\n"
        "  - {component: cell, cell: $_FOO_, area_um2: 1, source: me, colour: red}\n")
    with pytest.raises(ConfigError) as info:
        load_area(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: 5 error(s): ")
    assert "replace: component must be one of ['cell', 'sram'], not 'dram'" in msg
    assert ("entries[0]: area_um2 must be a positive finite number of square micrometres, "
            "not -3") in msg
    assert "entries[1]: depth must be a positive integer for sram, not None" in msg
    assert "entries[2]: unknown field 'colour'" in msg
    assert "entries[2]: cell must be one of" in msg


def test_user_sram_rows_replace_the_curve(tmp_path):
    path = tmp_path / "area.csv"
    path.write_text("component,cell,depth,width_bits,area_um2,source\n"
                    "sram,,100,10,1000,made up\nsram,,1000,10,10000,made up\n")
    with pytest.raises(ConfigError, match="SRAM fit needs 'sram' rows of two or more sizes"):
        load_area(_one_row(tmp_path))
    t = load_area(path)
    # the default rows stay; with the two user rows the fit is no longer 1.37 * bits^0.916
    assert t.sram_fit_p != pytest.approx(default_area().sram_fit_p)
    yaml_path = tmp_path / "only.yaml"
    row = "  - {component: sram, depth: %d, width_bits: 10, area_um2: %d, source: x}\n"
    yaml_path.write_text("replace: [sram]\nentries:\n" + row % (100, 1000)
                         + row % (1000, 10000))
    only = load_area(yaml_path)
    assert only.sram_fit_p == pytest.approx(1.0)      # 1 um^2 per bit, exactly
    assert only.sram_um2(50, 10) == pytest.approx(500.0)


def _one_row(tmp_path):
    p = tmp_path / "one.yaml"
    p.write_text("replace: [sram]\nentries:\n"
                 "  - {component: sram, depth: 100, width_bits: 10, area_um2: 1000, source: x}\n")
    return p


def test_engine_area_is_top_plus_n_pe_pes(tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "dcsim-cache" / "synth"
    a = engine_area(EngineConfig(n_pe=4, **SMALL), cache_dir=cache)
    pe, top = a["pe"], a["top"]
    assert a["total_um2"] == pytest.approx(top["total_um2"] + 4 * pe["total_um2"])
    assert a["components_um2"]["pe_logic"] == pytest.approx(4 * pe["logic_um2"])
    assert pe["logic_nand2"] == pytest.approx(pe["logic_um2"] / 0.798)
    t = default_area()
    assert pe["sram_um2"]["sparse"] == pytest.approx(t.sram_um2(256, 64))
    assert pe["logic_um2"] == pytest.approx(sum(n * t.cell_um2(c) for c, n in pe["cells"].items()))
    assert np.isfinite(a["total_um2"]) and top["sram_um2"] == {}
