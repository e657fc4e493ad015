"""Helpers shared by the two-modality baselines: which two modalities, and cross-modal training pairs.

Image-text datasets are paired (row i of each modality is one item). Sketch datasets are not, yet DADN,
ACMR, DSCMR and CCA all train on cross-modal pairs; for those we pair samples of the same class, drawn
deterministically from the run seed (every sample of either modality appears at least once). The papers
never ran these methods on unpaired data, so this pairing is our reading of how they would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from benchmark.contract import TrainView, ZSBenchError
from benchmark.torch_utils import Standardizer, to_tensor


def two_modalities(train: TrainView, method: str) -> tuple[str, str]:
    if len(train.modalities) != 2:
        raise ZSBenchError(
            f"{method} needs a dataset with exactly two modalities, got {list(train.modalities)}; "
            f"pick a two-modality dataset"
        )
    return train.modalities[0], train.modalities[1]


@dataclass(frozen=True)
class StandardizedPairs:
    """The two-modality methods' common start: the two modalities, their z-scorers (fitted on every training
    sample of the modality) and the cross-modal pairs as row indices (pair ``i`` is row ``index[a][i]`` of
    modality a's training features and row ``index[b][i]`` of modality b's, of class ``labels[i]``).

    Pairs are indices, and rows are z-scored when a batch asks for them: on unpaired data each class has as
    many pairs as its larger modality has samples, so materialised pairs would repeat the smaller modality's
    rows (TU-Berlin: ~180k pairs from ~18k sketches, 4096-d: ~3 GB of repeated sketch rows), and a z-scored
    copy of the training features would double the largest array a fit holds (~3 GB of images). Z-scoring
    is per element, so a batch holds exactly the numbers a z-scored copy would.
    """

    a: str
    b: str
    raw: dict[str, np.ndarray]
    index: dict[str, np.ndarray]
    labels: np.ndarray
    scalers: dict[str, Standardizer]

    def __len__(self) -> int:
        return int(self.labels.size)

    def rows(self, modality: str, pairs: np.ndarray | slice = slice(None)) -> np.ndarray:
        """The z-scored features of ``modality`` for the given pairs (a new float32 array)."""
        return self.scalers[modality](self.raw[modality][self.index[modality][pairs]])

    def batch(self, modality: str, pairs: np.ndarray, device) -> torch.Tensor:
        """:meth:`rows` as a tensor on ``device``."""
        return to_tensor(self.rows(modality, pairs), device)


def standardized_pairs(train: TrainView, seed: int, method: str) -> StandardizedPairs:
    """The two modalities of ``train`` with their z-scorers and cross-modal training pairs (see
    :class:`StandardizedPairs`)."""
    a, b = two_modalities(train, method)
    ia, ib, labels = cross_modal_pairs(train, seed)
    scalers = {m: Standardizer(train.features[m]) for m in (a, b)}
    return StandardizedPairs(a, b, {m: train.features[m] for m in (a, b)}, {a: ia, b: ib}, labels, scalers)


def cross_modal_pairs(train: TrainView, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index arrays (into modality a, into modality b) and the pair labels.

    Paired views: the identity. Unpaired views: per class, both modalities' samples are shuffled with the
    seed and zipped, the shorter list cycling, so the larger side sets the number of pairs of that class.
    """
    a, b = train.modalities[0], train.modalities[1]
    ya, yb = np.asarray(train.labels[a]), np.asarray(train.labels[b])
    if train.paired:
        idx = np.arange(ya.size)
        return idx, idx.copy(), ya.copy()
    rng = np.random.default_rng([int(seed), 0x9A1])
    out_a, out_b, out_y = [], [], []
    for c in np.intersect1d(ya, yb):
        ia = rng.permutation(np.flatnonzero(ya == c))
        ib = rng.permutation(np.flatnonzero(yb == c))
        n = max(ia.size, ib.size)
        out_a.append(np.resize(ia, n))
        out_b.append(np.resize(ib, n))
        out_y.append(np.full(n, c, dtype=np.int64))
    if not out_a:
        raise ZSBenchError(f"{a} and {b} share no seen class, so no cross-modal training pairs can be formed")
    return np.concatenate(out_a), np.concatenate(out_b), np.concatenate(out_y)


def other_class_partners(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each position, the index of a random position holding a different label (itself if none exists)."""
    labels = np.asarray(labels)
    n = labels.size
    partners = rng.integers(0, n, size=n)
    for _ in range(64):  # redraw the clashes; with two or more classes this empties within a few rounds
        clash = labels[partners] == labels
        if not clash.any():
            break
        partners[clash] = rng.integers(0, n, size=int(clash.sum()))
    return partners


def seen_class_index(train: TrainView) -> np.ndarray:
    """Maps a class id to its position among the seen classes (-1 for unseen), for seen-only classifiers."""
    lookup = np.full(train.n_classes, -1, dtype=np.int64)
    lookup[np.asarray(train.seen_classes)] = np.arange(len(train.seen_classes))
    return lookup
