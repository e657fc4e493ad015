"""How far the peers' metric conventions move each method's numbers, on the very same embeddings.

For every run with an embedding sidecar, the query x gallery cosine similarities are re-scored under each
convention of :mod:`benchmark.report.variants`; values are averaged over the method's seeds and shown
beside their difference to zsbench's own convention (recomputed on the same cosine scores, so the
difference is the convention's effect alone).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from benchmark.report.records import RANKING_METRICS, GroupKey, Run, Stat
from benchmark.report.sidecars import cosine_scores, load_sidecar, task_arrays
from benchmark.report.tables import Cell, Row, Section, Table
from benchmark.report.variants import CONVENTIONS, REFERENCE_CONVENTION, rescore

RECORDED = "recorded"


def rescored_runs(runs: list[Run], task: str, eval_protocol: str) -> dict[str, list[dict[str, dict[str, float]]]]:
    """method label -> one {convention -> metric -> value} per seed with a sidecar, plus the recorded values."""
    out: dict[str, list[dict[str, dict[str, float]]]] = defaultdict(list)
    for run in runs:
        if task not in run.metrics:
            continue
        sidecar = load_sidecar(run)
        arrays = None if sidecar is None else task_arrays(sidecar, task, eval_protocol)
        if arrays is None:
            continue
        Zq, yq, Zg, yg = arrays
        out[run.label].append({RECORDED: run.metrics[task], **rescore(cosine_scores(Zq, Zg), yq, yg)})
    return dict(sorted(out.items()))


def sensitivity_table(key: GroupKey, runs: list[Run], task: str, metrics: tuple[str, ...] = RANKING_METRICS) -> Table | None:
    per_method = rescored_runs(runs, task, key.eval_protocol)
    if not per_method:
        return None
    sections = []
    for label, seeds in per_method.items():
        recorded = [Cell.of(Stat.of([s[RECORDED].get(metric) for s in seeds])) for metric in metrics]
        rows = [Row("recorded (the method's own similarity)", recorded, str(len(seeds)))]
        for convention in CONVENTIONS:
            cells = []
            for metric in metrics:
                values = np.array([s[convention.name][metric] for s in seeds], dtype=np.float64)
                reference = np.array([s[REFERENCE_CONVENTION][metric] for s in seeds], dtype=np.float64)
                if np.isnan(values).all():
                    cells.append(Cell())
                    continue
                delta = None if convention.name == REFERENCE_CONVENTION else float(np.nanmean(values - reference))
                cells.append(Cell(float(np.nanmean(values)), None, len(seeds), delta=delta))
            rows.append(Row(f"{convention.name} ({convention.used_by})", cells, str(len(seeds))))
        sections.append(Section(label, rows))
    caption = (f"Metric-convention sensitivity, {task} on {key.caption()}. The same stored embeddings, scored by "
               "cosine similarity, under each peer convention (docs/reference.md); mean over seeds, in brackets the "
               f"difference to the {REFERENCE_CONVENTION} row. The recorded row is the run record's own numbers (the "
               "method's similarity); it equals the zsbench row when the method scores by cosine. Ties are broken "
               "by a fixed random gallery order.")
    notes = [f"{c.name}: {c.description}." for c in CONVENTIONS]
    return Table(key=f"sensitivity-{key.slug}-{task.replace('->', '2')}",
                 title=f"metric conventions: {key.dataset} ({key.source}) {task}", caption=caption,
                 columns=list(metrics), sections=sections, row_header="convention", notes=notes,
                 meta={**key.meta(), "task": task})
