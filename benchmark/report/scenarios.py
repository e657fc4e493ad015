"""The generalized zero-shot scenario's own table: each metric over the seen-class queries (S), over the
unseen-class queries (U) and their harmonic mean (H), as generalized zero-shot papers report them.

A cell is the mean ± sample std over seeds of each run's value (H is each run's harmonic mean of its S and U,
then averaged, so a seed that ranks one side badly pulls H down). Rows, sections (defaults, tuned) and
groups are those of the comparison tables: records of another scenario never share a row.
"""

from __future__ import annotations

from benchmark.report.records import GroupKey, Run, Stat, methods_of, sections_of
from benchmark.report.tables import Cell, Row, Section, Table, seed_range

#: The metrics split by query role (those a record has).
ROLE_METRICS: tuple[str, ...] = ("mAP@all", "mAP@200", "P@100", "P@200")
ROLES: tuple[tuple[str, str], ...] = (("seen", "S"), ("unseen", "U"), ("harmonic", "H"))


def _roles(run: Run, task: str) -> dict[str, dict[str, float]] | None:
    by_role = run.record.metrics_by_role if run.record is not None else None
    return (by_role or {}).get(task)


def role_table(key: GroupKey, runs: list[Run], task: str) -> Table | None:
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
            stats = [Stat.of([_roles(run, task)[role].get(metric) for run in mine])
                     for metric in metrics for role, _ in ROLES]
            rows.append(Row(label, [Cell.of(stat) for stat in stats], seed_range(stats)))
        title = "" if list(by_selection) == ["defaults"] else (
            "default hyper-parameters" if selection == "defaults" else f"{selection} on validation classes")
        sections.append(Section(title, rows))
    caption = (f"{task}, generalized zero-shot: each metric over the seen-class queries (S), the unseen-class "
               f"queries (U) and their harmonic mean H = 2SU / (S + U), mean ± sample std over seeds (H per run, "
               f"then averaged); queries and gallery hold both seen and unseen classes. Best per column in bold. "
               f"{key.caption()}")
    table = Table(key=f"{key.slug}-{task.replace('->', '2')}-roles",
                  title=f"{key.dataset} ({key.source}) {task}: seen, unseen, harmonic mean", caption=caption,
                  columns=[f"{metric} {short}" for metric in metrics for _, short in ROLES], sections=sections,
                  meta={**key.meta(), "task": task}, line=f"{task}: seen / unseen / harmonic mean")
    return table.mark_best()
