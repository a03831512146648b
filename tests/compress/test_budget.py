"""The budget search: the test set unread, the knapsack against brute force, the
sensitive layer kept denser, impossible budgets refused."""

import dataclasses
import itertools

import numpy as np
import pytest

from dcsim import container, report
from dcsim.compress.budget import (BudgetConfig, BudgetError, add_test_errors, allocate,
                                   compress_to_budget, looser, monotone_rises,
                                   next_capacity)
from dcsim.compress.pipeline import CompressionConfig
from dcsim.errors import ConfigError
from dcsim.nn import models
from dcsim.nn.datasets import load_mnist


class _NoTestSplit:
    """MNIST slices whose test split raises on any access."""

    def __init__(self, data, n_train, n_val):
        self.train_x, self.train_y = data.train_x[:n_train], data.train_y[:n_train]
        self.val_x, self.val_y = data.val_x[:n_val], data.val_y[:n_val]

    @property
    def test_x(self):
        raise AssertionError("the budget search read the test images")

    @property
    def test_y(self):
        raise AssertionError("the budget search read the test labels")


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    data = _NoTestSplit(load_mnist(), n_train=1200, n_val=600)
    config = CompressionConfig(arch="lenet300", baseline_epochs=1, prune_steps=1,
                               retrain_epochs=1, finetune_epochs=1)
    budget = BudgetConfig(budget=3.0, densities=(1.0, 0.3, 0.1), code_bits=(3, 5),
                          scan_images=400)
    model = models.build("lenet300", seed=0)
    compressed, baseline = compress_to_budget(model, data, config, budget, progress=False,
                                              log=lambda msg: None)
    path = tmp_path_factory.mktemp("budget") / "m.dcz"
    container.write(compressed, path)
    return model, compressed, baseline, data, path


def test_search_never_reads_the_test_set(searched):
    model, compressed, baseline, data, _ = searched
    record = compressed.meta["budget"]
    assert record["split"] == "val" and record["n_val"] == 600
    assert "baseline_error" not in compressed.meta      # no test figure was made
    for layer in compressed.layers:
        assert record["density"][layer.name] in (1.0, 0.3, 0.1)
        assert record["code_bits"][layer.name] == layer.code_bits
    with pytest.raises(AssertionError, match="read the test images"):
        add_test_errors(compressed, model, baseline, data)


def test_chosen_settings_are_the_files(searched):
    _, compressed, _, _, path = searched
    record = compressed.meta["budget"]
    summary = report.summary(path)
    assert summary["budget"] == record
    for row in summary["layers"]:
        assert row["weight_bits_pq"] == record["code_bits"][row["name"]]
        # one-shot cut to the target density (prune_steps=1), within a weight or two
        assert row["density"] == pytest.approx(record["density"][row["name"]],
                                               abs=2 / row["weights"])
    text = report.format_table(summary)
    assert "chosen: ip1" in text and "validation error: baseline" in text
    assert record["grid"]["scan"] == "gradual" and "(gradual scan)" in text
    met = record["val_error"]["compressed"] <= record["baseline_val_error"] + 3.0 + 1e-9
    assert record["budget_met"] == met
    attempts = record["attempts"]
    assert 1 <= len(attempts) <= 4
    chosen = attempts[record["chosen_attempt"] - 1]
    assert (chosen["density"], chosen["code_bits"]) == (record["density"], record["code_bits"])
    if any(a["budget_met"] for a in attempts):      # the smallest file that met it
        assert chosen["budget_met"] and chosen["layer_bytes"] == min(
            a["layer_bytes"] for a in attempts if a["budget_met"])
    assert [a["capacity"] for a in attempts][0] == 18             # 3 points of 600 images


def _scan(rises_and_bytes, n_val=1000):
    return {"n_val": n_val, "reference_errors": 0,
            "layers": {name: [{"density": d, "code_bits": 5, "rise": r, "bytes": b}
                              for d, r, b in opts]
                       for name, opts in rises_and_bytes.items()}}


