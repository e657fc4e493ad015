"""``semantic-regression``: DeViSE-style regression of each modality onto its class embedding.

Frome et al., DeViSE, NeurIPS 2013, in its simplest zero-shot form: one MLP per modality maps a
(standardised) feature to the class-embedding space, trained with a squared error towards the
L2-normalised embedding of the item's class. Both modalities land in the same semantic space, so an
unseen class's items meet around its (never trained on) embedding. Deviation from DeViSE: squared error
instead of its hinge rank loss, which is simpler and as strong at this scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from benchmark.contract import Method, TrainView, register_method
from benchmark.torch_utils import minibatches, mlp, predict, resolve_device, seed_everything, to_tensor


class Standardizer:
    """Per-dimension z-scoring with statistics from the training features."""

    def __init__(self, X: np.ndarray):
        self.mean = X.mean(axis=0, dtype=np.float64).astype(np.float32)
        self.std = np.maximum(X.std(axis=0, dtype=np.float64), 1e-6).astype(np.float32)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return ((np.asarray(X, dtype=np.float32) - self.mean) / self.std).astype(np.float32)


def normalized(v: np.ndarray) -> np.ndarray:
    return (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)).astype(np.float32)


@register_method("semantic-regression")
@dataclass
class SemanticRegression(Method):
    name = "semantic-regression"
    quick_params = {"hidden": 32, "epochs": 3}
    hidden: int = 512
    epochs: int = 40
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    dropout: float = 0.2

    def fit(self, train: TrainView, seed: int) -> SemanticRegression:
        seed_everything(seed)
        rng = np.random.default_rng(seed)
        self.device_ = resolve_device(self.device)
        targets = normalized(train.class_embeddings)
        self.scalers_, self.nets_ = {}, {}
        data = {}
        for m in train.modalities:
            self.scalers_[m] = Standardizer(train.features[m])
            self.nets_[m] = mlp([train.dim(m), self.hidden, train.embedding_dim], dropout=self.dropout).to(self.device_)
            data[m] = (to_tensor(self.scalers_[m](train.features[m]), self.device_),
                       to_tensor(targets[train.labels[m]], self.device_))
        params = [p for net in self.nets_.values() for p in net.parameters()]
        optimizer = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        loss_fn = nn.MSELoss()
        for epoch in range(self.epochs):
            totals = {}
            for m, (X, T) in data.items():
                total, batches = 0.0, 0
                for idx in minibatches(len(X), self.batch_size, rng):
                    idx_t = torch.as_tensor(idx, device=self.device_)
                    loss = loss_fn(self.nets_[m](X[idx_t]), T[idx_t])
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    total, batches = total + loss.item(), batches + 1
                totals[f"mse_{m}"] = total / max(batches, 1)
            self.log_epoch(epoch, **totals)
        return self

    def embed(self, modality: str, X: np.ndarray) -> np.ndarray:
        return predict(self.nets_[modality], self.scalers_[modality](X), self.device_)
