"""cocotb side of an engine run: load and start drivers, output and accumulator monitors.

Run by ``dcsim.hw.sim.run_job`` through the Verilator runner: it reads a job (a pickle
named by ``$DCSIM_JOB``), plays its runs on the testbench top (``dcsim.hw.feeder``: the
engine plus a ``$readmemh`` load feeder) and writes the outputs and cycle counts to
``$DCSIM_RESULT``; if ``$DCSIM_PROGRESS`` names a file, one byte is appended to it per
finished run, for a progress bar in the parent. Comparison with the fixed kernel happens
on the Python side, so this module knows interfaces, not models.
"""

from __future__ import annotations

import os
import pickle
import random
import time
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, First, RisingEdge, Timer
from cocotb.utils import get_sim_time

from dcsim.hw.feeder import EVENT_COUNTERS, FEED_FILE, feed_hex

CLOCK_NS = 10


class Hang(Exception):
    """A stream or the engine made no progress within its cycle limit; ``layer`` is the
    engine's layer at the time, or None (a load)."""

    def __init__(self, message: str, layer: int | None = None):
        super().__init__(message)
        self.layer = layer


def pauses(probability: float, rng: random.Random):
    """Endless pause flags: True with ``probability`` each cycle (seeded, so reruns
    repeat), the cocotbext-axi idea of a pause generator."""
    while True:
        yield probability > 0 and rng.random() < probability


class LoadDriver:
    """Drives the ``load`` stream: one packed word per transfer, idling on pauses;
    :class:`Hang` if the words take more than ``limit`` clocks."""

    def __init__(self, dut, pause):
        self.dut = dut
        self.pause = pause

    async def send(self, words, limit: int) -> None:
        dut = self.dut
        clocks = 0
        for word in words:
            await FallingEdge(dut.clk)
            clocks += 1
            while next(self.pause):
                dut.load__valid.value = 0
                await FallingEdge(dut.clk)
                clocks += 1
            dut.load__payload.value = word
            dut.load__valid.value = 1
            while not dut.load__ready.value:
                await FallingEdge(dut.clk)
                clocks += 1
                if clocks > limit:
                    dut.load__valid.value = 0
                    raise Hang(f"the load stream took no word for {limit} cycles")
        await FallingEdge(dut.clk)
        dut.load__valid.value = 0


class FeedDriver:
    """Drives the ``load`` stream through the testbench's ``$readmemh`` feeder: writes
    the words to ``FEED_FILE`` in the simulator's working directory, pulses
    ``feed_start`` and waits until the feeder has streamed them (one per clock)."""

    def __init__(self, dut, config):
        self.dut = dut
        self.config = config

    async def send(self, words, limit: int) -> None:
        if not words:
            return
        dut = self.dut
        Path(FEED_FILE).write_text(feed_hex(self.config, words))
        await FallingEdge(dut.clk)
        dut.feed_count.value = len(words)
        dut.feed_start.value = 1
        await FallingEdge(dut.clk)
        dut.feed_start.value = 0
        if dut.feed_busy.value:
            await First(FallingEdge(dut.feed_busy), Timer(limit * CLOCK_NS, unit="ns"))
        if dut.feed_busy.value:
            raise Hang(f"the load stream did not take {len(words)} words in {limit} cycles")


