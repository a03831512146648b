"""The testbench feeder's Verilog and hex files depend on the config alone."""

import re

import pytest

from dcsim.errors import ConfigError
from dcsim.hw.config import EngineConfig
from dcsim.hw.feeder import FEED_FILE, feed_depth, feed_hex, harness_verilog, write_harness
from dcsim.hw.layouts import load_layout

CONFIG = EngineConfig(n_pe=2, sparse_words=64, ptr_depth=64, act_depth=32, bias_depth=32,
                      max_layers=4)


def test_depth_holds_every_memory_word():
    assert feed_depth(CONFIG) == 2 * (64 + 64 + 32 + 32) + 4 * (16 + 1)
    eie = EngineConfig.preset("eie64", ptr_depth=32768)
    assert feed_depth(eie) == 64 * (16384 + 32768 + 512 + 512) + 16 * 17


def test_hex_is_fixed_width():
    width = load_layout(CONFIG).size
    top = (1 << width) - 1
    text = feed_hex(CONFIG, [0, 5, top])
    lines = text.splitlines()
    assert lines == [f"{v:0{-(-width // 4)}x}" for v in (0, 5, top)]
    assert int(lines[2], 16) == top


def test_testbench_wraps_the_engine(tmp_path):
    text = harness_verilog(CONFIG, "x_engine", "x_engine_tb")
    width = load_layout(CONFIG).size
    assert re.search(r"^module x_engine_tb \(", text, re.M)
    assert f"input [{width - 1}:0] load__payload" in text
    assert f"reg [{width - 1}:0] feed_mem [0:{feed_depth(CONFIG) - 1}];" in text
    assert f'$readmemh("{FEED_FILE}", feed_mem);' in text
    assert re.search(r"^  x_engine engine \(", text, re.M)
    for port in ("load__ready", "start__valid", "out__payload", "cycle_data", "busy", "done",
                 "error"):
        assert f".{port}({port})" in text
    assert ".load__valid(eng_valid)" in text and ".load__payload(eng_payload)" in text
    path = write_harness(CONFIG, "x_engine", tmp_path)
    assert path.name == "x_engine_tb.v" and path.read_text() == text


def test_testbench_needs_a_config():
    with pytest.raises(ConfigError, match=r"^config must be an EngineConfig, not 3$"):
        harness_verilog(3, "x_engine", "x_engine_tb")
