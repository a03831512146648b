"""Tests of dcsim.sweep.spec: expansion of lists and ranges, keys, every error at once."""

import pytest

from sweep_specs import small_spec, write_spec
from dcsim.cli import main
from dcsim.errors import ConfigError
from dcsim.hw.config import EngineConfig
from dcsim.sweep.spec import load_spec


def test_lists_and_ranges_expand_in_order(tmp_path):
    path = write_spec(tmp_path, """\
        models: [lenet300]
        images: 3
        clock_mhz: {start: 200, stop: 800, step: 300}
        base: eie64
        config:
          n_pe: {start: 8, stop: 64, factor: 2}
          fifo_depth: 4
        """)
    spec = load_spec(path)
    assert spec.clock_mhz == (200.0, 500.0, 800.0)
    assert [c["n_pe"] for c in spec.configs] == [8, 16, 32, 64]
    assert all(c["fifo_depth"] == 4 for c in spec.configs)
    # the other fields are the base preset's
    assert spec.configs[0] == EngineConfig.preset("eie64", n_pe=8, fifo_depth=4).to_dict()
    points = spec.points()
    assert len(points) == 3 * 4
    assert len({p.key for p in points}) == 12
    assert points[0].images == 3 and points[0].tech == "default"


def test_key_is_content_hash(tmp_path):
    one = load_spec(small_spec(tmp_path, name="a.yaml")).points()
    two = load_spec(small_spec(tmp_path, name="b.yaml")).points()
    assert [p.key for p in one] == [p.key for p in two]        # same content, same keys
    other = load_spec(small_spec(tmp_path, images=3, name="c.yaml")).points()
    assert not {p.key for p in one} & {p.key for p in other}   # images are in the key


def test_model_file_content_is_in_the_key(tmp_path):
    model = tmp_path / "m.dcz"
    model.write_bytes(b"first")
    spec = write_spec(tmp_path, "models: [m.dcz]\nconfig: {n_pe: 2}\n")
    first = load_spec(spec).points()[0].key
    model.write_bytes(b"second")
    assert load_spec(spec).points()[0].key != first


def test_every_error_is_reported_at_once(tmp_path):
    path = write_spec(tmp_path, """\
        models: [lenet300, missing.dcz]
        colour: blue
        clock_mhz: {start: 800, stop: 400, step: 100}
        config:
          n_pe: [2, 4]
          banana: [1]
          fifo_depth: {start: 1, stop: 8}
        """)
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: 5 error(s): ")
    assert "unknown key 'colour'" in msg
    assert f"models: model file 'missing.dcz' does not exist (looked for {tmp_path}" in msg
    assert "clock_mhz: a range must have stop >= start" in msg
    assert "config: unknown EngineConfig field 'banana'" in msg
    assert ("config.fifo_depth: a range must have integers start and stop and one of step "
            "or factor, not {'start': 1, 'stop': 8}") in msg


def test_values_engine_config_refuses_are_errors(tmp_path):
    path = write_spec(tmp_path, """\
        models: [lenet300]
        config:
          act_depth: [256, 300]
          ptr_depth: [2048, 2049]
        """)
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    msg = str(info.value)
    assert "2 error(s)" in msg
    assert "EngineConfig refuses it (act_depth must be a power of two, not 300)" in msg
    assert "EngineConfig refuses it (ptr_depth must be even (two pointer banks), not 2049)" in msg


def test_bad_tech_table_is_a_spec_error(tmp_path):
    (tmp_path / "t.yaml").write_text("entries:\n  - {component: dram, action: read, "
                                     "width_bits: 64, energy_pj: -1, source: me}\n")
    path = write_spec(tmp_path, "models: [lenet300]\ntech: [default, t.yaml]\n")
    with pytest.raises(ConfigError, match=r"tech: .*t.yaml: 1 error\(s\): entries\[0\]: "
                                          r"energy_pj must be a positive finite number"):
        load_spec(path)


def test_cli_spec_errors_exit_2_list_all_and_write_nothing(tmp_path, capsys):
    path = write_spec(tmp_path, """\
        models: [nope.dcz]
        config:
          n_pe: [0, 2]
          word_bits: {start: 64, stop: 8, step: 8}
        """)
    out = tmp_path / "results.csv"
    assert main(["sweep", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"dcsim sweep: error: {path}: 3 error(s): ")
    assert "model file 'nope.dcz' does not exist" in err
    assert "config.word_bits: a range must have stop >= start" in err
    assert "config {'n_pe': 0}: EngineConfig refuses it (n_pe must be in 1..256, not 0)" in err
    assert not out.exists()