class AccumulatorMonitor:
    """Records every PE's accumulator writes (``dbg_wr``, ``dbg_row``, ``dbg_col``,
    ``dbg_sum``, and the engine's ``conv_pos``) as ``(cycle, pe, local_row, column, sum,
    position)`` rows, sampled at falling edges; ``cycle`` 1 is the clock in which :meth:`start` is called (the first layer's
    descriptor cycle when called right after the start transfer)."""

    def __init__(self, dut, n_pe: int):
        self.clk = dut.clk
        self.pes = [getattr(dut.engine, f"pe_{p}") for p in range(n_pe)]
        self.pos = dut.engine.conv_pos
        self.writes = []
        self._task = None

    def start(self) -> None:
        self.writes = []
        self._task = cocotb.start_soon(self._record())

    def stop(self) -> list:
        """Stop recording; returns the rows recorded."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        return self.writes

    async def _record(self) -> None:
        cycle = 1
        while True:
            await FallingEdge(self.clk)
            cycle += 1
            for p, pe in enumerate(self.pes):
                if pe.dbg_wr.value:
                    self.writes.append((cycle, p, pe.dbg_row.value.to_unsigned(),
                                        pe.dbg_col.value.to_unsigned(),
                                        pe.dbg_sum.value.to_signed(),
                                        self.pos.value.to_unsigned()))


class OutputMonitor:
    """Takes ``count`` words from the ``out`` stream, back-pressuring on pauses;
    :class:`Hang` if they take more than ``limit`` clocks."""

    def __init__(self, dut, pause):
        self.dut = dut
        self.pause = pause

    async def collect(self, count: int, limit: int) -> list:
        dut = self.dut
        values = []
        clocks = 0
        while len(values) < count:
            await FallingEdge(dut.clk)
            clocks += 1
            if clocks > limit:
                dut.out__ready.value = 0
                raise Hang(f"the output stream gave {len(values)} of {count} outputs in "
                           f"{limit} cycles")
            ready = not next(self.pause)
            dut.out__ready.value = int(ready)
            if ready and dut.out__valid.value:
                values.append(dut.out__payload.value.to_signed())
        await FallingEdge(dut.clk)
        dut.out__ready.value = 0
        return values


async def reset(dut, cycles: int = 2) -> None:
    """Synchronous reset for ``cycles`` clocks."""
    await FallingEdge(dut.clk)
    dut.rst.value = 1
    await ClockCycles(dut.clk, cycles)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


async def start(dut, n_layers: int) -> int:
    """One transfer on the ``start`` stream; returns the simulation time (ns) of the
    rising edge that takes it."""
    await FallingEdge(dut.clk)
    dut.start__payload.value = n_layers
    dut.start__valid.value = 1
    while not dut.start__ready.value:
        await FallingEdge(dut.clk)
    await RisingEdge(dut.clk)
    taken = get_sim_time(unit="ns")
    await FallingEdge(dut.clk)
    dut.start__valid.value = 0
    return taken


async def first_output(dut, limit: int):
    """Wait for ``out.valid`` or ``done`` (a refused start) at most ``limit`` clocks;
    returns the simulation time (ns) of the edge after which ``out.valid`` rose, or None
    for a refused start; :class:`Hang` naming the layer if neither comes."""
    if not dut.out__valid.value and not dut.done.value:
        await First(RisingEdge(dut.out__valid), RisingEdge(dut.done),
                    Timer(limit * CLOCK_NS, unit="ns"))
    if dut.out__valid.value:
        return get_sim_time(unit="ns")
    if dut.done.value:
        return None
    raise Hang(f"no output within {limit} cycles of the start",
               int(dut.engine.layer.value.to_unsigned()))


def read_events(dut) -> dict:
    """The testbench's event counters (``feeder.EVENT_COUNTERS`` and ``ev_bcast``)."""
    return {name: int(getattr(dut, name).value.to_unsigned())
            for name in [*EVENT_COUNTERS, "ev_bcast"]}


async def read_cycles(dut, n_layers: int) -> list:
    """Per-layer cycle counts of the last run."""
    out = []
    for layer in range(n_layers):
        dut.cycle_addr.value = layer
        await FallingEdge(dut.clk)
        out.append(int(dut.cycle_data.value.to_unsigned()))
    return out


