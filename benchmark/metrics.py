"""Retrieval metrics: pure, vectorised, tie-aware, chunked over queries.

Relevance is binary (gallery label == query label). Every metric is a function of the score matrix and the
labels only, never of the order in which the gallery happens to be stored: galleries are often stored
class-sorted, so an index-order tie-break would leak the labels.

- ``mAP@all``: non-interpolated average precision over the whole gallery with tied scores forming one
  threshold, exactly ``sklearn.metrics.average_precision_score(gallery_labels == q, scores[q])``.
- ``mAP@k``: sum over ranks i <= k of precision@i at relevant ranks, divided by min(k, R), R being the
  query's number of relevant items; ``P@k``: relevant items in the top k divided by k. Both are the exact
  expectation over all orderings of tied scores (McSherry & Najork, ECIR 2008), in closed form.
- ``R-precision``: relevant items in the top R divided by R (precision at R, the query's number of relevant
  items), the same expectation over tied orders; a perfect ranking scores 1, where P@k's best is the mean of
  min(k, R) / k. Records written before it was added lack the key; their other values are unchanged.

Closed form for the expected mAP@k. Take a tied block at ranks a+1..a+n holding m relevant items, with c
relevant items ranked before it. Under a uniformly random order inside the block, the item at rank a+t is
relevant with probability m/n, and given that, the expected number of relevant items at ranks a+1..a+t-1 is
(t-1)(m-1)/(n-1). So rank a+t contributes, in expectation,
    [ (m/n) (c + 1) + (t-1) m (m-1) / (n (n-1)) ] / (a + t)
to the precision sum; with n = 1 this is rel * (c + 1) / (a + 1), the untied formula.

Queries without any relevant item have no defined AP: they are left out of every mean and counted in the
info dict that :func:`retrieval_metrics_with_info` returns.

Generalized zero-shot retrieval (queries and gallery of seen and unseen classes) reports, as generalized
zero-shot learning does (Xian et al., TPAMI 2019), each metric over the seen-class queries (s), over the
unseen-class queries (u) and their harmonic mean 2su / (s + u) (:func:`role_metrics`), which is high only
when both are: a method that ranks its training classes well and new classes badly scores low.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["retrieval_metrics", "retrieval_metrics_with_info", "per_query_metrics", "harmonic_mean", "role_metrics",
           "DEFAULT_KS"]

DEFAULT_KS: tuple[int, ...] = (100, 200)

# Bytes of working memory per (query, gallery item) pair inside a chunk: the float32 view, the uint32 keys,
# their sorted copy and its uint64 form.
_BYTES_PER_PAIR = 32
_DEFAULT_MEMORY_BUDGET = 256 * 2**20


def _validate(scores, query_labels, gallery_labels, ks):
    if hasattr(scores, "detach"):  # a torch tensor
        scores = scores.detach().cpu().numpy()
    scores = np.asarray(scores)
    if scores.dtype.kind != "f":
        scores = scores.astype(np.float64)
    q_lab = np.asarray(query_labels).reshape(-1).astype(np.int64)
    g_lab = np.asarray(gallery_labels).reshape(-1).astype(np.int64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be a 2-d (queries x gallery) matrix, got shape {scores.shape}")
    if scores.shape != (q_lab.size, g_lab.size):
        raise ValueError(
            f"scores shape {scores.shape} does not match {q_lab.size} query labels x {g_lab.size} gallery labels"
        )
    if g_lab.size == 0:
        raise ValueError("the gallery is empty")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or inf: check the method's embeddings")
    ks = tuple(int(k) for k in ks)
    if any(k < 1 for k in ks):
        raise ValueError(f"every k must be >= 1, got {ks}")
    return scores, q_lab, g_lab, ks


def _descending_keys(scores: np.ndarray) -> np.ndarray:
    """uint32 keys whose ascending order is the scores' descending order, equal keys for equal scores.

    float32 scores map bit-wise (an order-preserving integer view); other scores that are not exactly
    float32 get dense ranks within the chunk, which keep order and ties just the same.
    """
    exact32 = scores.dtype in (np.float16, np.float32) or bool(
        (scores.astype(np.float32).astype(scores.dtype) == scores).all()
    )
    if not exact32:
        _, dense = np.unique(-scores, return_inverse=True)
        return dense.reshape(scores.shape).astype(np.uint32)
    # Adding 0.0 folds -0.0 into +0.0. For a float's bits u: a positive float's lower 31 bits are flipped
    # (larger score -> smaller key, top bit 0), a negative float's bits are kept (top bit 1, more negative
    # -> larger key). In place, with one temporary.
    bits = np.add(scores, np.float32(0.0), dtype=np.float32).view(np.uint32)
    flip = bits >> np.uint32(31)
    flip -= np.uint32(1)
    flip &= np.uint32(0x7FFFFFFF)
    bits ^= flip
    return bits


def _chunk_metrics(scores: np.ndarray, q_lab: np.ndarray, g_lab: np.ndarray, ks: Sequence[int]):
    """Per-query metrics for one chunk of queries. Returns (dict name -> float64 array[q], R array[q]).

    Only values are sorted, never permutations (a value sort is several times faster): each row's keys
    are sorted, and so are the keys of its relevant items; counts of items ranked at or above a key then
    come from binary searches. Adding row << 32 to the uint32 keys makes the whole chunk one sorted 1-d
    array, so one searchsorted call serves every row.
    """
    keys = _descending_keys(scores)
    n_q, n_g = keys.shape
    row_offset = np.arange(n_q, dtype=np.uint64)[:, None] << np.uint64(32)
    ranked = np.sort(keys, axis=1).astype(np.uint64)
    ranked += row_offset
    ranked = ranked.ravel()
    row_base = np.arange(n_q, dtype=np.int64)[:, None] * n_g

    kmax = min(max(ks), n_g)
    top = ranked.reshape(n_q, n_g)[:, :kmax]
    # For each of the top ranks, the ranks strictly above its tied block, and those above or inside it.
    top_before = np.searchsorted(ranked, top, side="left") - row_base
    top_through = np.searchsorted(ranked, top, side="right") - row_base

    n_rel = np.zeros(n_q, dtype=np.int64)
    ap_all = np.zeros(n_q)
    rel_before = np.zeros((n_q, kmax), dtype=np.int64)
    rel_through = np.zeros((n_q, kmax), dtype=np.int64)
    r_precision = np.zeros(n_q)
    for label in np.unique(q_lab):
        rows = np.flatnonzero(q_lab == label)
        cols = np.flatnonzero(g_lab == label)
        if cols.size == 0:
            continue
        rel_keys = np.sort(keys[np.ix_(rows, cols)], axis=1).astype(np.uint64)
        rel_keys += row_offset[rows]
        rel_flat = rel_keys.ravel()
        rel_base = np.arange(rows.size, dtype=np.int64)[:, None] * cols.size
        # sklearn's AP: each relevant item takes the precision at the end of its tied block.
        rel_at_or_above = np.searchsorted(rel_flat, rel_keys, side="right") - rel_base
        all_at_or_above = np.searchsorted(ranked, rel_keys, side="right") - row_base[rows]
        ap_all[rows] = (rel_at_or_above / all_at_or_above).mean(axis=1)
        rel_before[rows] = np.searchsorted(rel_flat, top[rows], side="left") - rel_base
        rel_through[rows] = np.searchsorted(rel_flat, top[rows], side="right") - rel_base
        n_rel[rows] = cols.size
        # R-precision: relevant items in the top R (R = this class's relevant count), expected over the orders
        # of the tied block that holds rank R: those above it, plus its share of the block's relevant items.
        r, base = cols.size, row_base[rows, 0]
        key_r = ranked[base + r - 1]
        all_before = np.searchsorted(ranked, key_r, side="left") - base
        all_through = np.searchsorted(ranked, key_r, side="right") - base
        rel_above = np.searchsorted(rel_flat, key_r, side="left") - rel_base[:, 0]
        rel_block = np.searchsorted(rel_flat, key_r, side="right") - rel_base[:, 0] - rel_above
        r_precision[rows] = (rel_above + (r - all_before) * rel_block / (all_through - all_before)) / r

    positions = np.arange(1, kmax + 1)
    block_n = (top_through - top_before).astype(np.float64)
    block_m = (rel_through - rel_before).astype(np.float64)
    p_rel = block_m / block_n  # probability that the item at this rank is relevant
    pair_term = np.where(block_n > 1, block_m * (block_m - 1.0) / np.maximum(block_n * (block_n - 1), 1), 0.0)
    expected_prec_sum = (p_rel * (rel_before + 1) + (positions - 1 - top_before) * pair_term) / positions
    ap_cum = expected_prec_sum.cumsum(axis=1)
    hits_cum = p_rel.cumsum(axis=1)
    safe_r = np.maximum(n_rel, 1).astype(np.float64)
    out: dict[str, np.ndarray] = {"mAP@all": ap_all, "R-precision": r_precision}
    for k in ks:
        kk = min(k, n_g)
        out[f"mAP@{k}"] = ap_cum[:, kk - 1] / np.minimum(safe_r, float(k))
        out[f"P@{k}"] = hits_cum[:, kk - 1] / k
    return out, n_rel


def per_query_metrics(scores, query_labels, gallery_labels, ks: Sequence[int] = DEFAULT_KS,
                      memory_budget: int = _DEFAULT_MEMORY_BUDGET,
                      workers: int | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Every metric for every query, plus each query's number of relevant gallery items.

    Queries without relevant items get NaN. Work is chunked over queries so that the working memory stays
    near ``memory_budget`` bytes whatever the gallery size; chunks run on ``workers`` threads (numpy
    releases the GIL while sorting), each with its share of the budget.
    """
    scores, q_lab, g_lab, ks = _validate(scores, query_labels, gallery_labels, ks)
    n_q, n_g = scores.shape
    names = ["mAP@all"] + [f"{m}@{k}" for k in ks for m in ("mAP", "P")] + ["R-precision"]
    if n_q == 0:
        return {n: np.zeros(0) for n in names}, np.zeros(0, dtype=np.int64)
    workers = max(1, min(workers or os.cpu_count() or 1, 8))
    chunk = max(1, int(memory_budget // (workers * _BYTES_PER_PAIR * n_g)))
    starts = range(0, n_q, chunk)

    def run(start: int):
        stop = min(start + chunk, n_q)
        return _chunk_metrics(scores[start:stop], q_lab[start:stop], g_lab, ks)

    if workers == 1 or len(starts) == 1:
        results = [run(s) for s in starts]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(run, starts))
    n_rel = np.concatenate([r[1] for r in results])
    per_query = {n: np.concatenate([r[0][n] for r in results]) for n in names}
    for values in per_query.values():
        values[n_rel == 0] = np.nan
    return per_query, n_rel


def retrieval_metrics_with_info(scores, query_labels, gallery_labels, ks: Sequence[int] = DEFAULT_KS,
                                average: str = "micro") -> tuple[dict[str, float], dict[str, int]]:
    """Metrics averaged over queries (``micro``) or over classes (``macro``), and an info dict.

    The info dict holds ``n_queries``, ``n_gallery`` and ``queries_without_relevant`` (queries left out
    of the means because no gallery item shares their label).
    """
    if average not in ("micro", "macro"):
        raise ValueError(f"average must be 'micro' or 'macro', got {average!r}")
    per_query, n_rel = per_query_metrics(scores, query_labels, gallery_labels, ks)
    q_lab = np.asarray(query_labels).reshape(-1)
    keep = n_rel > 0
    info = {
        "n_queries": int(q_lab.size),
        "n_gallery": int(np.asarray(gallery_labels).size),
        "queries_without_relevant": int((~keep).sum()),
    }
    metrics: dict[str, float] = {}
    for name, values in per_query.items():
        v, lab = values[keep], q_lab[keep]
        if v.size == 0:
            metrics[name] = float("nan")
        elif average == "micro":
            metrics[name] = float(v.mean())
        else:
            classes, inverse = np.unique(lab, return_inverse=True)
            sums = np.bincount(inverse, weights=v, minlength=classes.size)
            counts = np.bincount(inverse, minlength=classes.size)
            metrics[name] = float((sums / counts).mean())
    return metrics, info


def retrieval_metrics(scores, query_labels, gallery_labels, ks: Sequence[int] = DEFAULT_KS,
                      average: str = "micro") -> dict[str, float]:
    """``{"mAP@all", "mAP@k", "P@k" for each k}`` averaged over queries or classes; see the module doc."""
    return retrieval_metrics_with_info(scores, query_labels, gallery_labels, ks, average)[0]


def harmonic_mean(seen: float, unseen: float) -> float:
    """2su / (s + u); 0 when both are 0, NaN when either is NaN."""
    if np.isnan(seen) or np.isnan(unseen):
        return float("nan")
    total = seen + unseen
    return 0.0 if total == 0 else float(2 * seen * unseen / total)


def role_metrics(per_query: dict[str, np.ndarray], n_relevant: np.ndarray,
                 seen_query: np.ndarray) -> dict[str, dict[str, float]]:
    """The seen-query and unseen-query means of every per-query metric and their harmonic mean:
    ``{"seen": {...}, "unseen": {...}, "harmonic": {...}}``. ``seen_query`` marks the queries of seen classes;
    queries without a relevant item are left out, as in every mean."""
    seen_query = np.asarray(seen_query, dtype=bool)
    keep = np.asarray(n_relevant) > 0
    out: dict[str, dict[str, float]] = {"seen": {}, "unseen": {}, "harmonic": {}}
    for name, values in per_query.items():
        for role, mask in (("seen", keep & seen_query), ("unseen", keep & ~seen_query)):
            out[role][name] = float(values[mask].mean()) if mask.any() else float("nan")
        out["harmonic"][name] = harmonic_mean(out["seen"][name], out["unseen"][name])
    return out
