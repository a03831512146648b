"""Technology tables: energy per operation and per memory access, as data.

A table is a list of rows (Accelergy-like), each with ``component``, ``action``,
``width_bits``, ``size_bytes`` (memories only), ``energy_pj`` (always picojoules),
``unit`` (``"pJ per op"`` or ``"pJ per read"``) and ``source``. The default,
``data/horowitz45.csv``, holds the 45 nm figures of Horowitz (ISSCC 2014) as Deep
Compression and EIE quote them, plus CACTI 45 nm SRAM read energies.

Components and how the lookups use them:

- ``int_add``, ``int_mult``, ``float_add``, ``float_mult``: energy per operation at a
  width. A width in the table is returned as is; any other width is interpolated as a
  power law in log-log through the two nearest tabulated widths (bracketing ones when
  they exist, else the two nearest on one side). From the default points this is
  add ~ width^0.87 (0.03 pJ @ 8 bits, 0.1 @ 32) and mult ~ width^1.98 (0.2 @ 8, 3.1 @ 32),
  so int mult is ~0.79 pJ at 16 bits and int add ~0.14 pJ at 48 bits. With a single
  row the exponent is 1 for adds and 2 for multiplies.
- ``sram``: 64-bit read energies at several capacities (CACTI, 45 nm). At load time
  ``E = a * size_bytes**p`` is fitted to them by least squares in log-log; a read of
  ``w`` bits costs ``E * w / 64`` (energy linear in width, at fixed capacity). On the
  default points the fit gives a = 0.0388 pJ, p = 0.554 (E = 2.65 pJ at 2 KB, 26.5 pJ at
  128 KB, 83.9 pJ at 1 MB), max relative error 23.9% (errors +13%, +8%, -17%, -20%,
  +24% at 2 KB, 8 KB, 32 KB, 128 KB, 1 MB).
  These numbers are computed from the rows, never stored: see ``TechTable.sram_fit_*``.
- ``sram_quoted``: Horowitz's SRAM figures as the papers quote them (10 pJ @ 8 KB, 20 @
  32 KB, 100 @ 1 MB for 64 bits; 5 pJ for a 32-bit read of ~8 KB). Used only by
  :meth:`TechTable.lookup` (EIE's DRAM-vs-SRAM argument), not by the SRAM curve.
- ``dram``: energy per read at a width; ``dram_read_pj(bits)`` scales the row with the
  nearest width (ties: the narrower) linearly in bits. Defaults: 640 pJ / 32 bits and
  1300 pJ / 64 bits (the low end of the quoted 1.3-2.6 nJ), both ~20 pJ per bit.
- Register files (the codebook, activation and accumulator files, the activation FIFO)
  have no row: ``regfile_pj`` extrapolates the SRAM fit down to the file's size (0.57 pJ
  for a 64-bit access of a 128-byte file). This is an assumption: small register files
  built from flops cost about that, not orders of magnitude less or more.

A user's YAML, JSON or CSV file (:func:`load_tech`) overrides rows of the default table
with the same key (component, action, width_bits, size_bytes) and adds new ones; the
other default rows stay. A YAML/JSON file may instead be a mapping
``{replace: [component, ...], entries: [row, ...]}``: the listed components' default
rows are dropped first (so, for instance, the SRAM curve is fitted to the user's points
alone). The whole file is checked and every problem is reported in one ConfigError.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

from dcsim.errors import ConfigError

#: component -> (action, unit, whether rows need size_bytes)
COMPONENTS = {
    "int_add": ("add", "pJ per op", False),
    "int_mult": ("mult", "pJ per op", False),
    "float_add": ("add", "pJ per op", False),
    "float_mult": ("mult", "pJ per op", False),
    "sram": ("read", "pJ per read", True),
    "sram_quoted": ("read", "pJ per read", True),
    "dram": ("read", "pJ per read", False),
}
FIELDS = ("component", "action", "width_bits", "size_bytes", "energy_pj", "unit", "source")
#: the width at which the SRAM curve is tabulated (CACTI points are 64-bit reads)
SRAM_CURVE_WIDTH_BITS = 64
_SINGLE_POINT_EXPONENT = {"add": 1.0, "mult": 2.0}
DEFAULT_TABLE = "horowitz45.csv"


@dataclass(frozen=True)
class TechRow:
    """One table entry: ``energy_pj`` picojoules per ``action`` of ``component``."""

    component: str
    action: str
    width_bits: int
    size_bytes: int | None
    energy_pj: float
    unit: str
    source: str

    @property
    def key(self) -> tuple:
        """What a user's row must match to override this one."""
        return (self.component, self.action, self.width_bits, self.size_bytes)


