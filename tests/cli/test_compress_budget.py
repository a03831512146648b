"""``dcsim compress --budget``: impossible budgets exit 2 in one line with nothing written;
a budget run writes its choice, and `inspect` shows it from the file."""

import json

from dcsim.cli import main
from dcsim.compress import budget as budget_module

FAST = ["--train-images", "600", "--baseline-epochs", "1", "--prune-steps", "1",
        "--retrain-epochs", "1", "--finetune-epochs", "1", "--quiet"]


def test_negative_budget_exits_2_before_any_work(tmp_path, capsys):
    out = tmp_path / "m.dcz"
    assert main(["compress", "--model", "lenet300", "--budget", "-0.1",
                 "--out", str(out)] + FAST) == 2
    err = capsys.readouterr().err
    assert err == ("dcsim compress: error: --budget: budget must be a non-negative number "
                   "of error points over the baseline (e.g. 0.1), not -0.1; nothing "
                   f"written to {out}\n")
    assert not list(tmp_path.iterdir())


def test_budget_below_weight_sharing_alone_exits_2(tmp_path, capsys, monkeypatch):
    # The scan is replaced by one in which the least lossy setting (density 1, widest
    # code) already costs 3 of 1000 validation images: no budget under 0.30 points fits.
    def scan(model, data, config, budget, progress=False):
        return {"n_val": 1000, "reference_errors": 20,
                "layers": {"ip1": [{"density": 1.0, "code_bits": 8, "rise": 3,
                                    "errors": 23, "bytes": 1000}]}}

    monkeypatch.setattr(budget_module, "sensitivity_scan", scan)
    out = tmp_path / "m.dcz"
    assert main(["compress", "--model", "lenet300", "--budget", "0.2",
                 "--out", str(out)] + FAST) == 2
    err = capsys.readouterr().err.splitlines()     # progress logs, then the error
    assert err[-1] == ("dcsim compress: error: --budget 0.2: budget must allow at least 0.30 "
                       "points (3 of 1000 validation images), what the least lossy setting of "
                       "every layer costs (weight sharing alone at the widest code), not 0.20; "
                       f"raise --budget; nothing written to {out}")
    assert not list(tmp_path.iterdir())


def test_budget_run_writes_the_choice_and_inspect_shows_it(tmp_path, capsys, monkeypatch):
    # The real scan on a small grid (two densities, one width, 300 images) keeps it fast.
    real_scan = budget_module.sensitivity_scan

    def small_scan(model, data, config, budget, progress=False):
        small = budget_module.BudgetConfig(budget=budget.budget, densities=(1.0, 0.3),
                                           code_bits=(4,), scan_images=300)
        return real_scan(model, data, config, small, progress)

    monkeypatch.setattr(budget_module, "sensitivity_scan", small_scan)
    out, rep = tmp_path / "m.dcz", tmp_path / "m.json"
    rc = main(["compress", "--model", "lenet300", "--budget", "50", "--out", str(out),
               "--report", str(rep)] + FAST)
    assert rc == 0
    capsys.readouterr()
    assert main(["inspect", str(out), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    record = shown["budget"]
    assert record == json.loads(rep.read_text())["budget"]
    assert record["budget_met"] is True and record["budget_points"] == 50
    assert record["predicted_rise_images"] <= 50 * record["n_val"] / 100
    for layer in shown["layers"]:
        assert record["density"][layer["name"]] in (1.0, 0.3)
        assert layer["weight_bits_pq"] == record["code_bits"][layer["name"]] == 4
    # the test set is read once, after the search, for the two figures every .dcz has
    assert 0 <= shown["baseline_error"] <= 100 and 0 <= shown["compressed_error"] <= 100
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "budget +50 points on 10000 validation images: met after 1 attempt(s)" in text


def test_the_search_retrains_with_its_recipe_unless_told_otherwise(tmp_path, monkeypatch):
    """SEARCH_RECIPE fills only what the options leave unset; --no-retrain still means
    no retraining."""
    from dcsim.compress.pipeline import ARCH_DEFAULTS

    seen = []

    def record(model, data, config, budget, **kw):
        seen.append(config)
        raise budget_module.BudgetError("stop here")

    monkeypatch.setattr("dcsim.compress.budget.compress_to_budget", record)
    out = tmp_path / "m.dcz"
    assert budget_module.SEARCH_RECIPE["retrain_lr_scale"] \
        != ARCH_DEFAULTS["lenet300"]["retrain_lr_scale"]         # else this tests nothing
    for extra, want in (([], budget_module.SEARCH_RECIPE["retrain_lr_scale"]),
                        (["--retrain-lr-scale", "0.5"], 0.5)):
        assert main(["compress", "--model", "lenet300", "--budget", "0.1",
                     "--out", str(out)] + FAST + extra) == 2
        assert seen[-1].retrain_lr_scale == want
        assert seen[-1].retrain_epochs == 1                   # --retrain-epochs 1 kept
    assert main(["compress", "--model", "lenet300", "--budget", "0.1", "--out", str(out),
                 "--no-retrain", "--quiet", "--train-images", "600",
                 "--baseline-epochs", "1"]) == 2
    assert seen[-1].retrain_epochs == 0 and seen[-1].finetune_epochs == 0
    assert not out.exists()


def test_budget_attempts_need_a_budget(tmp_path, capsys):
    out = tmp_path / "m.dcz"
    assert main(["compress", "--model", "lenet300", "--budget-attempts", "2",
                 "--out", str(out)] + FAST) == 2
    assert capsys.readouterr().err == ("dcsim compress: error: --budget-attempts sets the "
                                       "budget search; give --budget too\n")
    assert main(["compress", "--model", "lenet300", "--budget", "0.1", "--budget-attempts",
                 "0", "--out", str(out)] + FAST) == 2
    assert capsys.readouterr().err == ("dcsim compress: error: --budget: attempts must be a "
                                       "positive integer, not 0; nothing written to "
                                       f"{out}\n")
    assert not list(tmp_path.iterdir())
