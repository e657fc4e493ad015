"""Benchmarks that print figures (speed and memory targets are measured here, never in timed tests)."""

from __future__ import annotations

import time
import tracemalloc
from dataclasses import dataclass

import numpy as np

from benchmark.metrics import retrieval_metrics


@dataclass
class MetricsPerf:
    n_queries: int
    n_gallery: int
    n_classes: int
    engine_s: float
    sklearn_s: float
    sklearn_queries_timed: int
    peak_extra_mb: float
    max_abs_diff: float

    @property
    def ratio(self) -> float:
        return self.sklearn_s / self.engine_s


def perf_metrics(n_queries: int = 2400, n_gallery: int = 27989, n_classes: int = 30, sklearn_queries: int | None = None,
                 seed: int = 0) -> MetricsPerf:
    """Time the engine's mAP@all against the peers' per-query ``average_precision_score`` loop.

    The sklearn loop is timed on ``sklearn_queries`` queries (all by default) and scaled to the full set;
    the engine's extra memory is its peak traced allocation beyond the inputs (numpy reports to tracemalloc).
    """
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(seed)
    query_labels = rng.integers(0, n_classes, n_queries)
    gallery_labels = rng.integers(0, n_classes, n_gallery)
    # Scores with a class signal, rounded so that ties occur as they do with low-precision embeddings.
    scores = rng.standard_normal((n_queries, n_gallery)).astype(np.float32)
    scores += 0.5 * (query_labels[:, None] == gallery_labels[None, :])
    scores = np.round(scores, 3)

    tracemalloc.start()
    t0 = time.perf_counter()
    retrieval_metrics(scores, query_labels, gallery_labels)
    engine_s = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    timed = n_queries if sklearn_queries is None else min(sklearn_queries, n_queries)
    t0 = time.perf_counter()
    aps = [average_precision_score(gallery_labels == query_labels[q], scores[q]) for q in range(timed)]
    sklearn_s = (time.perf_counter() - t0) * n_queries / timed
    reference = retrieval_metrics(scores[:timed], query_labels[:timed], gallery_labels)["mAP@all"]
    return MetricsPerf(n_queries, n_gallery, n_classes, engine_s, sklearn_s, timed, peak / 2**20,
                       abs(float(np.mean(aps)) - reference))
