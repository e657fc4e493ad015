"""Training helpers shared by the iterative baselines: the sampled epoch (a step budget), and TensorFlow's
``l2_loss`` that the DADN and ACMR releases both use.

A *sampled epoch* is a shuffled pass over the training rows, cut after ``max_steps`` batches. On a dataset
smaller than ``max_steps`` batches it is an ordinary epoch, so small datasets (emoji, the image-text sets)
train exactly as with full epochs; on a large one (TU-Berlin's ~180k seen images) every epoch costs at most
``max_steps`` optimisation steps, so a method's run time grows with its budget, not with the dataset. The
batches of a sampled epoch are drawn without replacement from a fresh permutation, so each one is a uniform
random sample of the training rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice

import numpy as np
import torch

from benchmark.torch_utils import minibatches

__all__ = ["half_sq_distance", "batches_per_epoch", "sampled_epoch"]


def half_sq_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """sum((x - y)^2) / 2 over the whole batch (TensorFlow's ``l2_loss``, as the DADN and ACMR releases use)."""
    return 0.5 * ((x - y) ** 2).sum()


def batches_per_epoch(n: int, batch_size: int, max_steps: int | None = None, drop_last: bool = False) -> int:
    """How many batches :func:`sampled_epoch` yields for ``n`` rows (the count :func:`minibatches` gives, capped)."""
    if n <= 0:
        return 0
    full = n // batch_size if drop_last and n >= batch_size else -(-n // batch_size)
    return full if max_steps is None else min(full, int(max_steps))


def sampled_epoch(n: int, batch_size: int, rng: np.random.Generator, max_steps: int | None = None,
                  drop_last: bool = False) -> Iterator[np.ndarray]:
    """Shuffled index batches over 0..n-1, at most ``max_steps`` of them (None: the whole epoch)."""
    batches = minibatches(n, batch_size, rng, drop_last=drop_last)
    return batches if max_steps is None else islice(batches, int(max_steps))
