"""The oracle protocol, measured and labelled: what choosing on the test classes would have added.

The released codes of several methods of the field pick the epoch (and some a post-processing) by the test
classes' score. zsbench never does; to show what that practice is worth, a run may opt in to an **oracle
curve** (``zsbench run --oracle-every N``): every N epochs the test tasks are scored on the model as it
stands, raw and after each post-processing the released codes try, and the scores go into the record's
``oracle`` field. That field is never a result: the run's own metrics are those of the last model, exactly as
without the option (scoring embeds the test items, which changes no training state: the contract tests check
it); tuning refuses records that carry it; and the only reader is the report's table "What test-set selection
adds". The run's identity carries ``oracle_every``, so it never replaces or doubles a plain run.

Post-processings:
- ``raw``: the embeddings as the method returns them;
- ``test z-score``: each modality's embeddings standardised with the mean and standard deviation of that
  modality's *test* items (JFSE's release does this before its cosine ranking), then the method's similarity.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from benchmark.contract import Method
from benchmark.core.data import ZSDataset
from benchmark.core.protocol import evaluate

POST_PROCESSINGS = ("raw", "test z-score")
#: Kept in every oracle record beside the curve.
ORACLE_NOTE = ("test-class scores during training, for the 'What test-set selection adds' table only: never a "
               "result, never used for selection")
#: The honest number of a run, the best over its oracle epochs, and the best over epochs and post-processings.
HONEST, BEST_EPOCH, BEST_POST = "last model", "best epoch on test", "best epoch and post-processing on test"


class _TestZScored:
    """A fitted method seen through per-modality z-scoring with the statistics of the test items."""

    def __init__(self, method: Method, ds: ZSDataset):
        self.method, self.name, self.similarity = method, method.name, method.similarity
        self.stats = {}
        for m in ds.modalities:
            idx = ds.items(m, ds.unseen_classes, None)
            Z = np.asarray(method.embed(m, np.asarray(ds.features[m][idx], dtype=np.float32)), dtype=np.float64)
            self.stats[m] = (Z.mean(axis=0), np.where(Z.std(axis=0) > 0, Z.std(axis=0), 1.0))

    def embed(self, modality: str, X: np.ndarray) -> np.ndarray:
        mean, std = self.stats[modality]
        Z = np.asarray(self.method.embed(modality, X), dtype=np.float64)
        return ((Z - mean) / std).astype(np.float32)


def score_on_test(method: Method, ds: ZSDataset) -> dict[str, dict[str, float]]:
    """post-processing -> task -> mAP@all of the model as it stands, on the test (unseen) classes of ``ds``."""
    views = {"raw": method, "test z-score": _TestZScored(method, ds)}
    return {name: {task: values["mAP@all"] for task, values in evaluate(view, ds)[0].items()}
            for name, view in views.items()}


def oracle_hook(method: Method, ds: ZSDataset, every: int, curve: list[dict[str, Any]],
                fit_label: str | None = None) -> Callable[[int, dict], None]:
    """An epoch hook that appends the test scores of every ``every``-th epoch to ``curve`` and adds nothing to
    the training log (the oracle is kept apart from everything a result is made of)."""

    def hook(epoch: int, entry: dict) -> None:
        if (epoch + 1) % every:
            return None
        point = {"epoch": epoch, **score_on_test(method, ds)}
        curve.append(point if fit_label is None else {"modalities": fit_label, **point})
        return None

    return hook


def _per_epoch_means(curve: Sequence[dict[str, Any]], post: str) -> list[float]:
    """Mean mAP@all over the record's tasks at each oracle epoch (fits of one run aligned by their order)."""
    fits: dict[Any, list[dict[str, float]]] = {}
    for point in curve:
        fits.setdefault(point.get("modalities"), []).append(point[post])
    n = min((len(points) for points in fits.values()), default=0)
    return [float(np.mean([v for points in fits.values() for v in points[i].values()])) for i in range(n)]


def oracle_numbers(record_metrics: dict[str, dict[str, float]], oracle: dict[str, Any]) -> dict[str, float]:
    """One run's three numbers (mean mAP@all over its tasks): the last model's, the best over its oracle epochs
    and the last model (raw), and the best over epochs, the last model and every post-processing."""
    honest = float(np.mean([m["mAP@all"] for m in record_metrics.values()]))
    curve = oracle.get("curve", [])
    best_epoch = max([honest, *_per_epoch_means(curve, "raw")])
    best_post = max([best_epoch, *(v for post in POST_PROCESSINGS for v in _per_epoch_means(curve, post))])
    return {HONEST: honest, BEST_EPOCH: best_epoch, BEST_POST: best_post}
