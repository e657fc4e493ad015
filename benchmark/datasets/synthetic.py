"""Synthetic stand-ins: each real dataset's classes, split and feature sizes, with generated features.

Two generator versions exist; the version is part of every stand-in's provenance (so of every record's
identity and group), and :data:`DEFAULT_VERSION` is the one new runs get.

**v2** (default). Modalities share *class-level* signal only, plus a weak, tunable item-level pairing:

- a class's latent centre is its class-name embedding plus a per-class offset the name does not predict
  (``CLASS_OFFSET_V2``, as large as the name part), and every modality adds its own per-class offset (the
  domain gap);
- an item's deviation from its class centre is its own in each modality; in image-text sets a pair shares
  only the fraction ``pairing`` of it (``pairing`` is the correlation of the two modalities' deviations,
  0.1 by default, tunable through :func:`make_synthetic`). So paired items are barely more alike than two
  items of one class, as in real image-text data, and a linear CCA cannot recover a whole shared latent;
- image and sketch features look like CNN activations after a ReLU: non-negative and sparse, heavy-tailed
  (log-normal scales per dimension and per item) and with hubs (a per-item, heavy-tailed share of the
  centroid, which makes a few items close to many others). Text features stay signed, as Doc2Vec's.

**v1** (kept loadable for old records, ``version=1``): a pair shares one latent, so CCA recovers it and
scored 0.935 / 0.947 mAP@all on the Wikipedia stand-in where the papers report about 0.24 on the real data.

Everything is deterministic in the data seed (fixed per dataset, not the run seed), so every method and
run sees the same data. Records and tables mark these datasets ``synthetic``: they are stand-ins for
scale and tests, never results about the real datasets.
"""

from __future__ import annotations

import hashlib

import numpy as np

from benchmark.contract import ZSBenchError
from benchmark.core.data import PART_IDS, ZSDataset
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

#: Generator versions: 1 (paired items share one latent) and 2 (class-level sharing, weak pairing).
SYNTHETIC_VERSIONS = (1, 2)
DEFAULT_VERSION = 2
SYNTHETIC_VERSION = DEFAULT_VERSION  # the version new stand-ins get (kept under its old name)

# v2 parameters, each relative to the mean class-embedding norm spread over the latent's dimensions
CLASS_OFFSET_V2 = 1.0  # the class centre's part that its name does not predict
MODALITY_OFFSET_V2 = 0.5  # per-class, per-modality domain gap
ITEM_SPREAD_V2 = 1.5  # an item's deviation from its class centre (real-data difficulty: mAP@all near 0.3)
DEFAULT_PAIRING = 0.1  # correlation of a pair's two deviations (image-text sets)
HUB_SHARE = (0.5, 3.0)  # Beta(a, b) share of the centroid per item: the few with a large share become hubs
ACTIVE_BIAS = 0.8  # units' negative bias in standard deviations: how few units fire
SCALE_SIGMA = 0.8  # log-normal spread of per-dimension scales (heavy tails across dimensions)
ITEM_NORM_SIGMA = 0.3  # log-normal spread of per-item feature norms

#: Elements per row chunk when the v2 features are built (about 64 MB of float32 at a time).
CHUNK_ELEMENTS = 2**24


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


def make_synthetic(name: str, split: str | None = None, scale: float | None = None, data_seed: int = 0,
                   version: int | None = None, pairing: float | None = None) -> ZSDataset:
    """The stand-in of a registered dataset; ``version`` None is :data:`DEFAULT_VERSION`.

    ``pairing`` (v2, image-text sets only): correlation in [0, 1] of a pair's item-level deviations.
    """
    version = DEFAULT_VERSION if version is None else version
    if version not in SYNTHETIC_VERSIONS:
        raise ZSBenchError(f"synthetic_version {version!r} is unknown; use one of {list(SYNTHETIC_VERSIONS)}")
    if pairing is not None and version == 1:
        raise ZSBenchError("synthetic pairing applies to version 2 only (v1 pairs share one latent)")
    pairing = DEFAULT_PAIRING if pairing is None else float(pairing)
    if not 0.0 <= pairing <= 1.0:
        raise ZSBenchError(f"synthetic pairing must lie in [0, 1], got {pairing}")
    spec = get_spec(name)
    scale = default_scale(spec) if scale is None else float(scale)
    if not 0 < scale <= 1:
        raise ValueError(f"--scale must lie in (0, 1], got {scale}")
    if version == 1:
        return _make_v1(spec, split, scale, data_seed)
    return _make_v2(spec, split, scale, data_seed, pairing)


