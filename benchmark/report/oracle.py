"""The report's table "What test-set selection adds": per method, the honest number beside what choosing the
epoch (and a post-processing) on the test classes would have reported, from oracle runs only
(``zsbench run --oracle-every N``; :mod:`benchmark.core.oracle`). Nothing else in the report reads them."""

from __future__ import annotations

import numpy as np

from benchmark.core.oracle import BEST_EPOCH, BEST_POST, HONEST, oracle_numbers
from benchmark.core.stats import bootstrap_ci
from benchmark.report.records import GroupKey, Run, methods_of
from benchmark.report.tables import Cell, Row, Section, Table

COLUMNS = (HONEST, BEST_EPOCH, BEST_POST, f"{BEST_EPOCH} − {HONEST}", f"{BEST_POST} − {HONEST}")


def _cell(values: list[float]) -> Cell:
    """Mean over seeds with its 95 % bootstrap interval over seeds (a point with one seed)."""
    mean = float(np.mean(values))
    if len(values) < 2:
        return Cell(mean)
    interval = bootstrap_ci(np.asarray(values, dtype=float)[:, None])
    return Cell(mean, low=interval.low, high=interval.high)


def oracle_table(key: GroupKey, runs: list[Run]) -> Table:
    """One row per method (label) of the oracle runs of one comparable group; mean mAP@all over the tasks."""
    rows = []
    for label in methods_of(runs):
        members = [run for run in runs if run.label == label]
        numbers = [oracle_numbers(run.metrics, run.record.oracle) for run in members]
        honest = [n[HONEST] for n in numbers]
        epoch = [n[BEST_EPOCH] for n in numbers]
        post = [n[BEST_POST] for n in numbers]
        cells = [_cell(honest), _cell(epoch), _cell(post), _cell([e - h for e, h in zip(epoch, honest, strict=True)]),
                 _cell([p - h for p, h in zip(post, honest, strict=True)])]
        rows.append(Row(label, cells, str(len(members))))
    every = sorted({run.record.oracle.get("every") for run in runs})
    caption = (f"What test-set selection adds, {key.caption()}. Mean mAP@all over the tasks and seeds [95 % "
               f"bootstrap interval over seeds]. '{HONEST}': the run's own result (the last model, the "
               f"configuration chosen without test classes). '{BEST_EPOCH}': the best of the test scores taken "
               f"every {', '.join(map(str, every))} epochs and the last model's, per seed, as released codes that "
               f"pick the epoch on the test classes report. '{BEST_POST}': also the best of the post-processings "
               "(raw, z-scored with the test items' statistics). The last two columns are the gains over the "
               "honest number. These numbers used the test classes to choose: never a result.")
    return Table(key=f"oracle-{key.slug}", title=f"{key.dataset} ({key.source}): what test-set selection adds",
                 caption=caption, columns=list(COLUMNS), sections=[Section("", rows)], meta=key.meta(),
                 line="the honest number beside the best epoch and post-processing chosen on test classes")
