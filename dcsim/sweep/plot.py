"""Pareto fronts of a results CSV: energy vs latency vs area, non-fitting points hollow."""

from __future__ import annotations

import numpy as np

from dcsim.errors import ConfigError

#: Short axis names -> (column, label); any numeric column may be named directly.
AXES = {
    "latency": ("time_us_per_image", "latency per image (us)"),
    "energy": ("energy_{scenario}_pj", "energy per inference, {scenario} (pJ)"),
    "area": ("area_total_um2", "area (um^2)"),
    "cycles": ("cycles_total", "cycles (all images)"),
}


def column(rows: list, name: str, scenario: str = "sram", where: str = "") -> tuple:
    """(values float64 (N,), label) of axis ``name`` over ``rows`` (dicts of strings)."""
    col, label = AXES.get(name, (name, name))
    col, label = col.format(scenario=scenario), label.format(scenario=scenario)
    if not rows:
        raise ConfigError(f"{where}: must hold at least one row, not none")
    if col not in rows[0]:
        raise ConfigError(f"{where}: axis must be one of {sorted(AXES)} or a column, "
                          f"not {name!r}")
    try:
        return np.array([float(r[col]) for r in rows]), label
    except ValueError:
        raise ConfigError(f"{where}: column {col!r} must be numeric, not "
                          f"{rows[0][col]!r}") from None


def pareto_mask(values: np.ndarray) -> np.ndarray:
    """Boolean (N,): rows of ``values`` (N, D) not dominated by another row (all
    objectives minimised; dominated = another row is <= everywhere and < somewhere)."""
    v = np.asarray(values, dtype=np.float64)
    keep = np.ones(v.shape[0], dtype=bool)
    for i in range(v.shape[0]):
        others = np.delete(v, i, axis=0)
        dominated = np.all(others <= v[i], axis=1) & np.any(others < v[i], axis=1)
        keep[i] = not dominated.any()
    return keep


def plot_pareto(rows: list, x: str, y: str, out, color: str | None = None,
                scenario: str = "sram", where: str = "") -> dict:
    """Scatter ``y`` vs ``x`` (fitting points filled, others hollow), the 2-D Pareto
    front of the fitting points as a line, the 3-D (latency, energy, area) front circled;
    saves ``out`` (PNG). Returns counts and the 2-D front's keys (sorted by x)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs, xlabel = column(rows, x, scenario, where)
    ys, ylabel = column(rows, y, scenario, where)
    fits = np.array([r["fits"] == "true" for r in rows])
    cs = column(rows, color, scenario, where)[0] if color else None
    three = np.stack([column(rows, a, scenario, where)[0]
                      for a in ("latency", "energy", "area")], axis=1)
    front2 = np.zeros(len(rows), dtype=bool)
    front3 = np.zeros(len(rows), dtype=bool)
    if fits.any():
        front2[fits] = pareto_mask(np.stack([xs[fits], ys[fits]], axis=1))
        front3[fits] = pareto_mask(three[fits])
    fig, ax = plt.subplots(figsize=(7, 5))
    norm = plt.Normalize(cs.min(), cs.max()) if cs is not None else None
    cmap = plt.get_cmap("viridis")
    for mask, filled in ((fits, True), (~fits, False)):
        if not mask.any():
            continue
        c = cmap(norm(cs[mask])) if cs is not None else "C0"
        ax.scatter(xs[mask], ys[mask], s=22, facecolors=c if filled else "none",
                   edgecolors=c, label="fits" if filled else "does not fit")
    if front3.any():
        ax.scatter(xs[front3], ys[front3], s=70, facecolors="none", edgecolors="k",
                   linewidths=0.8, label="Pareto (latency, energy, area)")
    order = np.flatnonzero(front2)[np.argsort(xs[front2])]
    if order.size:
        ax.step(xs[order], ys[order], where="post", color="C3", lw=1.2,
                label=f"Pareto ({x}, {y})")
    if cs is not None:
        fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=color)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return {"points": len(rows), "fitting": int(fits.sum()),
            "pareto_2d": [rows[i]["key"] for i in order],
            "pareto_3d": int(front3.sum()), "out": str(out)}
