"""Run a sweep's points on a local process pool or an existing Dask cluster.

Two phases, both on the same executor: first the area of every distinct config (Yosys
synthesis, cached on disk, so each config is synthesized once however many points share
it), then the points, a few per task (:func:`batch_size`), a bounded number of tasks
in flight; every finished task's rows are appended to the results file at once
(``results.ResultWriter``), keyed by the point's hash: ``--resume`` skips rows already
there, and a point a lost Dask worker had to rerun is written once.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from dcsim.errors import ConfigError
from dcsim.progress import progress_bar
from dcsim.sweep import point as point_mod
from dcsim.sweep.results import ResultWriter, read_rows
from dcsim.sweep.spec import SweepSpec

#: Points in flight per worker: enough to keep workers busy, few enough that an
#: interrupt loses little and memory stays flat for sweeps of any size.
IN_FLIGHT_PER_WORKER = 8

#: Largest number of points in one task. A point costs ~25 ms of CPU; a task round
#: trip through Dask or a process pool costs a few ms of the client's and scheduler's
#: CPU, which on a small machine is taken from the workers. Batches keep that cost a
#: small fraction and still leave each worker several tasks (see :func:`batch_size`).
MAX_BATCH = 32


@dataclass
class SweepReport:
    """What a run did: points in the spec, skipped (already in the file), computed,
    wall seconds, workers, and the verified points (``verify``: list of dicts)."""

    points: int
    skipped: int
    computed: int
    seconds: float
    workers: int
    verify: list

    def as_dict(self) -> dict:
        return {"points": self.points, "skipped": self.skipped, "computed": self.computed,
                "seconds": self.seconds, "workers": self.workers,
                "points_per_minute": 60.0 * self.computed / self.seconds if self.seconds else 0.0,
                "verify": self.verify}


def _init_worker() -> None:
    # one thread per process: the pool is the parallelism (BENCHMARKS.md, section 4)
    os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
    import numba
    numba.set_num_threads(1)


def _init_local_worker() -> None:
    # a pool worker ends with its sweep, even one killed by SIGKILL (Linux: the parent's
    # death signals the child; elsewhere the pool's own shutdown is all there is)
    if sys.platform.startswith("linux"):
        import ctypes
        import signal
        ctypes.CDLL(None).prctl(1, int(signal.SIGTERM))      # PR_SET_PDEATHSIG
    _init_worker()


class _LocalExecutor:
    def __init__(self, jobs: int):
        self.workers = jobs
        self._pool = cf.ProcessPoolExecutor(
            max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_local_worker)

    def submit(self, fn, *args):
        return self._pool.submit(fn, *args)

    def wait_first(self, futures):
        done, _ = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
        return done

    def close(self, cancel: bool = False):
        self._pool.shutdown(wait=not cancel, cancel_futures=cancel)


class _DaskExecutor:
    def __init__(self, address: str):
        from distributed import Client

        try:
            self._client = Client(address, timeout="10s")
        except OSError as exc:
            reason = " ".join(str(exc).split())
            raise ConfigError(f"--scheduler must be the address of a running Dask "
                              f"scheduler, not {address!r} ({reason})") from None
        self._client.run(_init_worker)
        self.workers = max(1, len(self._client.scheduler_info()["workers"]))

    def submit(self, fn, *args):
        # pure=False: a rerun after a lost worker is a new computation of the same row
        return self._client.submit(fn, *args, pure=False)

    def wait_first(self, futures):
        from distributed import wait

        return wait(list(futures), return_when="FIRST_COMPLETED").done

    def close(self, cancel: bool = False):
        self._client.close()


def run_sweep(spec: SweepSpec, out, jobs: int | None = None, scheduler: str | None = None,
              resume: bool = False, progress: bool = True, log=None) -> SweepReport:
    """Run every point of ``spec`` not yet in ``out`` (CSV); see the module docstring.

    jobs : local worker processes (default: all cores); scheduler : ``tcp://host:port``
    of a Dask scheduler (then ``jobs`` is ignored). KeyboardInterrupt stops at once,
    leaving the rows written so far.
    """
    log = sys.stderr if log is None else log
    points = spec.points()
    t0 = time.perf_counter()
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ConfigError(f"--jobs must be a positive integer, not {jobs!r}")
    if resume and Path(out).exists():
        read_rows(out)                   # a foreign file is refused before anything runs
    # connect first: a scheduler that is not there leaves an old file as it was
    executor = (_DaskExecutor(scheduler) if scheduler
                else _LocalExecutor(jobs or os.cpu_count() or 1))
    try:
        writer = ResultWriter(out, resume=resume)
    except BaseException:
        executor.close(cancel=True)
        raise
    todo = [p for p in points if p.key not in writer.done]
    skipped = len(points) - len(todo)
    computed = 0
    try:
        configs = {}
        for p in todo:
            configs.setdefault(json.dumps(p.config, sort_keys=True), (p.config, p.area))
        _drain(executor, [(point_mod.synthesize_config, c, a) for c, a in configs.values()],
               lambda _: 1, progress_bar(len(configs), "area (synthesis)", unit="config",
                                            enabled=progress, stream=log))

        def take(rows):
            nonlocal computed
            for row in rows:
                computed += writer.write(row)
            return len(rows)

        size = batch_size(len(todo), executor.workers)
        _drain(executor, [(point_mod.evaluate_batch, todo[i:i + size])
                          for i in range(0, len(todo), size)], take,
               progress_bar(len(todo), "sweep", unit="point", enabled=progress, stream=log))
    except BaseException:
        executor.close(cancel=True)
        writer.close()
        raise
    executor.close()
    writer.close()
    return SweepReport(points=len(points), skipped=skipped, computed=computed,
                       seconds=time.perf_counter() - t0, workers=executor.workers, verify=[])


def batch_size(n_points: int, workers: int) -> int:
    """Points per task: enough tasks for 2 x IN_FLIGHT_PER_WORKER per worker, at most
    MAX_BATCH points each, at least 1."""
    return max(1, min(MAX_BATCH, n_points // (2 * IN_FLIGHT_PER_WORKER * max(1, workers))))


def _drain(executor, calls, on_result, bar) -> None:
    """Run ``calls`` (fn, *args) keeping a bounded number in flight; results in order
    of completion go to ``on_result``, which returns how many units of progress each
    one was."""
    limit = IN_FLIGHT_PER_WORKER * executor.workers
    pending = iter(calls)
    running = set()
    try:
        while True:
            while len(running) < limit:
                call = next(pending, None)
                if call is None:
                    break
                running.add(executor.submit(*call))
            if not running:
                return
            for fut in executor.wait_first(running):
                running.discard(fut)
                bar.update(on_result(fut.result()))
    finally:
        bar.close()


def verify_points(spec: SweepSpec, rows: list, k: int, seed: int = 0, log=None) -> list:
    """Run ``k`` points chosen at random (seeded) among the fitting ``rows`` on the RTL
    (Verilator, the native harness ``hw.native.simulate_native``: one build per config,
    cached) and compare cycles per layer with the model's, and the outputs with the
    fixed kernel's.

    Returns one dict per point: key, config, cycles_model, cycles_rtl, outputs_match,
    match (cycles equal and outputs equal), harness.
    """
    from dcsim.hw.native import simulate_native

    log = sys.stderr if log is None else log
    by_key = {p.key: p for p in spec.points()}
    fitting = sorted(r["key"] for r in rows if r["fits"] == "true" and r["key"] in by_key)
    chosen = random.Random(seed).sample(fitting, min(k, len(fitting)))
    out = []
    for key in chosen:
        p = by_key[key]
        row = next(r for r in rows if r["key"] == key)
        print(f"verify: point {key} {p.model} {p.config}", file=log)
        sim = simulate_native(point_mod.model_of(p), point_mod.images_of(p),
                              p.engine_config())
        model_cycles = json.loads(row["cycles_per_layer_json"])
        match = sim["cycles_per_layer"] == model_cycles and sim["outputs_match"]
        print(f"verify: point {key}: model {model_cycles}, RTL {sim['cycles_per_layer']}"
              f" -> {'same' if match else 'DIFFERENT'}", file=log)
        out.append({"key": key, "config": p.config, "cycles_model": model_cycles,
                    "cycles_rtl": sim["cycles_per_layer"],
                    "outputs_match": bool(sim["outputs_match"]), "match": bool(match),
                    "harness": sim["harness"]})
    return out
