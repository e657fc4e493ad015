"""Training curves of one run: every logged loss against the epoch, one panel per loss family.

A record's ``training_log`` is a list of entries ``{"epoch": e, <loss>: value, ...}``; a method fitted once
per modality pair adds ``"modalities": "<fit>"`` to each entry. Keys are grouped into families by the part
before the first underscore (``wasserstein_sketch`` and ``wasserstein_image`` share a panel, ``alignment``
has its own), and the validation score the runner adds (``val_mAP@all``, on the validation classes) gets a
panel of its own, so a reader sees at once whether each term moved and whether selection had a signal.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmark.report.curves import curve_styles
from benchmark.report.figures import save_figure
from benchmark.report.records import GroupKey, Run

VALIDATION_PREFIX = "val_"
MAX_PANELS = 12


def loss_series(run: Run) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """family -> series name -> (epochs, values); series of a multi-fit run are named ``key [fit]``."""
    rows: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for entry in (run.record.training_log if run.record is not None else []):
        if not isinstance(entry, dict) or "epoch" not in entry:
            continue
        fit = entry.get("modalities")
        for key, value in entry.items():
            if key in ("epoch", "modalities") or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            name = key if fit is None else f"{key} [{fit}]"
            rows[(family_of(key), name)].append((float(entry["epoch"]), float(value)))
    out: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = defaultdict(dict)
    for (family, name), points in sorted(rows.items()):
        points.sort()
        out[family][name] = (np.array([p[0] for p in points]), np.array([p[1] for p in points]))
    return dict(sorted(out.items(), key=lambda item: (item[0].startswith("validation"), item[0])))


def family_of(key: str) -> str:
    if key.startswith(VALIDATION_PREFIX):
        return "validation " + key[len(VALIDATION_PREFIX):]
    return key.split("_", 1)[0]


def pick_runs(runs: list[Run], methods: tuple[str, ...]) -> list[Run]:
    """Per wanted method, its default-configuration run with the lowest seed that logged at least two epochs."""
    picked = []
    for method in methods:
        candidates = [r for r in runs if r.method == method and r.record is not None and len(r.record.training_log) >= 2]
        candidates.sort(key=lambda r: (r.selection_label != "defaults", r.seed))
        if candidates:
            picked.append(candidates[0])
    return picked


def plot_training_log(key: GroupKey, run: Run, out_dir: Path, claim=None) -> list[Path]:
    """Write ``loss-<group>-<method>-seed<S>.{png,pdf}``; none when the run logged nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    families = list(loss_series(run).items())[:MAX_PANELS]
    if not families:
        return []
    n_cols = min(3, len(families))
    n_rows = -(-len(families) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.4 * n_cols, 3.2 * n_rows), squeeze=False)
    for ax in axes.ravel()[len(families):]:
        ax.axis("off")
    for ax, (family, series) in zip(axes.ravel(), families, strict=False):
        for style, (name, (epochs, values)) in zip(curve_styles(len(series)), series.items(), strict=True):
            style = {**style, "linewidth": min(style["linewidth"], 2.4), "markevery": 1 if epochs.size <= 20 else
                     max(1, epochs.size // 10)}
            ax.plot(epochs, values, label=name, **style)
        ax.set_title(family, fontsize=10)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, frameon=False)
    fig.suptitle(f"{run.label}, seed {run.seed}: training log on {key.dataset} ({key.source} data)", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return save_figure(fig, out_dir, f"loss-{key.slug}-{run.label}-seed{run.seed}", claim)
