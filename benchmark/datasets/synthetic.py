"""Synthetic stand-ins: each real dataset's classes, split and feature sizes, with generated features.

Features come from the real class-name semantics (GloVe) through a fixed random non-linear map per
modality: an item's latent is its class embedding plus intra-class variation, the map is a random
two-layer network of that latent and a nuisance code, and noise is added on top. Semantic neighbours are
therefore feature neighbours, so zero-shot transfer is possible, but the map differs per modality and the
variation is large enough that it is far from trivial. For image-text sets a pair shares its latent.
Everything is deterministic in the data seed (fixed per dataset, not the run seed), so every method and
run sees the same data. Records and tables mark these datasets ``synthetic``: they are stand-ins for
scale and tests, never results about the real datasets.
"""

from __future__ import annotations

import hashlib

import numpy as np

from benchmark.data import PART_IDS, ZSDataset
from benchmark.datasets.semantics import class_embeddings
from benchmark.datasets.specs import DatasetSpec, get_spec

#: A run finishes in minutes on 2 cores when the stand-in holds about this many items over all modalities.
DEFAULT_ITEM_BUDGET = 12000
MIN_PER_CLASS = 6
LATENT_NOISE = 0.7  # intra-class spread of the latent, relative to the mean class-embedding norm
CLASS_OFFSET = 0.7  # per-class appearance the class name does not predict, shared by the modalities
MODALITY_OFFSET = 0.35  # per-class, per-modality offset: the domain gap between modalities
NUISANCE_DIM = 16
FEATURE_NOISE = 0.25
SYNTHETIC_VERSION = 1


def default_scale(spec: DatasetSpec) -> float:
    total = sum(sum(parts.values()) for parts in spec.counts.values())
    return min(1.0, DEFAULT_ITEM_BUDGET / total)


def _seed_for(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:8], "little")


def _class_counts(total: int, n_classes: int, scale: float) -> np.ndarray:
    per_class = max(MIN_PER_CLASS, int(round(total * scale / n_classes)))
    return np.full(n_classes, per_class, dtype=np.int64)


def _feature_map(latent: np.ndarray, nuisance: np.ndarray, out_dim: int, seed: int, relu: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    d_in = latent.shape[1] + nuisance.shape[1]
    hidden = max(256, out_dim // 8)
    W1 = rng.standard_normal((d_in, hidden)).astype(np.float32) * (2.0 / np.sqrt(d_in))
    b1 = rng.standard_normal(hidden).astype(np.float32) * 0.5
    W2 = rng.standard_normal((hidden, out_dim)).astype(np.float32) / np.sqrt(hidden)
    h = np.tanh(np.concatenate([latent, nuisance], axis=1) @ W1 + b1)
    x = h @ W2
    x += FEATURE_NOISE * rng.standard_normal(x.shape).astype(np.float32)
    x = np.maximum(x, 0.0) if relu else x  # CNN fc7 features are post-ReLU; Doc2Vec vectors are signed
    return x.astype(np.float32, copy=False)


def make_synthetic(name: str, split: str | None = None, scale: float | None = None, data_seed: int = 0) -> ZSDataset:
    spec = get_spec(name)
    split_obj = spec.split(split)
    scale = default_scale(spec) if scale is None else float(scale)
    if not 0 < scale <= 1:
        raise ValueError(f"--scale must lie in (0, 1], got {scale}")
    names = spec.class_names
    semantics = "glove" if spec.class_names_public else "random"
    emb, sem_info = class_embeddings(names, semantics, dataset=name, seed=_seed_for(name, "semantics", data_seed))
    n_classes = len(names)
    norm = float(np.linalg.norm(emb, axis=1).mean())
    rng = np.random.default_rng(_seed_for(name, "items", data_seed))
    d_sem = emb.shape[1]
    centre = emb + CLASS_OFFSET * norm / np.sqrt(d_sem) * rng.standard_normal(emb.shape).astype(np.float32)

    def latent_of(y: np.ndarray, modality: str) -> np.ndarray:
        gap = np.random.default_rng(_seed_for(name, "gap", modality, data_seed)).standard_normal(emb.shape)
        scale_item = LATENT_NOISE * norm / np.sqrt(d_sem)
        return (centre[y] + MODALITY_OFFSET * norm / np.sqrt(d_sem) * gap[y].astype(np.float32)
                + scale_item * rng.standard_normal((y.size, d_sem)).astype(np.float32))

    features, labels, parts = {}, {}, {}
    if spec.paired:
        # One latent per pair; each modality maps it with its own network and nuisance.
        part_labels, part_ids = [], []
        for part, total in spec.counts[next(iter(spec.modalities))].items():
            counts = _class_counts(total, n_classes, scale)
            part_labels.append(np.repeat(np.arange(n_classes), counts))
            part_ids.append(np.full(counts.sum(), PART_IDS.get(part, 0)))
        y = np.concatenate(part_labels)
        shared = latent_of(y, "pair")
        for m, dim in spec.modalities.items():
            gap = np.random.default_rng(_seed_for(name, "gap", m, data_seed)).standard_normal(emb.shape)
            latent = shared + MODALITY_OFFSET * norm / np.sqrt(d_sem) * gap[y].astype(np.float32)
            nuisance = rng.standard_normal((y.size, NUISANCE_DIM)).astype(np.float32)
            features[m] = _feature_map(latent, nuisance, dim, _seed_for(name, m, data_seed), relu=(m != "text"))
            labels[m] = y
            parts[m] = np.concatenate(part_ids).astype(np.int8)
    else:
        for m, dim in spec.modalities.items():
            counts = _class_counts(sum(spec.counts[m].values()), n_classes, scale)
            y = np.repeat(np.arange(n_classes), counts)
            latent = latent_of(y, m)
            nuisance = rng.standard_normal((y.size, NUISANCE_DIM)).astype(np.float32)
            features[m] = _feature_map(latent, nuisance, dim, _seed_for(name, m, data_seed), relu=True)
            labels[m] = y
    return ZSDataset(
        name=name, source="synthetic", modalities=tuple(spec.modalities), features=features, labels=labels,
        class_names=names, class_embeddings=emb, split=split_obj, tasks=spec.tasks,
        eval_protocol=spec.eval_protocol, paired=spec.paired, parts=parts or None,
        provenance={
            "semantics": sem_info["source"],
            "features": f"synthetic v{SYNTHETIC_VERSION}: random 2-layer map of class embedding + noise",
            "scale": scale,
            "data_seed": data_seed,
        },
    )
