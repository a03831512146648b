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
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge
from cocotb.utils import get_sim_time

from dcsim.hw.feeder import FEED_FILE, feed_hex


def pauses(probability: float, rng: random.Random):
    """Endless pause flags: True with ``probability`` each cycle (seeded, so reruns
    repeat), the cocotbext-axi idea of a pause generator."""
    while True:
        yield probability > 0 and rng.random() < probability


class LoadDriver:
    """Drives the ``load`` stream: one packed word per transfer, idling on pauses."""

    def __init__(self, dut, pause):
        self.dut = dut
        self.pause = pause

    async def send(self, words) -> None:
        dut = self.dut
        for word in words:
            await FallingEdge(dut.clk)
            while next(self.pause):
                dut.load__valid.value = 0
                await FallingEdge(dut.clk)
            dut.load__payload.value = word
            dut.load__valid.value = 1
            while not dut.load__ready.value:
                await FallingEdge(dut.clk)
        await FallingEdge(dut.clk)
        dut.load__valid.value = 0


class FeedDriver:
    """Drives the ``load`` stream through the testbench's ``$readmemh`` feeder: writes
    the words to ``FEED_FILE`` in the simulator's working directory, pulses
    ``feed_start`` and waits until the feeder has streamed them (one per clock)."""

    def __init__(self, dut, config):
        self.dut = dut
        self.config = config

    async def send(self, words) -> None:
        if not words:
            return
        dut = self.dut
        Path(FEED_FILE).write_text(feed_hex(self.config, words))
        await FallingEdge(dut.clk)
        dut.feed_count.value = len(words)
        dut.feed_start.value = 1
        await FallingEdge(dut.clk)
        dut.feed_start.value = 0
        while dut.feed_busy.value:
            await FallingEdge(dut.feed_busy)


class AccumulatorMonitor:
    """Records every PE's accumulator writes (``dbg_wr``, ``dbg_row``, ``dbg_col``,
    ``dbg_sum``) as ``(cycle, pe, local_row, column, sum)`` rows, sampled at falling
    edges; ``cycle`` 1 is the clock in which :meth:`start` is called (the first layer's
    descriptor cycle when called right after the start transfer)."""

    def __init__(self, dut, n_pe: int):
        self.clk = dut.clk
        self.pes = [getattr(dut.engine, f"pe_{p}") for p in range(n_pe)]
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
                                        pe.dbg_sum.value.to_signed()))


class OutputMonitor:
    """Takes ``count`` words from the ``out`` stream, back-pressuring on pauses."""

    def __init__(self, dut, pause):
        self.dut = dut
        self.pause = pause

    async def collect(self, count: int) -> list:
        dut = self.dut
        values = []
        while not dut.out__valid.value:
            await RisingEdge(dut.out__valid)
        while len(values) < count:
            await FallingEdge(dut.clk)
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


async def start(dut, n_layers: int) -> None:
    """One transfer on the ``start`` stream."""
    await FallingEdge(dut.clk)
    dut.start__payload.value = n_layers
    dut.start__valid.value = 1
    while not dut.start__ready.value:
        await FallingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.start__valid.value = 0


async def read_cycles(dut, n_layers: int) -> list:
    """Per-layer cycle counts of the last run."""
    out = []
    for layer in range(n_layers):
        dut.cycle_addr.value = layer
        await FallingEdge(dut.clk)
        out.append(int(dut.cycle_data.value.to_unsigned()))
    return out


@cocotb.test()
async def run_job(dut):
    """Play every run of the job in ``$DCSIM_JOB``; results to ``$DCSIM_RESULT``."""
    with open(os.environ["DCSIM_JOB"], "rb") as f:
        job = pickle.load(f)
    rng = random.Random(job.get("seed", 0))
    load_pause = pauses(job.get("load_pause", 0.0), rng)
    out_pause = pauses(job.get("out_pause", 0.0), rng)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
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
    for run in job["runs"]:
        first = get_sim_time(unit="ns")
        loading = time.perf_counter()
        if run.get("load"):
            await loader.send(run["load"])
        await loader.send(run["input"])
        load_seconds = time.perf_counter() - loading
        await start(dut, run["n_layers"])
        started = time.perf_counter()
        if run.get("monitor"):
            acc_monitor.start()
        if run.get("reset_after") is not None:
            await ClockCycles(dut.clk, run["reset_after"])
            busy = bool(dut.busy.value)
            await reset(dut)
            if run.get("monitor"):
                acc_monitor.stop()
            results.append({"reset": True, "busy_at_reset": busy})
            continue
        if not dut.out__valid.value:
            await RisingEdge(dut.out__valid)
        compute_seconds = time.perf_counter() - started
        outputs = await outputs_monitor.collect(run["n_out"])
        while dut.busy.value:
            await FallingEdge(dut.clk)
        assert dut.done.value, "done must be set after the last output"
        clocks = int((get_sim_time(unit="ns") - first) // 10)
        result = {"outputs": outputs, "cycles": await read_cycles(dut, run["n_layers"]),
                  "clocks": clocks, "compute_seconds": compute_seconds,
                  "load_seconds": load_seconds}
        if run.get("monitor"):
            result["writes"] = acc_monitor.stop()
        results.append(result)
        if progress is not None:
            progress.write(b".")        # one byte per finished run (sim.run_job counts)
            progress.flush()
    seconds = time.perf_counter() - t0
    if progress is not None:
        progress.close()
    with open(os.environ["DCSIM_RESULT"], "wb") as f:
        pickle.dump({"runs": results, "seconds": seconds}, f)
