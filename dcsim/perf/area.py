"""Area of the engine at 45 nm: logic from Yosys cell counts, SRAM macros from a table.

An area table is a list of rows, each with ``component``, ``cell``, ``depth``,
``width_bits``, ``area_um2`` and ``source``. The default, ``data/nangate45_area.csv``:

- ``cell`` rows: the area of one cell of each type ``hw.synth`` maps to (``$_NAND_``,
  ``$_DFF_P_``, ...), from the NanGate FreePDK45 Open Cell Library's X1 cells (a NAND2
  is 0.57 x 1.4 um = 0.798 um^2). Logic area is the sum of count x cell area; NAND2
  equivalents are that area over the ``$_NAND_`` row's.
- ``sram`` rows: single-port macros of ``depth`` words of ``width_bits``, areas from
  the CACTI-based 45 nm black-box SRAM generator (bsg_fakeram) as shipped with
  OpenROAD-flow-scripts for NanGate 45 (the macros whose height was tuned by hand are
  left out). At load time ``A = a * bits**p`` is fitted to them by least squares in
  log-log, as ``perf.tech`` fits SRAM energy: on the default rows a = 1.37 um^2,
  p = 0.916 (max relative error 19%); a 128 KB macro (1 Mbit) is then 0.447 mm^2, an
  extrapolation past the largest row (78 Kbit). The numbers are computed, never stored.

A user's ``.yaml``/``.yml``, ``.json`` or ``.csv`` file (:func:`load_area`) overrides the
rows with the same key (component, cell, depth, width_bits) and adds new ones; a
YAML/JSON mapping ``{replace: [component, ...], entries: [...]}`` drops those
components' default rows first. Every problem is reported in one ConfigError naming the
file, as for technology tables.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

from dcsim.errors import ConfigError
from dcsim.hw.config import EngineConfig
from dcsim.hw.synth import GATES, synthesize
from dcsim.perf.tech import _blank, _parse_float, _parse_int

FIELDS = ("component", "cell", "depth", "width_bits", "area_um2", "source")
COMPONENTS = ("cell", "sram")
#: every cell type hw.synth leaves after mapping
CELL_TYPES = tuple(f"$_{g}_" for g in GATES.split(",")) + ("$_NOT_", "$_DFF_P_")
NAND2 = "$_NAND_"
DEFAULT_TABLE = "nangate45_area.csv"


@dataclass(frozen=True)
class AreaRow:
    """One entry: ``area_um2`` of a ``cell`` type, or of an SRAM of depth x width_bits."""

    component: str
    cell: str | None
    depth: int | None
    width_bits: int | None
    area_um2: float
    source: str

    @property
    def key(self) -> tuple:
        return (self.component, self.cell, self.depth, self.width_bits)


@dataclass(frozen=True)
class AreaTable:
    """A validated area table: every type of ``CELL_TYPES`` once, two or more SRAMs.

    ``sram_fit_a`` (um^2), ``sram_fit_p`` and ``sram_fit_max_rel_error`` describe the
    fitted ``A = a * bits**p`` over the ``sram`` rows, computed at construction.
    """

    rows: tuple
    origin: str = "dcsim default (NanGate 45 nm cells + bsg_fakeram/CACTI 45 nm SRAMs)"
    sram_fit_a: float = field(init=False)
    sram_fit_p: float = field(init=False)
    sram_fit_max_rel_error: float = field(init=False)

    def __post_init__(self):
        rows = tuple(self.rows)
        object.__setattr__(self, "rows", rows)
        errors = _table_errors(rows)
        if errors:
            raise ConfigError(f"Area table from {self.origin}: " + "; ".join(errors))
        bits = np.array([r.depth * r.width_bits for r in rows if r.component == "sram"], float)
        area = np.array([r.area_um2 for r in rows if r.component == "sram"], float)
        p, log_a = np.polyfit(np.log(bits), np.log(area), 1)
        a = float(np.exp(log_a))
        object.__setattr__(self, "sram_fit_a", a)
        object.__setattr__(self, "sram_fit_p", float(p))
        object.__setattr__(self, "sram_fit_max_rel_error",
                           float(np.max(np.abs(a * bits ** p / area - 1.0))))

    def cell_um2(self, cell: str) -> float:
        """Area (um^2) of one cell of Yosys type ``cell``."""
        for r in self.rows:
            if r.component == "cell" and r.cell == cell:
                return r.area_um2
        raise ConfigError(f"cell must be one of {list(CELL_TYPES)}, not {cell!r}")

    def sram_um2(self, depth: int, width_bits: int) -> float:
        """Area (um^2) of an SRAM macro of ``depth`` words of ``width_bits``, from the fit."""
        for name, value in (("depth", depth), ("width_bits", width_bits)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, not {value!r}")
        return self.sram_fit_a * float(depth * width_bits) ** self.sram_fit_p

    def logic_um2(self, cells: dict) -> float:
        """Area (um^2) of the cells ``{type: count}``."""
        return float(sum(n * self.cell_um2(t) for t, n in cells.items()))


@lru_cache(maxsize=1)
def default_area() -> AreaTable:
    """The default table (``dcsim/perf/data/nangate45_area.csv``), validated."""
    ref = resources.files("dcsim.perf") / "data" / DEFAULT_TABLE
    with resources.as_file(ref) as path:
        rows, _, errors = _read_rows(Path(path))
    if errors:
        raise ConfigError(f"{path}: " + "; ".join(errors))
    return AreaTable(tuple(rows))


def load_area(path, base: AreaTable | None = None) -> AreaTable:
    """A table from a user's file, merged over ``base`` (default :func:`default_area`)."""
    path = Path(path)
    base = default_area() if base is None else base
    if not path.is_file():
        raise ConfigError(f"Area file must be an existing file, not {str(path)!r}")
    rows, replace, errors = _read_rows(path)
    new_keys = {r.key for r in rows}
    merged = [r for r in base.rows if r.component not in replace and r.key not in new_keys]
    merged += rows
    if not errors:
        errors = _table_errors(merged)
    if errors:
        raise ConfigError(f"{path}: {len(errors)} error(s): " + "; ".join(errors))
    return AreaTable(tuple(merged), origin=f"{base.origin} + {path}")


