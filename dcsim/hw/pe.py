"""One processing element: activation queue, pointer banks, sparse SRAM, codebook, MAC."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from dcsim.hw.config import EngineConfig, bits_for
from dcsim.hw.conv import PoolMax
from dcsim.hw.fifo import ActivationQueue
from dcsim.hw.layouts import TARGET_BITS, Target, act_layout, load_addr_bits, load_data_bits, \
    word_layout


def pe_signature(config: EngineConfig) -> wiring.Signature:
    """The ports of :class:`ProcessingElement` for ``config`` (see its docstring)."""
    return wiring.Signature({
        "act": In(stream.Signature(act_layout(config))),
        "layer": In(unsigned(bits_for(config.max_layers - 1))),
        "ptr_base": In(unsigned(bits_for(config.ptr_depth - 1))),
        "bias_base": In(unsigned(bits_for(config.bias_depth - 1))),
        "relu": In(1),
        "src_bank": In(1),
        "init": In(1),
        "finish": In(1),
        "row": In(unsigned(config.row_bits)),
        "dst_addr": In(unsigned(config.row_bits)),
        "pool_max": In(1),
        "src_en": In(1),
        "src_addr": In(unsigned(config.row_bits)),
        "src_data": Out(signed(config.act_bits)),
        "load_en": In(1),
        "load_target": In(unsigned(TARGET_BITS)),
        "load_addr": In(unsigned(load_addr_bits(config))),
        "load_data": In(unsigned(load_data_bits(config))),
        "idle": Out(1),
        "dbg_wr": Out(1),
        "dbg_row": Out(unsigned(config.row_bits)),
        "dbg_col": Out(unsigned(config.col_bits)),
        "dbg_sum": Out(signed(config.acc_bits)),
        "dbg_fetch": Out(1),
        "dbg_pop": Out(1),
    })


class ProcessingElement(wiring.Component):
    """A PE of the engine (EIE, section III-B..D), holding rows ``i % n_pe == k``.

    Parameters
    ----------
    config : EngineConfig.

    Ports (all driven by the engine top; timing in ``docs/engine.md``)
    -----
    act : In(stream of act_layout) -- broadcast ``(j, a_j)`` into the activation queue.
    layer, ptr_base, bias_base, relu, src_bank : In -- the current layer's descriptor
        fields: codebook bank, first pointer index (even), first bias address, ReLU flag,
        activation bank read by this layer (its outputs go to the other bank).
    init : In(1) -- with ``row``: load accumulator ``row`` with its bias (<< frac_bits).
    finish : In(1) -- with ``row``: round, saturate, ReLU accumulator ``row`` into the
        destination bank at ``dst_addr`` (fc: ``row``; conv: its output map's address),
        merged by max with the value there if ``pool_max`` (a later position of a pool
        window: the old value is read in the finish cycle, :class:`conv.PoolMax`).
    src_en, src_addr : In -- read source activation ``src_addr`` of bank ``src_bank``;
        ``src_data`` : Out -- its value, one cycle later (held while ``src_en`` is 0).
    load_en, load_target, load_addr, load_data : In -- write one word of a memory image
        (``layouts.Target``); only while the engine is idle.
    idle : Out(1) -- queue empty and nothing in the pointer stage, walker or MAC pipeline.
    dbg_wr, dbg_row, dbg_col, dbg_sum : Out -- an accumulator write of the MAC: local row,
        column j, new value (for testbench monitors that locate a first mismatch).
    dbg_fetch : Out(1) -- a sparse-matrix SRAM word read this cycle; dbg_pop : Out(1) --
        a queue pop, i.e. a read of both pointer banks (event counters of the energy model).
    """

    def __init__(self, config: EngineConfig):
        if not isinstance(config, EngineConfig):
            self._MustUse__silence = True    # never elaborated: no warning
            raise TypeError(f"config must be an EngineConfig, not {config!r}")
        self.config = config
        super().__init__(pe_signature(config))

    def elaborate(self, platform):
        c = self.config
        m = Module()
        n_slots = c.entries_per_word
        row_w = c.row_bits + 1

        m.submodules.queue = queue = ActivationQueue(act_layout(c), c.fifo_depth)
        m.submodules.ptr_even = ptr_even = Memory(
            shape=unsigned(c.ptr_bits), depth=c.ptr_depth // 2, init=[])
        m.submodules.ptr_odd = ptr_odd = Memory(
            shape=unsigned(c.ptr_bits), depth=c.ptr_depth // 2, init=[])
        m.submodules.sparse = sparse = Memory(
            shape=unsigned(c.word_bits), depth=c.sparse_words, init=[])
        m.submodules.codebook = codebook = Memory(
            shape=signed(c.act_bits), depth=c.max_layers * c.codebook_entries, init=[])
        m.submodules.bias = bias = Memory(shape=signed(c.act_bits), depth=c.bias_depth, init=[])
        m.submodules.acc = acc = Memory(shape=signed(c.acc_bits), depth=c.act_depth, init=[])
        m.submodules.act = act = Memory(shape=signed(c.act_bits), depth=2 * c.act_depth, init=[])

        even_rd, odd_rd = ptr_even.read_port(), ptr_odd.read_port()
        even_wr, odd_wr = ptr_even.write_port(), ptr_odd.write_port()
        sparse_rd, sparse_wr = sparse.read_port(), sparse.write_port()
        cb_rd, cb_wr = codebook.read_port(domain="comb"), codebook.write_port()
        bias_rd, bias_wr = bias.read_port(), bias.write_port()
        acc_rd, acc_wr = acc.read_port(), acc.write_port()
        act_rd, act_wr = act.read_port(), act.write_port()

        # Load interface: one memory word per cycle while the engine is idle.
        load = {t: Signal(name=f"load_{t.name.lower()}") for t in Target}
        for t, strobe in load.items():
            m.d.comb += strobe.eq(self.load_en & (self.load_target == t))
        m.d.comb += [
            sparse_wr.addr.eq(self.load_addr), sparse_wr.data.eq(self.load_data),
            sparse_wr.en.eq(load[Target.SPARSE]),
            even_wr.addr.eq(self.load_addr[1:]), even_wr.data.eq(self.load_data),
            even_wr.en.eq(load[Target.POINTER] & ~self.load_addr[0]),
            odd_wr.addr.eq(self.load_addr[1:]), odd_wr.data.eq(self.load_data),
            odd_wr.en.eq(load[Target.POINTER] & self.load_addr[0]),
            cb_wr.addr.eq(self.load_addr), cb_wr.data.eq(self.load_data),
            cb_wr.en.eq(load[Target.CODEBOOK]),
            bias_wr.addr.eq(self.load_addr), bias_wr.data.eq(self.load_data),
            bias_wr.en.eq(load[Target.BIAS]),
        ]

        # Activation queue (EIE III-C).
        m.d.comb += [
            queue.w.payload.eq(self.act.payload),
            queue.w.valid.eq(self.act.valid),
            self.act.ready.eq(queue.w.ready),
        ]

        # Pointer stage (EIE III-D, "Pointer Read Unit"): p[j] and p[j+1] of column
        # g = ptr_base + j come from the even and odd banks in the same cycle.
        pv = Signal()                                   # pointer data on the read ports
        pa = Signal(signed(c.act_bits))
        pj = Signal(unsigned(c.col_bits))
        podd = Signal()                                 # g was odd: p[g] is in the odd bank
        busy = Signal()                                 # walker holds a column
        w_last = Signal()                               # walker's last cycle on its column
        consume = Signal()
        pop = Signal()
        g = Signal(unsigned(bits_for(c.ptr_depth + c.max_vector)))
        m.d.comb += [
            consume.eq(pv & (~busy | w_last)),
            queue.r.ready.eq(~pv | consume),
            pop.eq(queue.r.valid & queue.r.ready),
            g.eq(self.ptr_base + queue.r.payload.j),
            even_rd.addr.eq((g >> 1) + g[0]),
            odd_rd.addr.eq(g >> 1),
            even_rd.en.eq(pop),
            odd_rd.en.eq(pop),
        ]
        with m.If(pop):
            m.d.sync += [pv.eq(1), pa.eq(queue.r.payload.a), pj.eq(queue.r.payload.j),
                         podd.eq(g[0])]
        with m.Elif(consume):
            m.d.sync += pv.eq(0)
        p_lo = Mux(podd, odd_rd.data, even_rd.data)
        p_hi = Mux(podd, even_rd.data, odd_rd.data)

        # Walker (EIE III-D, "Sparse Matrix Read Unit"): one entry per cycle from p[j] to
        # p[j+1]; a pointer is ``word << slot_bits | slot``. An empty column still takes
        # one cycle.
        wcur = Signal(unsigned(c.ptr_bits))
        wend = Signal(unsigned(c.ptr_bits))
        wa = Signal(signed(c.act_bits))
        wj = Signal(unsigned(c.col_bits))
        wfirst = Signal()
        emit = Signal()
        fetch = Signal()
        nxt = Signal(unsigned(c.ptr_bits))
        slot = wcur[:c.slot_bits]
        word = wcur[c.slot_bits:]
        with m.If(slot == n_slots - 1):
            m.d.comb += nxt.eq(Cat(Const(0, c.slot_bits), word + 1))
        with m.Else():
            m.d.comb += nxt.eq(Cat((slot + 1)[:c.slot_bits], word))
        # The word is read for a column's first entry and at each word boundary; entries
        # after it in the same word use the held read data (the cycle model's word reads).
        m.d.comb += [
            emit.eq(busy & (wcur != wend)),
            fetch.eq(emit & (wfirst | (slot == 0))),
            w_last.eq(busy & (~emit | (nxt == wend))),
            sparse_rd.addr.eq(word),
            sparse_rd.en.eq(fetch),
        ]
        with m.If(consume):
            m.d.sync += [busy.eq(1), wcur.eq(p_lo), wend.eq(p_hi), wa.eq(pa), wj.eq(pj),
                         wfirst.eq(1)]
        with m.Elif(w_last):
            m.d.sync += busy.eq(0)
        with m.Elif(emit):
            m.d.sync += [wcur.eq(nxt), wfirst.eq(0)]

        # S1: decode the entry, row = previous row + z + 1, codebook lookup, accumulator read.
        s1_valid = Signal()
        s1_slot = Signal(unsigned(c.slot_bits))
        s1_first = Signal()
        s1_a = Signal(signed(c.act_bits))
        s1_j = Signal(unsigned(c.col_bits))
        pos = Signal(unsigned(row_w))
        m.d.sync += [s1_valid.eq(emit), s1_slot.eq(slot), s1_first.eq(wfirst), s1_a.eq(wa),
                     s1_j.eq(wj)]
        entries = word_layout(c)(sparse_rd.data[:word_layout(c).size])
        entry = entries[s1_slot]
        s1_row = Signal(unsigned(row_w))
        m.d.comb += [
            s1_row.eq(Mux(s1_first, entry.z, pos + entry.z + 1)),
            cb_rd.addr.eq(Cat(entry.code, self.layer)),
            acc_rd.addr.eq(Mux(self.finish, self.row, s1_row)),
        ]
        with m.If(s1_valid):
            m.d.sync += pos.eq(s1_row)

        # S2: multiply and accumulate, with a bypass when the previous cycle wrote the same
        # row (EIE IV: "bypass path ... same accumulator in adjacent cycles"); the
        # accumulator read port is not transparent, so without it that write is lost.
        s2_valid = Signal()
        s2_row = Signal(unsigned(c.row_bits))
        s2_w = Signal(signed(c.act_bits))
        s2_a = Signal(signed(c.act_bits))
        s2_j = Signal(unsigned(c.col_bits))
        last_valid = Signal()
        last_row = Signal(unsigned(c.row_bits))
        last_sum = Signal(signed(c.acc_bits))
        bypass = Signal()
        acc_sum = Signal(signed(c.acc_bits))
        m.d.sync += [s2_valid.eq(s1_valid), s2_row.eq(s1_row), s2_w.eq(cb_rd.data),
                     s2_a.eq(s1_a), s2_j.eq(s1_j)]
        m.d.comb += [
            bypass.eq(s2_valid & last_valid & (last_row == s2_row)),
            acc_sum.eq(Mux(bypass, last_sum, acc_rd.data) + s2_a * s2_w),
        ]
        m.d.sync += [last_valid.eq(s2_valid), last_row.eq(s2_row), last_sum.eq(acc_sum)]

        # Bias initialisation and finishing, one row per cycle, driven by the top.
        init_d = Signal()
        finish_d = Signal()
        row_d = Signal(unsigned(c.row_bits))
        dst_d = Signal(unsigned(c.row_bits))
        pool_d = Signal()
        m.d.sync += [init_d.eq(self.init), finish_d.eq(self.finish), row_d.eq(self.row),
                     dst_d.eq(self.dst_addr), pool_d.eq(self.pool_max)]
        m.d.comb += bias_rd.addr.eq(self.bias_base + self.row)
        with m.If(init_d):
            m.d.comb += [acc_wr.addr.eq(row_d),
                         acc_wr.data.eq(bias_rd.data << c.frac_bits), acc_wr.en.eq(1)]
        with m.Else():
            m.d.comb += [acc_wr.addr.eq(s2_row), acc_wr.data.eq(acc_sum),
                         acc_wr.en.eq(s2_valid)]

        # The gateware copy of FixedFormat.finish (kernels/fixed.py defines the rule):
        # (acc + 2**(frac-1)) >> frac, saturate to act_bits, ReLU. Kept in step by
        # tests/hw/test_pe.py::test_finish_is_fixed_format_finish.
        fmt = c.fmt
        rounded = Signal(signed(c.acc_bits + 1))
        result = Signal(signed(c.act_bits))
        m.d.comb += rounded.eq((acc_rd.data + (1 << (c.frac_bits - 1))) >> c.frac_bits)
        with m.If(self.relu & (rounded < 0)):
            m.d.comb += result.eq(0)
        with m.Elif(rounded > fmt.max_int):
            m.d.comb += result.eq(fmt.max_int)
        with m.Elif(rounded < fmt.min_int):
            m.d.comb += result.eq(fmt.min_int)
        with m.Else():
            m.d.comb += result.eq(rounded)
        m.submodules.pool = pool = PoolMax(c.act_bits)
        m.d.comb += [pool.merge.eq(pool_d), pool.old.eq(act_rd.data), pool.new.eq(result)]
        with m.If(finish_d):
            m.d.comb += [act_wr.addr.eq(Cat(dst_d, ~self.src_bank)), act_wr.data.eq(pool.out),
                         act_wr.en.eq(1)]
        with m.Else():
            m.d.comb += [act_wr.addr.eq(Cat(self.load_addr[:c.row_bits], Const(0, 1))),
                         act_wr.data.eq(self.load_data), act_wr.en.eq(load[Target.ACT])]

        # Source activations for the top's leading-non-zero detector and output reads.
        # A pooling finish reads the old value at dst_addr (the top's scanner is idle).
        pool_rd = self.finish & self.pool_max
        m.d.comb += [
            act_rd.addr.eq(Mux(pool_rd, Cat(self.dst_addr, ~self.src_bank),
                               Cat(self.src_addr, self.src_bank))),
            act_rd.en.eq(self.src_en | pool_rd),
            self.src_data.eq(act_rd.data),
            self.idle.eq(~queue.r.valid & ~pv & ~busy & ~s1_valid & ~s2_valid),
            self.dbg_wr.eq(s2_valid),
            self.dbg_row.eq(s2_row),
            self.dbg_col.eq(s2_j),
            self.dbg_sum.eq(acc_sum),
            self.dbg_fetch.eq(fetch),
            self.dbg_pop.eq(pop),
        ]
        return m
