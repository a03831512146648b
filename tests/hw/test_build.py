"""dcsim.hw.build has no side effects at import; it picks Amaranth's Yosys per call."""

import os
import subprocess
import sys

from dcsim.hw.build import builtin_yosys


def test_importing_the_library_changes_no_environment_or_backend():
    env = {k: v for k, v in os.environ.items()
           if k not in ("AMARANTH_USE_YOSYS", "MPLBACKEND")}
    code = ("import os, sys\n"
            "import dcsim.hw.build, dcsim.compress.prune, dcsim.cli\n"
            "print('AMARANTH_USE_YOSYS' in os.environ, 'matplotlib.pyplot' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_builtin_yosys_is_scoped_and_respects_a_users_choice(monkeypatch):
    monkeypatch.delenv("AMARANTH_USE_YOSYS", raising=False)
    with builtin_yosys():
        assert os.environ["AMARANTH_USE_YOSYS"] == "builtin"
    assert "AMARANTH_USE_YOSYS" not in os.environ
    monkeypatch.setenv("AMARANTH_USE_YOSYS", "system")
    with builtin_yosys():
        assert os.environ["AMARANTH_USE_YOSYS"] == "system"
    assert os.environ["AMARANTH_USE_YOSYS"] == "system"