def _semantics(spec: DatasetSpec, data_seed: int):
    semantics = "glove" if spec.class_names_public else "random"
    return class_embeddings(spec.class_names, semantics, dataset=spec.name,
                            seed=_seed_for(spec.name, "semantics", data_seed))


def _make_v1(spec: DatasetSpec, split: str | None, scale: float, data_seed: int) -> ZSDataset:
    name = spec.name
    split_obj = spec.split(split)
    names = spec.class_names
    emb, sem_info = _semantics(spec, data_seed)
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
        y, part_ids = _paired_labels(spec, n_classes, scale)
        shared = latent_of(y, "pair")
        for m, dim in spec.modalities.items():
            gap = np.random.default_rng(_seed_for(name, "gap", m, data_seed)).standard_normal(emb.shape)
            latent = shared + MODALITY_OFFSET * norm / np.sqrt(d_sem) * gap[y].astype(np.float32)
            nuisance = rng.standard_normal((y.size, NUISANCE_DIM)).astype(np.float32)
            features[m] = _feature_map(latent, nuisance, dim, _seed_for(name, m, data_seed), relu=(m != "text"))
            labels[m] = y
            parts[m] = part_ids
    else:
        for m, dim in spec.modalities.items():
            counts = _class_counts(sum(spec.counts[m].values()), n_classes, scale)
            y = np.repeat(np.arange(n_classes), counts)
            latent = latent_of(y, m)
            nuisance = rng.standard_normal((y.size, NUISANCE_DIM)).astype(np.float32)
            features[m] = _feature_map(latent, nuisance, dim, _seed_for(name, m, data_seed), relu=True)
            labels[m] = y
    return _dataset(spec, split_obj, emb, features, labels, parts, {
        "semantics": sem_info["source"],
        "features": "synthetic v1: random 2-layer map of class embedding + noise",
        "scale": scale,
        "data_seed": data_seed,
    })


