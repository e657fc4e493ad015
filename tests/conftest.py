"""Shared fixtures: tiny datasets built in memory, small enough for every test to train in seconds."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.datasets.splits import Split
from benchmark.protocol import ZSDataset


def make_tiny_dataset(paired: bool = False, n_classes: int = 6, n_unseen: int = 2, per_class: int = 12,
                      dims=(24, 16), seed: int = 0, name: str = "tiny") -> ZSDataset:
    """Class prototypes in an 8-d semantic space, mapped linearly (plus noise) into each modality."""
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((n_classes, 8)).astype(np.float32)
    class_names = tuple(f"class{i}" for i in range(n_classes))
    modalities = ("image", "text") if paired else ("sketch", "image")
    labels = np.repeat(np.arange(n_classes), per_class)
    features, parts = {}, {}
    shared = emb[labels] + 0.3 * rng.standard_normal((labels.size, 8)).astype(np.float32)
    for m, d in zip(modalities, dims, strict=True):
        W = rng.standard_normal((8, d)).astype(np.float32)
        latent = shared if paired else emb[labels] + 0.3 * rng.standard_normal((labels.size, 8)).astype(np.float32)
        features[m] = (latent @ W + 0.1 * rng.standard_normal((labels.size, d))).astype(np.float32)
        parts[m] = (np.arange(labels.size) % 4 == 0).astype(np.int8)  # every 4th item is a test item
    split = Split(dataset=name, name="tiny", seen=class_names[n_unseen:], unseen=class_names[:n_unseen],
                  validation_fraction=0.2, validation_seed=0, sha256="0" * 64, path="<memory>")
    tasks = (("image", "text"), ("text", "image")) if paired else (("sketch", "image"),)
    return ZSDataset(name=name, source="synthetic", modalities=modalities, features=features,
                     labels={m: labels.copy() for m in modalities}, class_names=class_names, class_embeddings=emb,
                     split=split, tasks=tasks, eval_protocol="test->train" if paired else "all", paired=paired,
                     parts=parts if paired else None, provenance={"semantics": "random", "features": "tiny"})


@pytest.fixture
def tiny_sketch():
    return make_tiny_dataset(paired=False)


@pytest.fixture
def tiny_paired():
    return make_tiny_dataset(paired=True)
