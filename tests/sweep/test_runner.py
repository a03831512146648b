"""Tests of dcsim.sweep.runner: local pool vs a real Dask cluster, a lost worker, SIGINT
and --resume. Every run must give the same rows, each point exactly once."""

import csv
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sweep_specs import small_spec, write_spec
from dcsim.sweep.point import COLUMNS, TIMING_COLUMNS
from dcsim.sweep.results import read_rows
from dcsim.sweep.runner import run_sweep
from dcsim.sweep.spec import load_spec

BIN = Path(sys.executable).parent


def rows_by_key(path):
    rows = read_rows(path)
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys)), "a point was written twice"
    return {r["key"]: {c: r[c] for c in COLUMNS if c not in TIMING_COLUMNS} for r in rows}


def data_rows(path) -> int:
    try:
        return max(0, path.read_text().count("\n") - 1)
    except FileNotFoundError:
        return 0


def workers_so_far(path) -> set:
    """The ``sweep_worker`` values of the complete rows written so far."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return set()
    complete = text[:text.rfind("\n") + 1]          # drop a partly written last row
    return {row["sweep_worker"] for row in csv.DictReader(io.StringIO(complete))}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DaskCluster:
    """``dask scheduler`` and ``dask worker`` processes on 127.0.0.1, stopped by PID."""

    def __init__(self, n_workers: int, log_dir: Path):
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.log_dir = log_dir
        self.procs = []
        self.scheduler = self._start("scheduler", ["scheduler", "--host", "127.0.0.1",
                                                   "--port", self.address.rsplit(":", 1)[1],
                                                   "--no-dashboard"])
        self.workers = [self._start(f"worker{i}", [
            "worker", self.address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
            "--host", "127.0.0.1", "--name", f"w{i}"]) for i in range(n_workers)]
        self._wait_for_workers(n_workers)

    def _start(self, name, args):
        with (self.log_dir / f"{name}.log").open("w") as log:
            proc = subprocess.Popen([str(BIN / "dask"), *args], stdout=log, stderr=log,
                                    env=dict(os.environ), start_new_session=True)
        self.procs.append(proc)
        return proc

    def _wait_for_workers(self, n, timeout=120.0):
        from distributed import Client

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with Client(self.address, timeout="5s") as client:
                    if len(client.scheduler_info()["workers"]) >= n:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"{n} Dask workers did not join {self.address} in {timeout} s; "
                             f"see {self.log_dir}")

    def stop(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=20)


@pytest.fixture
def cluster(tmp_path):
    c = DaskCluster(2, tmp_path)
    yield c
    c.stop()


def test_dask_rows_equal_local_rows_and_survive_a_lost_worker(tmp_path, cluster):
    spec = load_spec(small_spec(tmp_path, clocks="{start: 100, stop: 1290, step: 10}"))
    n = len(spec.points())
    assert n == 2 * 120
    local = tmp_path / "local.csv"
    report = run_sweep(spec, local, jobs=2, progress=False)
    assert report.computed == n and report.skipped == 0

    remote = tmp_path / "dask.csv"
    victim = cluster.workers[0]
    killed = threading.Event()

    def kill_when_running():
        deadline = time.monotonic() + 300
        # kill one worker once both have written rows (so the victim really worked)
        while time.monotonic() < deadline and (data_rows(remote) < 20
                                                or len(workers_so_far(remote)) < 2):
            time.sleep(0.02)
        os.kill(victim.pid, signal.SIGKILL)
        killed.set()

    killer = threading.Thread(target=kill_when_running, daemon=True)
    killer.start()
    report = run_sweep(spec, remote, scheduler=cluster.address, progress=False)
    killer.join(timeout=60)
    assert killed.is_set() and victim.wait(timeout=10) == -signal.SIGKILL
    assert report.workers == 2 and report.computed == n
    got, want = rows_by_key(remote), rows_by_key(local)
    assert len(got) == n
    assert got == want
    workers = {r["sweep_worker"] for r in read_rows(remote)}
    assert len(workers) == 2          # both workers wrote rows before one was killed


def test_sigint_then_resume_gives_the_uninterrupted_rows(tmp_path):
    spec_path = small_spec(tmp_path, clocks="{start: 100, stop: 1590, step: 10}")
    n = len(load_spec(spec_path).points())
    assert n == 2 * 150
    out = tmp_path / "results.csv"
    cmd = [str(BIN / "dcsim"), "sweep", str(spec_path), "--out", str(out), "--jobs", "2",
           "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and data_rows(out) < 30 and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, f"finished before the interrupt: {proc.communicate()}"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err          # Ctrl-C: "interrupted", exit 130
    partial = rows_by_key(out)
    assert 30 <= len(partial) < n

    done = subprocess.run(cmd + ["--resume", "--json"], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert f'"skipped": {len(partial)}' in done.stdout
    resumed = rows_by_key(out)
    whole = tmp_path / "whole.csv"
    run_sweep(load_spec(spec_path), whole, jobs=2, progress=False)
    assert resumed == rows_by_key(whole)
    assert len(resumed) == n


def test_resume_drops_a_partial_last_line_and_refuses_other_files(tmp_path):
    spec = load_spec(small_spec(tmp_path, clocks="[100, 200, 300]"))
    out = tmp_path / "r.csv"
    run_sweep(spec, out, jobs=1, progress=False)
    full = out.read_text()
    lines = full.splitlines(keepends=True)
    out.write_text("".join(lines[:-1]) + lines[-1][:25])      # killed mid-write
    report = run_sweep(spec, out, jobs=1, resume=True, progress=False)
    assert (report.skipped, report.computed) == (len(lines) - 2, 1)
    assert rows_by_key(out) == rows_by_key_text(tmp_path, full)
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    from dcsim.errors import ConfigError
    with pytest.raises(ConfigError, match=r"other.csv: must be a results file of this dcsim"):
        run_sweep(spec, other, jobs=1, resume=True, progress=False)
    assert other.read_text() == "a,b\n1,2\n"


def test_sweep_plot_command(tmp_path, capsys):
    import json

    from dcsim.cli import main

    spec = load_spec(small_spec(tmp_path, clocks="[100, 400]"))
    out = tmp_path / "r.csv"
    run_sweep(spec, out, jobs=1, progress=False)
    png = tmp_path / "p.png"
    assert main(["sweep-plot", str(out), "--x", "latency", "--y", "area", "--color", "n_pe",
                 "--out", str(png), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["points"] == 4 and result["fitting"] == 0   # this engine is too small
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert main(["sweep-plot", str(out), "--x", "colour", "--out", str(png)]) == 2
    assert "axis must be one of ['area', 'cycles', 'energy', 'latency'] or a column, not " \
           "'colour'" in capsys.readouterr().err


def rows_by_key_text(folder, text):
    p = folder / "copy.csv"
    p.write_text(text)
    return rows_by_key(p)


def test_scheduler_not_there_is_exit_2_and_leaves_the_file(tmp_path, capsys):
    from dcsim.cli import main

    spec = small_spec(tmp_path)
    out = tmp_path / "r.csv"
    out.write_text("keep me\n")
    address = f"tcp://127.0.0.1:{free_port()}"
    assert main(["sweep", str(spec), "--out", str(out), "--scheduler", address]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert f"--scheduler must be the address of a running Dask scheduler, not '{address}'" in err
    assert out.read_text() == "keep me\n"


def test_progress_on_a_stream_that_is_not_a_terminal_is_plain_lines(tmp_path):
    """A log file or pipe gets a few whole lines per phase (start, quarters, end), never
    a redrawn bar."""
    spec = load_spec(small_spec(tmp_path, clocks="{start: 100, stop: 1000, step: 100}"))
    n = len(spec.points())
    assert n == 2 * 10
    log = io.StringIO()
    assert not log.isatty()
    run_sweep(spec, tmp_path / "r.csv", jobs=1, progress=True, log=log)
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert lines[:2] == ["area (synthesis): 0/2 configs", "area (synthesis): 1/2 configs"]
    assert lines[2].startswith("area (synthesis): 2/2 configs in ")
    sweep_lines = lines[3:]
    assert sweep_lines[0] == f"sweep: 0/{n} points"
    assert sweep_lines[1:-1] == [f"sweep: {k}/{n} points" for k in (5, 10, 15)]
    assert sweep_lines[-1].startswith(f"sweep: {n}/{n} points in ")


def test_batch_size_leaves_every_worker_several_tasks():
    from dcsim.sweep.runner import MAX_BATCH, batch_size

    assert batch_size(1240, 2) == MAX_BATCH == 32      # 1240 // 32 = 38, capped at 32
    assert batch_size(240, 2) == 7                     # 240 // (2 x 8 x 2): 35 tasks
    assert batch_size(240, 1) == 15
    assert batch_size(10, 4) == 1 and batch_size(0, 2) == 1


def test_verify_runs_points_on_the_rtl_and_fails_on_a_difference(tmp_path, capsys):
    """--verify K: K fitting points on the native harness, cycles compared with the rows;
    a row whose cycles differ from the RTL's fails the sweep (exit 1)."""
    import json

    from dcsim.cli import main

    spec = write_spec(tmp_path, "models: [lenet300]\nseed: 3\nimages: 2\n"
                                "clock_mhz: [100, 200]\nbase: small\nconfig:\n  n_pe: [4]\n")
    out = tmp_path / "r.csv"
    assert main(["sweep", str(spec), "--out", str(out), "--jobs", "1", "--verify", "1",
                 "--quiet", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (v,) = report["verify"]
    rows = {r["key"]: r for r in read_rows(out)}
    assert v["key"] in rows and rows[v["key"]]["fits"] == "true"
    assert v["harness"] == "native" and v["outputs_match"] is True and v["match"] is True
    assert v["cycles_rtl"] == v["cycles_model"] == json.loads(
        rows[v["key"]]["cycles_per_layer_json"])
    # the model's rows made wrong by one cycle in the first layer: the RTL disagrees
    text = out.read_text()
    for cell in {row["cycles_per_layer_json"] for row in rows.values()}:
        cycles = json.loads(cell)
        wrong = [cycles[0] + 1] + cycles[1:]
        assert f'"{json.dumps(cycles)}"' in text          # the CSV cell, quoted
        text = text.replace(f'"{json.dumps(cycles)}"', f'"{json.dumps(wrong)}"')
    out.write_text(text)
    assert main(["sweep", str(spec), "--out", str(out), "--resume", "--verify", "1",
                 "--quiet"]) == 1
    assert "DIFFERENT" in capsys.readouterr().out