def _paired_labels(spec: DatasetSpec, n_classes: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Labels of the pairs, part by part, and each pair's part id."""
    part_labels, part_ids = [], []
    for part, total in spec.counts[next(iter(spec.modalities))].items():
        counts = _class_counts(total, n_classes, scale)
        part_labels.append(np.repeat(np.arange(n_classes), counts))
        part_ids.append(np.full(counts.sum(), PART_IDS.get(part, 0)))
    return np.concatenate(part_labels), np.concatenate(part_ids).astype(np.int8)


def _dataset(spec, split_obj, emb, features, labels, parts, provenance) -> ZSDataset:
    return ZSDataset(
        name=spec.name, source="synthetic", modalities=tuple(spec.modalities), features=features, labels=labels,
        class_names=spec.class_names, class_embeddings=emb, split=split_obj, tasks=spec.tasks,
        eval_protocol=spec.eval_protocol, paired=spec.paired, parts=parts or None, provenance=provenance)


def cnn_like(latent: np.ndarray, out_dim: int, seed: int) -> np.ndarray:
    """Non-negative, sparse, heavy-tailed features with hubs from latents (one random ReLU network).

    A two-layer random ReLU network; before the last ReLU each item's pre-activation moves toward the
    centroid of all pre-activations by a Beta-distributed share, and a negative bias leaves most units off
    (about 30 % fire, as in a CNN's fc7 after its ReLU). Log-normal scales per dimension and per item give
    heavy tails. The few items with a large share have the most typical activation pattern and sit near
    many other items under cosine similarity: hubs (the skewness of the 10-occurrence distribution is about
    3 on the Wikipedia stand-in, about 1 without the shares and in v1).
    """
    rng = np.random.default_rng(seed)
    n, d_in = latent.shape
    hidden = max(256, out_dim // 8)
    W1 = rng.standard_normal((d_in, hidden)).astype(np.float32) * (2.0 / np.sqrt(d_in))
    b1 = rng.standard_normal(hidden).astype(np.float32) * 0.5
    W2 = rng.standard_normal((hidden, out_dim)).astype(np.float32) / np.sqrt(hidden)
    # Built in row chunks into one float32 array, in place: at TU-Berlin's real size (204,500 x 4096) the
    # features alone are 3.4 GB, and whole-array temporaries would need several times that.
    rows = max(1, CHUNK_ELEMENTS // out_dim)
    x = np.empty((n, out_dim), dtype=np.float32)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        x[start:stop] = np.maximum(latent[start:stop] @ W1 + b1, 0.0) @ W2
    share = rng.beta(*HUB_SHARE, size=(n, 1)).astype(np.float32)
    centre = x.mean(axis=0, dtype=np.float64).astype(np.float32)
    total, squares = np.zeros(out_dim), np.zeros(out_dim)
    for start in range(0, n, rows):
        block = x[start:start + rows]
        block *= 1.0 - share[start:start + rows]
        block += share[start:start + rows] * centre
        total += block.sum(axis=0, dtype=np.float64)
        squares += np.square(block, dtype=np.float64).sum(axis=0)
    std = np.sqrt(np.maximum(squares / n - (total / n) ** 2, 0.0)).astype(np.float32)
    for start in range(0, n, rows):
        block = x[start:start + rows]
        block -= ACTIVE_BIAS * std
        block += FEATURE_NOISE * rng.standard_normal(block.shape, dtype=np.float32)
        np.maximum(block, 0.0, out=block)
    x *= np.exp(SCALE_SIGMA * rng.standard_normal(out_dim)).astype(np.float32)
    x *= np.exp(ITEM_NORM_SIGMA * rng.standard_normal((n, 1))).astype(np.float32)
    return x


def signed_text(latent: np.ndarray, out_dim: int, seed: int) -> np.ndarray:
    """Signed, roughly Doc2Vec-like text vectors: a random tanh network plus Student-t noise."""
    rng = np.random.default_rng(seed)
    d_in = latent.shape[1]
    hidden = max(256, out_dim // 8)
    W1 = rng.standard_normal((d_in, hidden)).astype(np.float32) * (2.0 / np.sqrt(d_in))
    b1 = rng.standard_normal(hidden).astype(np.float32) * 0.5
    W2 = rng.standard_normal((hidden, out_dim)).astype(np.float32) / np.sqrt(hidden)
    x = np.tanh(latent @ W1 + b1) @ W2
    x += FEATURE_NOISE * rng.standard_t(4, size=x.shape).astype(np.float32)
    return x.astype(np.float32, copy=False)


def _make_v2(spec: DatasetSpec, split: str | None, scale: float, data_seed: int, pairing: float) -> ZSDataset:
    name = spec.name
    split_obj = spec.split(split)
    emb, sem_info = _semantics(spec, data_seed)
    n_classes = len(spec.class_names)
    d_sem = emb.shape[1]
    unit = float(np.linalg.norm(emb, axis=1).mean()) / np.sqrt(d_sem)
    rng = np.random.default_rng(_seed_for(name, "v2", "items", data_seed))
    offsets = np.random.default_rng(_seed_for(name, "v2", "class-offset", data_seed)).standard_normal(emb.shape)
    centre = emb + CLASS_OFFSET_V2 * unit * offsets.astype(np.float32)

    def class_latent(modality: str) -> np.ndarray:
        gap = np.random.default_rng(_seed_for(name, "v2", "gap", modality, data_seed)).standard_normal(emb.shape)
        return centre + MODALITY_OFFSET_V2 * unit * gap.astype(np.float32)

    def features_of(modality: str, latent: np.ndarray, dim: int) -> np.ndarray:
        seed = _seed_for(name, "v2", "map", modality, data_seed)
        return signed_text(latent, dim, seed) if modality == "text" else cnn_like(latent, dim, seed)

    features, labels, parts = {}, {}, {}
    if spec.paired:
        y, part_ids = _paired_labels(spec, n_classes, scale)
        shared = rng.standard_normal((y.size, d_sem)).astype(np.float32)
        for m, dim in spec.modalities.items():
            own = rng.standard_normal((y.size, d_sem)).astype(np.float32)
            deviation = np.sqrt(pairing) * shared + np.sqrt(1.0 - pairing) * own
            features[m] = features_of(m, class_latent(m)[y] + ITEM_SPREAD_V2 * unit * deviation, dim)
            labels[m], parts[m] = y, part_ids
    else:
        for m, dim in spec.modalities.items():
            y = np.repeat(np.arange(n_classes), _class_counts(sum(spec.counts[m].values()), n_classes, scale))
            deviation = rng.standard_normal((y.size, d_sem)).astype(np.float32)
            features[m] = features_of(m, class_latent(m)[y] + ITEM_SPREAD_V2 * unit * deviation, dim)
            labels[m] = y
    pairing_note = f", item pairing {pairing:g}" if spec.paired else ""
    return _dataset(spec, split_obj, emb, features, labels, parts, {
        "semantics": sem_info["source"],
        "features": f"synthetic v2: class-level signal{pairing_note}, CNN-like non-negative heavy-tailed features",
        "synthetic_version": 2,
        "pairing": pairing if spec.paired else None,
        "scale": scale,
        "data_seed": data_seed,
    })
