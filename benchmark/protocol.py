"""The zero-shot protocol: what a method may see, and what it is scored on.

:class:`ZSDataset` holds a whole dataset (every class). :func:`build_train_view` cuts the seen-class
training part out of it (minus a seen-class validation hold-out) and checks that no unseen-class sample got
in; :func:`evaluate` embeds the unseen-class queries and gallery of every task and scores them with the one
metric engine, a block of queries at a time so the score matrix is never held whole.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmark.contract import LeakageError, Method, TrainView, ZSBenchError
from benchmark.datasets.splits import Split
from benchmark.metrics import DEFAULT_KS, per_query_metrics

SOURCES = ("real", "embedded", "synthetic")
PART_IDS = {"train": 0, "test": 1}


@dataclass
class ZSDataset:
    """A dataset with every class. ``parts[m]`` (optional) marks each item train (0) or test (1)."""

    name: str
    source: str
    modalities: tuple[str, ...]
    features: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    class_names: tuple[str, ...]
    class_embeddings: np.ndarray
    split: Split
    tasks: tuple[tuple[str, str], ...]
    eval_protocol: str = "all"
    paired: bool = False
    parts: dict[str, np.ndarray] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()
        index = {n: i for i, n in enumerate(self.class_names)}
        self.seen_classes = np.array(sorted(index[n] for n in self.split.seen), dtype=np.int64)
        self.unseen_classes = np.array(sorted(index[n] for n in self.split.unseen), dtype=np.int64)

    def validate(self) -> None:
        """Shapes, dtypes, finite values, labels in range, a split that partitions the classes."""
        where = f"dataset {self.name!r}"
        if self.source not in SOURCES:
            raise ZSBenchError(f"{where}: source must be one of {SOURCES}, got {self.source!r}")
        n_classes = len(self.class_names)
        if len(set(self.class_names)) != n_classes:
            raise ZSBenchError(f"{where}: duplicate class names in the class list")
        emb = np.asarray(self.class_embeddings)
        if emb.ndim != 2 or emb.shape[0] != n_classes:
            raise ZSBenchError(f"{where}: class embeddings have shape {emb.shape}, expected ({n_classes}, d)")
        if not np.isfinite(emb).all():
            raise ZSBenchError(f"{where}: class embeddings contain NaN or inf")
        for m in self.modalities:
            if m not in self.features or m not in self.labels:
                raise ZSBenchError(f"{where}: modality {m!r} has no features or labels")
            X, y = self.features[m], self.labels[m]
            if X.ndim != 2:
                raise ZSBenchError(f"{where}: {m} features must be 2-d (items x dims), got shape {X.shape}")
            if X.dtype != np.float32:
                raise ZSBenchError(f"{where}: {m} features must be float32, got {X.dtype} (re-run prepare)")
            if y.shape != (X.shape[0],):
                raise ZSBenchError(
                    f"{where}: {m} has {X.shape[0]} feature rows but {y.shape[0]} labels; they must match"
                )
            if y.size and (y.min() < 0 or y.max() >= n_classes):
                raise ZSBenchError(f"{where}: {m} labels must lie in 0..{n_classes - 1}, found {y.min()}..{y.max()}")
            empty = np.flatnonzero(np.bincount(y, minlength=n_classes) == 0)
            if empty.size:  # an empty unseen class would silently drop out of the scores
                raise ZSBenchError(
                    f"{where}: class {self.class_names[empty[0]]!r} has no {m} items ({empty.size} empty class(es)); "
                    f"add its items or drop it from the class list and split"
                )
            bad = ~np.isfinite(X).all(axis=1)
            if bad.any():
                rows = np.flatnonzero(bad)
                raise ZSBenchError(
                    f"{where}: {m} features have {rows.size} row(s) with NaN or inf (first rows {rows[:5].tolist()}); "
                    f"fix or drop them and re-run prepare"
                )
            if self.parts is not None and self.parts[m].shape != y.shape:
                raise ZSBenchError(f"{where}: {m} part markers do not match its {y.size} items")
        if self.paired:
            sizes = {self.labels[m].size for m in self.modalities}
            same = all(np.array_equal(self.labels[self.modalities[0]], self.labels[m]) for m in self.modalities)
            if len(sizes) != 1 or not same:
                raise ZSBenchError(f"{where}: paired modalities must have the same items in the same order")
        names = set(self.class_names)
        unknown = [n for n in self.split.seen + self.split.unseen if n not in names]
        if unknown:
            raise ZSBenchError(f"{where}: split {self.split.name!r} names unknown classes {unknown[:5]}")
        if set(self.split.seen) & set(self.split.unseen):
            raise ZSBenchError(f"{where}: split {self.split.name!r} has classes that are both seen and unseen")
        for q, g in self.tasks:
            if q not in self.modalities or g not in self.modalities:
                raise ZSBenchError(f"{where}: task {q}->{g} names a modality the dataset lacks")

    def restrict(self, modalities: tuple[str, ...]) -> ZSDataset:
        """The same dataset with only ``modalities`` and the tasks between them (no copy of the arrays)."""
        keep = tuple(m for m in self.modalities if m in modalities)
        return ZSDataset(
            name=self.name, source=self.source, modalities=keep,
            features={m: self.features[m] for m in keep}, labels={m: self.labels[m] for m in keep},
            class_names=self.class_names, class_embeddings=self.class_embeddings, split=self.split,
            tasks=tuple(t for t in self.tasks if t[0] in keep and t[1] in keep), eval_protocol=self.eval_protocol,
            paired=self.paired, parts=None if self.parts is None else {m: self.parts[m] for m in keep},
            provenance=self.provenance)

    def modality_groups(self, max_modalities: int | None) -> list[tuple[str, ...]]:
        """The modality sets one fit must cover: all of them, or each task's pair when a method takes fewer."""
        if max_modalities is None or len(self.modalities) <= max_modalities:
            return [self.modalities]
        groups: list[tuple[str, ...]] = []
        for q, g in self.tasks:
            group = tuple(m for m in self.modalities if m in (q, g))
            if group not in groups:
                groups.append(group)
        return groups

    def items(self, modality: str, classes: np.ndarray, part: str | None = None) -> np.ndarray:
        """Indices of the items of ``modality`` whose class is in ``classes`` (and in ``part``, if given)."""
        mask = np.isin(self.labels[modality], classes)
        if part is not None and self.parts is not None:
            mask &= self.parts[modality] == PART_IDS[part]
        return np.flatnonzero(mask)

    def record(self) -> dict[str, Any]:
        counts = {m: int(self.labels[m].size) for m in self.modalities}
        return {"name": self.name, "source": self.source, "n_classes": len(self.class_names), "items": counts,
                "eval_protocol": self.eval_protocol, **self.provenance}


