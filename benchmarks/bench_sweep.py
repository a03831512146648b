"""Sweep benchmarks: throughput, Dask scaling, a 10,000-point kill and resume, eie64 area.

    python benchmarks/bench_sweep.py throughput   # LeNet-300-100, 20 images, 2 processes
    python benchmarks/bench_sweep.py dask         # 1 then 2 local Dask workers, same points
    python benchmarks/bench_sweep.py resume       # 10,000 points, SIGKILL mid-run, --resume
    python benchmarks/bench_sweep.py area         # eie64's PE area beside EIE's Table II
    python benchmarks/bench_sweep.py cpu          # CPU seconds per point, one process

Each prints a table and writes benchmarks/results/bench_sweep_<name>.json. The sweeps
reuse the 40 engine configurations of examples/sweep_lenet300.yaml (synthesis cached by
running that example first), at many clocks: every point still runs the cycle model,
the energy model and the area lookup in full.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
BIN = Path(sys.executable).parent
CONFIG_AXES = """\
  n_pe: {start: 4, stop: 64, factor: 2}
  fifo_depth: [1, 2, 4, 8]
  sparse_words: [1024, 4096]
"""


def spec(folder: Path, name: str, clocks: str, images: int) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""\
        models: [lenet300]
        seed: 0
        images: {images}
        clock_mhz: {clocks}
        base: small
        config:
        """) + CONFIG_AXES)
    return path


def sweep(spec_path: Path, out: Path, *extra) -> dict:
    cmd = [str(BIN / "dcsim"), "sweep", str(spec_path), "--out", str(out), "--quiet",
           "--json", *extra]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def bench_throughput(folder: Path) -> dict:
    path = spec(folder, "throughput", "{start: 100, stop: 1000, step: 30}", images=20)
    report = sweep(path, folder / "throughput.csv", "--jobs", "2")
    print(f"{'points':>8} {'workers':>8} {'seconds':>8} {'points/min':>11}")
    print(f"{report['points']:>8} {report['workers']:>8} {report['seconds']:>8.1f} "
          f"{report['points_per_minute']:>11.0f}")
    return report


def bench_cpu(folder: Path) -> dict:
    """CPU time (not wall time: the machine is shared) of the throughput sweep's points
    evaluated in this process after one warm-up point per config; the projection to two
    idle cores is 2 x 60 / (CPU seconds per point)."""
    from dcsim.sweep.runner import _init_worker
    _init_worker()                                     # as in a pool worker: 1 thread
    from dcsim.sweep import point as point_mod
    from dcsim.sweep.spec import load_spec

    points = load_spec(spec(folder, "cpu", "{start: 100, stop: 1000, step: 30}",
                            images=20)).points()
    seen = set()
    for p in points:                                   # warm-up: traces, area, numba
        if json.dumps(p.config, sort_keys=True) not in seen:
            seen.add(json.dumps(p.config, sort_keys=True))
            point_mod.evaluate(p)
    sample = points[::3]
    c0, w0 = time.process_time(), time.perf_counter()
    for p in sample:
        point_mod.evaluate(p)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    per_point = cpu / len(sample)
    result = {"points": len(sample), "cpu_seconds": cpu, "wall_seconds": wall,
              "cpu_ms_per_point": 1000 * per_point,
              "projected_points_per_minute_2_cores": 2 * 60 / per_point}
    print(f"{'points':>7} {'CPU s':>7} {'wall s':>7} {'CPU ms/pt':>10} "
          f"{'2 idle cores, pts/min':>22}")
    print(f"{len(sample):>7} {cpu:>7.1f} {wall:>7.1f} {1000 * per_point:>10.1f} "
          f"{result['projected_points_per_minute_2_cores']:>22.0f}")
    return result


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args, log: Path):
    with log.open("w") as f:
        return subprocess.Popen([str(BIN / "dask"), *args], stdout=f, stderr=f,
                                start_new_session=True)


def _wait_workers(address: str, n: int) -> None:
    from distributed import Client

    for _ in range(240):
        try:
            with Client(address, timeout="5s") as c:
                if len(c.scheduler_info()["workers"]) >= n:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{n} workers did not join {address}")


def _sweep_on_cluster(path: Path, out: Path, n_workers: int, folder: Path) -> dict:
    """Start a scheduler and ``n_workers`` fresh single-thread workers, sweep, stop them:
    every measurement starts from cold workers (imports, traces, numba), so neither
    side inherits the other's warm-up."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [_start(["scheduler", "--host", "127.0.0.1", "--port", str(port),
                     "--no-dashboard"], folder / f"scheduler{n_workers}.log")]
    worker = ["worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
              "--host", "127.0.0.1"]
    try:
        for i in range(n_workers):
            procs.append(_start(worker + ["--name", f"w{i}"], folder / f"w{i}_{n_workers}.log"))
        _wait_workers(address, n_workers)
        return sweep(path, out, "--scheduler", address)
    finally:
        for p in reversed(procs):
            os.kill(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()


def bench_dask(folder: Path) -> dict:
    path = spec(folder, "dask", "{start: 100, stop: 1000, step: 15}", images=20)
    out = {"one_worker": _sweep_on_cluster(path, folder / "dask1.csv", 1, folder),
           "two_workers": _sweep_on_cluster(path, folder / "dask2.csv", 2, folder)}
    one, two = out["one_worker"], out["two_workers"]
    out["speedup"] = one["seconds"] / two["seconds"]
    out["rows_identical"] = _rows(folder / "dask1.csv") == _rows(folder / "dask2.csv")
    print(f"{'workers':>8} {'points':>8} {'seconds':>8} {'points/min':>11}")
    for name in ("one_worker", "two_workers"):
        r = out[name]
        print(f"{r['workers']:>8} {r['points']:>8} {r['seconds']:>8.1f} "
              f"{r['points_per_minute']:>11.0f}")
    print(f"speed-up of 2 workers over 1: {out['speedup']:.2f}x; rows identical "
          f"(timing columns aside): {out['rows_identical']}")
    return out


def _rows(path: Path) -> dict:
    """A results file's rows by key, without the columns that time the run."""
    from dcsim.sweep.point import TIMING_COLUMNS
    from dcsim.sweep.results import read_rows

    return {r["key"]: {c: v for c, v in r.items() if c not in TIMING_COLUMNS}
            for r in read_rows(path)}


