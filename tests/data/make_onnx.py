"""Train two networks dcsim did not define in PyTorch and export them to ONNX (test data).

    .venv/bin/pip install torch==2.13.0        # by hand: torch is not a dcsim dependency
    .venv/bin/python tests/data/make_onnx.py [--nets mlp cnn]   # writes tests/data/NET.onnx

mlp.onnx: 784-500-300-10 with ReLUs, input (N, 1, 28, 28) and a Flatten first.
cnn.onnx: LeNet-5's kind with other channels and padding: conv 5x5 1->6 (padding 2),
ReLU, max-pool 2, conv 5x5 6->16, ReLU, max-pool 2, fc 400-120-84-10 with ReLUs, and
a last LogSoftmax (as PyTorch's MNIST example ends), input (N, 1, 28, 28).

Both train with Adam (lr 1e-3, batch 128, seed 0, one thread) on dcsim's MNIST
training split (the first 50 000 images, pixels k/256, exactly what dcsim feeds them)
for 10 epochs, the lr divided by 10 after 7. They are exported with
``torch.onnx.export`` (the TorchScript exporter, ``dynamo=False``: the default dynamo
exporter needs onnxscript; its graphs import too) with a symbolic batch.
"""

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dcsim.nn.datasets import load_mnist

HERE = Path(__file__).parent
BATCH, LR, SEED = 128, 1e-3, 0
EPOCHS = {"mlp": (10, 7), "cnn": (10, 7)}
"""Epochs per network, and the epoch after which the lr drops 10x (None: never)."""


def mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 500), nn.ReLU(), nn.Linear(500, 300),
                         nn.ReLU(), nn.Linear(300, 10))


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
        nn.LogSoftmax(dim=1))


def train(net: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, step) -> None:
    gen = torch.Generator().manual_seed(SEED)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    net.train()
    for epoch in range(epochs):
        if epoch == step:
            for group in opt.param_groups:
                group["lr"] = LR / 10
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), BATCH):
            batch = order[i:i + BATCH]
            opt.zero_grad()
            out = net(x[batch])
            loss = nn.functional.cross_entropy(out, y[batch])
            loss.backward()
            opt.step()
            total += loss.item() * len(batch)
        print(f"  epoch {epoch + 1}: loss {total / len(x):.4f}")
    net.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_mnist()
    x = torch.from_numpy(np.array(data.train_x)).reshape(-1, 1, 28, 28)
    y = torch.from_numpy(np.array(data.train_y))
    xt = torch.from_numpy(np.array(data.test_x)).reshape(-1, 1, 28, 28)
    for name in args.nets:
        torch.manual_seed(SEED)
        net = {"mlp": mlp, "cnn": cnn}[name]()
        print(f"{name}: training")
        train(net, x, y, *EPOCHS[name])
        with torch.no_grad():
            err = float((net(xt).argmax(1).numpy() != data.test_y).mean() * 100)
        print(f"{name}: test error in PyTorch {err:.2f}%")
        path = HERE / f"{name}.onnx"
        torch.onnx.export(net, (xt[:2],), str(path), input_names=["image"],
                          output_names=["logits"], dynamo=False,
                          dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
