"""Tests of dcsim.perf.tech: default table, SRAM fit, width laws, user files."""

import json
import math
import re

import pytest

from dcsim.errors import ConfigError
from dcsim.perf import tech as tech_mod
from dcsim.perf.tech import TechRow, TechTable, default_tech, load_tech

CACTI = {2048: 2.35, 8192: 5.29, 32768: 14.9, 131072: 33.0, 1048576: 67.7}


def test_default_rows_are_the_published_figures():
    t = default_tech()
    assert t.int_add_pj(8) == 0.03 and t.int_add_pj(32) == 0.1
    assert t.float_add_pj(16) == 0.4 and t.float_add_pj(32) == 0.9
    assert t.int_mult_pj(8) == 0.2 and t.int_mult_pj(32) == 3.1
    assert t.float_mult_pj(16) == 1.1 and t.float_mult_pj(32) == 3.7
    assert t.lookup("sram_quoted", 64, 8192) == 10
    assert t.lookup("sram_quoted", 64, 32768) == 20
    assert t.lookup("sram_quoted", 64, 1048576) == 100
    assert t.lookup("sram_quoted", 32, 8192) == 5
    assert t.dram_read_pj(32) == 640 and t.dram_read_pj(64) == 1300
    assert all(r.source and r.unit.startswith("pJ per") for r in t.rows)


def test_sram_fit_reproduces_cacti_within_stated_error():
    t = default_tech()
    for size, pj in CACTI.items():
        rel = abs(t.sram_read_pj(size, 64) / pj - 1)
        assert rel <= t.sram_fit_max_rel_error + 1e-12
    worst = max(abs(t.sram_read_pj(s, 64) / e - 1) for s, e in CACTI.items())
    assert worst == pytest.approx(t.sram_fit_max_rel_error, rel=1e-12)
    assert t.sram_fit_max_rel_error < 0.25
    # the module docstring states the fit: it must match what is computed at load
    doc = tech_mod.__doc__
    assert f"a = {t.sram_fit_a:.4f} pJ, p = {t.sram_fit_p:.3f}" in doc
    assert f"max relative error {t.sram_fit_max_rel_error:.1%}" in doc


def test_sram_read_is_linear_in_width_and_regfile_uses_the_curve():
    t = default_tech()
    assert t.sram_read_pj(8192, 32) == pytest.approx(t.sram_read_pj(8192, 64) / 2)
    assert t.regfile_pj(128, 16) == t.sram_read_pj(128, 16)
    assert t.regfile_pj(128, 64) == pytest.approx(t.sram_fit_a * 128 ** t.sram_fit_p)


def test_width_laws_interpolate_in_log_log():
    t = default_tech()
    mult_slope = math.log(3.1 / 0.2) / math.log(4)
    assert t.int_mult_pj(16) == pytest.approx(0.2 * 2 ** mult_slope)
    add_slope = math.log(0.1 / 0.03) / math.log(4)
    assert t.int_add_pj(48) == pytest.approx(0.1 * 1.5 ** add_slope)
    assert t.float_mult_pj(8) == pytest.approx(1.1 * 0.5 ** math.log2(3.7 / 1.1))
    assert t.dram_read_pj(16) == 320 and t.dram_read_pj(128) == 2600


def test_single_row_uses_default_exponent(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("replace: [int_mult, int_add]\nentries:\n"
                    "  - {component: int_mult, action: mult, width_bits: 8, energy_pj: 0.2,"
                    " source: me}\n"
                    "  - {component: int_add, action: add, width_bits: 8, energy_pj: 0.03,"
                    " source: me}\n")
    t = load_tech(path)
    assert t.int_mult_pj(16) == pytest.approx(0.8)
    assert t.int_add_pj(16) == pytest.approx(0.06)


def test_yaml_overrides_one_entry_and_keeps_the_rest(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("- component: int_mult\n  action: mult\n  width_bits: 32\n"
                    "  energy_pj: 2.5\n  source: my process\n")
    t = load_tech(path)
    assert t.int_mult_pj(32) == 2.5
    assert t.int_mult_pj(8) == 0.2
    assert t.dram_read_pj(32) == 640
    assert t.sram_fit_p == default_tech().sram_fit_p
    assert str(path) in t.origin


def test_json_replace_refits_the_sram_curve(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"replace": ["sram"], "entries": [
        {"component": "sram", "action": "read", "width_bits": 64, "size_bytes": 1024,
         "energy_pj": 1.0, "unit": "pJ per read", "source": "made up"},
        {"component": "sram", "action": "read", "width_bits": 64, "size_bytes": 4096,
         "energy_pj": 2.0, "source": "made up"}]}))
    t = load_tech(path)
    assert t.sram_fit_p == pytest.approx(0.5)
    assert t.sram_fit_a == pytest.approx(1 / 32)
    assert t.sram_fit_max_rel_error < 1e-12
    assert t.sram_read_pj(16384, 64) == pytest.approx(4.0)


