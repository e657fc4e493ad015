"""``dscmr``: Deep Supervised Cross-Modal Retrieval (Zhen, Hu, Wang, Peng; CVPR 2019).

Paper and code: L. Zhen et al., "Deep Supervised Cross-modal Retrieval", CVPR 2019; public PyTorch code
penghu-cs/DSCMR (read for the architecture and defaults; this is our own implementation).

Implemented, as in the paper and its code: one network per modality (a fully connected layer of 2048
units with ReLU) feeds a linear layer shared by both modalities (2048 -> 1024) whose output is the
common space; a linear label classifier (1024 -> classes), also shared, predicts the label. The loss is
  - label-space discriminative loss: the L2 norm of (prediction - one-hot label), averaged, per modality;
  - common-space discriminative loss (weight alpha=1e-3): for the three similarity matrices image-image,
    image-text, text-text, with theta = cos / 2 and S = 1 when two samples share a label,
    mean(log(1 + e^theta) - S * theta) (the negative log-likelihood of the label-similarity);
  - modality-invariance loss (weight beta=0.1): the mean L2 distance between the two modalities'
    representations of a pair.
Adam, lr 1e-4, betas (0.5, 0.999), batch 100. The common-space representation is the embedding; cosine
retrieval as in the code's evaluation.

Zero-shot use: DSCMR has no class embeddings, so the label classifier covers the seen classes only; the
networks learn on seen-class pairs and embed unseen-class items with what they learned (as the papers did).

Training length: the release trains 500 passes over the training pairs (``main.py`` l. 24 sets
``MAX_EPOCH = 500``; its call ``train_model(..., alpha, beta, MAX_EPOCH)`` at l. 45 passes it into the
``device`` slot, so the length comes from ``train_model``'s own default ``num_epochs=500``, ``train_model.py``
l. 45; penghu-cs/DSCMR at 0e110b9), batches of 100 (``main.py`` l. 25), and keeps the epoch with the best
*test* mAP (``train_model.py`` l. 139-142, 155). The defaults here are that length: ``epochs = 500`` full
passes (``max_steps_per_epoch = None``); the widths are the release's (2048, 1024: ``model.py`` l. 45-46).

Training budgets (``zsbench run --budget``): ``paper`` is the defaults. ``cpu`` (the default) is
``epochs = 30`` *sampled epochs* of at most ``max_steps_per_epoch = 30`` batches (:mod:`baselines.training`):
at most 900 steps whatever the dataset's size (emoji, 1,001 pairs: 11 batches an epoch, 330 steps;
TU-Berlin's ~160k pairs: 900 steps of ~0.4 s on one CPU core with 4096-d inputs, where a full epoch alone is
~1,600 steps).

Deviations: (1) no epoch is selected on test data: the model after the last epoch is scored. (2) Input
features are z-scored with training statistics (the code uses raw features). (3) Batches are drawn from a
fresh permutation each epoch (the release's loader does not shuffle, ``load_data.py`` l. 53). (4) Unpaired
data (sketch -> image): the invariance loss needs pairs, so same-class samples are paired deterministically
from the run seed (:func:`baselines.pairing.cross_modal_pairs`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.pairing import seen_class_index, standardized_pairs
from baselines.training import batches_per_epoch, sampled_epoch
from benchmark.contract import IntRange, LogUniform, Method, TrainView, register_method
from benchmark.torch_utils import predict


def label_space_loss(logits: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
    """Mean over samples of ||prediction - one-hot label||_2 (the code's term1, per modality)."""
    return ((logits - onehot) ** 2).sum(dim=1).sqrt().mean()


def common_space_loss(za: torch.Tensor, zb: torch.Tensor, onehot_a: torch.Tensor,
                      onehot_b: torch.Tensor) -> torch.Tensor:
    """Sum over (a,a), (a,b), (b,b) of mean(log(1 + e^theta) - S theta), theta = cosine / 2."""

    def half_cosine(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        norms = x.norm(dim=1, keepdim=True) @ y.norm(dim=1, keepdim=True).T
        return x @ y.T / norms.clamp(min=1e-6) / 2.0

    total = za.new_zeros(())
    for x, y, lx, ly in ((za, za, onehot_a, onehot_a), (za, zb, onehot_a, onehot_b), (zb, zb, onehot_b, onehot_b)):
        theta = half_cosine(x, y)
        same = (lx @ ly.T > 0).float()
        total = total + (F.softplus(theta) - same * theta).mean()
    return total


def invariance_loss(za: torch.Tensor, zb: torch.Tensor) -> torch.Tensor:
    """Mean L2 distance between the paired representations of the two modalities."""
    return ((za - zb) ** 2).sum(dim=1).sqrt().mean()


class DSCMRNet(nn.Module):
    def __init__(self, dims: dict[str, int], hidden: int, common_dim: int, n_labels: int):
        super().__init__()
        self.branches = nn.ModuleDict({m: nn.Sequential(nn.Linear(d, hidden), nn.ReLU()) for m, d in dims.items()})
        self.shared = nn.Linear(hidden, common_dim)
        self.classifier = nn.Linear(common_dim, n_labels)

    def common(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        return self.shared(self.branches[modality](x))


@register_method("dscmr")
@dataclass
class DSCMR(Method):
    name = "dscmr"
    #: The main training loss the convergence rule reads: the total loss.
    convergence_loss = ("loss",)
    max_modalities = 2
    quick_params = {"hidden": 16, "common_dim": 8, "batch_size": 8, "epochs": 2}
    #: ``paper``: the defaults (the release's 500 full passes). ``cpu``: 30 sampled epochs of at most 30 batches.
    budgets = {"paper": {}, "cpu": {"epochs": 30, "max_steps_per_epoch": 30}}
    search_space = {
        "lr": LogUniform(1e-5, 1e-3),
        "alpha": LogUniform(1e-4, 1e-1),
        "beta": LogUniform(1e-3, 1.0),
        "hidden": IntRange(256, 2048, log=True),
        "common_dim": IntRange(128, 1024, log=True),
    }
    hidden: int = 2048
    common_dim: int = 1024
    alpha: float = 1e-3
    beta: float = 1e-1
    lr: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    batch_size: int = 100
    epochs: int = 500
    max_steps_per_epoch: int | None = None  # a sampled epoch: at most this many batches of pairs (None: a full pass)

    def fit(self, train: TrainView, seed: int) -> DSCMR:
        rng = self.begin_fit(seed)
        dev = self.device_
        pairs = standardized_pairs(train, seed, self.name)
        a, b, y, self.scalers_ = pairs.a, pairs.b, pairs.labels, pairs.scalers
        n_labels = len(train.seen_classes)
        onehot = F.one_hot(torch.as_tensor(seen_class_index(train)[y]), n_labels).float().to(dev)
        dims = {a: train.dim(a), b: train.dim(b)}
        self.net_ = DSCMRNet(dims, self.hidden, self.common_dim, n_labels).to(dev)
        optimizer = torch.optim.Adam(self.net_.parameters(), lr=self.lr, betas=(self.beta1, self.beta2))
        self.set_total_steps(self.epochs * batches_per_epoch(len(pairs), self.batch_size, self.max_steps_per_epoch))
        for epoch in range(self.epochs):
            sums = np.zeros(4)
            batches = 0
            for idx in sampled_epoch(len(pairs), self.batch_size, rng, self.max_steps_per_epoch):
                za = self.net_.common(a, pairs.batch(a, idx, dev))
                zb = self.net_.common(b, pairs.batch(b, idx, dev))
                lab = onehot[torch.as_tensor(idx, device=dev)]
                term1 = (label_space_loss(self.net_.classifier(za), lab)
                         + label_space_loss(self.net_.classifier(zb), lab))
                term2 = common_space_loss(za, zb, lab, lab)
                term3 = invariance_loss(za, zb)
                loss = term1 + self.alpha * term2 + self.beta * term3
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                sums += [loss.item(), term1.item(), term2.item(), term3.item()]
                batches += 1
                self.advance()
            sums /= max(batches, 1)
            self.log_epoch(epoch, loss=sums[0], label_space=sums[1], common_space=sums[2], invariance=sums[3])
        return self

    def embed(self, modality: str, X: np.ndarray) -> np.ndarray:
        self.check_fitted()
        branch = nn.Sequential(self.net_.branches[modality], self.net_.shared)
        return predict(branch, self.scalers_[modality](X), self.device_)
