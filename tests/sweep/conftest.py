"""The sweep tests share one synthesis cache per session (each config once)."""

import pytest


@pytest.fixture(autouse=True)
def synth_cache(tmp_path_factory, monkeypatch):
    """Every test of the session shares one synthesis cache (each config once)."""
    path = tmp_path_factory.getbasetemp() / "dcsim-cache"
    monkeypatch.setenv("DCSIM_CACHE", str(path))
    return path

