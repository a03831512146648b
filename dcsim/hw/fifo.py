"""The activation queue of a PE: a synchronous FIFO of broadcast ``(j, a_j)`` pairs."""

from __future__ import annotations

from amaranth.hdl import Module, Value, unsigned
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out


class ActivationQueue(wiring.Component):
    """First-in first-out queue of activations (EIE, section III-C: the activation queue
    lets PEs build up a backlog, which evens out their load).

    Parameters
    ----------
    shape : ShapeLike -- the payload (``layouts.act_layout``).
    depth : int -- entries, at least 1.

    Ports
    -----
    w : In(stream.Signature(shape)) -- writes; ``w.ready`` is ``level != depth`` (a read
        in the same cycle does not make room for a write: the rule the cycle model uses).
    r : Out(stream.Signature(shape)) -- first-word fall-through reads; ``r.valid`` is
        ``level != 0``.
    level : Out(range(depth + 1)) -- entries held.
    """

    def __init__(self, shape, depth: int):
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
            self._MustUse__silence = True    # never elaborated: no warning
            raise TypeError(f"Queue depth must be a positive integer, not {depth!r}")
        self._shape = shape
        self._depth = depth
        super().__init__({
            "w": In(stream.Signature(shape)),
            "r": Out(stream.Signature(shape)),
            "level": Out(unsigned((depth).bit_length())),
        })

    @property
    def depth(self) -> int:
        """Entries the queue holds."""
        return self._depth

    def elaborate(self, platform):
        m = Module()
        width = Value.cast(self.w.payload).shape().width
        m.submodules.storage = storage = fifo.SyncFIFO(width=width, depth=self._depth)
        m.d.comb += [
            storage.w_data.eq(self.w.payload),
            storage.w_en.eq(self.w.valid),
            self.w.ready.eq(storage.w_rdy),
            self.r.payload.eq(storage.r_data),
            self.r.valid.eq(storage.r_rdy),
            storage.r_en.eq(self.r.ready),
            self.level.eq(storage.level),
        ]
        return m
