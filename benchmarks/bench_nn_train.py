"""Baseline training of the model zoo on MNIST: error per epoch and seconds per epoch.

Usage: .venv/bin/python benchmarks/bench_nn_train.py ARCH [--epochs E] [--lr LR]
       [--policy inv|step|fixed] [--step-epochs S] [--batch B] [--seed S]
       [--tag T] [--save M.npz]
Prints one row per epoch (training loss, validation error, seconds) and the final test
error, and writes benchmarks/results/nn_train_<ARCH>[_<tag>].json.
"""

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

from dcsim.nn.datasets import load_mnist
from dcsim.nn.models import build, save
from dcsim.nn.train import RECOMMENDED, train


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arch", choices=sorted(RECOMMENDED))
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--policy", choices=("inv", "step", "fixed"))
    parser.add_argument("--step-epochs", type=float,
                        help="for --policy step: epochs between lr drops")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--tag", default="", help="suffix of the JSON file name")
    parser.add_argument("--save", help="write the trained model to this .npz")
    args = parser.parse_args()
    changes = {field: value for field, value in (
        ("epochs", args.epochs), ("lr", args.lr), ("lr_policy", args.policy),
        ("batch_size", args.batch), ("seed", args.seed)) if value is not None}
    config = dataclasses.replace(RECOMMENDED[args.arch], **changes)
    data = load_mnist()
    if args.step_epochs is not None:
        steps_per_epoch = -(-len(data.train_x) // config.batch_size)
        config = dataclasses.replace(
            config, step_size=round(args.step_epochs * steps_per_epoch))
    model = build(args.arch, seed=config.seed)
    start = time.perf_counter()
    history = train(model, data.train_x, data.train_y, config, desc=args.arch,
                    eval_fn=lambda m: m.error(data.val_x, data.val_y))
    total_s = time.perf_counter() - start
    test_error = model.error(data.test_x, data.test_y)
    print(f"{args.arch}  {config}")
    print(f"{'epoch':>5} {'loss':>8} {'val err %':>9} {'train s':>8}")
    for i, (loss, err, sec) in enumerate(zip(history["loss"], history["eval"],
                                             history["epoch_s"]), 1):
        print(f"{i:>5} {loss:>8.4f} {err:>9.2f} {sec:>8.1f}")
    print(f"test error {test_error:.2f} %  total {total_s:.1f} s (with validation)")
    result = {"arch": args.arch, "config": dataclasses.asdict(config),
              "test_error_pct": test_error, "val_error_pct": history["eval"],
              "loss": history["loss"], "epoch_s": history["epoch_s"],
              "train_s": sum(history["epoch_s"]), "total_s": total_s,
              "machine": platform.processor() or platform.machine()}
    out = Path(__file__).parent / "results" / (
        f"nn_train_{args.arch}" + (f"_{args.tag}" if args.tag else "") + ".json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    if args.save:
        save(model, args.save)


if __name__ == "__main__":
    main()
