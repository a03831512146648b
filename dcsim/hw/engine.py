"""The engine top: layer sequencer, leading-non-zero broadcast, load and output streams."""

from __future__ import annotations

import enum

from amaranth.hdl import Cat, ClockSignal, Instance, Module, Mux, ResetSignal, Signal, \
    signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from dcsim.hw.config import EngineConfig, bits_for
from dcsim.hw.conv import GEOM_BITS, PatchAddress
from dcsim.hw.layouts import Target, desc_layout, load_layout
from dcsim.hw.lnzd import LeadingNonZero
from dcsim.hw.pe import ProcessingElement, pe_signature

CYCLE_BITS = 32
#: Clocks from the edge that takes a start to the edge after which the first output is
#: valid, beyond the sum of the layers' cycle counts (``docs/engine.md``, "Timing").
START_TO_OUTPUT = 1


class State(enum.IntEnum):
    """Sequencer states (the per-layer ones are timed in ``docs/engine.md``)."""

    IDLE = 0
    DESC = 1
    INIT = 2
    RUN = 3
    FINISH = 4
    OUTPUT = 5


def engine_signature(config: EngineConfig) -> wiring.Signature:
    """The ports of :class:`Engine` for ``config`` (see its docstring)."""
    return wiring.Signature({
        "load": In(stream.Signature(load_layout(config))),
        "start": In(stream.Signature(unsigned(bits_for(config.max_layers)))),
        "out": Out(stream.Signature(signed(config.act_bits))),
        "busy": Out(1),
        "done": Out(1),
        "error": Out(1),
        "cycle_addr": In(unsigned(bits_for(config.max_layers - 1))),
        "cycle_data": Out(unsigned(CYCLE_BITS)),
    })


