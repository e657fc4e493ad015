"""CFSA's networks: conditional generators, conditional critics, regressors, and the modality adversary.

Shapes follow the released sibling code (JFSE, TPAMI): one hidden layer of width ``hidden`` (4096 there)
in every network. A generator maps ``[class_embedding; noise]`` to a feature of its modality, a critic
scores ``[feature; class_embedding]`` with one unbounded number (Wasserstein critic: no sigmoid), and a
regressor maps a feature into the common space, which is the class-embedding space.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
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


class _FeaturesAndInputGradient(torch.autograd.Function):
    """The critic's feature block on [real; fake] rows and the penalty's input gradient in one autograd node.

    Forward: ``features = X @ W.T`` and ``gradient = (leaky'(pre_mixed) * w2) @ W``, the activation mask taken
    from the interpolated rows' pre-activations ``mix * features[:n] + (1 - mix) * features[n:] + condition``
    (constant in the weights). Backward: both paths' gradients for ``W`` in one product,
    ``[g_features; A].T @ [X; g_gradient]`` with A = leaky' * w2, instead of two thin products (inner sizes 2n
    and n) and a sum. In a profiled step at width 256 on one core the two ran at 58 and 36 GFLOP/s, the
    merged products at 69 on average.
    """

    @staticmethod
    def forward(ctx, rows, weight, out_weight, mix, condition, negative_slope):
        features = rows @ weight.T
        n = mix.shape[0]
        with torch.no_grad():
            mixed = mix * features[:n] + (1 - mix) * features[n:] + condition
            slope = torch.where(mixed > 0, 1.0, negative_slope)
        scaled = slope * out_weight
        ctx.save_for_backward(rows, weight, slope, scaled)
        return features, scaled @ weight

    @staticmethod
    def backward(ctx, g_features, g_gradient):
        rows, weight, slope, scaled = ctx.saved_tensors
        g_weight = torch.cat([g_features, scaled]).T @ torch.cat([rows, g_gradient])
        g_out_weight = ((g_gradient @ weight.T) * slope).sum(dim=0, keepdim=True)
        return None, g_weight, g_out_weight, None, None, None


class ConditionalCritic(nn.Module):
    """D_m([x; c]) -> one score per row; LeakyReLU(0.2) as in WGAN-GP practice and the sibling code.

    The first layer is one linear map of ``[x; c]``, held as its two blocks: ``feature_weight`` (acting on
    x) and ``condition_weight`` (acting on c, with the bias). Drawn as one ``nn.Linear(dim x + dim c,
    hidden)`` and then split, so the initial values are those of the single layer. Split, the features are
    never concatenated with their condition, the condition's term is computed once for rows that share it
    (real, fake and interpolated rows of one batch), and the feature block's gradient is a product with an
    aligned width (4096, not 4096 + 50: in a profiled step on two threads, 135 against 70 GFLOP/s).
    """

    negative_slope = 0.2

    def __init__(self, feature_dim: int, embedding_dim: int, hidden: int):
        super().__init__()
        first = nn.Linear(feature_dim + embedding_dim, hidden)
        self.feature_weight = nn.Parameter(first.weight.detach()[:, :feature_dim].clone())
        self.condition_weight = nn.Parameter(first.weight.detach()[:, feature_dim:].clone())
        self.bias = nn.Parameter(first.bias.detach().clone())
        self.out = nn.Linear(hidden, 1)

    def feature_term(self, features: torch.Tensor) -> torch.Tensor:
        return features @ self.feature_weight.T

    def condition_term(self, class_embedding: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, class_embedding, self.condition_weight.T)

    def head(self, pre_activation: torch.Tensor) -> torch.Tensor:
        """Scores from the first layer's pre-activations."""
        return self.out(F.leaky_relu(pre_activation, self.negative_slope)).squeeze(1)

    def forward(self, features: torch.Tensor, class_embedding: torch.Tensor) -> torch.Tensor:
        return self.head(self.feature_term(features) + self.condition_term(class_embedding))

    def scores_and_penalty(self, real: torch.Tensor, fake: torch.Tensor, class_embedding: torch.Tensor,
                           mix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Real scores, fake scores and the gradient penalty at ``mix * real + (1 - mix) * fake`` (rows of one
        batch share ``class_embedding``), as ``forward`` and ``losses.gradient_penalty`` give them, with less
        work: the condition's term once for all rows, the interpolated rows' pre-activations interpolated
        rather than recomputed, and the feature block's gradient in one product. Neither the rows nor the
        condition get a gradient (the critic update needs none). ``test_cfsa.py`` checks values and
        gradients against the plain route."""
        n = real.shape[0]
        condition = self.condition_term(class_embedding)
        features, gradient = _FeaturesAndInputGradient.apply(torch.cat([real, fake]), self.feature_weight,
                                                             self.out.weight, mix, condition.detach(),
                                                             self.negative_slope)
        scores = self.head(features + condition.repeat(2, 1))
        penalty = ((gradient.norm(2, dim=1) - 1) ** 2).mean()
        return scores[:n], scores[n:], penalty

    def input_gradient(self, features: torch.Tensor, class_embedding: torch.Tensor) -> torch.Tensor:
        """d D / d x per row, in closed form, differentiable in the weights (for the gradient penalty).

        For D = w2 . leaky(W_x x + W_c c + b1) + b2 the gradient is (leaky'(pre) * w2) @ W_x, and leaky'
        is piecewise constant. Autograd's double backward gets the same value but also runs the first
        layer's products through leaky'' = 0 and accumulates many partial gradients: this form halves the
        penalty's matrix work. ``test_cfsa.py`` checks it against autograd.
        """
        with torch.no_grad():
            pre = self.feature_term(features) + self.condition_term(class_embedding)
            slope = torch.where(pre > 0, 1.0, self.negative_slope)
        return (slope * self.out.weight) @ self.feature_weight


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