@dataclass(frozen=True)
class TechTable:
    """A validated technology table with its lookups (all energies in pJ).

    rows : tuple of TechRow -- every component of ``COMPONENTS`` at least once, no two
        rows with the same key, ``sram`` at two or more capacities (64-bit reads).
    origin : str -- where the rows came from (file names), for reports.

    ``sram_fit_a`` (pJ), ``sram_fit_p`` and ``sram_fit_max_rel_error`` are the fitted
    SRAM curve ``E = a * size_bytes**p`` (64-bit read) and its worst relative error
    over the ``sram`` rows, computed at construction.
    """

    rows: tuple
    origin: str = "dcsim default (Horowitz 45 nm + CACTI 45 nm)"
    sram_fit_a: float = field(init=False)
    sram_fit_p: float = field(init=False)
    sram_fit_max_rel_error: float = field(init=False)

    def __post_init__(self):
        rows = tuple(self.rows)
        object.__setattr__(self, "rows", rows)
        bad = [r for r in rows if not isinstance(r, TechRow)]
        if bad:
            raise ConfigError(f"TechTable rows must be TechRow objects, not {bad[0]!r}")
        errors = _table_errors(rows)
        if errors:
            raise ConfigError(f"Technology table from {self.origin}: " + "; ".join(errors))
        a, p, err = _fit_sram(rows)
        object.__setattr__(self, "sram_fit_a", a)
        object.__setattr__(self, "sram_fit_p", p)
        object.__setattr__(self, "sram_fit_max_rel_error", err)

    def lookup(self, component: str, width_bits: int, size_bytes: int | None = None) -> float:
        """The tabulated energy (pJ) of exactly this row; ConfigError if there is none."""
        for r in self.rows:
            if (r.component, r.width_bits, r.size_bytes) == (component, width_bits, size_bytes):
                return r.energy_pj
        have = sorted((r.width_bits, r.size_bytes) for r in self.rows if r.component == component)
        raise ConfigError(
            f"Technology table has no {component!r} row at width_bits={width_bits!r}, "
            f"size_bytes={size_bytes!r}; it has (width_bits, size_bytes) {have}")

    def sram_read_pj(self, size_bytes: float, width_bits: int = 64) -> float:
        """Energy (pJ) of one ``width_bits`` read of an SRAM of ``size_bytes``, from the fit."""
        size = _positive_number("size_bytes", size_bytes)
        width = _positive_int("width_bits", width_bits)
        return self.sram_fit_a * size ** self.sram_fit_p * width / SRAM_CURVE_WIDTH_BITS

    def regfile_pj(self, size_bytes: float, width_bits: int) -> float:
        """Energy (pJ) of one ``width_bits`` access (read or write) of a register file.

        Assumption: the SRAM fit extrapolated down to the file's capacity, linear in
        width; reads and writes cost the same.
        """
        return self.sram_read_pj(size_bytes, width_bits)

    def dram_read_pj(self, bits: int) -> float:
        """Energy (pJ) to read ``bits`` from DRAM: the nearest-width row, linear in bits."""
        bits = _positive_int("bits", bits)
        rows = [r for r in self.rows if r.component == "dram"]
        near = min(rows, key=lambda r: (abs(r.width_bits - bits), r.width_bits))
        return near.energy_pj * bits / near.width_bits

    def int_add_pj(self, bits: int) -> float:
        """Energy (pJ) of one integer add of ``bits`` bits."""
        return self._width_law("int_add", bits)

    def int_mult_pj(self, bits: int) -> float:
        """Energy (pJ) of one ``bits`` x ``bits`` integer multiply."""
        return self._width_law("int_mult", bits)

    def float_add_pj(self, bits: int) -> float:
        """Energy (pJ) of one floating-point add of ``bits`` bits."""
        return self._width_law("float_add", bits)

    def float_mult_pj(self, bits: int) -> float:
        """Energy (pJ) of one floating-point multiply of ``bits`` bits."""
        return self._width_law("float_mult", bits)

    def as_dicts(self) -> list:
        """The rows as plain dicts (for JSON or a printed table)."""
        return [{f: getattr(r, f) for f in FIELDS} for r in self.rows]

    def _width_law(self, component: str, bits: int) -> float:
        bits = _positive_int("bits", bits)
        points = {r.width_bits: r.energy_pj for r in self.rows if r.component == component}
        if bits in points:
            return points[bits]
        widths = sorted(points)
        if len(widths) == 1:
            w0 = widths[0]
            slope = _SINGLE_POINT_EXPONENT[COMPONENTS[component][0]]
            return points[w0] * (bits / w0) ** slope
        below = [w for w in widths if w < bits]
        above = [w for w in widths if w > bits]
        if below and above:
            lo, hi = below[-1], above[0]
        elif above:
            lo, hi = above[0], above[1]
        else:
            lo, hi = below[-2], below[-1]
        slope = math.log(points[hi] / points[lo]) / math.log(hi / lo)
        return points[lo] * (bits / lo) ** slope