def test_sensitive_layer_keeps_denser():
    # Two layers with the same bytes per density; "fragile" loses 8 validation images
    # per step down the grid, "robust" 1. By hand, with 10 images to spend: fragile 1.0
    # + robust 0.05 costs 1000 + 60 = 1060 bytes (rise 3); fragile 0.5 + robust 0.2
    # costs 500 + 200 = 700 (rise 8 + 2 = 10); fragile 0.2 alone already rises 16. So
    # 700 bytes, with the fragile layer the denser. With 3 images: 1060 bytes.
    densities = (1.0, 0.5, 0.2, 0.05)
    cost = (1000, 500, 200, 60)
    scan = _scan({
        "fragile": [(d, 8 * i, c) for i, (d, c) in enumerate(zip(densities, cost))],
        "robust": [(d, i, c) for i, (d, c) in enumerate(zip(densities, cost))],
    })
    chosen = allocate(scan, capacity=10)
    assert (chosen["fragile"]["density"], chosen["robust"]["density"]) == (0.5, 0.2)
    assert chosen["fragile"]["bytes"] + chosen["robust"]["bytes"] == 700
    chosen = allocate(scan, capacity=3)
    assert (chosen["fragile"]["density"], chosen["robust"]["density"]) == (1.0, 0.05)


@pytest.mark.parametrize("seed", range(20))
def test_allocation_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    print(f"seed {seed}")
    layers = {f"l{i}": [(float(j), int(rng.integers(0, 12)), int(rng.integers(10, 500)))
                        for j in range(int(rng.integers(1, 6)))] for i in range(3)}
    layers["l0"].append((99.0, 0, 10_000))     # a feasible option for every capacity
    layers["l1"].append((99.0, 0, 10_000))
    layers["l2"].append((99.0, 0, 10_000))
    scan = _scan(layers)
    capacity = int(rng.integers(0, 20))
    best = min(sum(o[2] for o in combo) for combo in itertools.product(*layers.values())
               if sum(o[1] for o in combo) <= capacity)
    chosen = allocate(scan, capacity)
    assert sum(o["bytes"] for o in chosen.values()) == best
    assert sum(o["rise"] for o in chosen.values()) <= capacity


def test_budget_tighter_than_weight_sharing_alone_is_refused():
    scan = _scan({"ip1": [(1.0, 2, 900), (0.1, 9, 90)], "ip2": [(1.0, 1, 300)]})
    with pytest.raises(BudgetError) as info:
        allocate(scan, capacity=2)
    assert str(info.value) == (
        "budget must allow at least 0.30 points (3 of 1000 validation images), what the "
        "least lossy setting of every layer costs (weight sharing alone at the widest "
        "code), not 0.20; raise --budget")
    assert allocate(scan, capacity=3)["ip1"]["density"] == 1.0


@pytest.mark.parametrize("kw, message", [
    (dict(budget=-0.1), "budget must be a non-negative number of error points over the "
                        "baseline (e.g. 0.1), not -0.1"),
    (dict(budget=float("nan")), "budget must be a non-negative number of error points "
                                "over the baseline (e.g. 0.1), not nan"),
    (dict(budget=0.1, densities=(0.5, 0.1)), "densities must be numbers in (0, 1] "
                                             "including 1.0, not (0.5, 0.1)"),
    (dict(budget=0.1, code_bits=(4, 9)), "code_bits must be integers in 1..8, not (4, 9)"),
    (dict(budget=0.1, scan_images=0), "scan_images must be a positive integer, not 0"),
    (dict(budget=0.1, attempts=0), "attempts must be a positive integer, not 0"),
    (dict(budget=0.1, scan="greedy"), "scan must be one of gradual, one-shot, not 'greedy'"),
])
def test_bad_budget_configs(kw, message):
    with pytest.raises(ConfigError) as info:
        BudgetConfig(**kw)
    assert str(info.value) == message


