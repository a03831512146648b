"""Magnitude pruning: threshold rule, schedules, masks held through updates."""

import numpy as np
import pytest

from dcsim.compress import prune
from dcsim.errors import ConfigError


def test_threshold_is_quality_times_std():
    w = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    assert prune.threshold(w, 0.5) == pytest.approx(0.5 * np.sqrt(2.0))
    assert prune.prune_mask(w, 0.5).tolist() == [True, True, False, True, True]
    assert prune.prune_mask(w, 1.0).tolist() == [True, False, False, False, True]


def test_quality_for_density_hits_the_target():
    w = np.random.default_rng(1).normal(size=(200, 300))
    for density in (0.5, 0.1, 0.03):
        q = prune.quality_for_density(w, density)
        kept = prune.prune_mask(w, q).mean()
        assert kept == pytest.approx(density, abs=1e-4)


def test_std_of_fixes_the_meaning_of_quality_across_steps():
    w = np.random.default_rng(2).normal(size=1000)
    pruned = np.where(np.abs(w) > 1, w, 0)
    q = prune.quality_for_density(pruned, 0.1, std_of=w)
    assert prune.prune_mask(pruned, q, std_of=w).mean() == pytest.approx(0.1, abs=1e-3)


def test_density_steps_fall_geometrically_to_target():
    steps = prune.density_steps(0.08, 3)
    assert steps[-1] == pytest.approx(0.08)
    assert steps[0] / 1 == pytest.approx(steps[1] / steps[0]) == pytest.approx(steps[2] / steps[1])


def test_mask_hook_keeps_pruned_weights_exactly_zero():
    w = np.arange(1, 7, dtype=np.float32).reshape(2, 3)
    mask = w > 3
    w *= mask
    hook = prune.MaskHook({"ip1.W": mask})
    grads = {"ip1.W": np.ones_like(w)}
    hook.on_grads(grads, 0.1)
    assert grads["ip1.W"].tolist() == mask.astype(float).tolist()
    params = {"ip1.W": w - 0.37}  # an optimizer that moved every weight (momentum)
    hook.on_step(params, 0.1)
    assert np.all(params["ip1.W"][~mask] == 0) and np.all(params["ip1.W"][mask] != 0)


def test_prune_by_fraction():
    w = np.array([0.1, -3.0, 0.2, 4.0, -0.05])
    assert prune.prune_by_fraction(w, 0.6).tolist() == [0.0, -3.0, 0.0, 4.0, 0.0]


@pytest.mark.parametrize("call, message", [
    (lambda: prune.threshold(np.ones(3), -1), "Pruning quality must be a non-negative number, not -1"),
    (lambda: prune.quality_for_density(np.ones(3), 0), "Target density must be in (0, 1], not 0"),
    (lambda: prune.density_steps(0.1, 0), "Pruning steps must be a positive integer, not 0"),
    (lambda: prune.prune_by_fraction(np.ones(3), 2), "Pruned fraction must be in [0, 1], not 2"),
])
def test_bad_arguments(call, message):
    with pytest.raises(ConfigError) as info:
        call()
    assert str(info.value) == message


def test_sensitivity_scan_restores_the_model_and_plots(tmp_path):
    from dcsim.nn import models
    from dcsim.nn.datasets import load_mnist

    data = load_mnist()
    model = models.build("lenet300", seed=0)
    before = {k: v.copy() for k, v in model.params().items()}
    x, y = data.test_x[:200], data.test_y[:200]
    scan = prune.sensitivity_scan(model, x, y, fractions=(0.0, 0.5, 1.0))
    assert list(scan["layers"]) == ["ip1", "ip2", "ip3"]
    for name, errors in scan["layers"].items():
        assert len(errors) == 3
        assert errors[0] == pytest.approx(model.error(x, y))  # nothing pruned
    # every weight of ip3 gone: the logits are the biases alone, one class for all
    assert scan["layers"]["ip3"][2] == pytest.approx(100 * np.mean(y != np.argmax(model.params()["ip3.b"])))
    assert all(np.array_equal(before[k], v) for k, v in model.params().items())
    path = tmp_path / "sensitivity.png"
    prune.plot_sensitivity(scan, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
