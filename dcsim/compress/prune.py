"""Magnitude pruning: threshold = quality x std(layer), masks, iterative schedules.

Han, Pool, Tran, Dally, "Learning both Weights and Connections for Efficient Neural
Networks" (NIPS 2015), section 3: a weight survives if ``|w| > quality * std(W)``; the
network is retrained with the pruned connections held at zero, and pruning is repeated
with a rising threshold. Deep Compression (ICLR 2016) section 2 uses the same rule.
"""

from __future__ import annotations

import numpy as np

from dcsim.errors import ConfigError


def threshold(weights: np.ndarray, quality: float) -> float:
    """The pruning threshold ``quality * std(weights)`` (units of the weights)."""
    if not quality >= 0:
        raise ConfigError(f"Pruning quality must be a non-negative number, not {quality!r}")
    return float(quality) * float(np.std(weights))


def prune_mask(weights: np.ndarray, quality: float, std_of: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of the weights kept: ``|w| > quality * std``.

    ``std_of`` gives the weights the standard deviation is taken over (default:
    ``weights`` itself); iterative pruning passes the dense layer it started from, so
    the quality parameter keeps one meaning across steps.
    """
    thr = threshold(weights if std_of is None else std_of, quality)
    return np.abs(weights) > thr


def quality_for_density(weights: np.ndarray, density: float, std_of: np.ndarray | None = None) -> float:
    """The quality parameter that keeps a ``density`` fraction of ``weights``.

    The inverse of :func:`prune_mask`: ``quality = |w|_(1-density quantile) / std``, so
    a schedule can be written in target densities (the paper's Tables 2 and 3 report
    densities) while the rule applied stays ``|w| > quality * std``.
    """
    if not 0 < density <= 1:
        raise ConfigError(f"Target density must be in (0, 1], not {density!r}")
    std = float(np.std(weights if std_of is None else std_of))
    if std == 0:
        return 0.0
    if density >= 1:
        return 0.0
    magnitude = np.sort(np.abs(weights), axis=None)
    keep = max(1, int(round(density * magnitude.size)))
    cut = magnitude[magnitude.size - keep - 1] if keep < magnitude.size else 0.0
    return float(cut) / std


def density_steps(target: float, steps: int) -> list:
    """Densities of an iterative schedule falling geometrically from 1 to ``target``.

    Han et al. (NIPS 2015, section 3.3) prune in several prune/retrain rounds because a
    single aggressive cut loses accuracy; equal ratios per round keep each cut mild.
    """
    if not 0 < target <= 1:
        raise ConfigError(f"Target density must be in (0, 1], not {target!r}")
    if not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"Pruning steps must be a positive integer, not {steps!r}")
    return [float(target ** ((s + 1) / steps)) for s in range(steps)]


class MaskHook:
    """Training hook that keeps pruned weights exactly zero.

    ``masks`` maps a parameter name (``"ip1.W"``) to a boolean array of its shape.
    Gradients of pruned weights are zeroed before the update (so momentum never moves
    them), and the weights are multiplied by the mask after it, so they stay exactly 0.0.
    """

    def __init__(self, masks: dict):
        self.masks = {name: np.asarray(m, dtype=bool) for name, m in masks.items()}

    def on_grads(self, grads: dict, lr: float) -> None:
        for name, mask in self.masks.items():
            grads[name] *= mask

    def on_step(self, params: dict, lr: float) -> None:
        for name, mask in self.masks.items():
            params[name] *= mask


def prune_by_fraction(weights: np.ndarray, fraction: float) -> np.ndarray:
    """A copy of ``weights`` with the ``fraction`` of smallest magnitudes set to zero."""
    if not 0 <= fraction <= 1:
        raise ConfigError(f"Pruned fraction must be in [0, 1], not {fraction!r}")
    out = np.array(weights, copy=True)
    n_cut = int(round(fraction * out.size))
    if n_cut:
        order = np.argsort(np.abs(out), axis=None)[:n_cut]
        out.flat[order] = 0
    return out


def sensitivity_scan(model, x: np.ndarray, y: np.ndarray, fractions=(0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99)) -> dict:
    """Error (percent) versus pruned fraction, one layer at a time, without retraining.

    The paper's Figure 5 (NIPS 2015): shows which layers tolerate pruning. ``model`` is a
    ``dcsim.nn`` model; it is restored after the scan. Returns
    ``{"fractions": [...], "layers": {name: [error_percent, ...]}}``.
    """
    params = model.params()
    result = {"fractions": [float(f) for f in fractions], "layers": {}}
    for spec in model.layer_specs():
        key = f"{spec['name']}.W"
        original = params[key].copy()
        errors = []
        for fraction in fractions:
            params[key][...] = prune_by_fraction(original, fraction)
            errors.append(float(model.error(x, y)))
        params[key][...] = original
        result["layers"][spec["name"]] = errors
    return result


def plot_sensitivity(scan: dict, path) -> None:
    """Save the sensitivity scan as a PNG: error versus fraction of weights pruned."""
    from matplotlib.figure import Figure      # no pyplot: no backend to choose

    fig = Figure(figsize=(5, 3.5))
    ax = fig.subplots()
    for name, errors in scan["layers"].items():
        ax.plot([100 * f for f in scan["fractions"]], errors, marker="o", label=name)
    ax.set_xlabel("weights pruned (%)")
    ax.set_ylabel("test error (%)")
    ax.set_title("Pruning sensitivity (no retraining)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