def _query_gallery_parts(protocol: str) -> tuple[str | None, str | None]:
    if protocol == "all":
        return None, None
    if protocol == "test->train":
        return "test", "train"
    raise ZSBenchError(f"unknown evaluation protocol {protocol!r}")


def build_train_view(ds: ZSDataset) -> TrainView:
    """Seen-class training samples (train part when the dataset has parts), minus a validation hold-out.

    The hold-out is a fixed fraction of the seen-class items drawn with the split's own seed, so it is the
    same for every method and run; for paired data one draw serves all modalities and keeps the pairs.
    """
    train_part = "train" if ds.parts is not None else None
    rng = np.random.default_rng(ds.split.validation_seed)
    features, labels, val_features, val_labels = {}, {}, {}, {}
    shared_perm = None
    for m in ds.modalities:
        idx = ds.items(m, ds.seen_classes, train_part)
        if ds.paired:
            shared_perm = rng.permutation(idx.size) if shared_perm is None else shared_perm
            perm = shared_perm
        else:
            perm = rng.permutation(idx.size)
        n_val = int(round(ds.split.validation_fraction * idx.size))
        val_idx, train_idx = np.sort(idx[perm[:n_val]]), np.sort(idx[perm[n_val:]])
        features[m] = np.array(ds.features[m][train_idx], dtype=np.float32)
        labels[m] = ds.labels[m][train_idx].astype(np.int64)
        val_features[m] = np.array(ds.features[m][val_idx], dtype=np.float32)
        val_labels[m] = ds.labels[m][val_idx].astype(np.int64)
    view = TrainView(
        modalities=ds.modalities, features=features, labels=labels, class_names=ds.class_names,
        class_embeddings=np.array(ds.class_embeddings, dtype=np.float32), seen_classes=ds.seen_classes.copy(),
        unseen_classes=ds.unseen_classes.copy(), validation_features=val_features, validation_labels=val_labels,
        paired=ds.paired, tasks=ds.tasks,
    )
    check_no_leakage(view, ds.unseen_classes)
    return view


