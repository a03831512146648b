"""The sweep spec (YAML), validated whole, and the points it expands to.

The format is documented in ``examples/README.md``. In short::

    models: [lenet300, path/to/model.dcz]   # built-in names or .dcz files
    seed: 0                                  # seed of the built-in stand-ins
    images: 20                               # MNIST test images 0..N-1 (--images N)
    clock_mhz: [400, 800]                    # a value, a list or a range
    tech: [default, my_tech.yaml]            # perf.tech tables ("default": 45 nm)
    area: default                            # perf.area table ("default": NanGate 45)
    base: small                              # EngineConfig preset the fields override
    config:                                  # any EngineConfig field
      n_pe: [4, 8, 16]
      fifo_depth: {start: 2, stop: 16, factor: 2}
      sparse_words: {start: 4096, stop: 16384, step: 4096}

Ranges include ``stop``. Paths are relative to the spec file. Every problem (unknown
key or field, bad range, missing file, bad table, a combination ``EngineConfig``
refuses) is collected and raised as one :class:`~dcsim.errors.ConfigError` before any
work is done.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from dcsim.errors import ConfigError, DcsimError
from dcsim.hw.config import PRESETS, EngineConfig

#: Built-in model names: seeded random stand-ins of the compressed network's shape and
#: densities (``hw.workloads``), so a spec runs without a trained model.
BUILTIN_MODELS = ("lenet300",)
TOP_KEYS = ("models", "seed", "images", "clock_mhz", "tech", "area", "base", "config")
CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(EngineConfig))
MNIST_TEST_IMAGES = 10000
MAX_POINTS = 1_000_000


@dataclass(frozen=True)
class Point:
    """One point of a sweep; its row is a pure function of it.

    model : str -- a built-in name or a .dcz path; model_digest : str -- what the key
    hashes for it (the file's SHA-256, or the name and seed); seed : int;
    config : dict (EngineConfig fields); tech, area : str -- "default" or a path;
    tech_digest, area_digest : str; clock_mhz : float; images : int.
    """

    model: str
    model_digest: str
    seed: int
    config: dict
    tech: str
    tech_digest: str
    area: str
    area_digest: str
    clock_mhz: float
    images: int

    @property
    def key(self) -> str:
        """Content hash of model, config, technology, clock and images (resume key)."""
        text = json.dumps([self.model_digest, self.config, self.tech_digest,
                           self.area_digest, self.clock_mhz, self.images], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def engine_config(self) -> EngineConfig:
        return EngineConfig(**self.config)


@dataclass(frozen=True)
class SweepSpec:
    """A validated spec: the lists it sweeps (see the module docstring)."""

    path: Path
    models: tuple
    seed: int
    images: int
    clock_mhz: tuple
    tech: tuple
    area: str
    configs: tuple

    def points(self) -> list:
        """Every point, in a fixed order (models, tech, clocks, configs)."""
        model_digests = {m: _model_digest(m, self.seed) for m in self.models}
        tech_digests = {t: _file_digest(t, "tech") for t in self.tech}
        area_digest = _file_digest(self.area, "area")
        return [Point(m, model_digests[m], self.seed, dict(cfg), t, tech_digests[t],
                      self.area, area_digest, float(clk), self.images)
                for m, t, clk, cfg in itertools.product(self.models, self.tech,
                                                        self.clock_mhz, self.configs)]


def load_spec(path) -> SweepSpec:
    """Read and validate a spec file; ConfigError listing every problem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: sweep spec must be an existing file, not missing")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: must be readable YAML ({exc})".replace("\n", " ")) from None
    errors = []
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: must be a mapping of {', '.join(TOP_KEYS)}, not "
                          f"{type(doc).__name__}")
    errors += [f"unknown key {k!r} (keys are {', '.join(TOP_KEYS)})"
               for k in doc if k not in TOP_KEYS]
    here = path.parent

    models = _as_list(doc.get("models"))
    model_refs = []
    if not models:
        errors.append("models must list at least one model, not none")
    for m in models:
        if not isinstance(m, str):
            errors.append(f"models: a model must be a built-in name or a .dcz path, not {m!r}")
        elif m in BUILTIN_MODELS:
            model_refs.append(m)
        elif m.endswith(".dcz"):
            p = (here / m)
            if not p.is_file():
                errors.append(f"models: model file {m!r} does not exist (looked for {p})")
            else:
                model_refs.append(str(p))
        else:
            errors.append(f"models: a model must be one of {list(BUILTIN_MODELS)} or a .dcz "
                          f"file, not {m!r}")

    seed = doc.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        errors.append(f"seed must be a non-negative integer, not {seed!r}")
        seed = 0
    images = doc.get("images", 1)
    if isinstance(images, bool) or not isinstance(images, int) or \
            not 1 <= images <= MNIST_TEST_IMAGES:
        errors.append(f"images must be an integer in 1..{MNIST_TEST_IMAGES}, not {images!r}")
        images = 1

    clocks = _values(doc.get("clock_mhz", 800.0), "clock_mhz", errors, number=True)
    for c in clocks:
        if c <= 0:
            errors.append(f"clock_mhz must be positive, not {c!r}")

    tech = []
    for t in _as_list(doc.get("tech", "default")):
        tech.append(_table(t, here, "tech", errors))
    area = _table(doc.get("area", "default"), here, "area", errors)

    base_name = doc.get("base", "small")
    if base_name not in PRESETS:
        errors.append(f"base must be one of {sorted(PRESETS)}, not {base_name!r}")
        base_name = "small"
    fields = doc.get("config", {}) or {}
    axes = []
    if not isinstance(fields, dict):
        errors.append(f"config must be a mapping of EngineConfig fields, not {fields!r}")
        fields = {}
    for name, value in fields.items():
        if name not in CONFIG_FIELDS:
            errors.append(f"config: unknown EngineConfig field {name!r} (fields are "
                          f"{', '.join(CONFIG_FIELDS)})")
            continue
        axes.append((name, _values(value, f"config.{name}", errors)))

    configs = []
    n_configs = 1
    for _, vals in axes:
        n_configs *= max(1, len(vals))
    n_points = n_configs * len(model_refs or [0]) * len(tech or [0]) * len(clocks or [0])
    if n_points > MAX_POINTS:
        errors.append(f"the sweep must have at most {MAX_POINTS} points, not {n_points}")
    else:
        base = PRESETS[base_name]
        refused = {}
        # axes with errors of their own are left out, so the others are still checked
        checked = [(n, vals) for n, vals in axes if vals]
        names = [n for n, _ in checked]
        for combo in itertools.product(*(vals for _, vals in checked)):
            over = dict(zip(names, combo))
            try:
                configs.append(dataclasses.replace(base, **over).to_dict())
            except DcsimError as exc:
                refused.setdefault(str(exc), over)
        for msg, over in refused.items():
            errors.append(f"config {over}: EngineConfig refuses it ({msg})")
    if errors:
        raise ConfigError(f"{path}: {len(errors)} error(s): " + "; ".join(errors))
    return SweepSpec(path=path, models=tuple(model_refs), seed=seed, images=images,
                     clock_mhz=tuple(float(c) for c in clocks), tech=tuple(tech), area=area,
                     configs=tuple(configs))


