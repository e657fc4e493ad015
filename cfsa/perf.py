"""Throughput of a CFSA training step against the machine's measured float32 matrix-multiply peak.

The FLOPs are counted analytically from the layer shapes: a linear layer of a -> b on n rows costs 2nab
for its forward product, 2nab for the weight gradient and 2nab for the input gradient, and each product is
counted only where the step really computes it (frozen networks get no weight gradient, detached inputs no
input gradient, the gradient penalty adds its input-gradient pass and that pass's own backward). Only the
matrix products of the linear layers and of the ``cmpm`` alignment's cosine logits are counted; element-wise
work, the other alignment schemes and the optimiser are left out, so the figure is a slight under-count.
``tests/test_cfsa_perf.py`` checks the count against torch's FLOP counter.

On a shared virtual machine the speed of a core drifts by a third from one minute to the next (the best
2048-square product on one core of the 2-core test machine measured anything from 72 to 131 GFLOP/s). So
the step is timed in ``rounds``, each followed by its own peak measurement, and each round's fraction is
its achieved rate over the peak measured beside it; the figures reported are those of the median round,
with the lowest and highest fractions beside them. The default thread count is the one ``zsbench run``
trains with (one per run), so the figure speaks for the step as the suite runs it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from benchmark.contract import ZSBenchError
from cfsa.training import CFSANetworks, CFSATrainer, StepConfig


def _linear(n: int, a: int, b: int) -> int:
    return 2 * n * a * b


def step_flops(feature_dims: dict[str, int], embedding_dim: int, noise_dim: int, hidden: int,
               config: StepConfig) -> int:
    """Matrix-multiply FLOPs of one :meth:`CFSATrainer.step` (forward and backward), joint schedule."""
    B, e, z, h = config.batch_size, embedding_dim, noise_dim, hidden
    n_synthetic = B + (B if config.synthesize_unseen else 0)  # seen rows, then unseen rows
    total = 0
    for d in feature_dims.values():
        if config.synthesis:
            # Critic update: generator forward without gradient; the critic's feature block on [real; fake]
            # and its condition block on the batch's shared conditions, with weight gradients (their inputs
            # need none); the penalty's closed-form input gradient (its activation mask comes from the
            # interpolated pre-activations: no product): one product for the gradient and two for its
            # backward.
            critic = _linear(B, e + z, h) + _linear(B, h, d)
            critic += 2 * _linear(2 * B, d, h) + 2 * _linear(B, e, h) + 3 * _linear(2 * B, h, 1)
            critic += 3 * _linear(B, d, h)
            total += config.n_critic * critic
            # Generator update: generators with gradients (the unseen rows only when the cycle term needs
            # them), the frozen critic on the seen rows (input gradients for the features only) and, for the
            # cycle, the frozen regressor (input gradients only).
            n_grad = n_synthetic if config.cycle_weight > 0 else B
            total += 2 * _linear(n_grad, e + z, h) + 3 * _linear(n_grad, h, d)
            total += 2 * _linear(B, d, h) + _linear(B, e, h) + 2 * _linear(B, h, 1)
            if config.cycle_weight > 0:
                total += 2 * _linear(n_grad, d, h) + 2 * _linear(n_grad, h, e)
        # Regressor updates on a real batch and, when used, on fresh synthetic rows (generated without gradient).
        regressor = 2 * _linear(B, d, h) + 3 * _linear(B, h, e)
        if config.synthetic_to_regressors:
            regressor += _linear(n_synthetic, e + z, h) + _linear(n_synthetic, h, d)
            regressor += 2 * _linear(n_synthetic, d, h) + 3 * _linear(n_synthetic, h, e)
        total += config.regressor_steps * regressor
    if config.aligns and config.alignment == "cmpm":
        # Per modality pair and direction, the cosine logits (n x e x n) forward and their two backward products.
        pairs = len(feature_dims) * (len(feature_dims) - 1) // 2
        rows = [B] + ([n_synthetic] if config.synthetic_to_regressors else [])
        total += config.regressor_steps * pairs * sum(2 * 3 * _linear(n, e, n) for n in rows)
    if config.modality_adversary:
        # The modality classifier on every modality's real embeddings (e -> min(h, 512) -> modalities), with
        # weight and input gradients (the reversal passes the latter on to the regressors).
        n, a, m = len(feature_dims) * B, min(h, 512), len(feature_dims)
        total += config.regressor_steps * 3 * (_linear(n, e, a) + _linear(n, a, m))
    return total


def measure_matmul_peak(size: int = 2048, repeats: int = 10, device: str = "cpu") -> float:
    """Best-of-``repeats`` float32 square matrix-multiply rate, GFLOP/s, on ``device``."""
    dev = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(dev)
    b = torch.randn(size, size, generator=gen).to(dev)
    best = float("inf")
    for i in range(repeats + 2):
        _sync(dev)
        t0 = time.perf_counter()
        a @ b
        _sync(dev)
        if i >= 2:  # the first products warm up the library's threads and caches
            best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class TrainPerf:
    """The median round's figures; ``fractions`` holds every round's fraction of its own peak, sorted."""

    device: str
    hidden: int
    batch_size: int
    feature_dims: dict[str, int]
    embedding_dim: int
    steps: int
    seconds_per_step: float
    samples_per_step: int
    gflop_per_step: float
    peak_gflops: float
    threads: int
    tf32: bool
    fractions: tuple[float, ...] = ()

    @property
    def samples_per_s(self) -> float:
        return self.samples_per_step / self.seconds_per_step

    @property
    def achieved_gflops(self) -> float:
        return self.gflop_per_step / self.seconds_per_step

    @property
    def fraction_of_peak(self) -> float:
        return self.achieved_gflops / self.peak_gflops


def perf_train(hidden: int = 1024, batch_size: int = 64, feature_dims: dict[str, int] | None = None,
               embedding_dim: int = 50, n_classes: int = 250, steps: int = 5, warmup: int = 1,
               device: str = "cpu", peak_size: int = 2048, config: StepConfig | None = None,
               seed: int = 0, rounds: int = 5) -> TrainPerf:
    """Time ``rounds`` x ``steps`` training steps (after ``warmup``) on random data shaped like TU-Berlin's
    features, each round against a peak measured right after it; the median round's figures.

    A step is one iteration: ``n_critic`` critic updates, one generator update and ``regressor_steps``
    regressor updates. Its sample count is the real rows it consumes: (n_critic + regressor_steps) batches
    per modality (none for the critics when synthesis is off).
    """
    if rounds < 1 or steps < 1:
        raise ZSBenchError(f"perf train: --rounds and --steps must be at least 1, got {rounds} and {steps}")
    feature_dims = feature_dims or {"sketch": 4096, "image": 4096}
    if config is None:
        from cfsa.method import CFSA

        config = CFSA(batch_size=batch_size).step_config()
    dev = torch.device(device)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n_seen = max(2, int(n_classes * 0.88))
    nets = CFSANetworks(feature_dims, embedding_dim, embedding_dim, hidden, config.modality_adversary).to(dev)
    features = {m: torch.randn(2048, d, generator=torch.Generator().manual_seed(seed)).to(dev)
                for m, d in feature_dims.items()}
    labels = {m: torch.as_tensor(rng.integers(0, n_seen, 2048), device=dev) for m in feature_dims}
    targets = torch.nn.functional.normalize(torch.randn(n_classes, embedding_dim), dim=1).to(dev)
    trainer = CFSATrainer(nets, features, labels, targets, np.arange(n_seen), np.arange(n_seen, n_classes),
                          config, seed)
    for _ in range(warmup):
        trainer.step()
    flops = step_flops(feature_dims, embedding_dim, embedding_dim, hidden, config)
    measured = []  # (fraction, seconds per step, peak) per round
    for _ in range(rounds):
        _sync(dev)
        t0 = time.perf_counter()
        for _ in range(steps):
            trainer.step()
        _sync(dev)
        seconds = (time.perf_counter() - t0) / steps
        peak = measure_matmul_peak(peak_size, repeats=5, device=device)
        measured.append((flops / seconds / 1e9 / peak, seconds, peak))
    measured.sort()
    _, seconds, peak = measured[len(measured) // 2]
    samples = ((config.n_critic if config.synthesis else 0) + config.regressor_steps) * config.batch_size * len(feature_dims)
    tf32 = dev.type == "cuda" and torch.backends.cuda.matmul.allow_tf32
    return TrainPerf(str(dev), hidden, config.batch_size, feature_dims, embedding_dim, steps, seconds, samples,
                     flops / 1e9, peak, torch.get_num_threads(), tf32, tuple(f for f, _, _ in measured))