def engine_area(config: EngineConfig, table: AreaTable | None = None,
                cache_dir=None) -> dict:
    """Area of the engine for ``config``: ``top + n_pe * pe``, logic and SRAM apart.

    Returns a JSON-ready dict: ``pe`` and ``top`` (each ``cells`` {type: count},
    ``logic_cells``, ``logic_nand2``, ``logic_um2``, ``sram_um2`` {macro name: um^2},
    ``total_um2``), ``components_um2`` (``pe_logic``, ``pe_sram``, ``top_logic``,
    ``top_sram``: whole-engine sums, n_pe PEs), ``total_um2`` and ``area`` (the
    table's origin). Synthesis runs through ``hw.synth.synthesize`` (cached).
    """
    table = default_area() if table is None else table
    if not isinstance(table, AreaTable):
        raise ConfigError(f"table must be an AreaTable, not {type(table).__name__}")
    parts = {}
    for part in ("pe", "top"):
        s = synthesize(config, part, cache_dir=cache_dir)
        logic = table.logic_um2(s.cells)
        sram = {name: table.sram_um2(depth, width) for name, depth, width in s.macros}
        parts[part] = {"cells": dict(s.cells), "logic_cells": int(sum(s.cells.values())),
                       "logic_nand2": logic / table.cell_um2(NAND2), "logic_um2": logic,
                       "sram_um2": sram, "total_um2": logic + sum(sram.values())}
    n = config.n_pe
    components = {"pe_logic": n * parts["pe"]["logic_um2"],
                  "pe_sram": n * sum(parts["pe"]["sram_um2"].values()),
                  "top_logic": parts["top"]["logic_um2"],
                  "top_sram": sum(parts["top"]["sram_um2"].values())}
    return {"pe": parts["pe"], "top": parts["top"], "components_um2": components,
            "total_um2": sum(components.values()), "area": table.origin}