@lru_cache(maxsize=1)
def default_tech() -> TechTable:
    """The default table (``dcsim/perf/data/horowitz45.csv``), validated."""
    ref = resources.files("dcsim.perf") / "data" / DEFAULT_TABLE
    with resources.as_file(ref) as path:
        rows, replace, errors = _read_rows(Path(path))
    if errors:
        raise ConfigError(f"{path}: " + "; ".join(errors))
    return TechTable(rows)


def load_tech(path, base: TechTable | None = None) -> TechTable:
    """A table from a user's ``.yaml``/``.yml``, ``.json`` or ``.csv`` file.

    The file's rows override ``base``'s rows (default: :func:`default_tech`) of the same
    key (component, action, width_bits, size_bytes) and add the others; a YAML/JSON
    mapping's ``replace`` list first drops those components from ``base``. ``unit`` may
    be left out (it is implied by the component). Every problem in the file and in the
    merged table is collected and raised as one ConfigError naming the file, the row
    (``line N`` for CSV, ``entries[i]`` for YAML/JSON) and the field.
    """
    path = Path(path)
    base = default_tech() if base is None else base
    if not path.is_file():
        raise ConfigError(f"Technology file must be an existing file, not {str(path)!r}")
    rows, replace, errors = _read_rows(path)
    kept = [r for r in base.rows if r.component not in replace]
    new_keys = {r.key for r in rows}
    merged = [r for r in kept if r.key not in new_keys] + rows
    if not errors:
        errors = _table_errors(merged)
    if errors:
        raise ConfigError(f"{path}: {len(errors)} error(s): " + "; ".join(errors))
    return TechTable(tuple(merged), origin=f"{base.origin} + {path}")


def _read_rows(path: Path):
    """Parse and check every row of a file: (rows, replaced components, errors)."""
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [], set(), [f"cannot be read ({exc})"]
    if suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        header = reader.fieldnames or []
        errors = [f"line 1: unknown column {c!r} (columns are {', '.join(FIELDS)})"
                  for c in header if c not in FIELDS]
        raw = [(f"line {reader.line_num}", {k: v for k, v in rec.items() if k in FIELDS})
               for rec in reader]
        rows, errors = _check_rows(raw, errors)
        return rows, set(), errors
    if suffix in (".yaml", ".yml", ".json"):
        try:
            doc = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            return [], set(), [f"is not valid {suffix[1:].upper()} ({exc})".replace("\n", " ")]
        return _read_document(doc)
    return [], set(), [f"must end in .yaml, .yml, .json or .csv, not {suffix!r}"]


def _read_document(doc):
    errors = []
    replace = set()
    if isinstance(doc, dict):
        for key in doc:
            if key not in ("replace", "entries"):
                errors.append(f"top-level key must be 'replace' or 'entries', not {key!r}")
        listed = doc.get("replace", [])
        if not isinstance(listed, list):
            errors.append(f"replace must be a list of component names, not {listed!r}")
            listed = []
        for name in listed:
            if name not in COMPONENTS:
                errors.append(f"replace: component must be one of {sorted(COMPONENTS)}, "
                              f"not {name!r}")
            else:
                replace.add(name)
        entries = doc.get("entries", [])
    else:
        entries = doc
    if not isinstance(entries, list):
        errors.append(f"entries must be a list of rows, not {type(entries).__name__}")
        entries = []
    raw = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            errors.append(f"entries[{i}]: a row must be a mapping of fields, not {entry!r}")
            continue
        for key in entry:
            if key not in FIELDS:
                errors.append(f"entries[{i}]: unknown field {key!r} (fields are "
                              f"{', '.join(FIELDS)})")
        raw.append((f"entries[{i}]", {k: v for k, v in entry.items() if k in FIELDS}))
    rows, errors = _check_rows(raw, errors)
    return rows, replace, errors


