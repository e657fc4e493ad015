"""Precision-recall curves per dataset and task, one curve per method.

Scores are recomputed from the embedding sidecars with cosine similarity (a method's own similarity is not
stored with its record). Each query's curve is the interpolated precision (the highest precision at that
recall or beyond) on a fixed recall grid; curves are averaged over queries, then over a method's seeds.

Curves that coincide must stay visible: every method gets its own colour, line style and marker (markers at
staggered recall levels), and curves are drawn from the thickest line to the thinnest, so a curve drawn on
top of an identical one shows as a thin line inside a thick one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.report.figures import PALETTE, save_figure
from benchmark.report.records import GroupKey, Run
from benchmark.report.sidecars import cosine_scores, load_sidecar, task_arrays
from benchmark.report.variants import rank

RECALL_GRID = np.linspace(0.0, 1.0, 51)


def interpolated_pr(ranked_rel: np.ndarray, n_relevant: np.ndarray, grid: np.ndarray = RECALL_GRID) -> np.ndarray:
    """Per query, the interpolated precision at each recall level of ``grid`` (queries without relevant: NaN)."""
    n_q, n_g = ranked_rel.shape
    precision = np.cumsum(ranked_rel, axis=1) / np.arange(1, n_g + 1)
    envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    out = np.full((n_q, grid.size), np.nan)
    for q in range(n_q):
        r = int(n_relevant[q])
        if r == 0:
            continue
        at_hits = envelope[q, np.flatnonzero(ranked_rel[q])]  # precision envelope at the j-th relevant item
        j = np.clip(np.ceil(grid * r).astype(int), 1, r) - 1
        out[q] = at_hits[j]
    return out


def mean_curve(Zq, yq, Zg, yg, grid: np.ndarray = RECALL_GRID, max_pairs: int = 4_000_000) -> np.ndarray:
    rows = max(1, max_pairs // max(1, yg.size))
    curves = []
    for s in range(0, yq.size, rows):
        ranked_rel, _, n_rel = rank(cosine_scores(Zq[s:s + rows], Zg), yq[s:s + rows], yg)
        curves.append(interpolated_pr(ranked_rel, n_rel, grid))
    return np.nanmean(np.concatenate(curves), axis=0)


def method_curves(runs: list[Run], task: str, eval_protocol: str) -> dict[str, tuple[np.ndarray, int]]:
    """method label -> (mean curve over its seeds, number of seeds with a sidecar)."""
    per_label: dict[str, list[np.ndarray]] = {}
    for run in runs:
        if task not in run.metrics:
            continue
        sidecar = load_sidecar(run)
        if sidecar is None:
            continue
        arrays = task_arrays(sidecar, task, eval_protocol)
        if arrays is not None:
            per_label.setdefault(run.label, []).append(mean_curve(*arrays))
    return {label: (np.mean(curves, axis=0), len(curves)) for label, curves in sorted(per_label.items())}


LINE_STYLES = ("-", "--", "-.", ":")
CURVE_MARKERS = ("o", "s", "^", "D", "v", "P", "X")  # 7 markers, 4 styles: 28 distinct pairs


def method_colours(labels) -> dict[str, object]:
    """One colour per method label, the same in every figure of a report (labels sorted, distinct palette)."""
    labels = sorted(set(labels))
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(labels)}


def curve_styles(n: int) -> list[dict]:
    """Matplotlib line arguments for ``n`` curves: style, marker, staggered marker positions, widths from
    thick (drawn first) to thin (drawn last)."""
    widths = np.linspace(3.4, 1.2, n) if n > 1 else np.array([1.8])
    return [{"linestyle": LINE_STYLES[i % len(LINE_STYLES)], "marker": CURVE_MARKERS[i % len(CURVE_MARKERS)],
             "markevery": (i % 5, 5), "markersize": 4.5, "linewidth": float(widths[i]), "zorder": 2 + i}
            for i in range(n)]


def plot_pr_curves(key: GroupKey, runs: list[Run], task: str, out_dir: Path,
                   colours: dict[str, object] | None = None, claim=None) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = method_curves(runs, task, key.eval_protocol)
    colours = colours or method_colours(curves)
    if not curves:
        return []
    legend_rows = -(-len(curves) // 2)
    fig, ax = plt.subplots(figsize=(6.4, 4.6 + 0.25 * legend_rows))
    for style, (label, (curve, n_seeds)) in zip(curve_styles(len(curves)), curves.items(), strict=True):
        ax.plot(RECALL_GRID, curve, color=colours[label], alpha=0.9,
                label=f"{label} ({n_seeds} seed{'s' if n_seeds != 1 else ''})", **style)
    ax.set_xlabel("recall")
    ax.set_ylabel("interpolated precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(f"{key.dataset} ({key.source}), {task}, unseen classes", fontsize=11)
    # below the axes: inside, a legend would hide the curves of good methods (high precision, top right)
    height = fig.get_figheight()
    note_frac, legend_frac = 0.3 / height, (0.25 * legend_rows + 0.15) / height
    fig.legend(*ax.get_legend_handles_labels(), loc="lower center", bbox_to_anchor=(0.5, note_frac), ncol=2,
               fontsize=9, frameon=False)
    fig.text(0.5, 0.01, "cosine similarity on the stored embeddings; mean over queries, then seeds; thicker "
             "lines are drawn first", ha="center",
             va="bottom", fontsize=8, color="0.3")
    fig.tight_layout(rect=(0, note_frac + legend_frac, 1, 1))
    return save_figure(fig, out_dir, f"pr-{key.slug}-{task.replace('->', '2')}", claim)