def test_next_capacity_doubles_halves_then_bisects():
    assert next_capacity({10: True}, top=100) == 20                   # met: double
    assert next_capacity({10: True, 20: True}, top=100) == 40
    assert next_capacity({10: True, 20: True, 40: True}, top=60) == 60    # up to top
    assert next_capacity({10: True, 60: True}, top=60) is None        # top was tried
    assert next_capacity({0: True}, top=60) == 1
    assert next_capacity({10: False}, top=100) == 5                   # missed: halve
    assert next_capacity({10: False, 5: False}, top=100) == 2
    assert next_capacity({10: False, 5: False, 2: False, 1: False}, top=100) == 0
    assert next_capacity({0: False}, top=100) is None                 # nothing looser
    assert next_capacity({10: True, 20: True, 40: False}, top=100) == 30  # bisect
    assert next_capacity({10: True, 20: True, 40: False, 30: False}, top=100) == 25
    assert next_capacity({10: False, 5: True}, top=100) == 7
    assert next_capacity({10: True, 11: False}, top=100) is None      # nothing between
    # a miss below the largest met capacity (noise) does not stop the doubling
    assert next_capacity({10: True, 20: True, 15: False}, top=100) == 40


@pytest.mark.parametrize("mode", ["gradual", "one-shot"])
def test_scan_walks_the_density_grid(monkeypatch, mode):
    """gradual: each density is cut from the previous density's retrained weights (zero
    outside its mask, changed inside it); one-shot: each cut is made on the baseline."""
    from dcsim.compress import budget as budget_mod
    from dcsim.compress import prune

    data = _NoTestSplit(load_mnist(), n_train=300, n_val=200)
    model = models.build("lenet300", seed=0)
    baseline = {k: v.copy() for k, v in model.params().items()}
    masks, cut_from = [], []
    real = prune.prune_mask

    def recording(weights, quality, std_of=None):
        mask = real(weights, quality, std_of)
        if weights.shape == baseline["ip2.W"].shape:
            masks.append(mask.copy())
            cut_from.append(weights.copy())
        return mask

    monkeypatch.setattr(budget_mod.prune, "prune_mask", recording)
    densities = (1.0, 0.5, 0.2, 0.05)
    scan = budget_mod.sensitivity_scan(
        model, data, CompressionConfig(arch="lenet300"),
        BudgetConfig(budget=1.0, densities=densities, code_bits=(4,), scan_images=100,
                     scan=mode))
    assert scan["scan"] == mode and len(masks) == 3
    for d, mask in zip(densities[1:], masks):
        assert mask.mean() == pytest.approx(d, abs=2 / mask.size)
    if mode == "gradual":
        assert not np.array_equal(cut_from[0], baseline["ip2.W"])   # retrained first
        for denser, weights, sparser in zip(masks, cut_from[1:], masks[1:]):
            assert not np.any(weights[~denser])
            assert not np.any(sparser & ~denser)
            assert not np.array_equal(weights[denser], baseline["ip2.W"][denser])
    else:
        for weights in cut_from:
            np.testing.assert_array_equal(weights, baseline["ip2.W"])
    for k, v in baseline.items():                      # the model is restored
        np.testing.assert_array_equal(model.params()[k], v)


def _options(raw):
    return [{"density": d, "code_bits": b, "raw_rise": r, "bytes": 0}
            for b, row in raw.items() for d, r in row.items()]


def test_monotone_rises_pools_noise_by_hand():
    densities = (1.0, 0.5, 0.3, 0.2, 0.1)
    raw = {4: dict(zip(densities, (0, 3, 1, 8, 6))),       # pools to 0, 2, 2, 7, 7
           8: dict(zip(densities, (-2, 0, 3, 0, 4)))}      # pools to -2, 0, 1.5, 1.5, 4
    fitted = {(o["density"], o["code_bits"]): o["rise"] for o in monotone_rises(_options(raw))}
    assert [fitted[d, 8] for d in densities] == [0, 0, 2, 2, 4]     # clipped, rounded
    assert [fitted[d, 4] for d in densities] == [0, 2, 2, 7, 7]
    raw[4] = dict(zip(densities, (0, 0, 0, 8, 6)))  # 4 bits may not cost less than 8
    fitted = {(o["density"], o["code_bits"]): o["rise"] for o in monotone_rises(_options(raw))}
    assert [fitted[d, 4] for d in densities] == [0, 0, 2, 7, 7]     # 0.3: 8 bits' 1.5


