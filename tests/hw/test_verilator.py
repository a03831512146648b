"""Verilator builds: where they go, and two concurrent builds of one config build once."""

import json
import os
import threading

from dcsim.hw import verilator
from dcsim.hw.config import EngineConfig


def test_build_root_is_the_user_cache_unless_dcsim_build_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("DCSIM_BUILD_DIR", raising=False)
    monkeypatch.setenv("DCSIM_CACHE", str(tmp_path / "cache"))
    assert verilator.default_build_root() == tmp_path / "cache" / "verilator"
    monkeypatch.setenv("DCSIM_BUILD_DIR", str(tmp_path / "old"))
    assert verilator.default_build_root() == tmp_path / "old"


def test_concurrent_builds_of_one_config_build_once(monkeypatch, tmp_path):
    calls, messages = [], []

    def fake_verilate(sources, toplevel, build_dir, log_file, args, waves=False):
        calls.append(build_dir)
        threading.Event().wait(0.5)          # long enough for the other caller to queue
        build_dir.mkdir(parents=True)
        (build_dir / toplevel).write_text("a built model")

    monkeypatch.setattr(verilator, "_verilate", fake_verilate)
    config = EngineConfig.preset("small", n_pe=1)
    builds = []

    def build():
        builds.append(verilator.build_engine(config, tmp_path, log=messages.append))

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(calls) == 1 and len(builds) == 2 and builds[0] == builds[1]
    tag = f"engine_{config.digest()}"           # not a preset: named by its digest
    entry = tmp_path / tag
    assert builds[0].build_dir == entry / f"build_{builds[0].key}"
    assert sorted(messages) == [
        f"building the Verilator model for config {tag} (1 PEs), once, ~20 s; cached in "
        f"{entry}",
        f"waiting for another dcsim process to build the Verilator model of config {tag} "
        f"({entry})"]
    assert verilator.build_engine(config, tmp_path, log=messages.append) == builds[0]
    assert len(calls) == 1 and len(messages) == 2


def test_build_time_guess_scales_the_nearest_recorded_build(tmp_path):
    config = EngineConfig.preset("eie64")
    assert verilator._expected_seconds(tmp_path, config) == round(60 * 16 ** 0.8)
    for when, (name, n_pe, seconds) in enumerate((("a", 4, 100.0), ("b", 8, 150.0),
                                                  ("c", 4, 90.0))):
        stamp = tmp_path / name / "build_k" / verilator.STAMP_NAME
        stamp.parent.mkdir(parents=True)
        stamp.write_text(json.dumps({"config": {"n_pe": n_pe}, "build_seconds": seconds}))
        os.utime(stamp, (1000 + when, 1000 + when))
    assert verilator._expected_seconds(tmp_path, EngineConfig.preset("small")) == 90  # the last
    assert verilator._expected_seconds(tmp_path, config) == round(150 * 8 ** 0.8)
