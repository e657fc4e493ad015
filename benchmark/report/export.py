"""``zsbench export --format trec``: a run's rankings as TREC run and qrels files, for trec_eval or ranx.

From a run's embedding sidecar (unseen-class items) every task is re-ranked by cosine similarity (the
method's own ``similarity`` is not stored with the record; the report's PR curves do the same) and written
as two whitespace-separated files per task:

- ``<task>.run``: ``<query id> Q0 <doc id> <rank> <score> <run tag>``, every gallery item for every query;
- ``<task>.qrels``: ``<query id> 0 <doc id> 1`` for every relevant (same-class) gallery item.

Ids are ``q<i>`` for the i-th query of the task and ``d<j>`` for the j-th gallery item, zero-padded, in the
order of the sidecar (dataset order of the unseen-class items), so they match the ``query`` column of the
per-query sidecar.

Tie order. Within one query, items are ranked by score (descending), ties by gallery position (ascending),
and ranks are 1, 2, 3, ... in that order. Tools differ on ties: trec_eval ignores the rank column and
sorts tied scores by doc id in *descending* order, ranx sorts them by doc id too; zsbench's own mAP@all
treats a tied block as one threshold (as scikit-learn does). To make every tool see exactly the ranking
written here, ties are broken by default: inside a tied block the k-th item (k = 0, 1, ...) of a block of
n gets the score v - (v - w) k / n, w being the next lower distinct score of the query (v - 1 when there is
none); where that gap is too narrow for the block in float64 (scores one unit in the last place apart), an
item steps to the next representable value below the one ranked before it. Scores thus become strictly
decreasing in the written order, no order between different scores changes, and they are written with 17
significant digits (enough to keep every float64 distinct). Without ties every tool then computes the same AP as zsbench; with ties
(identical gallery embeddings: emoji's galleries hold items with identical features, about 21 tied
neighbours per query for cca) the AP of the exported order can differ from zsbench's tie-aware value, and the
command counts the tied pairs it broke (``--keep-ties`` writes the raw scores instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.contract import ZSBenchError
from benchmark.core.spec import safe_name
from benchmark.report.records import Run
from benchmark.report.sidecars import cosine_scores, load_sidecar, task_arrays


@dataclass
class ExportedTask:
    task: str
    run_file: Path
    qrels_file: Path
    n_queries: int
    n_gallery: int
    tied_pairs: int  # adjacent equal scores in the written rankings (broken by gallery position)


def _ids(prefix: str, n: int) -> list[str]:
    width = max(1, len(str(max(n - 1, 0))))
    return [f"{prefix}{i:0{width}d}" for i in range(n)]


def ranked(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, gallery indices by score descending, ties by index ascending; and the count of tied neighbours."""
    order = np.argsort(-scores, axis=1, kind="stable")
    sorted_scores = np.take_along_axis(scores, order, axis=1)
    tied = (np.diff(sorted_scores, axis=1) == 0).sum(axis=1)
    return order, tied


def write_trec(Zq, yq, Zg, yg, run_path: Path, qrels_path: Path, tag: str, break_ties: bool = True,
               rows_per_block: int = 512) -> tuple[int, int, int]:
    """Write one task's run and qrels; returns (queries, gallery items, tied adjacent pairs)."""
    q_ids, d_ids = _ids("q", yq.size), _ids("d", yg.size)
    tied_total = 0
    run_path.parent.mkdir(parents=True, exist_ok=True)
    with open(run_path, "w") as run_out, open(qrels_path, "w") as qrels_out:
        for start in range(0, yq.size, rows_per_block):
            scores = cosine_scores(Zq[start:start + rows_per_block], Zg)
            order, tied = ranked(scores)
            tied_total += int(tied.sum())
            for r, q in enumerate(range(start, min(start + rows_per_block, yq.size))):
                values = scores[r, order[r]]
                if break_ties:
                    values = strictly_decreasing(values)
                run_out.writelines(f"{q_ids[q]} Q0 {d_ids[j]} {rank} {value:.17g} {tag}\n"
                                   for rank, (j, value) in enumerate(zip(order[r], values, strict=True), start=1))
                qrels_out.writelines(f"{q_ids[q]} 0 {d_ids[j]} 1\n" for j in np.flatnonzero(yg == yq[q]))
    return yq.size, yg.size, tied_total


