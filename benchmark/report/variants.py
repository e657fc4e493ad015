"""The metric conventions of the peer codebases (docs/reference.md), re-implemented in pure numpy.

zsbench scores with one engine (``benchmark.metrics``): tie-aware sklearn AP for mAP@all, min(k, R)
denominators for mAP@k, hits/k for P@k, queries without relevant items left out, mean over queries. The
peers' tables were computed otherwise; these functions re-score the same similarity matrix their way, so
the report can show how far each convention alone moves a method's numbers.

Every function here takes a ``ranked_relevance`` matrix: row q holds, in ranked order, whether each
gallery item is relevant to query q. Ranking breaks ties by a fixed random permutation of the gallery,
never by storage order (galleries are stored class-sorted, so index order would leak the labels); only
:func:`ap_sklearn` looks at the scores themselves, because sklearn treats a tied block as one threshold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from benchmark.metrics import per_query_metrics

TIE_BREAK_SEED = 0


def rank(scores: np.ndarray, query_labels, gallery_labels, seed: int = TIE_BREAK_SEED):
    """(ranked relevance bool [q, g], ranked scores [q, g], number of relevant items per query [q])."""
    scores = np.asarray(scores, dtype=np.float64)
    q_lab = np.asarray(query_labels).reshape(-1)
    g_lab = np.asarray(gallery_labels).reshape(-1)
    shuffle = np.random.default_rng(seed).permutation(g_lab.size)
    order = shuffle[np.argsort(-scores[:, shuffle], axis=1, kind="stable")]
    relevant = q_lab[:, None] == g_lab[None, :]
    ranked_rel = np.take_along_axis(relevant, order, axis=1)
    ranked_scores = np.take_along_axis(scores, order, axis=1)
    return ranked_rel, ranked_scores, relevant.sum(axis=1)


def _precision_at_ranks(ranked_rel: np.ndarray) -> np.ndarray:
    return np.cumsum(ranked_rel, axis=1) / np.arange(1, ranked_rel.shape[1] + 1)


def ap_sklearn(ranked_rel: np.ndarray, ranked_scores: np.ndarray) -> np.ndarray:
    """sklearn ``average_precision_score`` per query; queries with no relevant item score 0 (SEM-PCYC).

    A tied block of scores is one threshold: every relevant item in it takes the precision at the
    block's end. The mean of those precisions over the relevant items is the AP.
    """
    n_q, n_g = ranked_rel.shape
    hits = np.cumsum(ranked_rel, axis=1)
    block_end = np.ones((n_q, n_g), dtype=bool)
    block_end[:, :-1] = ranked_scores[:, 1:] != ranked_scores[:, :-1]
    # for every rank, the index of the last rank of its tied block (a right-to-left running minimum)
    candidates = np.where(block_end, np.arange(n_g), n_g)
    end_index = np.minimum.accumulate(candidates[:, ::-1], axis=1)[:, ::-1]
    precision_at_end = np.take_along_axis(hits, end_index, axis=1) / (end_index + 1)
    n_rel = ranked_rel.sum(axis=1)
    total = (ranked_rel * precision_at_end).sum(axis=1)
    return np.where(n_rel > 0, total / np.maximum(n_rel, 1), 0.0)


def ap_voc_interpolated(ranked_rel: np.ndarray, n_relevant: np.ndarray, k: int | None = None) -> np.ndarray:
    """VOC all-point interpolated AP over the top k (all when None), divided by min(k, R) (SAKE, DSN, TCN).

    The interpolated precision at a rank is the highest precision at that rank or any later one (inside
    the top k); recall steps by 1 / min(k, R) at each relevant rank. Queries with R = 0 give NaN (skipped).
    """
    top = ranked_rel if k is None else ranked_rel[:, :k]
    precision = _precision_at_ranks(top)
    envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    denominator = n_relevant.astype(np.float64) if k is None else np.minimum(n_relevant, k).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_relevant > 0, (top * envelope).sum(axis=1) / denominator, np.nan)


def map_at_k_hits(ranked_rel: np.ndarray, k: int) -> np.ndarray:
    """Precision summed at the relevant ranks of the top k, divided by the hits inside the top k.

    This is sklearn's AP of the top-k slice (SEM-PCYC, Doodle2Search): a query with few hits near the top
    scores as well as one that fills its top k. No hit gives 0.
    """
    top = ranked_rel[:, :k]
    hits = top.sum(axis=1)
    total = (top * _precision_at_ranks(top)).sum(axis=1)
    return np.where(hits > 0, total / np.maximum(hits, 1), 0.0)


def map_at_k_over_k(ranked_rel: np.ndarray, k: int) -> np.ndarray:
    """Precision summed at the relevant ranks of the top k, divided by k (CVAE, IIAE, MDVAE)."""
    top = ranked_rel[:, :k]
    return (top * _precision_at_ranks(top)).sum(axis=1) / k


def precision_at_k(ranked_rel: np.ndarray, k: int, n_relevant: np.ndarray | None = None) -> np.ndarray:
    """Hits in the top k over k, or over min(k, R) when ``n_relevant`` is given (ZSE-SBIR)."""
    hits = ranked_rel[:, :k].sum(axis=1).astype(np.float64)
    if n_relevant is None:
        return hits / k
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_relevant > 0, hits / np.minimum(n_relevant, k), np.nan)


def average(values: np.ndarray, query_labels, per_class: bool = False) -> float:
    """Mean over queries, or over classes of the per-class means; NaN values (skipped queries) drop out."""
    values = np.asarray(values, dtype=np.float64)
    labels = np.asarray(query_labels).reshape(-1)
    keep = ~np.isnan(values)
    if not keep.any():
        return float("nan")
    if not per_class:
        return float(values[keep].mean())
    classes, inverse = np.unique(labels[keep], return_inverse=True)
    sums = np.bincount(inverse, weights=values[keep], minlength=classes.size)
    return float((sums / np.bincount(inverse, minlength=classes.size)).mean())


@dataclass(frozen=True)
class Convention:
    """One peer family's way of turning a similarity matrix into mAP@all, mAP@k and P@k.

    ``per_query`` returns per-query values (NaN = query skipped); ``per_class`` says how they are averaged.
    """

    name: str
    used_by: str
    description: str
    per_query: Callable[[np.ndarray, np.ndarray, np.ndarray, Sequence[int]], dict[str, np.ndarray]]
    per_class: bool = False


def _engine(scores, q_lab, g_lab, ks):
    return per_query_metrics(scores, q_lab, g_lab, ks=ks, workers=1)[0]


def _sklearn_zero(scores, q_lab, g_lab, ks):
    ranked_rel, ranked_scores, _ = rank(scores, q_lab, g_lab)
    out = {"mAP@all": ap_sklearn(ranked_rel, ranked_scores)}
    for k in ks:
        out[f"mAP@{k}"] = map_at_k_hits(ranked_rel, k)
        out[f"P@{k}"] = precision_at_k(ranked_rel, k)
    return out


def _voc(scores, q_lab, g_lab, ks, min_precision: bool = False):
    ranked_rel, _, n_rel = rank(scores, q_lab, g_lab)
    out = {"mAP@all": ap_voc_interpolated(ranked_rel, n_rel)}
    for k in ks:
        out[f"mAP@{k}"] = ap_voc_interpolated(ranked_rel, n_rel, k)
        precision = precision_at_k(ranked_rel, k, n_rel if min_precision else None)
        out[f"P@{k}"] = np.where(n_rel > 0, precision, np.nan)
    return out


def _precision_sum_over_k(scores, q_lab, g_lab, ks):
    ranked_rel, _, _ = rank(scores, q_lab, g_lab)
    out = {"mAP@all": np.full(q_lab.size, np.nan)}  # the convention defines only the top-k figures
    for k in ks:
        out[f"mAP@{k}"] = map_at_k_over_k(ranked_rel, k)
        out[f"P@{k}"] = precision_at_k(ranked_rel, k)
    return out


REFERENCE_CONVENTION = "zsbench"

CONVENTIONS: tuple[Convention, ...] = (
    Convention(REFERENCE_CONVENTION, "this benchmark",
               "tie-aware sklearn AP; mAP@k over min(k,R); P@k over k; queries without relevant items left out; "
               "mean over queries", _engine),
    Convention("sklearn-zero", "SEM-PCYC, Doodle2Search",
               "sklearn AP with queries without relevant items as 0; mAP@k over the hits inside the top k; "
               "mean over queries", _sklearn_zero),
    Convention("voc-per-class", "SAKE, DSN, TCN",
               "VOC all-point interpolated AP; mAP@k over min(k,R); P@k over k; queries without relevant items "
               "skipped; mean per class, then over classes", _voc, per_class=True),
    Convention("voc-min-precision", "ZSE-SBIR",
               "VOC all-point interpolated AP; mAP@k and P@k over min(k,R); mean over queries",
               lambda s, q, g, ks: _voc(s, q, g, ks, min_precision=True)),
    Convention("precision-sum/k", "CVAE, IIAE, MDVAE",
               "mAP@k = precision summed at the hits in the top k, over k; P@k over k; no mAP@all defined",
               _precision_sum_over_k),
)


def rescore(scores, query_labels, gallery_labels, ks: Sequence[int] = (100, 200),
            max_pairs: int = 4_000_000) -> dict[str, dict[str, float]]:
    """Every convention's metrics for one similarity matrix: convention name -> metric -> value.

    Queries go through in chunks of at most ``max_pairs`` (query, gallery) pairs to bound memory.
    """
    q_lab = np.asarray(query_labels).reshape(-1)
    g_lab = np.asarray(gallery_labels).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64)
    rows = max(1, max_pairs // max(1, g_lab.size))
    out: dict[str, dict[str, float]] = {}
    for convention in CONVENTIONS:
        chunks = [convention.per_query(scores[s:s + rows], q_lab[s:s + rows], g_lab, tuple(ks))
                  for s in range(0, q_lab.size, rows)]
        out[convention.name] = {name: average(np.concatenate([c[name] for c in chunks]), q_lab, convention.per_class)
                                for name in chunks[0]}
    return out