def _check_rows(raw, errors):
    """Validate (location, field dict) pairs; return (TechRows, errors so far)."""
    rows = []
    seen = {}
    for where, rec in raw:
        problems = []

        def bad(name, want, value):
            problems.append(f"{where}: {name} must be {want}, not {value!r}")

        component = _blank(rec.get("component"))
        spec = COMPONENTS.get(component)
        if spec is None:
            bad("component", f"one of {sorted(COMPONENTS)}", component)
            action, unit, needs_size = None, None, None
        else:
            action, unit, needs_size = spec
        act = _blank(rec.get("action"))
        if spec is not None and act != action:
            bad("action", f"{action!r} for {component}", act)
        width = _parse_int(rec.get("width_bits"))
        if width is None:
            bad("width_bits", "a positive integer", rec.get("width_bits"))
        size_raw = _blank(rec.get("size_bytes"))
        size = None
        if needs_size:
            size = _parse_int(size_raw)
            if size is None:
                bad("size_bytes", f"a positive integer for {component}", size_raw)
        elif spec is not None and size_raw is not None:
            bad("size_bytes", f"empty for {component}", size_raw)
        energy = _parse_float(rec.get("energy_pj"))
        if energy is None:
            bad("energy_pj", "a positive finite number of picojoules", rec.get("energy_pj"))
        given_unit = _blank(rec.get("unit"))
        if spec is not None and given_unit is not None and given_unit != unit:
            bad("unit", f"{unit!r} (energy_pj is always in picojoules)", given_unit)
        source = _blank(rec.get("source"))
        if not isinstance(source, str):
            bad("source", "a non-empty string saying where the figure comes from", source)
        if problems:
            errors.extend(problems)
            continue
        row = TechRow(component, act, width, size, energy, unit, source)
        if row.key in seen:
            errors.append(f"{where}: duplicates the row at {seen[row.key]} "
                          f"(same component, action, width_bits, size_bytes)")
            continue
        seen[row.key] = where
        rows.append(row)
    return rows, errors


def _table_errors(rows) -> list:
    errors = []
    present = {r.component for r in rows}
    for name in COMPONENTS:
        if name not in present:
            errors.append(f"the table must have at least one {name!r} row, not none")
    keys = [r.key for r in rows]
    if len(set(keys)) != len(keys):
        errors.append("the table must not have two rows with the same key, not "
                      f"{sorted({k for k in keys if keys.count(k) > 1}, key=str)}")
    sizes = {r.size_bytes for r in rows
             if r.component == "sram" and r.width_bits == SRAM_CURVE_WIDTH_BITS}
    if "sram" in present and len(sizes) < 2:
        errors.append(f"the SRAM curve needs 'sram' rows at width_bits="
                      f"{SRAM_CURVE_WIDTH_BITS} for two or more sizes, not {sorted(sizes)}")
    return errors


def _fit_sram(rows):
    """Least squares of log E on log size over the 64-bit ``sram`` rows: (a, p, max rel err)."""
    pts = [(r.size_bytes, r.energy_pj) for r in rows
           if r.component == "sram" and r.width_bits == SRAM_CURVE_WIDTH_BITS]
    size = np.array([s for s, _ in pts], dtype=np.float64)
    energy = np.array([e for _, e in pts], dtype=np.float64)
    p, log_a = np.polyfit(np.log(size), np.log(energy), 1)
    a = float(np.exp(log_a))
    fitted = a * size ** p
    return a, float(p), float(np.max(np.abs(fitted / energy - 1.0)))


def _blank(value):
    """None for a missing or empty cell, else the value (strings stripped)."""
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def _parse_int(value):
    value = _blank(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, (int, np.integer)) and value > 0:
        return int(value)
    return None


def _parse_float(value):
    value = _blank(value)
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _positive_int(name, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, not {value!r}")
    return int(value)


def _positive_number(name, value) -> float:
    if (isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating))
            or not math.isfinite(value) or value <= 0):
        raise ConfigError(f"{name} must be a positive finite number, not {value!r}")
    return float(value)
