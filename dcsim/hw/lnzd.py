"""Leading-non-zero detection over one vector of source activations."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out


class LeadingNonZero(wiring.Component):
    """Find the first non-zero activation among ``n`` candidates (EIE, section III-C: the
    LNZD picks non-zero activations to broadcast; EIE builds it as a tree of 4-input
    nodes, this is the same function as one flat priority encoder).

    Parameters
    ----------
    n : int -- candidates (the engine's n_pe: one activation per PE per source vector).
    act_bits : int -- width of an activation.

    Ports
    -----
    values : In(ArrayLayout(signed(act_bits), n)) -- the candidates, index 0 first.
    mask : In(n) -- candidates still eligible (inside the layer, not yet broadcast).
    any : Out(1) -- some eligible candidate is non-zero.
    index : Out(range(n)) -- the lowest such candidate (0 if none).
    value : Out(signed(act_bits)) -- its value.
    onehot : Out(n) -- ``1 << index`` if ``any``, else 0.
    last : Out(1) -- it is the only eligible non-zero candidate left (or there is none).
    """

    def __init__(self, n: int, act_bits: int):
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            self._MustUse__silence = True    # never elaborated: no warning
            raise TypeError(f"Candidate count must be a positive integer, not {n!r}")
        self._n = n
        super().__init__({
            "values": In(data.ArrayLayout(signed(act_bits), n)),
            "mask": In(unsigned(n)),
            "any": Out(1),
            "index": Out(unsigned(max(1, (n - 1).bit_length()))),
            "value": Out(signed(act_bits)),
            "onehot": Out(unsigned(n)),
            "last": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        n = self._n
        nonzero = [(self.values[p] != 0) & self.mask[p] for p in range(n)]
        bits = Signal(n)
        m.d.comb += bits.eq(Cat(*nonzero))
        lowest = Signal(n)
        m.d.comb += [
            lowest.eq(bits & (-bits)[:n]),
            self.any.eq(bits != 0),
            self.onehot.eq(lowest),
            self.last.eq((bits & (bits - 1)[:n]) == 0),
        ]
        # Priority encoder: the highest index is assigned first so the lowest one wins.
        for p in reversed(range(n)):
            with m.If(bits[p]):
                m.d.comb += self.index.eq(p)
        m.d.comb += self.value.eq(self.values[self.index])
        return m