def _as_list(value) -> list:
    """``value`` as a list (None: empty; a scalar: one item)."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _values(value, name, errors, number=False) -> list:
    """A scalar, a list, or a range mapping {start, stop, step | factor} (stop included)."""
    kind = (int, float) if number else int
    want = "numbers" if number else "integers"

    def ok(v):
        return isinstance(v, kind) and not isinstance(v, bool)

    if isinstance(value, dict):
        extra = [k for k in value if k not in ("start", "stop", "step", "factor")]
        if extra:
            errors.append(f"{name}: a range has keys start, stop and step or factor, not "
                          f"{extra}")
            return []
        start, stop = value.get("start"), value.get("stop")
        step, factor = value.get("step"), value.get("factor")
        if not (ok(start) and ok(stop)) or (step is None) == (factor is None):
            errors.append(f"{name}: a range must have {want} start and stop and one of step "
                          f"or factor, not {value!r}")
            return []
        if stop < start:
            errors.append(f"{name}: a range must have stop >= start, not {value!r}")
            return []
        out = []
        if step is not None:
            if not ok(step) or step <= 0:
                errors.append(f"{name}: step must be positive {want[:-1]}, not {step!r}")
                return []
            v = start
            while v <= stop and len(out) <= MAX_POINTS:
                out.append(v)
                v = v + step
        else:
            if not ok(factor) or factor <= 1 or start <= 0:
                errors.append(f"{name}: factor must be {want[:-1]} > 1 from a positive "
                              f"start, not factor={factor!r}, start={start!r}")
                return []
            v = start
            while v <= stop and len(out) <= MAX_POINTS:
                out.append(v)
                v = v * factor
        return out
    values = value if isinstance(value, list) else [value]
    if not values:
        errors.append(f"{name}: must list at least one value, not none")
    bad = [v for v in values if not ok(v)]
    if bad:
        errors.append(f"{name}: values must be {want}, not {bad}")
        return []
    return list(values)


def _table(value, here: Path, what: str, errors) -> str:
    """"default" or a readable, valid table file (checked now); the resolved name."""
    from dcsim.perf.area import load_area
    from dcsim.perf.tech import load_tech

    if value == "default":
        return "default"
    if not isinstance(value, str):
        errors.append(f"{what}: a table must be 'default' or a file path, not {value!r}")
        return "default"
    p = here / value
    try:
        (load_tech if what == "tech" else load_area)(p)
    except DcsimError as exc:
        errors.append(f"{what}: {exc}")
    return str(p)


def _file_digest(ref: str, what: str = "") -> str:
    """SHA-256 of a file; for "default", of the packaged table it stands for."""
    if ref == "default":
        from importlib import resources

        from dcsim.perf import area, tech
        name = tech.DEFAULT_TABLE if what == "tech" else area.DEFAULT_TABLE
        data = (resources.files("dcsim.perf") / "data" / name).read_bytes()
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha256(Path(ref).read_bytes()).hexdigest()


def _model_digest(ref: str, seed: int) -> str:
    if ref in BUILTIN_MODELS:
        return f"{ref}:seed={seed}"
    return _file_digest(ref)
