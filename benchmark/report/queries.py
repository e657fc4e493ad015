"""Per-query results of run records, and the statistics the report draws from them.

Each run may keep a per-query sidecar beside its record, ``<record stem>.queries.parquet`` (or the name in
the record's ``queries_file``): one row per query per task with the columns ``task``, ``fit``, ``query``
(the query's position among the task's queries), ``class_id``, ``class_name``, ``n_relevant`` and one float
column per metric key of the record (``mAP@all``, ``mAP@100``, ...). The record's ``metrics[task][k]`` is
the mean of column ``k`` over the task's rows with ``n_relevant > 0``; the reader checks that, so a stale
sidecar is an error rather than a silent mismatch.

For one table (a group, a task, one section of rows) :func:`table_statistics` gives every cell's 95 %
two-level bootstrap interval and, per metric column, the paired comparisons of the best row against every
other row, Holm-corrected over every comparison of the table (:mod:`benchmark.core.stats`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from benchmark.contract import ZSBenchError
from benchmark.core.stats import ALPHA, N_RESAMPLES, Comparison, Interval, adjust, bootstrap_ci, compare
from benchmark.report.records import Run

REQUIRED_COLUMNS = ("task", "fit", "query", "class_id", "class_name", "n_relevant")
_CACHE: dict[tuple[str, float], object] = {}  # sidecar (path, mtime) -> frame
_CHECKED: set[tuple[str, float, str]] = set()  # ... and the record metrics it was checked against


def load_queries(run: Run):
    """The run's per-query table (a pandas DataFrame), or None when the run has no sidecar."""
    import pandas as pd

    path = run.queries_path
    if path is None:
        return None
    key = (str(path), path.stat().st_mtime)
    if key not in _CACHE:
        try:
            frame = pd.read_parquet(path)
        except (OSError, ValueError) as err:
            raise ZSBenchError(f"per-query sidecar {path} is unreadable ({err}); rerun its record with --force") from None
        missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
        if missing:
            raise ZSBenchError(f"per-query sidecar {path} lacks the column(s) {missing}; rerun its record with --force")
        _CACHE[key] = frame
    checked = (*key, json.dumps(run.metrics, sort_keys=True))
    if checked not in _CHECKED:
        _check_against_record(run, _CACHE[key], path)
        _CHECKED.add(checked)
    return _CACHE[key]


def _check_against_record(run: Run, frame, path) -> None:
    for task, metrics in run.metrics.items():
        rows = frame[(frame["task"] == task) & (frame["n_relevant"] > 0)]
        for metric, value in metrics.items():
            if metric not in frame.columns or value is None:
                continue
            mean = float(rows[metric].mean()) if len(rows) else float("nan")
            if not (np.isnan(mean) and np.isnan(value)) and abs(mean - value) > 1e-9 * max(1.0, abs(value)):
                raise ZSBenchError(f"per-query sidecar {path}: mean {metric} of {task} is {mean:.6f}, the record says "
                                   f"{value:.6f}; the sidecar is stale: rerun the record with --force")