def test_csv_overrides(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("component,action,width_bits,size_bytes,energy_pj,unit,source\n"
                    "dram,read,32,,320,pJ per read,LPDDR guess\n")
    t = load_tech(path)
    assert t.dram_read_pj(32) == 320
    assert t.dram_read_pj(64) == 1300


def test_bad_yaml_reports_every_error_at_once(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "replace: [sram, flux]\n"
        "entries:\n"
        "  - {component: int_mul, action: mult, width_bits: 8, energy_pj: 1, source: s}\n"
        "  - {component: sram, action: read, width_bits: 64, energy_pj: -2, source: s}\n"
        "  - {component: dram, action: write, width_bits: 0, energy_pj: 1, unit: nJ,"
        " source: s, colour: red}\n")
    with pytest.raises(ConfigError) as info:
        load_tech(path)
    components = ("['dram', 'float_add', 'float_mult', 'int_add', 'int_mult', 'sram', "
                  "'sram_quoted']")
    assert str(info.value) == (
        f"{path}: 8 error(s): "
        f"replace: component must be one of {components}, not 'flux'; "
        "entries[2]: unknown field 'colour' (fields are component, action, width_bits, "
        "size_bytes, energy_pj, unit, source); "
        f"entries[0]: component must be one of {components}, not 'int_mul'; "
        "entries[1]: size_bytes must be a positive integer for sram, not None; "
        "entries[1]: energy_pj must be a positive finite number of picojoules, not -2; "
        "entries[2]: action must be 'read' for dram, not 'write'; "
        "entries[2]: width_bits must be a positive integer, not 0; "
        "entries[2]: unit must be 'pJ per read' (energy_pj is always in picojoules), "
        "not 'nJ'")


def test_bad_csv_names_lines(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("component,action,width_bits,size_bytes,energy_pj,unit,source,extra\n"
                    "int_add,add,8,,0.03,pJ per op,ok,\n"
                    "int_add,add,8,,0.04,pJ per op,dup,\n"
                    "int_mult,mult,8.5,,x,pJ per op,,\n")
    with pytest.raises(ConfigError) as info:
        load_tech(path)
    assert str(info.value) == (
        f"{path}: 5 error(s): "
        "line 1: unknown column 'extra' (columns are component, action, width_bits, "
        "size_bytes, energy_pj, unit, source); "
        "line 3: duplicates the row at line 2 (same component, action, width_bits, "
        "size_bytes); "
        "line 4: width_bits must be a positive integer, not '8.5'; "
        "line 4: energy_pj must be a positive finite number of picojoules, not 'x'; "
        "line 4: source must be a non-empty string saying where the figure comes from, "
        "not None")


def test_replacing_a_component_without_rows_is_reported(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("replace: [dram, sram]\nentries:\n"
                    "  - {component: sram, action: read, width_bits: 64, size_bytes: 1024,"
                    " energy_pj: 1, source: s}\n")
    with pytest.raises(ConfigError) as info:
        load_tech(path)
    assert str(info.value) == (
        f"{path}: 2 error(s): the table must have at least one 'dram' row, not none; "
        "the SRAM curve needs 'sram' rows at width_bits=64 for two or more sizes, "
        "not [1024]")


@pytest.mark.parametrize("name, text, problem", [
    ("t.toml", "x = 1", "must end in .yaml, .yml, .json or .csv, not '.toml'"),
    ("t.yaml", "entries: {a: 1}", "1 error(s): entries must be a list of rows, not dict"),
    ("t.yaml", "- 3", "1 error(s): entries[0]: a row must be a mapping of fields, not 3"),
    ("t.yaml", "other: 1", "1 error(s): top-level key must be 'replace' or 'entries', "
                           "not 'other'"),
])
def test_bad_documents(tmp_path, name, text, problem):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_tech(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and message.endswith(problem)


def test_unparsable_json_and_missing_file(tmp_path):
    path = tmp_path / "t.json"
    path.write_text("{nope")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: 1 error(s): is not valid JSON")):
        load_tech(path)
    with pytest.raises(ConfigError) as info:
        load_tech(tmp_path / "absent.yaml")
    assert str(info.value) == ("Technology file must be an existing file, not "
                               f"{str(tmp_path / 'absent.yaml')!r}")


@pytest.mark.parametrize("call, message", [
    (lambda t: t.sram_read_pj(0), "size_bytes must be a positive finite number, not 0"),
    (lambda t: t.sram_read_pj(1024, 12.5), "width_bits must be a positive integer, not 12.5"),
    (lambda t: t.int_add_pj(True), "bits must be a positive integer, not True"),
    (lambda t: t.dram_read_pj(-8), "bits must be a positive integer, not -8"),
    (lambda t: t.lookup("sram", 32, 2048),
     "Technology table has no 'sram' row at width_bits=32, size_bytes=2048; it has "
     "(width_bits, size_bytes) [(64, 2048), (64, 8192), (64, 32768), (64, 131072), "
     "(64, 1048576)]"),
])
def test_bad_lookups(call, message):
    with pytest.raises(ConfigError) as info:
        call(default_tech())
    assert str(info.value) == message


def test_table_rejects_duplicate_rows():
    rows = default_tech().rows
    with pytest.raises(ConfigError) as info:
        TechTable(rows + (rows[0],), origin="test")
    assert str(info.value) == (
        "Technology table from test: the table must not have two rows with the same "
        "key, not [('int_add', 'add', 8, None)]")
    assert isinstance(rows[0], TechRow)
