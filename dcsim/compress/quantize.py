"""Per-layer k-means weight sharing and centroid fine-tuning.

Deep Compression (Han, Mao, Dally, ICLR 2016), section 3: the surviving weights of a
layer are clustered with 1-D k-means; each weight is replaced by its cluster's centroid
and stored as a small code. Centroids are initialised linearly between the smallest and
largest weight (the paper's best choice, Figure 8), by density (equal-probability
quantiles) or Forgy (random weights). During fine-tuning the gradient of each centroid
is the sum of the gradients of its weights (Figure 3).

Code 0 is reserved for an exact zero (pruned weights and, in sparse encodings, fillers),
so ``code_bits`` bits give ``2**code_bits - 1`` centroids.
"""

from __future__ import annotations

import numpy as np

from dcsim.compress.layer import code_dtype
from dcsim.errors import ConfigError

INITS = ("linear", "density", "forgy")


def init_centroids(values: np.ndarray, k: int, init: str = "linear", seed: int = 0) -> np.ndarray:
    """``k`` initial centroids (float64, sorted) for 1-D ``values``.

    linear: evenly spaced over [min, max]; density: the (i+0.5)/k quantiles of the
    values' distribution; forgy: k distinct values drawn at random (seeded).
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if init not in INITS:
        raise ConfigError(f"Centroid initialisation must be one of {INITS}, not {init!r}")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"Number of clusters must be a positive integer, not {k!r}")
    if values.size == 0:
        return np.zeros(k)
    if init == "linear":
        lo, hi = values.min(), values.max()
        if k == 1:
            return np.array([(lo + hi) / 2])
        return np.linspace(lo, hi, k)
    if init == "density":
        return np.quantile(values, (np.arange(k) + 0.5) / k)
    rng = np.random.default_rng(seed)
    pick = rng.choice(values.size, size=min(k, values.size), replace=False)
    chosen = np.sort(values[pick])
    if chosen.size < k:
        chosen = np.concatenate([chosen, np.full(k - chosen.size, chosen[-1])])
    return chosen


def assign(values: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid for each value (ties go to the lower centroid).

    ``centroids`` must be sorted ascending; returns int64 of ``values``' shape.
    """
    values = np.asarray(values, dtype=np.float64)
    mid = (centroids[1:] + centroids[:-1]) / 2
    return np.searchsorted(mid, values, side="left")


def kmeans_1d(values: np.ndarray, k: int, init: str = "linear", iters: int = 100,
              seed: int = 0) -> tuple:
    """Lloyd's k-means on 1-D ``values``: returns (centroids float64 (k,), labels int64).

    Centroids stay sorted; a cluster that loses all its members keeps its centroid.
    Stops when no label changes or after ``iters`` rounds.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    centroids = np.sort(init_centroids(values, k, init, seed))
    labels = assign(values, centroids)
    for _ in range(iters):
        sums = np.bincount(labels, weights=values, minlength=k)
        counts = np.bincount(labels, minlength=k)
        nonempty = counts > 0
        centroids = centroids.copy()
        centroids[nonempty] = sums[nonempty] / counts[nonempty]
        centroids.sort()
        new = assign(values, centroids)
        if np.array_equal(new, labels):
            break
        labels = new
    return centroids, labels


def share_weights(weights: np.ndarray, code_bits: int, init: str = "linear", seed: int = 0) -> tuple:
    """Cluster the non-zero weights of a layer.

    Returns ``(codes, codebook)``: codes of ``weights``' shape (0 where the weight is 0,
    else 1 + its cluster), codebook float32 of ``2**code_bits`` entries with
    ``codebook[0] == 0``. Unused trailing entries hold the last centroid's value.
    """
    if not isinstance(code_bits, (int, np.integer)) or not 1 <= code_bits <= 16:
        raise ConfigError(f"code_bits must be an integer in 1..16, not {code_bits!r}")
    weights = np.asarray(weights)
    k = 2 ** int(code_bits) - 1
    nonzero = weights != 0
    centroids, labels = kmeans_1d(weights[nonzero], k, init, seed=seed)
    codes = np.zeros(weights.shape, dtype=code_dtype(code_bits))
    codes[nonzero] = labels + 1
    codebook = np.zeros(k + 1, dtype=np.float32)
    codebook[1:] = centroids.astype(np.float32)
    return codes, codebook


def centroid_gradients(codes: np.ndarray, grads: np.ndarray, n_codes: int) -> np.ndarray:
    """Sum of the weight gradients in each cluster, float64 (n_codes,); entry 0 is 0.

    Deep Compression, Figure 3: the gradient of a shared weight is the sum of the
    gradients of the weights that share it.
    """
    out = np.bincount(codes.ravel(), weights=grads.ravel().astype(np.float64),
                      minlength=n_codes)
    out[0] = 0.0
    return out


class ShareHook:
    """Training hook that fine-tunes the centroids of weight-shared layers.

    ``shared`` maps a parameter name (``"ip1.W"``) to ``(codes, codebook)``; the
    codebooks are updated in place. Each step, the optimizer's gradient of the weights
    is summed per cluster and then zeroed (so momentum does not move single weights);
    after the step, every centroid moves by ``-lr * (summed gradient)`` with its own
    momentum, and the weights are rewritten as ``codebook[codes]`` (code 0 stays 0.0).
    """

    def __init__(self, shared: dict, momentum: float = 0.9):
        if not 0 <= momentum < 1:
            raise ConfigError(f"Centroid momentum must be in [0, 1), not {momentum!r}")
        self.shared = shared
        self.momentum = float(momentum)
        self._grads = {}
        self._velocity = {name: np.zeros(cb.shape, dtype=np.float64)
                          for name, (codes, cb) in shared.items()}

    def on_grads(self, grads: dict, lr: float) -> None:
        for name, (codes, codebook) in self.shared.items():
            self._grads[name] = centroid_gradients(codes, grads[name], codebook.size)
            grads[name][...] = 0

    def on_step(self, params: dict, lr: float) -> None:
        for name, (codes, codebook) in self.shared.items():
            velocity = self._velocity[name]
            velocity *= self.momentum
            velocity -= lr * self._grads[name]
            codebook[1:] += velocity[1:].astype(np.float32)
            params[name][...] = codebook[codes]
