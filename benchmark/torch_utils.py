"""Small torch helpers shared by methods: seeding, MLPs, batching, inference."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["seed_everything", "mlp", "minibatches", "to_tensor", "predict", "Standardizer",
           "reverse_gradient", "reversal_ramp"]


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch, and ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


class Standardizer:
    """Per-dimension z-scoring with statistics of the data it is fitted on (seen-class training features, or a
    method's seen-class training embeddings); a dimension that never varies is left centred, not blown up."""

    def __init__(self, X: np.ndarray):
        X = np.asarray(X)
        self.mean = X.mean(axis=0, dtype=np.float64).astype(np.float32)
        self.std = np.maximum(X.std(axis=0, dtype=np.float64), 1e-6).astype(np.float32)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return ((np.asarray(X, dtype=np.float32) - self.mean) / self.std).astype(np.float32)


def mlp(sizes: Sequence[int], activation: type[nn.Module] = nn.ReLU, final_activation: nn.Module | None = None,
        dropout: float = 0.0) -> nn.Sequential:
    """Linear layers between consecutive ``sizes`` with ``activation`` (and dropout) between them."""
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(d_in, d_out))
        if i < len(sizes) - 2:
            layers.append(activation())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    if final_activation is not None:
        layers.append(final_activation)
    return nn.Sequential(*layers)


def minibatches(n: int, batch_size: int, rng: np.random.Generator, drop_last: bool = False) -> Iterator[np.ndarray]:
    """Shuffled index batches covering 0..n-1 once."""
    order = rng.permutation(n)
    stop = n - (n % batch_size) if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]


def to_tensor(x: np.ndarray, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(x), dtype=dtype, device=device)


@torch.no_grad()
def predict(module: nn.Module, X: np.ndarray, device: torch.device | str = "cpu", batch_size: int = 4096) -> np.ndarray:
    """Run ``module`` in eval mode over ``X`` in batches; float32 numpy out."""
    was_training = module.training
    module.eval()
    out = [module(to_tensor(X[i:i + batch_size], device)).float().cpu().numpy() for i in range(0, len(X), batch_size)]
    module.train(was_training)
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(out).astype(np.float32, copy=False)


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return -ctx.scale * grad_output, None


def reverse_gradient(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Identity forward, gradient multiplied by ``-scale`` backward (Ganin & Lempitsky's reversal layer)."""
    return _ReverseGradient.apply(x, scale)


def reversal_ramp(progress: float) -> float:
    """The reversal layer's weight ramp 2 / (1 + exp(-10 p)) - 1 over training progress p in [0, 1]."""
    return 2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0
