"""``zsbench compare A B --dataset D``: one paired comparison in full, task by task.

For the group of dataset D that holds both methods (narrowed by source, split or stage when several do),
each task gets: the mean of each method over its seeds, the difference A - B with its 95 % bootstrap
interval (seeds drawn per method, queries shared), the two-sided paired randomization test over queries
(per-query values averaged over seeds), the Holm-adjusted p-value over the tasks compared, paired Cohen's
d_z, and on how many queries A wins, ties and loses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmark.contract import ZSBenchError
from benchmark.core.stats import N_RESAMPLES, Comparison, adjust, compare
from benchmark.report.queries import same_queries, seed_matrix
from benchmark.report.records import GroupKey, Selection, group_runs, load_runs, tasks_of


@dataclass
class TaskComparison:
    task: str
    mean_a: float
    mean_b: float
    seeds_a: int
    seeds_b: int
    comparison: Comparison


def find_group(results: str | Path, a: str, b: str, dataset: str, source: str | None = None,
               split: str | None = None, stage: str = "test", synthetic: bool = False, scenario: str = "zero-shot"):
    """The group of ``dataset`` that holds both methods: stand-ins with ``synthetic`` (as ``zsbench run``), else
    real or embedded data (``source`` names one exactly)."""
    selection = Selection((dataset,), None if source else synthetic, split)
    groups = group_runs(load_runs(results, selection))
    candidates, seen = [], []
    for key, runs in groups.items():
        labels = {r.label for r in runs}
        seen.append(f"{key.source}, split {key.split}, stage {key.stage}: {', '.join(sorted(labels))}")
        if (key.stage == stage and key.scenario == scenario and (not source or key.source == source)
                and a in labels and b in labels):
            candidates.append((key, runs))
    if not candidates:
        wanted = f"{source} data of {dataset!r}" if source else selection.describe()
        raise ZSBenchError(f"no group of {wanted} (stage {stage}) under {results} holds both {a!r} and {b!r}; the "
                           f"groups of {dataset!r} there: {'; '.join(seen) or 'none'}")
    if len(candidates) > 1:
        choices = "; ".join(f"--split {k.split}" for k, _ in candidates)
        raise ZSBenchError(f"{len(candidates)} groups of {dataset!r} hold both methods; pick one with {choices}")
    return candidates[0]


def compare_methods(results: str | Path, a: str, b: str, dataset: str, metric: str = "mAP@all",
                    source: str | None = None, split: str | None = None, stage: str = "test",
                    n_resamples: int = N_RESAMPLES, seed: int = 0,
                    synthetic: bool = False) -> tuple[GroupKey, list[TaskComparison]]:
    key, runs = find_group(results, a, b, dataset, source, split, stage, synthetic)
    rows, comparisons = [], []
    for task in tasks_of(runs):
        members_a = [r for r in runs if r.label == a and task in r.metrics]
        members_b = [r for r in runs if r.label == b and task in r.metrics]
        if not members_a or not members_b:
            continue
        got_a, got_b = seed_matrix(members_a, task, metric), seed_matrix(members_b, task, metric)
        if got_a is None or got_b is None:
            lacking = a if got_a is None else b
            raise ZSBenchError(f"{lacking} has no per-query {metric} results for {task} in {results} (records written "
                               f"before they were kept); rerun it with `zsbench run --force`")
        same_queries(a, got_a[0], b, got_b[0], task)
        A, B = got_a[1], got_b[1]
        comparisons.append(compare(a, A, b, B, n_resamples, seed=seed))
        rows.append((task, float(A.mean()), float(B.mean()), A.shape[0], B.shape[0]))
    if not rows:
        raise ZSBenchError(f"{a!r} and {b!r} share no task on {dataset!r}")
    adjusted = adjust(comparisons)
    return key, [TaskComparison(task, ma, mb, sa, sb, c) for (task, ma, mb, sa, sb), c in zip(rows, adjusted,
                                                                                              strict=True)]