def test_monotone_rises_keep_monotone_data():
    raw = {3: {1.0: 2, 0.5: 5, 0.1: 9}, 5: {1.0: 0, 0.5: 1, 0.1: 4}}
    for o in monotone_rises(_options(raw)):
        assert o["rise"] == raw[o["code_bits"]][o["density"]]


def _grid_scan(names, densities=(1.0, 0.3, 0.1), bits=(3, 5), rise=0):
    """Every (density, bits) option of every layer, each at the same ``rise`` (0: the
    scan saw every cut free) and bytes proportional to density x bits."""
    return {"n_val": 600, "reference_errors": 0,
            "layers": {n: [{"density": d, "code_bits": b, "rise": rise,
                            "bytes": int(1000 * d * b)}
                           for d in densities for b in bits] for n in names}}


def test_looser_moves_every_layer_one_grid_step():
    scan = _grid_scan(("a", "b"))
    pick = {n: o for n, o in zip("ab", (scan["layers"]["a"][4], scan["layers"]["b"][0]))}
    assert [(pick[n]["density"], pick[n]["code_bits"]) for n in "ab"] == [(0.1, 3), (1.0, 3)]
    out = looser(scan, pick)
    # a: one density step denser and one code width wider; b: already dense, so wider
    assert [(out[n]["density"], out[n]["code_bits"]) for n in "ab"] == [(0.3, 5), (1.0, 5)]
    out = looser(scan, out)
    assert [(out[n]["density"], out[n]["code_bits"]) for n in "ab"] == [(1.0, 5), (1.0, 5)]
    assert looser(scan, out) is None                   # the least lossy setting of the grid


@dataclasses.dataclass(frozen=True)
class _Fake:
    layers: tuple
    meta: dict


@pytest.mark.parametrize("rise", [0, 3])
def test_search_loosens_when_no_capacity_helps(monkeypatch, rise):
    """rise 0: the scan sees every cut free, so every capacity allocates the smallest
    option, which misses. rise 3: every option of the three layers costs 3 images, so
    after the first capacity (9 images, 1.5 points of 600) a halved one leaves no
    setting. Either way the search then loosens every layer one step per attempt and
    stops at the first setting that meets the budget."""
    from dcsim.compress import budget as budget_mod

    data = _NoTestSplit(load_mnist(), n_train=100, n_val=600)
    model = models.build("lenet300", seed=0)
    base = float(model.error(data.val_x, data.val_y))
    names = [s["name"] for s in model.layer_specs()]
    runs = []

    def fake_run(self, model, data, train_baseline=True, eval_split="test"):
        assert eval_split == "val" and not train_baseline
        density = self.config.density
        runs.append(dict(density))
        miss = 0.0 if min(density.values()) >= 0.3 else 2.0     # 0.1 everywhere misses
        errors = {f"{stage}_error": base + miss
                  for stage in ("baseline", "pruned", "shared", "compressed")}
        return _Fake(layers=tuple(density.items()), meta=errors)

    monkeypatch.setattr(budget_mod.DeepCompression, "run", fake_run)
    monkeypatch.setattr(budget_mod.container, "layer_bytes",
                        lambda layer: int(1000 * layer[1]))
    config = CompressionConfig(arch="lenet300")
    budget = BudgetConfig(budget=1.5, densities=(1.0, 0.3, 0.1), code_bits=(3, 5),
                          attempts=4)
    compressed, _ = compress_to_budget(model, data, config, budget, train_baseline=False,
                                       progress=False, log=lambda msg: None,
                                       scan=_grid_scan(names, rise=rise))
    record = compressed.meta["budget"]
    assert runs == [dict.fromkeys(names, 0.1), dict.fromkeys(names, 0.3)]
    assert [a["step"] for a in record["attempts"]] == ["capacity", "looser"]
    assert [a["budget_met"] for a in record["attempts"]] == [False, True]
    assert record["budget_met"] and record["chosen_attempt"] == 2
    assert record["density"] == dict.fromkeys(names, 0.3)
    assert record["code_bits"] == dict.fromkeys(names, 5)
