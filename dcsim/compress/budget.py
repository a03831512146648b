"""Compression to a budget: per-layer densities and code widths chosen on validation data.

The budget is the allowed rise in error, in percentage points, over the float baseline,
measured on the validation split only; the test set is never read here (the caller
measures it once, at the end, for the report). Three steps, each built from the
pipeline's own pieces:

1. **Sensitivity scan** (one layer at a time, the paper's Figure 5 with retraining, and
   the same for code bits): the layer walks down the density grid, densest first, as
   the pipeline's iterative pruning does: at every density ``d`` it is pruned from the
   previous density's retrained weights (``prune.quality_for_density`` /
   ``prune_mask``; ``scan="one-shot"`` cuts from the baseline instead) and the whole net
   is retrained briefly (``scan_images`` training images, the layer's mask held), then
   for every code width ``b`` the layer's survivors are shared
   (``quantize.share_weights``) and the validation errors counted. The raw rise of
   the option (d, b) is its error count minus that of the same short retraining
   without pruning (so the scan measures the cut, not the extra training). Raw rises
   are noisy (each retraining moves which images are wrong: about +-10 images on
   LeNet-5's 101) and not monotone, and a knapsack that adds them spends the budget
   on noise: clipped at 0, each layer's cheapest option already costs a few images.
   The rise used is therefore the least-squares fit that is monotone, as the cut is
   (:func:`monotone_rises`: pruning more or sharing with fewer bits never helps):
   pool-adjacent-violators along the density grid per code width, then the envelope
   over wider codes, rounded and clipped at 0. Its
   cost is the layer's real bytes in a ``.dcz`` (``container.layer_bytes``: Huffman-coded
   codes and indices, codebook, bias), from the very codes the scan made.
2. **Allocation**: a multiple-choice knapsack, solved exactly by dynamic programming:
   one option per layer, minimum total bytes, summed rise <= the budget. The rise is an
   integer count of validation images, so the table over "images of error spent" is
   exact (no discretisation), tiny (a 0.1-point budget on 10,000 images is 10 images)
   and costs layers x options x capacity steps. A greedy walk on marginal bytes per
   point can stop early where a layer's bytes-vs-error curve is not convex (it is not:
   Huffman sizes and error counts move in steps), and hls4ml's optimization API solves
   the same knapsack for the same reason. Rises are taken as additive across layers;
   step 3 checks that assumption on the whole net.
3. **Compression and check**: the usual iterative prune/retrain, weight sharing and
   fine-tuning (:class:`~dcsim.compress.pipeline.DeepCompression`, errors measured on
   the validation split), then the validation error of the result is compared with
   baseline + budget. This is also the search's calibration: the scan's short
   retraining measures how much a cut costs before the net recovers, and the
   pipeline's rounds recover more (LeNet-5: the scan puts ip1 at 8% kept at +21
   images, yet the default recipe keeps 7% for +1) or less (3-bit codes on
   LeNet-300-100). So the knapsack's capacity, in scan images, is a search variable:
   the first attempt allocates the budget itself; the next ones double the capacity
   while the compressed nets meet the budget, halve it while they miss it, then bisect
   (:func:`next_capacity`), up to ``attempts`` compressions from the same baseline.
   The smallest file that meets the budget on validation is the answer. Where no
   capacity helps (every attempt missed, and either capacity 0 was tried, so the scan
   found the misses' cuts free one layer at a time and the layers' rises do not add
   up, or a smaller capacity leaves no setting of the grid), the rest of the attempts
   retry at looser settings (:func:`looser`: every layer one grid step denser and one
   code width wider, i.e. prune less and share with more centroids) until one meets
   the budget.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from dcsim import container
from dcsim.compress import prune, quantize
from dcsim.compress.pipeline import CompressionConfig, DeepCompression, compressed_layer
from dcsim.errors import ConfigError, DcsimError

#: Densities tried per layer, densest first (the paper's Tables 2-3 keep 8-66%; Dynamic
#: Network Surgery keeps 1.8% of LeNet-300-100's first layer).
DENSITIES = (1.0, 0.5, 0.3, 0.2, 0.14, 0.1, 0.08, 0.065, 0.05, 0.04, 0.03, 0.022)
#: Code widths tried per layer, widest last (the paper: 5 fc, 8 conv).
CODE_BITS = (3, 4, 5, 6, 8)
#: How the scan reaches each density (BudgetConfig.scan).
SCANS = ("gradual", "one-shot")


class BudgetError(DcsimError):
    """A budget cannot be met by any setting of the grid."""


#: How the budget search retrains (the scan's short retrainings, the prune/retrain
#: rounds), where the user sets nothing else: learning-rate rewinding (retraining at
#: the baseline solver's own first lr; Renda, Frankle, Carbin, ICLR 2020), chosen on
#: LeNet-300-100's validation split (BENCHMARKS.md, section 10). Fields of
#: CompressionConfig.
SEARCH_RECIPE = {"retrain_lr_scale": 1.0}


def with_search_recipe(config: CompressionConfig, keep=()) -> CompressionConfig:
    """``config`` with SEARCH_RECIPE's fields, except those named in ``keep`` (the ones
    the user set): the config the budget search retrains with."""
    recipe = {name: value for name, value in SEARCH_RECIPE.items() if name not in keep}
    return dataclasses.replace(config, **recipe)


@dataclass(frozen=True)
class BudgetConfig:
    """What the budget search may try.

    budget : allowed rise of the validation error over the float baseline, in
        percentage points (0.10 = ten images of MNIST's 10,000 validation images).
    densities : per-layer densities tried, each in (0, 1], 1.0 included (weight sharing
        alone must be an option, or a budget of 0 could have no answer).
    code_bits : per-layer code widths tried, each in 1..8.
    scan_images : training images of each short retraining in the scan.
    attempts : compressions the search may run (the first at the budget as the scan
        measures it, the rest moving the knapsack's capacity: :func:`next_capacity`;
        once no capacity can help, one grid step looser each: :func:`looser`).
    scan : ``"gradual"`` (each density pruned from the previous one's retrained weights,
        as iterative pruning reaches it) or ``"one-shot"`` (each density cut from the
        baseline in one step, then retrained: pessimistic for layers that, like
        LeNet-5's convolutions, only stay accurate when pruned in rounds; BENCHMARKS.md
        section 10 compares both).
    """

    budget: float
    densities: tuple = DENSITIES
    code_bits: tuple = CODE_BITS
    scan_images: int = 10_000
    scan: str = "gradual"
    attempts: int = 4

    def __post_init__(self):
        if isinstance(self.budget, bool) or not isinstance(self.budget, (int, float)) \
                or not np.isfinite(self.budget) or self.budget < 0:
            raise ConfigError(
                f"budget must be a non-negative number of error points over the "
                f"baseline (e.g. 0.1), not {self.budget!r}")
        densities = tuple(sorted({float(d) for d in self.densities}, reverse=True))
        if not densities or not all(0 < d <= 1 for d in densities) or densities[0] != 1:
            raise ConfigError(f"densities must be numbers in (0, 1] including 1.0, "
                              f"not {self.densities!r}")
        bits = tuple(sorted(set(self.code_bits)))
        if not bits or not all(isinstance(b, int) and 1 <= b <= 8 for b in bits):
            raise ConfigError(f"code_bits must be integers in 1..8, not {self.code_bits!r}")
        if not isinstance(self.scan_images, int) or self.scan_images < 1:
            raise ConfigError(f"scan_images must be a positive integer, "
                              f"not {self.scan_images!r}")
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) \
                or self.attempts < 1:
            raise ConfigError(f"attempts must be a positive integer, not {self.attempts!r}")
        if self.scan not in SCANS:
            raise ConfigError(f"scan must be one of {', '.join(SCANS)}, not {self.scan!r}")
        object.__setattr__(self, "budget", float(self.budget))
        object.__setattr__(self, "densities", densities)
        object.__setattr__(self, "code_bits", bits)


def sensitivity_scan(model, data, config: CompressionConfig, budget: BudgetConfig,
                     progress: bool = False) -> dict:
    """Validation error and real bytes of every (density, code bits) option, per layer.

    ``model`` is the trained float baseline (restored on return); ``data`` needs
    ``train_x``, ``train_y``, ``val_x``, ``val_y`` only. Returns ``{"n_val": int,
    "reference_errors": int, "layers": {name: [option, ...]}}``; an option is a dict
    ``density``, ``code_bits``, ``errors`` (validation images wrong), ``raw_rise``
    (errors - reference_errors, images), ``rise`` (the monotone fit of the raw rises,
    :func:`monotone_rises`) and ``bytes`` (the layer in a .dcz).
    """
    params = model.params()
    baseline = {k: v.copy() for k, v in params.items()}
    specs = model.layer_specs()
    pipe = DeepCompression(config, progress=progress)
    x, y = data.train_x[:budget.scan_images], data.train_y[:budget.scan_images]
    sgd = pipe._sgd(1, config.retrain_lr_scale, len(x))

    def n_wrong():
        return int(np.count_nonzero(model.predict(data.val_x) != np.asarray(data.val_y)))

    def restore():
        for k, v in baseline.items():
            params[k][...] = v

    from dcsim.nn.train import train

    train(model, x, y, sgd, progress=progress, desc="scan reference")
    reference = n_wrong()
    reference_params = {k: v.copy() for k, v in params.items()}
    scan = {"n_val": int(len(data.val_y)), "reference_errors": reference,
            "scan": budget.scan, "layers": {}}
    try:
        for s in specs:
            name, key = s["name"], f"{s['name']}.W"
            _, index_bits = config.bits(s["kind"], name)
            options = []
            for density in budget.densities:
                if density == 1:
                    for k, v in reference_params.items():
                        params[k][...] = v
                else:
                    if budget.scan == "one-shot":
                        restore()
                    # gradual: params hold the previous density's retrained weights.
                    q = prune.quality_for_density(params[key], density)
                    mask = prune.prune_mask(params[key], q)
                    params[key] *= mask
                    train(model, x, y, sgd, hooks=[prune.MaskHook({key: mask})],
                          progress=progress, desc=f"scan {name} {density:g}")
                kept = params[key].copy()
                for code_bits in budget.code_bits:
                    codes, codebook = quantize.share_weights(kept, code_bits, config.init,
                                                             seed=config.seed)
                    params[key][...] = codebook[codes]
                    errors = n_wrong()
                    layer = compressed_layer(s, codes, codebook, params[f"{name}.b"],
                                             code_bits, index_bits)
                    options.append({"density": float(density), "code_bits": int(code_bits),
                                    "errors": errors, "raw_rise": errors - reference,
                                    "bytes": container.layer_bytes(layer)})
                params[key][...] = kept
            scan["layers"][name] = monotone_rises(options)
    finally:
        restore()
    return scan


def _pool_adjacent_violators(values) -> np.ndarray:
    """The least-squares non-decreasing fit of ``values`` (1-D, equal weights)."""
    blocks = []                                   # [sum, count] of each pooled run
    for v in values:
        blocks.append([float(v), 1])
        while len(blocks) > 1 and blocks[-2][0] * blocks[-1][1] > blocks[-1][0] * blocks[-2][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    return np.concatenate([np.full(count, total / count) for total, count in blocks])


def monotone_rises(options: list) -> list:
    """``options`` (one layer's scan: dicts with ``density``, ``code_bits``,
    ``raw_rise``) with ``rise`` set to the monotone fit of the raw rises: for each code
    width, the pool-adjacent-violators fit non-decreasing as the density falls; then,
    for each density, the maximum over that width and every wider one (fewer bits never
    cost less); rounded to whole images and clipped at 0. Returns new dicts, same order.
    """
    out = [dict(o) for o in options]
    fit = {}
    for bits in sorted({o["code_bits"] for o in out}):
        row = sorted((o for o in out if o["code_bits"] == bits), key=lambda o: -o["density"])
        for o, value in zip(row, _pool_adjacent_violators([o["raw_rise"] for o in row])):
            fit[o["density"], bits] = value
    for o in out:
        wider = [value for (d, b), value in fit.items()
                 if d == o["density"] and b >= o["code_bits"]]
        o["rise"] = max(0, int(np.round(max(wider))))
    return out


def allocate(scan: dict, capacity: int) -> dict:
    """The option per layer minimising total bytes with summed rise <= ``capacity``.

    Exact multiple-choice knapsack over the integer rises (validation images). Returns
    ``{name: option}`` in layer order; :class:`BudgetError` if even the cheapest rise of
    every layer exceeds ``capacity``. Among equal byte totals the earlier option wins.
    """
    if not isinstance(capacity, (int, np.integer)) or capacity < 0:
        raise ConfigError(f"capacity must be a non-negative integer of validation "
                          f"images, not {capacity!r}")
    capacity = int(capacity)
    inf = np.iinfo(np.int64).max // 4
    best = np.zeros(capacity + 1, dtype=np.int64)    # best[c]: min bytes with rise <= c
    choices = []
    for name, options in scan["layers"].items():
        new = np.full(capacity + 1, inf, dtype=np.int64)
        pick = np.full(capacity + 1, -1, dtype=np.int64)
        for i, opt in enumerate(options):
            w = int(opt["rise"])
            if w > capacity:
                continue
            cand = np.full(capacity + 1, inf, dtype=np.int64)
            cand[w:] = best[:capacity + 1 - w] + int(opt["bytes"])
            better = cand < new
            new[better], pick[better] = cand[better], i
        choices.append((name, pick))
        best = new
    if best[capacity] >= inf:
        least = sum(min(o["rise"] for o in opts) for opts in scan["layers"].values())
        raise BudgetError(
            f"budget must allow at least {100 * least / scan['n_val']:.2f} points "
            f"({least} of {scan['n_val']} validation images), what the least lossy "
            f"setting of every layer costs (weight sharing alone at the widest code), "
            f"not {100 * capacity / scan['n_val']:.2f}; raise --budget")
    chosen, c = {}, capacity
    for name, pick in reversed(choices):
        opt = scan["layers"][name][int(pick[c])]
        chosen[name] = opt
        c -= int(opt["rise"])
    return dict(reversed(list(chosen.items())))


def next_capacity(tried: dict, top: int) -> int | None:
    """The knapsack capacity (scan images) of the next attempt, or None to stop.

    ``tried`` maps each capacity tried to whether its compressed net met the budget;
    ``top`` is the largest capacity that can change the allocation (every layer's
    largest rise, summed). Until an attempt fails the capacity doubles (the scan
    overstated the rises: the pipeline's long retraining recovers more than its short
    one); until one is met it halves; then it bisects between the largest met and the
    smallest failed. None when the next capacity was tried already or is out of range.
    """
    met = [c for c, ok in tried.items() if ok]
    if not met:
        nxt = min(tried) // 2
    else:
        lo = max(met)
        above = [c for c, ok in tried.items() if not ok and c > lo]
        nxt = (lo + min(above)) // 2 if above else min(top, max(1, 2 * lo))
    return None if nxt in tried else nxt


def looser(scan: dict, chosen: dict) -> dict | None:
    """One step looser than ``chosen`` (``{name: option}`` of ``scan``): every layer at
    the next denser density of the grid and the next wider code width, each where the
    grid has one (a layer at density 1 and the widest code keeps its option). None when
    no layer can loosen (the least lossy setting of the grid)."""
    out, moved = {}, False
    for name, opt in chosen.items():
        options = scan["layers"][name]

        def step(values, now):
            return min((v for v in values if v > now), default=now)

        key = (step({o["density"] for o in options}, opt["density"]),
               step({o["code_bits"] for o in options}, opt["code_bits"]))
        pick = next(o for o in options if (o["density"], o["code_bits"]) == key)
        moved |= pick is not opt
        out[name] = pick
    return out if moved else None


def _settings(chosen: dict) -> dict:
    return {n: (o["density"], o["code_bits"]) for n, o in chosen.items()}


def compress_to_budget(model, data, config: CompressionConfig, budget: BudgetConfig,
                       train_baseline: bool = True, progress: bool = True, log=None,
                       scan: dict | None = None):
    """Train (unless told not to), scan, allocate, compress and check, on validation only.

    ``data`` needs ``train_x``, ``train_y``, ``val_x``, ``val_y``; its test split is
    never read. ``config`` gives everything but the densities and code widths (prune
    steps, epochs, learning rates, index bits). The first attempt allocates the budget
    itself (its validation images) as the scan measures it; the later ones, up to
    ``budget.attempts``, move the knapsack's capacity by :func:`next_capacity` on what
    the compressed nets measured; where every capacity it can try missed, the rest step
    every layer one grid point looser (:func:`looser`) until one meets the budget. The
    smallest file that meets the budget wins (else the last attempt, the loosest
    tried). Each attempt's record names its ``step`` ("capacity" or "looser"; a looser
    one has ``capacity`` None).

    Returns ``(compressed, baseline)``: the :class:`CompressedModel`, whose
    ``meta["budget"]`` holds the budget, the scan's grid, the chosen per-layer
    ``density`` and ``code_bits``, the validation errors (percent) per stage of every
    attempt, ``budget_met``, ``chosen_attempt`` and ``search_seconds`` /
    ``compress_seconds``; and the baseline's parameters (for the caller's test report).
    ``model`` ends as the chosen compressed float model. :class:`BudgetError` if no
    setting of the grid can meet the budget (before any compression is run).

    ``scan``: a :func:`sensitivity_scan` of this very baseline, config and grid, to reuse
    across budgets (it depends on nothing else); ``search_seconds`` then excludes it
    and ``scan_reused`` is True.
    """
    pipe = DeepCompression(config, progress=progress, log=log)
    t0 = time.perf_counter()
    if train_baseline:
        pipe.train_baseline(model, data)
    params = model.params()
    baseline = {k: v.copy() for k, v in params.items()}
    baseline_val = float(model.error(data.val_x, data.val_y))
    pipe.log(f"baseline validation error {baseline_val:.2f}%")
    t_search = time.perf_counter()
    scan_reused = scan is not None
    if not scan_reused:
        scan = sensitivity_scan(model, data, config, budget, progress=progress)
    capacity = int(np.floor(budget.budget * scan["n_val"] / 100 + 1e-9))
    chosen = allocate(scan, capacity)
    search_seconds = time.perf_counter() - t_search
    top = sum(max(o["rise"] for o in opts) for opts in scan["layers"].values())
    attempts, tried, results, best = [], {}, {}, None
    step = "capacity"               # then "looser", once no capacity can help
    while chosen is not None and len(attempts) < budget.attempts:
        settings = _settings(chosen)
        key = tuple(sorted(settings.items()))
        if key in results:            # another capacity, the same allocation: same outcome
            if step == "capacity":
                tried[capacity] = results[key]
        else:
            how = f"capacity {capacity} images" if step == "capacity" else "looser"
            pipe.log(f"attempt {len(attempts) + 1}, {how}: " + ", ".join(
                f"{n} {d:g} x {b} bits" for n, (d, b) in settings.items()))
            for k, v in baseline.items():
                params[k][...] = v
            cfg = dataclasses.replace(config, density={n: d for n, (d, _) in settings.items()},
                                      code_bits={n: b for n, (_, b) in settings.items()})
            t_run = time.perf_counter()
            compressed = DeepCompression(cfg, progress=progress, log=log).run(
                model, data, train_baseline=False, eval_split="val")
            val = {stage: compressed.meta[f"{stage}_error"]
                   for stage in ("baseline", "pruned", "shared", "compressed")}
            met = val["compressed"] <= baseline_val + budget.budget + 1e-9
            size = sum(container.layer_bytes(layer) for layer in compressed.layers)
            attempts.append({"step": step, "capacity": capacity,
                             "predicted_rise_images": int(sum(o["rise"] for o in chosen.values())),
                             "density": {n: d for n, (d, _) in settings.items()},
                             "code_bits": {n: b for n, (_, b) in settings.items()},
                             "val_error": val, "budget_met": met, "layer_bytes": size,
                             "seconds": round(time.perf_counter() - t_run, 1)})
            pipe.log(f"attempt {len(attempts)}: validation error {val['compressed']:.2f}% "
                     f"(limit {baseline_val + budget.budget:.2f}%), {size} bytes of layers: "
                     + ("budget met" if met else "budget NOT met"))
            results[key] = met
            if step == "capacity":
                tried[capacity] = met
            # the smallest file that meets the budget; while none does, the last one
            best_met = best is not None and best[0]["budget_met"]
            if (met and (not best_met or size < best[0]["layer_bytes"])) \
                    or (not met and not best_met):
                best = (attempts[-1], compressed, {k: v.copy() for k, v in params.items()})
        if step == "capacity":
            capacity = next_capacity(tried, top)
            if capacity is not None:
                try:
                    chosen = allocate(scan, capacity)
                except BudgetError:
                    capacity = None
            if capacity is None:
                chosen = None
                if not any(tried.values()):     # loosen the least lossy allocation tried
                    step, chosen = "looser", looser(scan, allocate(scan, min(tried)))
        elif best[0]["budget_met"]:
            chosen = None       # each looser step only grows the file
        else:
            chosen = looser(scan, chosen)
        if step == "looser":
            capacity = None
    record, compressed, final = best
    for k, v in final.items():
        params[k][...] = v
    meta = dict(compressed.meta)
    for stage in ("baseline", "pruned", "shared", "compressed"):
        meta.pop(f"{stage}_error")
    meta["budget"] = {
        "budget_points": budget.budget, "split": "val", "n_val": scan["n_val"],
        "baseline_val_error": baseline_val,
        "grid": {"densities": list(budget.densities), "code_bits": list(budget.code_bits),
                 "scan_images": budget.scan_images, "scan": budget.scan,
                 "attempts": budget.attempts},
        "predicted_rise_images": record["predicted_rise_images"],
        "density": record["density"], "code_bits": record["code_bits"],
        "val_error": record["val_error"], "budget_met": record["budget_met"],
        "chosen_attempt": attempts.index(record) + 1,
        "attempts": attempts, "search_seconds": round(search_seconds, 1),
        "scan_reused": scan_reused,
        "compress_seconds": round(sum(a["seconds"] for a in attempts), 1),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    return dataclasses.replace(compressed, meta=meta), baseline


def add_test_errors(compressed, model, baseline: dict, data):
    """``compressed`` with the test errors (percent) of the baseline and of the
    compressed model in its meta (``baseline_error``, ``compressed_error``, as every
    ``.dcz`` reports them): the one read of the test split, after the search.

    ``model`` holds the compressed float weights (as :func:`compress_to_budget` leaves
    it); ``baseline`` the parameters it returned. ``model`` is left as it was.
    """
    params = model.params()
    final = {k: v.copy() for k, v in params.items()}
    compressed_error = float(model.error(data.test_x, data.test_y))
    for k, v in baseline.items():
        params[k][...] = v
    baseline_error = float(model.error(data.test_x, data.test_y))
    for k, v in final.items():
        params[k][...] = v
    meta = dict(compressed.meta, baseline_error=baseline_error,
                compressed_error=compressed_error, error_split="test")
    return dataclasses.replace(compressed, meta=meta)
