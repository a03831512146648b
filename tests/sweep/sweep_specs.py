"""Small specs for the sweep tests."""

import textwrap

#: A small engine whose memories but the queue and the codebook stay SRAM macros, whose
#: synthesis takes seconds; the sweep tests use n_pe 2 and 4 of it.
SMALL_FIELDS = dict(sparse_words=256, ptr_depth=256, act_depth=128, bias_depth=128,
                    max_layers=2)


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
