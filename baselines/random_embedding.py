"""``random``: a floor. Embeds every item as a random vector, so scores carry no information."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from benchmark.contract import Method, TrainView, register_method


@register_method("random")
@dataclass
class RandomEmbedding(Method):
    """Each item's embedding is seeded by (seed, modality, the item's feature bytes): deterministic, and
    independent of the item's position, so gallery order cannot leak the labels."""

    name = "random"
    #: The main training loss the convergence rule reads: none (no training).
    convergence_loss = ()
    quick_params = {"dim": 16}  # already instant: nothing to shrink
    dim: int = 16

    def fit(self, train: TrainView, seed: int) -> RandomEmbedding:
        self.begin_fit(seed)
        self.set_total_steps(1)  # nothing to train (and nothing to tune: no search space)
        self.seed_ = int(seed)
        self.advance()
        return self

    def embed(self, modality: str, X: np.ndarray) -> np.ndarray:
        self.check_fitted()
        out = np.empty((len(X), self.dim), dtype=np.float32)
        for i, row in enumerate(np.asarray(X, dtype=np.float32)):
            digest = hashlib.blake2b(row.tobytes(), digest_size=8, key=f"{self.seed_}/{modality}".encode()).digest()
            out[i] = np.random.default_rng(int.from_bytes(digest, "little")).standard_normal(self.dim)
        return out