def check_no_leakage(view: TrainView, unseen_classes: np.ndarray) -> None:
    """The guard: a train view holding any unseen-class sample (train or validation part) is an error."""
    for part, labels in (("train", view.labels), ("validation", view.validation_labels)):
        for m, y in labels.items():
            leaked = np.isin(y, unseen_classes)
            if leaked.any():
                raise LeakageError(
                    f"train view leaks {int(leaked.sum())} unseen-class {m} sample(s) into its {part} part; "
                    f"the protocol must only pass seen classes"
                )


def _block_metrics(similarity, ks, Zq: np.ndarray, yq: np.ndarray, Zg: np.ndarray, yg: np.ndarray):
    return per_query_metrics(np.asarray(similarity(Zq, Zg), dtype=np.float32), yq, yg, ks)


def map_blocks_here(score_block, Zq, yq, Zg, yg, rows: int) -> list:
    """Score the query blocks one after the other in this process."""
    return [score_block(Zq[s:s + rows], yq[s:s + rows], Zg, yg) for s in range(0, Zq.shape[0], rows)]


def evaluate(method: Method, ds: ZSDataset, ks=DEFAULT_KS, block_bytes: int = 256 * 2**20,
             keep_embeddings: bool = False, map_blocks=None) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """Score every task on the unseen classes. Returns (task -> metric -> value, details).

    Details hold per-task info (query/gallery counts, queries without relevant items) and, when asked,
    the unseen-class embeddings and labels per modality and part (for plots and re-scoring).
    ``map_blocks`` (default :func:`map_blocks_here`) scores the query blocks, elsewhere if it likes
    (``benchmark.executors`` spreads them over Ray workers); results come back in block order.
    """
    q_part, g_part = _query_gallery_parts(ds.eval_protocol)
    cache: dict[tuple[str, str | None], tuple[np.ndarray, np.ndarray]] = {}

    def embedded(modality: str, part: str | None):
        key = (modality, part)
        if key not in cache:
            idx = ds.items(modality, ds.unseen_classes, part)
            if idx.size == 0:
                raise ZSBenchError(f"dataset {ds.name!r}: no unseen-class {modality} items{f' in {part}' if part else ''}")
            Z = np.asarray(method.embed(modality, np.asarray(ds.features[modality][idx], dtype=np.float32)))
            if Z.ndim != 2 or Z.shape[0] != idx.size:
                raise ZSBenchError(f"{method.name}: embed({modality!r}) returned shape {Z.shape} for {idx.size} items")
            if not np.isfinite(Z).all():
                raise ZSBenchError(f"{method.name}: embed({modality!r}) returned NaN or inf embeddings; no record written")
            cache[key] = (Z, ds.labels[modality][idx])
        return cache[key]

    metrics: dict[str, dict[str, float]] = {}
    details: dict[str, Any] = {"tasks": {}}
    for q_mod, g_mod in ds.tasks:
        Zq, yq = embedded(q_mod, q_part)
        Zg, yg = embedded(g_mod, g_part)
        rows = max(1, block_bytes // (4 * max(1, Zg.shape[0])))
        score_block = functools.partial(_block_metrics, method.similarity, ks)
        blocks = (map_blocks or map_blocks_here)(score_block, Zq, yq, Zg, yg, rows)
        per_query = {k: np.concatenate([b[0][k] for b in blocks]) for k in blocks[0][0]}
        n_rel = np.concatenate([b[1] for b in blocks])
        keep = n_rel > 0
        task = f"{q_mod}->{g_mod}"
        metrics[task] = {k: float(v[keep].mean()) if keep.any() else float("nan") for k, v in per_query.items()}
        details["tasks"][task] = {"n_queries": int(yq.size), "n_gallery": int(yg.size),
                                  "queries_without_relevant": int((~keep).sum())}
    if keep_embeddings:
        details["embeddings"] = {f"{m}/{p or 'all'}": value for (m, p), value in cache.items()}
    return metrics, details
