"""k-means weight sharing: initialisations, assignments, centroid gradients."""

import numpy as np
import pytest

from dcsim.compress import quantize
from dcsim.errors import ConfigError


def test_linear_init_spans_min_to_max():
    assert quantize.init_centroids([-1.0, 0.5, 3.0], 5, "linear").tolist() == [-1, 0, 1, 2, 3]


def test_density_init_uses_quantiles():
    values = np.arange(100, dtype=float)
    assert quantize.init_centroids(values, 2, "density").tolist() == [24.75, 74.25]


def test_forgy_init_picks_distinct_values_reproducibly():
    values = np.arange(50, dtype=float)
    a = quantize.init_centroids(values, 4, "forgy", seed=3)
    assert a.tolist() == quantize.init_centroids(values, 4, "forgy", seed=3).tolist()
    assert len(set(a.tolist())) == 4 and set(a.tolist()) <= set(values.tolist())


def test_kmeans_hand_checked_case():
    values = np.array([1.0, 1.2, 0.8, 10.0, 10.4, 9.6])
    centroids, labels = quantize.kmeans_1d(values, 2)
    assert centroids.tolist() == pytest.approx([1.0, 10.0])
    assert labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_assign_picks_nearest_sorted_centroid():
    assert quantize.assign(np.array([-5, 0.4, 0.6, 9]), np.array([0.0, 1.0, 2.0])).tolist() == [0, 0, 1, 2]


def test_share_weights_reserves_code_zero():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(40, 50)).astype(np.float32)
    w[np.abs(w) < 1] = 0
    codes, codebook = quantize.share_weights(w, 3)
    assert codebook.shape == (8,) and codebook[0] == 0
    assert np.array_equal(codes == 0, w == 0)
    assert codes.max() <= 7
    # each weight maps to its nearest centroid
    nearest = np.abs(w[w != 0][:, None] - codebook[1:][None, :]).argmin(axis=1) + 1
    assert np.array_equal(codes[w != 0], nearest)


def test_centroid_gradient_sums_per_cluster():
    codes = np.array([[0, 1, 2], [1, 1, 2]])
    grads = np.array([[5.0, 1.0, 2.0], [3.0, -1.0, 0.5]])
    assert quantize.centroid_gradients(codes, grads, 4).tolist() == [0.0, 3.0, 2.5, 0.0]


def test_share_hook_moves_centroids_and_rewrites_weights():
    codes = np.array([[0, 1], [2, 1]])
    codebook = np.array([0.0, 1.0, -1.0], dtype=np.float32)
    w = codebook[codes].copy()
    hook = quantize.ShareHook({"ip1.W": (codes, codebook)}, momentum=0.0)
    grads = {"ip1.W": np.array([[9.0, 1.0], [2.0, 3.0]])}
    hook.on_grads(grads, 0.1)
    assert np.all(grads["ip1.W"] == 0)
    params = {"ip1.W": w}
    hook.on_step(params, 0.1)
    assert codebook.tolist() == pytest.approx([0.0, 0.6, -1.2])
    assert params["ip1.W"].ravel().tolist() == pytest.approx([0.0, 0.6, -1.2, 0.6])


@pytest.mark.parametrize("call, message", [
    (lambda: quantize.init_centroids([1.0], 2, "kmeans++"), "Centroid initialisation must be one of ('linear', 'density', 'forgy'), not 'kmeans++'"),
    (lambda: quantize.share_weights(np.ones(3), 0), "code_bits must be an integer in 1..16, not 0"),
    (lambda: quantize.ShareHook({}, momentum=1.0), "Centroid momentum must be in [0, 1), not 1.0"),
])
def test_bad_arguments(call, message):
    with pytest.raises(ConfigError) as info:
        call()
    assert str(info.value) == message
