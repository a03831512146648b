"""Shared pieces of the sweep tests: one synthesis cache per session, small specs."""

import textwrap

import pytest

#: A small engine whose memories stay SRAM macros (deeper than 64 entries) and whose
#: synthesis takes seconds; the sweep tests use n_pe 2 and 4 of it.
SMALL_FIELDS = dict(sparse_words=256, ptr_depth=256, act_depth=128, bias_depth=128,
                    max_layers=2)


@pytest.fixture(autouse=True)
def synth_cache(tmp_path_factory, monkeypatch):
    """Every test of the session shares one synthesis cache (each config once)."""
    path = tmp_path_factory.getbasetemp() / "dcsim-cache"
    monkeypatch.setenv("DCSIM_CACHE", str(path))
    return path


def write_spec(folder, body: str, name: str = "spec.yaml"):
    path = folder / name
    path.write_text(textwrap.dedent(body))
    return path


def small_spec(folder, clocks: str = "[100, 200]", images: int = 2, name="spec.yaml"):
    """A spec over n_pe 2, 4 of the small engine and the given clocks."""
    fields = "\n".join(f"  {k}: {v}" for k, v in SMALL_FIELDS.items())
    return write_spec(folder, f"models: [lenet300]\nseed: 3\nimages: {images}\n"
                              f"clock_mhz: {clocks}\nbase: small\nconfig:\n"
                              f"  n_pe: [2, 4]\n{fields}\n", name)