async def _play(dut, run, loader, outputs_monitor, acc_monitor) -> dict:
    """One run of a job (see ``dcsim.hw.sim.image_run``); :class:`Hang` past a limit."""
    first = get_sim_time(unit="ns")
    loading = time.perf_counter()
    if run.get("load"):
        await loader.send(run["load"], run["max_load_cycles"])
    await loader.send(run["input"], run["max_load_cycles"])
    load_seconds = time.perf_counter() - loading
    taken = await start(dut, run["n_layers"])
    started = time.perf_counter()
    if run.get("monitor"):
        acc_monitor.start()
    if run.get("reset_after") is not None:
        await ClockCycles(dut.clk, run["reset_after"])
        busy = bool(dut.busy.value)
        await reset(dut)
        if run.get("monitor"):
            acc_monitor.stop()
        return {"reset": True, "busy_at_reset": busy}
    valid_at = await first_output(dut, run["max_cycles"])
    if valid_at is None:
        return {"refused": True, "done": bool(dut.done.value),
                "error": bool(dut.error.value), "busy": bool(dut.busy.value)}
    compute_seconds = time.perf_counter() - started
    assert not dut.error.value, "error must be clear during a run"
    try:
        outputs = await outputs_monitor.collect(run["n_out"], run["max_out_cycles"])
    except Hang as err:
        raise Hang(str(err), run["n_layers"] - 1) from None
    while dut.busy.value:
        await FallingEdge(dut.clk)
    assert dut.done.value, "done must be set after the last output"
    clocks = int((get_sim_time(unit="ns") - first) // CLOCK_NS)
    result = {"outputs": outputs, "cycles": await read_cycles(dut, run["n_layers"]),
              "clocks": clocks, "clocks_to_output": int((valid_at - taken) // CLOCK_NS),
              "events": read_events(dut), "compute_seconds": compute_seconds,
              "load_seconds": load_seconds}
    if run.get("monitor"):
        result["writes"] = acc_monitor.stop()
    return result


@cocotb.test()
async def run_job(dut):
    """Play every run of the job in ``$DCSIM_JOB``; results to ``$DCSIM_RESULT``."""
    with open(os.environ["DCSIM_JOB"], "rb") as f:
        job = pickle.load(f)
    rng = random.Random(job.get("seed", 0))
    load_pause = pauses(job.get("load_pause", 0.0), rng)
    out_pause = pauses(job.get("out_pause", 0.0), rng)
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    for name in ("load__valid", "start__valid", "out__ready", "cycle_addr", "feed_start",
                 "feed_count"):
        getattr(dut, name).value = 0
    await reset(dut)
    # The feeder streams without idles; a job with load pauses exercises the stream
    # rules from Python instead.
    loader = LoadDriver(dut, load_pause) if job.get("load_pause", 0.0) > 0 \
        else FeedDriver(dut, job["config"])
    outputs_monitor = OutputMonitor(dut, out_pause)
    acc_monitor = AccumulatorMonitor(dut, job["config"].n_pe) \
        if any(run.get("monitor") for run in job["runs"]) else None
    results = []
    progress = open(os.environ["DCSIM_PROGRESS"], "ab") \
        if os.environ.get("DCSIM_PROGRESS") else None
    t0 = time.perf_counter()
    for index, run in enumerate(job["runs"]):
        try:
            result = await _play(dut, run, loader, outputs_monitor, acc_monitor)
        except Hang as err:
            where = ""
            if err.layer is not None:
                names = run.get("layers", [])
                name = f" ({names[err.layer]!r})" if err.layer < len(names) else ""
                where = f" in layer {err.layer}{name}"
            results.append({"hang": f"run {index}: the engine hung{where}: {err}"})
            break
        results.append(result)
        if progress is not None:
            progress.write(b".")        # one byte per finished run (sim.run_job counts)
            progress.flush()
    seconds = time.perf_counter() - t0
    if progress is not None:
        progress.close()
    with open(os.environ["DCSIM_RESULT"], "wb") as f:
        pickle.dump({"runs": results, "seconds": seconds}, f)
