"""``dcsim compress --budget``: impossible budgets exit 2 in one line, nothing written."""

import pytest

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
