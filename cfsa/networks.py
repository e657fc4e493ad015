"""CFSA's networks: conditional generators, conditional critics, regressors, and the modality adversary.

Shapes follow the released sibling code (JFSE, TPAMI): one hidden layer of width ``hidden`` (4096 there)
in every network. A generator maps ``[class_embedding; noise]`` to a feature of its modality, a critic
scores ``[feature; class_embedding]`` with one unbounded number (Wasserstein critic: no sigmoid), and a
regressor maps a feature into the common space, which is the class-embedding space.
"""

from __future__ import annotations

import torch
from torch import nn

from benchmark.torch_utils import reverse_gradient


class ConditionalGenerator(nn.Module):
    """G_m([c; z]) -> x_m. The output is linear because features are z-scored (signed) before training."""

    def __init__(self, embedding_dim: int, noise_dim: int, feature_dim: int, hidden: int):
        super().__init__()
        self.embedding_dim, self.noise_dim, self.feature_dim = embedding_dim, noise_dim, feature_dim
        self.net = nn.Sequential(nn.Linear(embedding_dim + noise_dim, hidden), nn.ReLU(),
                                 nn.Linear(hidden, feature_dim))

    def forward(self, class_embedding: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([class_embedding, noise], dim=1))


class ConditionalCritic(nn.Module):
    """D_m([x; c]) -> one score per row; LeakyReLU(0.2) as in WGAN-GP practice and the sibling code."""

    negative_slope = 0.2

    def __init__(self, feature_dim: int, embedding_dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(feature_dim + embedding_dim, hidden), nn.LeakyReLU(self.negative_slope),
                                 nn.Linear(hidden, 1))

    def forward(self, features: torch.Tensor, class_embedding: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([features, class_embedding], dim=1)).squeeze(1)

    def input_gradient(self, features: torch.Tensor, class_embedding: torch.Tensor) -> torch.Tensor:
        """d D / d x per row, in closed form, differentiable in the weights (for the gradient penalty).

        For D = w2 . leaky(W1 [x; c] + b1) + b2 the gradient is (leaky'(pre) * w2) @ W1[:, :dim x], and
        leaky' is piecewise constant. Autograd's double backward gets the same value but also runs the
        first layer's products through leaky'' = 0 and accumulates many partial gradients: this form
        halves the penalty's matrix work. ``test_cfsa.py`` checks it against autograd.
        """
        first, last = self.net[0], self.net[2]
        with torch.no_grad():
            pre = first(torch.cat([features, class_embedding], dim=1))
            slope = torch.where(pre > 0, 1.0, self.negative_slope)
        return (slope * last.weight) @ first.weight[:, : features.shape[1]]


class Regressor(nn.Module):
    """R_m: feature -> common (class-embedding) space; dropout on the hidden layer (training mode only)."""

    def __init__(self, feature_dim: int, embedding_dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, embedding_dim))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


class ModalityClassifier(nn.Module):
    """Guesses an embedding's modality; behind a gradient reversal it pushes the regressors to hide it."""

    def __init__(self, embedding_dim: int, n_modalities: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(embedding_dim, hidden), nn.ReLU(), nn.Linear(hidden, n_modalities))

    def forward(self, embeddings: torch.Tensor, reversal_scale: float = 1.0) -> torch.Tensor:
        return self.net(reverse_gradient(embeddings, reversal_scale))