def bench_resume(folder: Path) -> dict:
    # 40 configs x 250 clocks = 10,000 points; 2 images keep the run to minutes
    path = spec(folder, "resume", "{start: 100, stop: 1096, step: 4}", images=2)
    out = folder / "resume.csv"
    cmd = [str(BIN / "dcsim"), "sweep", str(path), "--out", str(out), "--quiet",
           "--jobs", "2"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None and (out.read_text().count("\n") - 1 if out.exists() else 0) < 4000:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = out.read_text().count("\n") - 1
    partial_line = not out.read_text().endswith("\n")
    report = sweep(path, out, "--jobs", "2", "--resume")
    seconds = time.perf_counter() - t0
    from dcsim.sweep.results import read_rows
    from dcsim.sweep.spec import load_spec

    keys = [r["key"] for r in read_rows(out)]
    want = {p.key for p in load_spec(path).points()}
    result = {"points": len(want), "rows_when_killed": killed_at,
              "partial_last_line": partial_line, "resumed_skipped": report["skipped"],
              "resumed_computed": report["computed"], "rows": len(keys),
              "unique": len(set(keys)), "lost": len(want - set(keys)),
              "extra": len(set(keys) - want), "seconds": seconds}
    print(f"{'points':>7} {'killed at':>10} {'skipped':>8} {'computed':>9} {'rows':>6} "
          f"{'lost':>5} {'dup':>4}")
    print(f"{result['points']:>7} {killed_at:>10} {report['skipped']:>8} "
          f"{report['computed']:>9} {len(keys):>6} {result['lost']:>5} "
          f"{len(keys) - len(set(keys)):>4}")
    return result


#: EIE (Han et al., ISCA 2016), Table II: one PE at 45 nm, area in um^2 by module.
EIE_PE_AREA_UM2 = {"total": 638024, "Act_queue": 758, "PtrRead": 121849,
                   "SpmatRead": 469412, "ArithmUnit": 3110, "ActRW": 18934,
                   "filler cell": 23961}


def bench_area(folder: Path) -> dict:
    from dcsim.hw.config import EngineConfig
    from dcsim.perf.area import engine_area

    a = engine_area(EngineConfig.preset("eie64"))
    pe = a["pe"]
    sram = pe["sram_um2"]
    ours = {"total": pe["total_um2"], "logic": pe["logic_um2"],
            "logic_nand2": pe["logic_nand2"], "sparse SRAM": sram["sparse"],
            "pointer SRAMs": sram["ptr_even"] + sram["ptr_odd"],
            "act + acc + bias + codebook SRAMs": sum(v for k, v in sram.items()
                                                     if k not in ("sparse", "ptr_even",
                                                                  "ptr_odd"))}
    print(f"{'eie64 PE (ours)':<36} {'um^2':>10}")
    for k, v in ours.items():
        print(f"{k:<36} {v:>10.0f}")
    print(f"{'EIE Table II, one PE':<36} {'um^2':>10}")
    for k, v in EIE_PE_AREA_UM2.items():
        print(f"{k:<36} {v:>10}")
    print(f"ours / EIE total: {ours['total'] / EIE_PE_AREA_UM2['total']:.2f}")
    return {"ours": ours, "macros_um2": sram, "cells": pe["cells"], "eie": EIE_PE_AREA_UM2,
            "ratio_total": ours["total"] / EIE_PE_AREA_UM2["total"],
            "top_logic_um2": a["top"]["logic_um2"], "engine_total_um2": a["total_um2"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=["throughput", "dask", "resume", "area", "cpu"])
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    folder = RESULTS / f"sweep_{args.name}"
    folder.mkdir(exist_ok=True)
    for stale in folder.glob("*.csv"):
        stale.unlink()
    result = globals()[f"bench_{args.name}"](folder)
    result["machine"] = _machine()
    (RESULTS / f"bench_sweep_{args.name}.json").write_text(json.dumps(result, indent=1) + "\n")
    return 0


def _machine() -> dict:
    info = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    return {k: fields.get(k, "").strip() for k in ("Model name", "CPU(s)", "L3 cache")} | {
        "loadavg": os.getloadavg()}


if __name__ == "__main__":
    sys.exit(main())
