"""How much can selection on validation classes be trusted? The report's table "Validation ranking against
test ranking": per dataset, Kendall's tau between the methods' mean validation mAP@all and their mean test
mAP@all (default configurations), with validation scored on fold 0 only and on every validation fold the
records hold, each with a bootstrap interval over seeds; and per method the spread of its validation score
across folds. A tau near 1 says that choosing on validation classes picks what the test would rank first;
near 0, that the validation ranking is noise."""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np

from benchmark.report.records import Run
from benchmark.report.tables import Cell, Row, Section, Table

N_BOOT = 2000
_FOLD = re.compile(r"/validation(?:-fold(\d+))?$")


def _fold_of(run: Run) -> int | None:
    match = _FOLD.search(run.group.split)
    return None if match is None else int(match.group(1) or 0)


def _link(run: Run, split: str) -> tuple:
    g = run.group
    return (g.dataset, g.source, split, g.semantics, g.features, g.provenance, g.scenario)  # scenarios never pooled


def _mean_map(run: Run) -> float:
    return float(np.mean([m["mAP@all"] for m in run.metrics.values()]))


def kendall_tau_b(a, b) -> float:
    """Kendall's tau-b of two equally long sequences (ties in either counted as in scipy.stats.kendalltau's
    default); NaN when either is constant. Pairwise signs, fast for the few methods a table ranks (the
    bootstrap calls it thousands of times)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    upper = np.triu_indices(a.size, k=1)
    da, db = np.sign(a[:, None] - a[None, :])[upper], np.sign(b[:, None] - b[None, :])[upper]
    denominator = np.sqrt(np.count_nonzero(da) * np.count_nonzero(db))
    return float(np.sum(da * db) / denominator) if denominator else float("nan")


def _tau(x: dict[str, float], y: dict[str, float]) -> float:
    names = sorted(set(x) & set(y))
    return kendall_tau_b([x[n] for n in names], [y[n] for n in names])


def _boot_tau(val: dict[str, dict[int, list[float]]], test: dict[str, list[float]], folds: list[int],
              rng: np.random.Generator) -> tuple[float, float]:
    """95 % percentile interval of tau when every method's seeds are resampled (validation per fold, test)."""
    taus = []
    for _ in range(N_BOOT):
        v = {m: float(np.mean([np.mean(rng.choice(val[m][f], len(val[m][f]))) for f in folds])) for m in val}
        t = {m: float(np.mean(rng.choice(test[m], len(test[m])))) for m in test}
        taus.append(_tau(v, t))
    low, high = np.nanpercentile(taus, [2.5, 97.5])
    return float(low), float(high)


def trust_tables(test_runs: list[Run], validation_runs: list[Run]) -> list[Table]:
    """One table per dataset (and data source, split, provenance) that has default-configuration records on
    the test classes and on at least one validation fold for at least three methods."""
    tests: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in test_runs:
        if run.group.stage == "test" and run.selection_label == "defaults":
            tests[_link(run, run.group.split)][run.method].append(_mean_map(run))
    vals: dict[tuple, dict[str, dict[int, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for run in validation_runs:
        fold = _fold_of(run)
        if run.group.stage == "validation" and fold is not None and run.selection_label == "defaults":
            vals[_link(run, _FOLD.sub("", run.group.split))][run.method][fold].append(_mean_map(run))
    tables = []
    for link, by_method in sorted(vals.items()):
        test = {m: v for m, v in tests.get(link, {}).items() if m in by_method and 0 in by_method[m]}
        if len(test) < 3:
            continue
        val = {m: dict(by_method[m]) for m in test}
        all_folds = sorted(set.intersection(*(set(v) for v in val.values())))
        rng = np.random.default_rng(0)
        rows = []
        for label, folds in (("fold 0", [0]), (f"{len(all_folds)} folds ({', '.join(map(str, all_folds))})", all_folds)):
            v = {m: float(np.mean([np.mean(val[m][f]) for f in folds])) for m in val}
            t = {m: float(np.mean(test[m])) for m in test}
            low, high = _boot_tau(val, test, folds, rng)
            rows.append(Row(label, [Cell(_tau(v, t), low=low, high=high), Cell(float(len(test)), display=str(len(test)))]))
            if len(all_folds) == 1:
                break
        spread = [Row(m, [Cell(float(np.mean([np.mean(val[m][f]) for f in all_folds]))),
                          Cell(float(np.ptp([np.mean(val[m][f]) for f in all_folds])))]) for m in sorted(val)]
        dataset, source, split = link[:3]
        caption = (f"Validation ranking against test ranking, {dataset} ({source}), split {split}: Kendall's tau "
                   f"between the methods' mean validation mAP@all (default configurations; fold 0, then the mean "
                   f"over the folds every method has) and their mean test mAP@all, [95 % bootstrap interval, "
                   f"seeds resampled per method]. Below: each method's validation mAP@all averaged over those "
                   f"folds and its range across them.")
        tables.append(Table(key=f"trust-{dataset}-{source}-{split}".replace("/", "_"),
                            title=f"{dataset} ({source}): does validation rank like the test?", caption=caption,
                            columns=["Kendall tau (validation vs test)", "methods"], row_header="validation on",
                            sections=[Section("", rows)], line="validation ranking against test ranking"))
        tables.append(Table(key=f"trust-{dataset}-{source}-{split}-spread".replace("/", "_"),
                            title=f"{dataset} ({source}): validation score across folds",
                            caption=f"Per method: mean validation mAP@all over folds {all_folds} and its range "
                                    f"(max - min) across them; {dataset} ({source}), split {split}.",
                            columns=["mean over folds", "range across folds"], sections=[Section("", spread)],
                            line="validation score across folds"))
    return tables
