"""The zero-shot protocol: what a method may see, and what it is scored on.

:class:`ZSDataset` holds a whole dataset (every class). :func:`build_train_view` cuts the seen-class
training part out of it (minus a seen-class validation hold-out) and checks that no unseen-class sample got
in; :func:`evaluate` embeds the queries and gallery of every task and scores them with the one metric engine,
a block of queries at a time so the score matrix is never held whole.

What is scored depends on the dataset's scenario (:func:`scenario_items`): ``zero-shot``, the unseen classes
under the dataset's evaluation protocol; ``standard``, the seen classes' test items
(``ZSDataset.seen_test_items``) against each other; ``generalized``, those together with the unseen classes'
test items (the test part where the data has parts, every unseen item otherwise), as query set and gallery
alike. In the last two, training never sees a seen-class test item.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from benchmark.contract import LeakageError, Method, TrainView, ZSBenchError
from benchmark.core.data import (  # noqa: F401 - re-exported for callers of the protocol
    DEFAULT_SCENARIO,
    PART_IDS,
    SCENARIOS,
    SOURCES,
    ZSDataset,
)
from benchmark.metrics import DEFAULT_KS, per_query_metrics, role_metrics


def _query_gallery_parts(protocol: str) -> tuple[str | None, str | None]:
    if protocol == "all":
        return None, None
    if protocol == "test->train":
        return "test", "train"
    raise ZSBenchError(f"unknown evaluation protocol {protocol!r}")


def scenario_items(ds: ZSDataset, modality: str, role: str) -> np.ndarray:
    """Sorted indices of the items of ``modality`` that ``ds``'s scenario scores as ``role`` (``query`` or
    ``gallery``)."""
    if ds.scenario == DEFAULT_SCENARIO:
        q_part, g_part = _query_gallery_parts(ds.eval_protocol)
        return ds.items(modality, ds.unseen_classes, q_part if role == "query" else g_part)
    seen = ds.seen_test_items(modality)
    if ds.scenario == "standard":
        return seen
    unseen = ds.items(modality, ds.unseen_classes, "test" if ds.parts is not None else None)
    return np.union1d(seen, unseen)


def build_train_view(ds: ZSDataset) -> TrainView:
    """Seen-class training samples (train part when the dataset has parts), minus a sample hold-out.

    The hold-out is a fixed fraction of the seen-class *samples* drawn with the split's own seed, the same
    for every method and run, for early stopping; for paired data one draw serves all modalities and keeps
    the pairs. It holds classes the method trains on, so it says nothing about transfer to new classes:
    model selection uses :meth:`ZSDataset.selection_view` (validation classes) instead. In the standard and
    generalized scenarios the seen classes' test items are left out before the hold-out is drawn.
    """
    train_part = "train" if ds.parts is not None else None
    rng = np.random.default_rng(ds.split.holdout_seed)
    features, labels, val_features, val_labels = {}, {}, {}, {}
    shared_perm = None
    for m in ds.modalities:
        idx = ds.items(m, ds.seen_classes, train_part)
        tested = ds.seen_test_items(m) if ds.scenario != DEFAULT_SCENARIO else np.zeros(0, dtype=np.int64)
        idx = np.setdiff1d(idx, tested)
        if ds.paired:
            shared_perm = rng.permutation(idx.size) if shared_perm is None else shared_perm
            perm = shared_perm
        else:
            perm = rng.permutation(idx.size)
        n_val = int(round(ds.split.holdout_fraction * idx.size))
        val_idx, train_idx = np.sort(idx[perm[:n_val]]), np.sort(idx[perm[n_val:]])
        if np.isin(train_idx, tested).any() or np.isin(val_idx, tested).any():
            raise LeakageError(f"train view of {ds.name!r} holds seen-class test items of the {ds.scenario} scenario")
        features[m] = np.array(ds.features[m][train_idx], dtype=np.float32)
        labels[m] = ds.labels[m][train_idx].astype(np.int64)
        val_features[m] = np.array(ds.features[m][val_idx], dtype=np.float32)
        val_labels[m] = ds.labels[m][val_idx].astype(np.int64)
    view = TrainView(
        modalities=ds.modalities, features=features, labels=labels, class_names=ds.class_names,
        class_embeddings=np.array(ds.class_embeddings, dtype=np.float32), seen_classes=ds.seen_classes.copy(),
        unseen_classes=ds.unseen_classes.copy(), holdout_features=val_features, holdout_labels=val_labels,
        paired=ds.paired, tasks=ds.tasks,
    )
    check_no_leakage(view, ds.unseen_classes)
    return view


def check_no_leakage(view: TrainView, unseen_classes: np.ndarray) -> None:
    """The guard: a train view holding any unseen-class sample (train or hold-out part) is an error."""
    for part, labels in (("train", view.labels), ("hold-out", view.holdout_labels)):
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
    """Score every task in the dataset's scenario. Returns (task -> metric -> value, details).

    Details hold per-task info (query/gallery/class counts, queries without relevant items), in the
    generalized scenario the seen-query and unseen-query parts of every metric and their harmonic mean
    (``roles``: task -> seen/unseen/harmonic -> metric -> value), every query's
    metrics (``per_query``: task -> class ids, relevant counts and one array per metric, in query order;
    a task's mean is the mean over its queries that have a relevant item) and, when asked, the
    embeddings and labels per modality and part (zero-shot: the unseen classes' ``train``/``test``/``all``;
    other scenarios: the scenario's set, named after it), for plots and re-scoring.
    ``map_blocks`` (default :func:`map_blocks_here`) scores the query blocks, elsewhere if it likes
    (``benchmark.execution.executors`` spreads them over Ray workers); results come back in block order.
    """
    zero_shot = ds.scenario == DEFAULT_SCENARIO
    q_part, g_part = _query_gallery_parts(ds.eval_protocol) if zero_shot else (ds.scenario, ds.scenario)
    cache: dict[tuple[str, str | None], tuple[np.ndarray, np.ndarray]] = {}

    def embedded(modality: str, part: str | None, role: str):
        key = (modality, part)
        if key not in cache:
            idx = scenario_items(ds, modality, role)
            if idx.size == 0:
                what = "unseen-class" if zero_shot else f"{ds.scenario}-scenario"
                raise ZSBenchError(f"dataset {ds.name!r}: no {what} {modality} items{f' in {part}' if part else ''}")
            Z = np.asarray(method.embed(modality, np.asarray(ds.features[modality][idx], dtype=np.float32)))
            if Z.ndim != 2 or Z.shape[0] != idx.size:
                raise ZSBenchError(f"{method.name}: embed({modality!r}) returned shape {Z.shape} for {idx.size} items")
            if not np.isfinite(Z).all():
                raise ZSBenchError(f"{method.name}: embed({modality!r}) returned NaN or inf embeddings; no record written")
            cache[key] = (Z, ds.labels[modality][idx])
        return cache[key]

    metrics: dict[str, dict[str, float]] = {}
    details: dict[str, Any] = {"tasks": {}, "per_query": {}}
    if ds.scenario == "generalized":
        details["roles"] = {}
    for q_mod, g_mod in ds.tasks:
        Zq, yq = embedded(q_mod, q_part, "query")
        Zg, yg = embedded(g_mod, g_part, "gallery")
        rows = max(1, block_bytes // (4 * max(1, Zg.shape[0])))
        score_block = functools.partial(_block_metrics, method.similarity, ks)
        blocks = (map_blocks or map_blocks_here)(score_block, Zq, yq, Zg, yg, rows)
        per_query = {k: np.concatenate([b[0][k] for b in blocks]) for k in blocks[0][0]}
        n_rel = np.concatenate([b[1] for b in blocks])
        keep = n_rel > 0
        task = f"{q_mod}->{g_mod}"
        metrics[task] = {k: float(v[keep].mean()) if keep.any() else float("nan") for k, v in per_query.items()}
        details["tasks"][task] = {"n_queries": int(yq.size), "n_gallery": int(yg.size),
                                  "n_classes": int(np.unique(yq).size),
                                  "queries_without_relevant": int((~keep).sum())}
        details["per_query"][task] = {"class_id": np.asarray(yq), "n_relevant": n_rel, **per_query}
        if "roles" in details:
            details["roles"][task] = role_metrics(per_query, n_rel, np.isin(yq, ds.seen_classes))
    if keep_embeddings:
        details["embeddings"] = {f"{m}/{p or 'all'}": value for (m, p), value in cache.items()}
    return metrics, details
