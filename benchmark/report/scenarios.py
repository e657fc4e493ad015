"""The generalized zero-shot scenario's own table: each metric over the seen-class queries (S), over the
unseen-class queries (U) and their harmonic mean (H), as generalized zero-shot papers report them.

A cell is the mean over seeds of each run's value (H is each run's harmonic mean of its S and U, then
averaged, so a seed that ranks one side badly pulls H down). S and U come with the 95 % two-level bootstrap
interval (seeds, then queries) of the comparison tables when every seed kept its per-query results (the
``seen`` column of the per-query sidecar); H, and rows without per-query results, with the sample std over
seeds. Rows, sections (defaults, tuned) and groups are those of the comparison tables: records of another
scenario never share a row.
"""

from __future__ import annotations

import numpy as np

from benchmark.core.stats import N_RESAMPLES, bootstrap_ci
from benchmark.report.records import GroupKey, Run, Stat, methods_of, section_title, sections_of
from benchmark.report.tables import Cell, Row, Section, Table

#: The metrics split by query role (those a record has).
ROLE_METRICS: tuple[str, ...] = ("mAP@all", "mAP@200", "P@100", "P@200")
ROLES: tuple[tuple[str, str], ...] = (("seen", "S"), ("unseen", "U"), ("harmonic", "H"))


def _roles(run: Run, task: str) -> dict[str, dict[str, float]] | None:
    by_role = run.record.metrics_by_role if run.record is not None else None
    return (by_role or {}).get(task)


def role_values(runs: list[Run], task: str, metric: str, seen: bool) -> np.ndarray | None:
    """Seeds x queries values of ``metric`` over the seen-class (or unseen-class) queries that have a relevant
    item, one row per run in seed order; None unless every run kept them."""
    from benchmark.report.queries import load_queries

    rows = []
    for run in sorted(runs, key=lambda r: r.seed):
        frame = load_queries(run)
        if frame is None or "seen" not in frame.columns or metric not in frame.columns:
            return None
        part = frame[(frame["task"] == task) & (frame["n_relevant"] > 0) & (frame["seen"] == seen)]
        rows.append(part.sort_values("query")[metric].to_numpy(np.float64))
    if not rows or len({r.size for r in rows}) != 1 or rows[0].size == 0:
        return None
    return np.stack(rows)


def _cell(runs: list[Run], task: str, metric: str, role: str, statistics: bool, n_resamples: int) -> Cell:
    cell = Cell.of(Stat.of([_roles(run, task)[role].get(metric) for run in runs]))
    if statistics and role != "harmonic" and not cell.empty:
        values = role_values(runs, task, metric, role == "seen")
        if values is not None:
            interval = bootstrap_ci(values, n_resamples)
            cell.low, cell.high = interval.low, interval.high
    return cell


def role_table(key: GroupKey, runs: list[Run], task: str, statistics: bool = True,
               n_resamples: int | None = None) -> Table | None:
    """Methods x (metric, S / U / H) for one task of one generalized-scenario group; None when no run of it
    kept its seen/unseen parts."""
    runs = [run for run in runs if _roles(run, task)]
    if not runs:
        return None
    metrics = tuple(m for m in ROLE_METRICS if any(m in _roles(run, task)["seen"] for run in runs))
    by_selection = sections_of(runs)
    sections = []
    for selection, members in by_selection.items():
        rows = []
        for label in methods_of(members):
            mine = [run for run in members if run.label == label]
            cells = [_cell(mine, task, metric, role, statistics, n_resamples or N_RESAMPLES)
                     for metric in metrics for role, _ in ROLES]
            rows.append(Row(label, cells, str(len(mine))))
        title = "" if list(by_selection) == ["defaults"] else section_title(selection)
        sections.append(Section(title, rows))
    caption = (f"{task}, generalized zero-shot: each metric over the seen-class queries (S), the unseen-class "
               f"queries (U) and their harmonic mean H = 2SU / (S + U); mean over seeds, S and U with their 95 % "
               f"two-level bootstrap interval where every seed kept per-query results (else ± sample std), H ± "
               f"sample std (H per run, then averaged); queries and gallery hold both seen and unseen classes. Best per column in bold. "
               f"{key.caption()}")
    table = Table(key=f"{key.slug}-{task.replace('->', '2')}-roles",
                  title=f"{key.dataset} ({key.source}) {task}: seen, unseen, harmonic mean", caption=caption,
                  columns=[f"{metric} {short}" for metric in metrics for _, short in ROLES], sections=sections,
                  meta={**key.meta(), "task": task}, line=f"{task}: seen / unseen / harmonic mean")
    return table.mark_best()