class Engine(wiring.Component):
    """An EIE-style sparse matrix-vector engine running a whole network layer by layer.

    Parameters
    ----------
    config : EngineConfig.
    pe_module : str or None -- if given, each PE is an ``Instance`` of the Verilog module
        of that name (``build.write_rtl`` converts the PE once); otherwise the PEs are
        :class:`ProcessingElement` submodules (for ``amaranth.sim``).

    Ports
    -----
    load : In(stream of layouts.load_layout) -- memory image words; ``ready`` while idle.
    start : In(stream of n_layers) -- run layers ``0..n_layers-1`` on the input in bank 0;
        ``ready`` while idle. A start of 0 layers, or of more than the layers loaded (1 +
        the address of the last descriptor written), is refused: it is taken, nothing
        runs, and ``done`` and ``error`` rise in the next cycle.
    out : Out(stream of signed(act_bits)) -- after the last layer, its outputs in order
        ``j = 0..rows-1``.
    busy : Out(1) -- from an accepted start until the last output is taken.
    done : Out(1) -- the last run finished (cleared by the next start).
    error : Out(1) -- the last start was refused (cleared by the next start).
    cycle_addr : In -- a layer number; ``cycle_data`` : Out(32) -- that layer's cycles in
        the last run (combinational read).
    """

    def __init__(self, config: EngineConfig, pe_module: str | None = None):
        if not isinstance(config, EngineConfig):
            self._MustUse__silence = True    # never elaborated: no warning
            raise TypeError(f"config must be an EngineConfig, not {config!r}")
        if pe_module is not None and not (isinstance(pe_module, str) and pe_module.isidentifier()):
            self._MustUse__silence = True    # never elaborated: no warning
            raise TypeError(f"pe_module must be a Verilog module name or None, not {pe_module!r}")
        self.config = config
        self.pe_module = pe_module
        super().__init__(engine_signature(config))

    def _pes(self, m):
        """The PE interfaces, as submodules or as Verilog instances."""
        c = self.config
        pes = []
        for p in range(c.n_pe):
            if self.pe_module is None:
                pe = ProcessingElement(c)
                m.submodules[f"pe_{p}"] = pe
                pes.append(pe)
                continue
            sig = pe_signature(c)
            pe = sig.create(path=(f"pe_{p}",))
            ports = {"i_clk": ClockSignal(), "i_rst": ResetSignal()}
            for path, member, value in sig.flatten(pe):
                name = "__".join(str(part) for part in path)
                ports[("i_" if member.flow == In else "o_") + name] = value
            m.submodules[f"pe_{p}"] = Instance(self.pe_module, **ports)
            pes.append(pe)
        return pes

    def elaborate(self, platform):
        c = self.config
        n = c.n_pe
        m = Module()
        pes = self._pes(m)
        m.submodules.lnzd = lnzd = LeadingNonZero(n, c.act_bits)
        m.submodules.patch = patch = PatchAddress(c.row_bits, n)

        m.submodules.descs = descs = Memory(shape=desc_layout(c), depth=c.max_layers, init=[])
        desc_rd, desc_wr = descs.read_port(domain="comb"), descs.write_port()
        m.submodules.cycles = cycles = Memory(
            shape=unsigned(CYCLE_BITS), depth=c.max_layers, init=[])
        cyc_rd, cyc_wr = cycles.read_port(domain="comb"), cycles.write_port()

        state = Signal(State)
        layer = Signal(unsigned(bits_for(c.max_layers)))
        n_layers = Signal(unsigned(bits_for(c.max_layers)))
        desc = Signal(desc_layout(c))
        row = Signal(unsigned(bits_for(c.act_depth)))
        cyc = Signal(unsigned(CYCLE_BITS))
        done = Signal()
        error = Signal()
        # Layers loaded: 1 + the address of the last descriptor written. It describes the
        # descriptor memory, so like the memories it keeps its value through a reset.
        n_desc = Signal(unsigned(bits_for(c.max_layers)), reset_less=True)
        idle = state == State.IDLE

        # Load and start streams are accepted only while idle.
        load = self.load.payload
        accept_load = self.load.valid & idle
        m.d.comb += [
            self.load.ready.eq(idle),
            self.start.ready.eq(idle),
            self.busy.eq(~idle),
            self.done.eq(done),
            self.error.eq(error),
            desc_wr.addr.eq(load.addr),
            desc_wr.data.eq(load.data),
            desc_wr.en.eq(accept_load & (load.target == Target.DESC)),
            desc_rd.addr.eq(layer),
            cyc_rd.addr.eq(self.cycle_addr),
            self.cycle_data.eq(cyc_rd.data),
        ]
        for p, pe in enumerate(pes):
            m.d.comb += [
                pe.load_en.eq(accept_load & (load.bcast | (load.pe == p))
                              & (load.target != Target.DESC)),
                pe.load_target.eq(load.target),
                pe.load_addr.eq(load.addr),
                pe.load_data.eq(load.data),
                pe.layer.eq(layer),
                pe.ptr_base.eq(desc.ptr_base),
                pe.bias_base.eq(desc.bias_base),
                pe.relu.eq(desc.relu),
            ]

        # Conv sequencing (docs/engine.md, "Convolution"): output position (oy, ox) =
        # (py*win + dy, px*win + dx), pool window (py, px) after pool window; the source
        # vector being read is tap (ky, kx), channel group q; vmask holds which channels
        # of the vector on the read ports are real (0 for a padding pixel).
        side = unsigned(bits_for(c.act_depth))
        py, px, dy, dx = (Signal(side, name=f"pos_{v}") for v in ("py", "px", "dy", "dx"))
        ky, kx = Signal(unsigned(GEOM_BITS)), Signal(unsigned(GEOM_BITS))
        q = Signal(side)
        nky, nkx = Signal(unsigned(GEOM_BITS)), Signal(unsigned(GEOM_BITS))
        nq = Signal(side)
        vmask = Signal(unsigned(n))
        conv_pos = Signal(unsigned(CYCLE_BITS))     # position number (testbench monitors)
        last_pos = Signal()
        with m.If(q + 1 == desc.groups):
            with m.If(kx + 1 == desc.kw):
                m.d.comb += [nq.eq(0), nkx.eq(0), nky.eq(ky + 1)]
            with m.Else():
                m.d.comb += [nq.eq(0), nkx.eq(kx + 1), nky.eq(ky)]
        with m.Else():
            m.d.comb += [nq.eq(q + 1), nkx.eq(kx), nky.eq(ky)]
        m.d.comb += last_pos.eq((py + 1 == desc.out_h) & (px + 1 == desc.out_w)
                                & (dy + 1 == desc.win) & (dx + 1 == desc.win))

        with m.If(desc_wr.en & (load.addr < c.max_layers)):
            m.d.sync += n_desc.eq(load.addr + 1)

        # Scanner (EIE III-C): vector k holds source activations j = k*n_pe + p, one from
        # each PE; the LNZD broadcasts its non-zeros one per cycle, lowest j first.
        k = Signal(unsigned(bits_for(c.act_depth)))
        jbase = Signal(unsigned(c.col_bits + 1))
        have = Signal()                                  # vector k is on the read ports
        taken = Signal(unsigned(n))
        scan_done = Signal()
        all_ready = Signal()
        go = Signal()
        advance = Signal()
        in_layer = Signal(unsigned(n))
        m.d.comb += [
            all_ready.eq(Cat(pe.act.ready for pe in pes).all()),
            in_layer.eq(Mux(desc.conv, vmask, Cat((jbase + p) < desc.cols for p in range(n)))),
            lnzd.mask.eq(Mux(have, in_layer & ~taken, 0)),
            go.eq((state == State.RUN) & lnzd.any & all_ready),
            advance.eq((state == State.RUN) & have & (~lnzd.any | (go & lnzd.last))),
        ]
        for p, pe in enumerate(pes):
            m.d.comb += [
                lnzd.values[p].eq(pe.src_data),
                # valid depends on every queue's ready: a broadcast needs room in all of
                # them. Each ready is a register function, so there is no loop.
                pe.act.valid.eq(go),
                pe.act.payload.j.eq(jbase + lnzd.index),
                pe.act.payload.a.eq(lnzd.value),
            ]

        # Output reader: j = loc * n_pe + ope, read one cycle ahead of the stream.
        oloc = Signal(unsigned(c.row_bits))
        ope = Signal(unsigned(c.pe_bits))
        oj = Signal(unsigned(c.col_bits))
        ohave = Signal()
        take = Signal()
        m.d.comb += [
            self.out.valid.eq((state == State.OUTPUT) & ohave),
            self.out.payload.eq(Cat(pe.src_data for pe in pes).word_select(
                ope, c.act_bits).as_signed() if n > 1 else pes[0].src_data),
            take.eq(self.out.valid & self.out.ready),
        ]

        in_run = state == State.RUN
        src_en = Signal()
        src_addr = Signal(unsigned(c.row_bits))
        with m.If(state == State.OUTPUT):
            m.d.comb += [src_en.eq(~ohave | take)]
            with m.If(take & (ope == n - 1)):
                m.d.comb += src_addr.eq(oloc + 1)
            with m.Else():
                m.d.comb += src_addr.eq(oloc)
        with m.Else():
            m.d.comb += [src_en.eq(in_run & ((~have & ~scan_done) | advance)),
                         src_addr.eq(Mux(desc.conv, patch.addr, Mux(advance, k + 1, k)))]
        m.d.comb += [
            patch.in_ch.eq(desc.in_ch), patch.in_h.eq(desc.in_h), patch.in_w.eq(desc.in_w),
            patch.in_hw.eq(desc.in_hw), patch.stride.eq(desc.stride),
            patch.padding.eq(desc.padding),
            patch.oy.eq(py * desc.win + dy), patch.ox.eq(px * desc.win + dx),
            patch.ky.eq(Mux(advance, nky, ky)), patch.kx.eq(Mux(advance, nkx, kx)),
            patch.q.eq(Mux(advance, nq, q)),
        ]
        with m.If(src_en & in_run):
            m.d.sync += vmask.eq(patch.mask)
        for pe in pes:
            m.d.comb += [
                pe.src_en.eq(src_en),
                pe.src_addr.eq(src_addr),
                pe.src_bank.eq(Mux(state == State.OUTPUT, n_layers[0], layer[0])),
                pe.init.eq(state == State.INIT),
                pe.finish.eq((state == State.FINISH) & (row != desc.rows_local)),
                pe.row.eq(row),
                pe.dst_addr.eq(Mux(desc.conv, row * desc.out_hw + py * desc.out_w + px, row)),
                pe.pool_max.eq(desc.conv & (desc.win > 1) & ((dy != 0) | (dx != 0))),
            ]
        all_idle = Cat(pe.idle for pe in pes).all()

        with m.Switch(state):
            with m.Case(State.IDLE):
                with m.If(self.start.valid):
                    with m.If((self.start.payload == 0) | (self.start.payload > n_desc)):
                        m.d.sync += [done.eq(1), error.eq(1)]
                    with m.Else():
                        m.d.sync += [n_layers.eq(self.start.payload), layer.eq(0), done.eq(0),
                                     error.eq(0), state.eq(State.DESC)]
            with m.Case(State.DESC):
                m.d.sync += [desc.eq(desc_rd.data), row.eq(0), cyc.eq(1), k.eq(0),
                             jbase.eq(0), have.eq(0), taken.eq(0), scan_done.eq(0),
                             py.eq(0), px.eq(0), dy.eq(0), dx.eq(0), ky.eq(0), kx.eq(0),
                             q.eq(0), conv_pos.eq(0), state.eq(State.INIT)]
            with m.Case(State.INIT):
                m.d.sync += [cyc.eq(cyc + 1), row.eq(row + 1)]
                with m.If(row + 1 == desc.rows_local):
                    m.d.sync += [row.eq(0), state.eq(State.RUN)]
            with m.Case(State.RUN):
                m.d.sync += cyc.eq(cyc + 1)
                with m.If(~have & ~scan_done):
                    m.d.sync += have.eq(1)
                with m.If(advance):
                    m.d.sync += [taken.eq(0), k.eq(k + 1), jbase.eq(jbase + n), ky.eq(nky),
                                 kx.eq(nkx), q.eq(nq)]
                    with m.If(k + 1 == desc.vectors):
                        m.d.sync += [scan_done.eq(1), have.eq(0)]
                with m.Elif(go):
                    m.d.sync += taken.eq(taken | lnzd.onehot)
                with m.If(scan_done & all_idle):
                    m.d.sync += [row.eq(0), state.eq(State.FINISH)]
            with m.Case(State.FINISH):
                m.d.sync += [cyc.eq(cyc + 1), row.eq(row + 1)]
                with m.If((row == desc.rows_local) & desc.conv & ~last_pos):
                    # next output position of a conv layer: its INIT follows at once
                    m.d.sync += [row.eq(0), k.eq(0), jbase.eq(0), have.eq(0), taken.eq(0),
                                 scan_done.eq(0), ky.eq(0), kx.eq(0), q.eq(0),
                                 conv_pos.eq(conv_pos + 1), state.eq(State.INIT)]
                    with m.If(dx + 1 != desc.win):
                        m.d.sync += dx.eq(dx + 1)
                    with m.Elif(dy + 1 != desc.win):
                        m.d.sync += [dx.eq(0), dy.eq(dy + 1)]
                    with m.Elif(px + 1 != desc.out_w):
                        m.d.sync += [dx.eq(0), dy.eq(0), px.eq(px + 1)]
                    with m.Else():
                        m.d.sync += [dx.eq(0), dy.eq(0), px.eq(0), py.eq(py + 1)]
                with m.Elif(row == desc.rows_local):
                    m.d.comb += [cyc_wr.addr.eq(layer), cyc_wr.data.eq(cyc + 1),
                                 cyc_wr.en.eq(1)]
                    m.d.sync += layer.eq(layer + 1)
                    with m.If(layer + 1 == n_layers):
                        m.d.sync += [oloc.eq(0), ope.eq(0), oj.eq(0), ohave.eq(0),
                                     state.eq(State.OUTPUT)]
                    with m.Else():
                        m.d.sync += state.eq(State.DESC)
            with m.Case(State.OUTPUT):
                with m.If(~ohave):
                    m.d.sync += ohave.eq(1)
                with m.If(take):
                    m.d.sync += oj.eq(oj + 1)
                    with m.If(ope == n - 1):
                        m.d.sync += [ope.eq(0), oloc.eq(oloc + 1)]
                    with m.Else():
                        m.d.sync += ope.eq(ope + 1)
                    with m.If(oj + 1 == desc.rows):
                        m.d.sync += [done.eq(1), state.eq(State.IDLE)]
        return m