def strictly_decreasing(values: np.ndarray) -> np.ndarray:
    """Descending ``values`` with each tied block spread over the gap to the next lower distinct value, then
    made strictly decreasing in float64: where a gap is narrower than its block (two scores one unit in the
    last place apart), an item steps one representable value below the one before it. The written order is
    kept, so no order between different scores changes; an item moves by at most a few units in the last
    place beyond the gap it was spread over."""
    values = values.astype(np.float64)
    if values.size == 0:
        return values
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
    sizes = np.diff(np.r_[starts, values.size])
    block = np.repeat(np.arange(starts.size), sizes)
    position = np.arange(values.size) - starts[block]
    lower = np.r_[values[starts[1:]], values[-1] - 1.0]  # next distinct value down
    gap = values[starts] - lower
    spread = values - gap[block] * position / sizes[block]
    # On float64's ordered integer line, strictly decreasing means key[i] <= key[i-1] - 1; with
    # m = key + i that is a running minimum (m[i] = min(key[i] + i, m[i-1])), so no Python loop is needed.
    key = _ordered_keys(spread)
    steps = np.arange(values.size, dtype=np.int64)
    return _from_ordered_keys(np.minimum.accumulate(key + steps) - steps)


_SIGN = np.int64(-(2**63))  # the sign bit of a float64 as int64
_MAGNITUDE = np.int64(2**63 - 1)


def _ordered_keys(values: np.ndarray) -> np.ndarray:
    """int64 keys in the order of the float64 values, adjacent representable values one apart (-0.0 == 0.0)."""
    bits = values.view(np.int64)
    return np.where(bits < 0, -(bits & _MAGNITUDE), bits)


def _from_ordered_keys(keys: np.ndarray) -> np.ndarray:
    bits = np.where(keys < 0, (-keys) | _SIGN, keys)
    return bits.view(np.float64)


def export_run(run: Run, out_dir: Path, break_ties: bool = True) -> list[ExportedTask]:
    """Every task of one run with an embedding sidecar, written under ``out_dir``."""
    sidecar = load_sidecar(run)
    if sidecar is None:
        raise ZSBenchError(f"record {run.path} has no embedding sidecar (.npz); rerun it with `zsbench run --force` "
                           f"to export its rankings")
    exported = []
    tag = safe_name(f"{run.label}-seed{run.seed}")
    for task in run.metrics:
        arrays = task_arrays(sidecar, task, run.group.eval_protocol, run.group.scenario)
        if arrays is None:
            continue
        stem = task.replace("->", "2")
        run_file, qrels_file = out_dir / f"{stem}.run", out_dir / f"{stem}.qrels"
        n_q, n_g, tied = write_trec(*arrays, run_file, qrels_file, tag, break_ties)
        exported.append(ExportedTask(task, run_file, qrels_file, n_q, n_g, tied))
    return exported


def average_precision_from_trec(run_file: Path, qrels_file: Path) -> dict[str, float]:
    """Per query, non-interpolated AP of a run file against qrels (ranks taken as written): a small check."""
    relevant: dict[str, set[str]] = {}
    for line in qrels_file.read_text().splitlines():
        qid, _, doc, rel = line.split()
        if int(rel) > 0:
            relevant.setdefault(qid, set()).add(doc)
    rankings: dict[str, list[tuple[int, str]]] = {}
    for line in run_file.read_text().splitlines():
        qid, _, doc, rank, _score, _tag = line.split()
        rankings.setdefault(qid, []).append((int(rank), doc))
    out = {}
    for qid, items in rankings.items():
        rel = relevant.get(qid, set())
        if not rel:
            continue
        hits, total = 0, 0.0
        for i, (_, doc) in enumerate(sorted(items), start=1):
            if doc in rel:
                hits += 1
                total += hits / i
        out[qid] = total / len(rel)
    return out


def export_runs(results: str | Path, out: str | Path, methods=None, dataset: str | None = None,
                keep_ties: bool = False, selection=None) -> tuple[int, int]:
    """``zsbench export``: every run under ``results`` that has an embedding sidecar (only ``methods``, a
    collection of names, and ``dataset`` when given) to ``out/<dataset>-<source>/<method>/<record stem>/``.
    Returns (run/qrels pairs written, tied adjacent pairs: broken, or kept with ``keep_ties``); nothing to
    export is an error."""
    from benchmark.report.records import group_runs, load_runs

    wanted = set(methods) if methods else None
    done, tied = 0, 0
    for members in group_runs(load_runs(results, selection)).values():
        for run in members:
            if (wanted and run.method not in wanted) or (dataset and run.group.dataset != dataset) or \
                    run.embeddings_path is None:
                continue
            folder = Path(out) / f"{run.group.dataset}-{run.group.source}" / run.method / run.path.stem
            for task in export_run(run, folder, break_ties=not keep_ties):
                done += 1
                tied += task.tied_pairs
    if not done:
        raise ZSBenchError(f"no run with an embedding sidecar matched under {results}; nothing exported")
    return done, tied