def _read_rows(path: Path):
    """Parse and check every row of a file: (rows, replaced components, errors)."""
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], set(), [f"cannot be read ({exc})"]
    errors, replace = [], set()
    if suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        errors += [f"line 1: unknown column {c!r} (columns are {', '.join(FIELDS)})"
                   for c in reader.fieldnames or [] if c not in FIELDS]
        raw = [(f"line {reader.line_num}", rec) for rec in reader]
    elif suffix in (".yaml", ".yml", ".json"):
        try:
            doc = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            return [], set(), [f"is not valid {suffix[1:].upper()} ({exc})".replace("\n", " ")]
        entries = doc
        if isinstance(doc, dict):
            errors += [f"top-level key must be 'replace' or 'entries', not {k!r}"
                       for k in doc if k not in ("replace", "entries")]
            for name in doc.get("replace", []) or []:
                if name in COMPONENTS:
                    replace.add(name)
                else:
                    errors.append(f"replace: component must be one of {list(COMPONENTS)}, "
                                  f"not {name!r}")
            entries = doc.get("entries", [])
        if not isinstance(entries, list):
            errors.append(f"entries must be a list of rows, not {type(entries).__name__}")
            entries = []
        raw = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                errors.append(f"entries[{i}]: a row must be a mapping of fields, not {entry!r}")
                continue
            errors += [f"entries[{i}]: unknown field {k!r} (fields are {', '.join(FIELDS)})"
                       for k in entry if k not in FIELDS]
            raw.append((f"entries[{i}]", entry))
    else:
        return [], set(), [f"must end in .yaml, .yml, .json or .csv, not {suffix!r}"]
    rows = []
    for where, rec in raw:
        problems = []
        component = _blank(rec.get("component"))
        if component not in COMPONENTS:
            problems.append(f"{where}: component must be one of {list(COMPONENTS)}, "
                            f"not {component!r}")
        cell = _blank(rec.get("cell"))
        depth = _parse_int(rec.get("depth"))
        width = _parse_int(rec.get("width_bits"))
        if component == "cell" and cell not in CELL_TYPES:
            problems.append(f"{where}: cell must be one of {list(CELL_TYPES)}, not {cell!r}")
        if component == "sram":
            if depth is None:
                problems.append(f"{where}: depth must be a positive integer for sram, "
                                f"not {rec.get('depth')!r}")
            if width is None:
                problems.append(f"{where}: width_bits must be a positive integer for sram, "
                                f"not {rec.get('width_bits')!r}")
        area = _parse_float(rec.get("area_um2"))
        if area is None:
            problems.append(f"{where}: area_um2 must be a positive finite number of square "
                            f"micrometres, not {rec.get('area_um2')!r}")
        source = _blank(rec.get("source"))
        if not isinstance(source, str):
            problems.append(f"{where}: source must be a non-empty string saying where the "
                            f"figure comes from, not {source!r}")
        if problems:
            errors += problems
            continue
        if component == "cell":
            rows.append(AreaRow("cell", cell, None, None, area, source))
        else:
            rows.append(AreaRow("sram", None, depth, width, area, source))
    return rows, replace, errors


def _table_errors(rows) -> list:
    errors = []
    keys = [r.key for r in rows]
    dup = sorted({k for k in keys if keys.count(k) > 1}, key=str)
    if dup:
        errors.append(f"the table must not have two rows with the same key, not {dup}")
    cells = {r.cell for r in rows if r.component == "cell"}
    missing = [c for c in CELL_TYPES if c not in cells]
    if missing:
        errors.append(f"the table must have a 'cell' row for every type in "
                      f"{list(CELL_TYPES)}, not miss {missing}")
    sizes = {r.depth * r.width_bits for r in rows if r.component == "sram"}
    if len(sizes) < 2:
        errors.append(f"the SRAM fit needs 'sram' rows of two or more sizes (bits), "
                      f"not {sorted(sizes)}")
    return errors
