"""Shared input handling of the generative sketch baselines (CVAE, SEM-PCYC): roles and reduced features.

Both papers are written for one sketch modality and one image modality; here the query modality of the
dataset's first task plays the sketch's part and the other modality the image's, so they run on any
two-modality dataset. Both also work on much smaller inputs than the 4096-d fc7 features the datasets
ship (SEM-PCYC on 512-d outputs of a fine-tuned VGG layer), so :class:`ReducedFeatures` offers the same:
per-dimension z-scoring, then a PCA fitted on the seen-class training features of that modality.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmark.contract import TrainView, ZSBenchError
from benchmark.torch_utils import Standardizer

#: PCA is fitted on at most this many training rows: enough for a few hundred components, and the Gram
#: matrix of the subsample stays cheap on two cores.
PCA_MAX_ROWS = 2048


def modality_roles(train: TrainView, query_modality: str | None) -> tuple[str, str]:
    """(query modality, gallery modality): the sketch's and the image's part in the papers."""
    query = query_modality or train.tasks[0][0]
    if query not in train.modalities:
        raise ZSBenchError(f"query_modality {query!r} is not one of this dataset's modalities "
                           f"({', '.join(train.modalities)})")
    others = [m for m in train.modalities if m != query]
    return query, others[0]


def two_modality_reason(name: str, train: TrainView, query_modality: str | None) -> str | None:
    """Why ``name`` cannot run on ``train`` (None when it can): these methods pair exactly two modalities."""
    if len(train.modalities) != 2:
        return f"{name} maps exactly two modalities; this dataset has {len(train.modalities)}"
    if query_modality and query_modality not in train.modalities:
        return f"{name}: query_modality {query_modality!r} is not one of {', '.join(train.modalities)}"
    return None


class ReducedFeatures:
    """Per-dimension z-scoring, then (when ``dim`` is below the feature size) a PCA projection to ``dim``,
    scaled so its coordinates have unit variance on average.

    ``dim=None`` keeps the raw features unchanged (the papers' own setting). The PCA is the exact
    eigendecomposition of the Gram matrix of a seeded subsample, so it is deterministic in the seed.
    """

    def __init__(self, X: np.ndarray, dim: int | None, seed: int):
        X = np.asarray(X, dtype=np.float32)
        self.dim = dim
        self.scaler = Standardizer(X)
        self.components: np.ndarray | None = None
        if dim is None or dim >= X.shape[1]:
            return
        rng = np.random.default_rng(seed)
        rows = rng.choice(len(X), size=min(len(X), PCA_MAX_ROWS), replace=False) if len(X) > PCA_MAX_ROWS else None
        Z = torch.as_tensor(self.scaler(X if rows is None else X[np.sort(rows)]), dtype=torch.float64)
        gram = Z @ Z.T
        eigvals, eigvecs = torch.linalg.eigh(gram)
        keep = min(dim, int((eigvals > 1e-8 * eigvals.max()).sum()))
        order = torch.argsort(eigvals, descending=True)[:keep]
        # Right singular vectors from the Gram eigenvectors: V = Z^T U / sqrt(lambda).
        V = (Z.T @ eigvecs[:, order]) / torch.sqrt(eigvals[order])
        # Fix each component's sign (largest coordinate positive) so equal seeds give equal features.
        signs = torch.sign(V.gather(0, V.abs().argmax(dim=0, keepdim=True)))
        # One global scale so the kept coordinates have unit variance on average: leading components carry
        # hundreds of times the variance of one input dimension, which would swamp fixed loss weights.
        # A single scalar leaves distances and angles, and so every ranking, unchanged.
        scale = torch.sqrt(eigvals[order].mean() / Z.shape[0])
        self.components = (V * signs / scale).to(torch.float32).numpy()

    @property
    def out_dim(self) -> int:
        return int(self.scaler.mean.size if self.components is None else self.components.shape[1])

    def __call__(self, X: np.ndarray) -> np.ndarray:
        if self.dim is None:
            return np.asarray(X, dtype=np.float32)
        Z = self.scaler(X)
        return (Z if self.components is None else Z @ self.components).astype(np.float32, copy=False)


def class_matched_partners(query_labels: np.ndarray, gallery_labels: np.ndarray,
                           rng: np.random.Generator) -> np.ndarray:
    """For each query-modality item, a random gallery-modality item of the same class (-1 if its class has none).

    Stands in for instance pairs (a Sketchy sketch and the photo it was drawn from) on datasets without them.
    """
    partners = np.full(query_labels.size, -1, dtype=np.int64)
    order = np.argsort(gallery_labels, kind="stable")
    classes, starts, counts = np.unique(gallery_labels[order], return_index=True, return_counts=True)
    pos = np.searchsorted(classes, query_labels)
    pos = np.minimum(pos, max(classes.size - 1, 0))
    has = classes.size > 0
    found = has & (classes[pos] == query_labels) if has else np.zeros(query_labels.size, dtype=bool)
    offsets = (rng.random(query_labels.size) * counts[pos]).astype(np.int64) if has else 0
    partners[found] = order[(starts[pos] + offsets)[found]]
    return partners