def per_query(run: Run, task: str, metric: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(query positions, values) of one run, task and metric, queries with relevant items only; None without
    a sidecar or without that metric."""
    frame = load_queries(run)
    if frame is None or metric not in frame.columns:
        return None
    rows = frame[(frame["task"] == task) & (frame["n_relevant"] > 0)].sort_values("query")
    return rows["query"].to_numpy(np.int64), rows[metric].to_numpy(np.float64)


def seed_matrix(runs: list[Run], task: str, metric: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(query positions, seeds x queries values) of one row (the runs of one label); None unless every seed
    has per-query data."""
    columns, values = None, []
    for run in sorted(runs, key=lambda r: r.seed):
        got = per_query(run, task, metric)
        if got is None:
            return None
        queries, v = got
        if columns is None:
            columns = queries
        elif not np.array_equal(columns, queries):
            raise ZSBenchError(f"per-query sidecars of {run.label} ({task}) hold different queries across seeds; "
                               f"{run.queries_path} differs from the first seed's")
        values.append(v)
    return (columns, np.stack(values)) if values else None


def same_queries(label_a: str, ids_a: np.ndarray, label_b: str, ids_b: np.ndarray, task: str) -> None:
    if not np.array_equal(ids_a, ids_b):
        raise ZSBenchError(f"per-query results of {label_a} and {label_b} ({task}) hold different queries; the records "
                           f"do not come from the same data: rerun them with --force")


@dataclass
class TableStats:
    """Intervals and paired comparisons of one table section (one group, task and selection)."""

    intervals: dict[str, dict[str, Interval]] = field(default_factory=dict)  # label -> metric -> interval
    best: dict[str, str] = field(default_factory=dict)  # metric -> best label (by mean)
    comparisons: dict[str, list[Comparison]] = field(default_factory=dict)  # metric -> best vs each other row
    missing: list[str] = field(default_factory=list)  # labels without per-query data

    def top(self, metric: str, alpha: float = ALPHA) -> set[str]:
        """The best row and every row not significantly worse than it (Holm-adjusted p >= alpha)."""
        if metric not in self.best:
            return set()
        return {self.best[metric]} | {c.b for c in self.comparisons.get(metric, []) if not c.significant(alpha)}


def table_statistics(runs: list[Run], task: str, metrics: tuple[str, ...], n_resamples: int = N_RESAMPLES,
                     seed: int = 0) -> TableStats:
    """Intervals for every row with per-query data, and best-vs-rest tests per metric (p-values unadjusted
    until :func:`adjust_family` corrects the table's whole family)."""
    by_label: dict[str, list[Run]] = {}
    for run in runs:
        if task in run.metrics:
            by_label.setdefault(run.label, []).append(run)
    stats = TableStats()
    matrices: dict[str, dict[str, np.ndarray]] = {}
    ids: dict[str, np.ndarray] = {}
    for label, members in sorted(by_label.items()):
        for metric in metrics:
            got = seed_matrix(members, task, metric)
            if got is None:
                if label not in stats.missing:
                    stats.missing.append(label)
                continue
            ids.setdefault(label, got[0])
            matrix = got[1]
            matrices.setdefault(metric, {})[label] = matrix
            stats.intervals.setdefault(label, {})[metric] = bootstrap_ci(matrix, n_resamples, seed=seed)
    for metric, rows in matrices.items():
        if len(rows) < 2:
            continue
        best = max(rows, key=lambda label: (rows[label].mean(), label))
        stats.best[metric] = best
        for label in rows:
            same_queries(best, ids[best], label, ids[label], task)
        stats.comparisons[metric] = [compare(best, rows[best], label, matrix, n_resamples, seed=seed)
                                     for label, matrix in sorted(rows.items()) if label != best]
    return stats


def adjust_family(tables: list[TableStats]) -> int:
    """Holm-adjust every comparison of ``tables`` as one family (in place); returns the family's size."""
    family = [(t, metric, i) for t in tables for metric, comps in t.comparisons.items() for i in range(len(comps))]
    adjusted = adjust([t.comparisons[metric][i] for t, metric, i in family])
    for (t, metric, i), comparison in zip(family, adjusted, strict=True):
        t.comparisons[metric][i] = comparison
    return len(family)


def pk_ceilings(runs: list[Run], task: str, ks) -> dict[int, float] | None:
    """The best P@k any ranking can reach on this task's gallery: the mean over queries (with a relevant item)
    of min(k, R) / k, R the query's relevant items, from the first run with a per-query sidecar; None without."""
    for run in runs:
        frame = load_queries(run) if task in run.metrics else None
        if frame is None:
            continue
        relevant = frame.loc[(frame["task"] == task) & (frame["n_relevant"] > 0), "n_relevant"].to_numpy(np.float64)
        if relevant.size:
            return {k: float(np.mean(np.minimum(relevant, k) / k)) for k in ks}
    return None


def ceiling_text(runs: list[Run], task: str, metrics) -> str:
    """``Best achievable: P@100 0.197, P@200 0.098, R-precision 1``, the ceiling of every P@k column of the table
    (a perfect ranking's value on this gallery); empty without per-query sidecars."""
    ks = [int(m[2:]) for m in metrics if m.startswith("P@")]
    ceilings = pk_ceilings(runs, task, ks) if ks else None
    if not ceilings:
        return ""
    parts = [f"P@{k} {value:.3f}" for k, value in ceilings.items()]
    if "R-precision" in metrics:
        parts.append("R-precision 1")
    return "Best achievable (a perfect ranking): " + ", ".join(parts) + "."
