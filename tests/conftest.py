"""Suite-wide settings: dcsim's cache lives in the checkout's build/, never in ~/.cache.

The RTL tests share one Verilator build per configuration (tests/rtl/conftest.py); with
the cache in ``build/cache`` those builds are also reused by the next run in this
checkout, as they were when builds went to ``./build``. An explicit ``DCSIM_CACHE``
wins. Tests of the cache itself point ``DCSIM_CACHE`` at their own ``tmp_path``.
"""

import os
from pathlib import Path

CHECKOUT_CACHE = Path(__file__).resolve().parents[1] / "build" / "cache"


def pytest_configure(config):
    os.environ.setdefault("DCSIM_CACHE", str(CHECKOUT_CACHE))
