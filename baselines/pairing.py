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
    sample of the modality), each modality's z-scored features *once*, and the cross-modal pairs as row
    indices into them (pair ``i`` is row ``index[a][i]`` of ``features[a]`` and row ``index[b][i]`` of
    ``features[b]``, of class ``labels[i]``).

    Pairs are indices, not copied rows: on unpaired data each class has as many pairs as its larger modality
    has samples, so materialised pairs would repeat the smaller modality's rows (TU-Berlin: ~180k pairs from
    ~18k sketches, 4096-d, about 3 GB of repeated sketch rows).
    """

    a: str
    b: str
    features: dict[str, np.ndarray]
    index: dict[str, np.ndarray]
    labels: np.ndarray
    scalers: dict[str, Standardizer]

    def __len__(self) -> int:
        return int(self.labels.size)

    def rows(self, modality: str, pairs: np.ndarray | slice = slice(None)) -> np.ndarray:
        """The z-scored features of ``modality`` for the given pairs (a copy)."""
        return self.features[modality][self.index[modality][pairs]]

    def tensors(self, device) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """(features, index) as tensors on ``device``: a batch of pairs ``idx`` of modality m is
        ``features[m][index[m][idx]]``."""
        return ({m: to_tensor(x, device) for m, x in self.features.items()},
                {m: torch.as_tensor(i, device=device) for m, i in self.index.items()})


def standardized_pairs(train: TrainView, seed: int, method: str) -> StandardizedPairs:
    """The two modalities of ``train``, z-scored, with their cross-modal training pairs (see
    :class:`StandardizedPairs`)."""
    a, b = two_modalities(train, method)
    ia, ib, labels = cross_modal_pairs(train, seed)
    scalers = {m: Standardizer(train.features[m]) for m in (a, b)}
    features = {m: scalers[m](train.features[m]) for m in (a, b)}
    return StandardizedPairs(a, b, features, {a: ia, b: ib}, labels, scalers)


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
