"""Caffe-style SGD (momentum, weight decay) with hooks for pruning and weight sharing."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from dcsim.errors import ConfigError
from dcsim.nn.models import Model
from dcsim.progress import progress_bar

__all__ = ["SGDConfig", "learning_rate", "train", "RECOMMENDED", "LR_POLICIES"]

LR_POLICIES = ("inv", "step", "fixed")


def _check_positive(name: str, value, kind=float, allow_zero=False):
    ok_type = (isinstance(value, (int, float)) if kind is float else isinstance(value, int))
    if isinstance(value, bool) or not ok_type or not math.isfinite(value) \
            or value < 0 or (value == 0 and not allow_zero):
        what = "a non-negative" if allow_zero else "a positive"
        raise ConfigError(f"{name} must be {what} {kind.__name__}, not {value!r}")


@dataclass(frozen=True)
class SGDConfig:
    """Stochastic gradient descent as Caffe's solver runs it.

    lr : base learning rate.
    momentum : in [0, 1); Caffe's update ``v = momentum v + lr (g + weight_decay W)``,
        ``W -= v``.
    weight_decay : L2 factor added to the gradient of the weights ``W`` only. Biases
        are not decayed (Caffe's LeNet examples decay them too, and give them twice
        the learning rate; we keep one rate and decay weights only, as is usual).
    lr_policy : ``"inv"`` -- lr (1 + gamma iter)^-power (Caffe's LeNet solver);
        ``"step"`` -- lr step_factor^floor(iter / step_size); ``"fixed"`` -- lr.
        ``iter`` counts SGD steps from 0 over the whole run.
    gamma, power : for ``"inv"``.
    step_size, step_factor : for ``"step"`` (step_size in iterations).
    epochs : passes over the training set.
    batch_size : images per step (the last step of an epoch takes what is left).
    seed : seeds the shuffling; the same seed, model and data give the same weights.
    """

    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_policy: str = "inv"
    gamma: float = 1e-4
    power: float = 0.75
    step_size: int = 10_000
    step_factor: float = 0.1
    epochs: int = 10
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self):
        _check_positive("lr", self.lr)
        _check_positive("momentum", self.momentum, allow_zero=True)
        if self.momentum >= 1:
            raise ConfigError(f"momentum must be below 1, not {self.momentum!r}")
        _check_positive("weight_decay", self.weight_decay, allow_zero=True)
        if self.lr_policy not in LR_POLICIES:
            raise ConfigError(f"lr_policy must be one of {LR_POLICIES}, "
                              f"not {self.lr_policy!r}")
        _check_positive("gamma", self.gamma, allow_zero=True)
        _check_positive("power", self.power, allow_zero=True)
        _check_positive("step_size", self.step_size, kind=int)
        _check_positive("step_factor", self.step_factor)
        _check_positive("epochs", self.epochs, kind=int, allow_zero=True)
        _check_positive("batch_size", self.batch_size, kind=int)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative int, not {self.seed!r}")


def learning_rate(config: SGDConfig, iteration: int) -> float:
    """The learning rate at SGD step ``iteration`` (from 0) under config's policy."""
    if config.lr_policy == "inv":
        return config.lr * (1.0 + config.gamma * iteration) ** -config.power
    if config.lr_policy == "step":
        return config.lr * config.step_factor ** (iteration // config.step_size)
    return config.lr


def train(model: Model, x: np.ndarray, y: np.ndarray, config: SGDConfig,
          hooks=(), progress: bool = True, desc: str = "train", eval_fn=None,
          blas_threads: int | None = 1) -> dict:
    """Train ``model`` in place on images x (N, 784) float32 and labels y (N,).

    Each step: ``grads = loss gradients + weight_decay W``; then
    ``hook.on_grads(grads, lr)`` for every hook that has it (hooks may change grads in
    place, e.g. zero the pruned entries); then the momentum update of the live
    parameters; then ``hook.on_step(params, lr)`` for every hook that has it (hooks may
    rewrite params in place, e.g. re-apply masks or write shared weights). ``grads`` and
    ``params`` are dicts keyed as ``model.params()``.

    eval_fn : optional ``f(model) -> float`` called after every epoch (e.g. the
        validation error in percent).
    blas_threads : BLAS threads while training (None leaves the setting alone). One
        by default: the matrix products of a 64-image step are too small for a second
        thread to gain much, and on a loaded 2-core machine OpenBLAS's waiting threads
        made steps 5-20x slower (measured, BENCH_nn.md).

    Returns the history: ``loss`` (mean training loss per epoch), ``eval`` (eval_fn per
    epoch, empty without it), ``lr`` (learning rate at the end of each epoch),
    ``epoch_s`` (training seconds per epoch, without eval_fn), ``time_s`` (total
    seconds) and ``steps``.
    """
    if blas_threads is not None and (isinstance(blas_threads, bool) or not isinstance(
            blas_threads, int) or blas_threads < 1):
        raise ConfigError(f"blas_threads must be a positive int or None, "
                          f"not {blas_threads!r}")
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
        raise ConfigError(f"training images and labels must be (N, features) and (N,) "
                          f"with N > 0, not {x.shape} and {y.shape}")
    if x.dtype != np.float32:
        x = x.astype(np.float32)
    on_grads = [h.on_grads for h in hooks if hasattr(h, "on_grads")]
    on_step = [h.on_step for h in hooks if hasattr(h, "on_step")]
    params = model.params()
    velocity = {key: np.zeros_like(value) for key, value in params.items()}
    decayed = [key for key in params if key.endswith(".W")]
    rng = np.random.default_rng(config.seed)
    steps_per_epoch = -(-len(x) // config.batch_size)
    history = {"loss": [], "eval": [], "lr": [], "epoch_s": [], "time_s": 0.0,
               "steps": 0}
    start = time.perf_counter()
    iteration = 0
    bar = progress_bar(config.epochs * steps_per_epoch, desc, unit="step", enabled=progress)
    limits = threadpool_limits(blas_threads, user_api="blas")
    try:
        for epoch in range(config.epochs):
            epoch_start = time.perf_counter()
            order = rng.permutation(len(x))
            loss_sum = 0.0
            for first in range(0, len(x), config.batch_size):
                batch = order[first:first + config.batch_size]
                lr = learning_rate(config, iteration)
                loss, grads = model.loss_and_grads(x[batch], y[batch])
                loss_sum += loss * len(batch)
                if config.weight_decay:
                    for key in decayed:
                        grads[key] += np.float32(config.weight_decay) * params[key]
                for hook in on_grads:
                    hook(grads, lr)
                for key, value in params.items():
                    v = velocity[key]
                    v *= np.float32(config.momentum)
                    v += np.float32(lr) * grads[key]
                    value -= v
                for hook in on_step:
                    hook(params, lr)
                iteration += 1
                bar.update()
            history["epoch_s"].append(time.perf_counter() - epoch_start)
            history["loss"].append(loss_sum / len(x))
            history["lr"].append(lr)
            if eval_fn is not None:
                history["eval"].append(float(eval_fn(model)))
            bar.set_postfix(epoch=epoch + 1, loss=f"{history['loss'][-1]:.4f}",
                            **({"eval": f"{history['eval'][-1]:.3g}"} if eval_fn else {}))
    finally:
        limits.restore_original_limits()
        bar.close()
    history["time_s"] = time.perf_counter() - start
    history["steps"] = iteration
    return history


# Defaults found by short sweeps on this machine (BENCH_nn.md has the runs and errors).
# 782 steps make one epoch of 50 000 images at batch 64. LeNet-300-100: lr 0.1, then
# 0.01 after 6 epochs (test error 1.51%); LeNet-5: Caffe's LeNet solver values, lr
# 0.01, then 0.001 after 8 epochs (0.82%; 8 epochs with the drop after 6 give 0.90%).
RECOMMENDED = {
    "lenet300": SGDConfig(lr=0.1, lr_policy="step", step_size=6 * 782, epochs=10),
    "lenet5": SGDConfig(lr=0.01, lr_policy="step", step_size=8 * 782, epochs=12),
}
