"""t-SNE maps of the common space: unseen-class test items, every modality in one map, a panel per method.

openTSNE is used rather than scikit-learn's TSNE because it measured several times faster on this
machine (2 shared cores, 50-d embeddings, one thread each): 1,200 points 5.5 s against 46.9 s, 3,600 points
21.0 s against 87.8 s (docs/report.md). The map is of L2-normalised embeddings, since retrieval ranks by
cosine similarity. Each method's panel uses its lowest seed that has a sidecar, a fixed t-SNE seed and at
most ``per_class`` items per class and modality (fewer when many classes would exceed
``MAX_POINTS_PER_MODALITY``), drawn with a fixed generator; the figure states the number used. A method
fitted once per modality pair (a two-modality method on a three-modality dataset) has one common space per
fit, so it gets one panel per fit.

Colours: up to :data:`DISTINCT_COLOURS` classes get a palette of hand-picked, mutually distinct colours
(tab20's light/dark pairs are hard to tell apart); beyond that, colours are spread over the hue circle and
not labelled. The legend is laid out below the panels with as many columns as the longest class name
allows, and the figure is saved with a tight bounding box, so no legend entry is cut off.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.report.figures import PALETTE, save_figure
from benchmark.report.records import GroupKey, Run
from benchmark.report.sidecars import class_names_for, load_sidecar

TSNE_SEED = 0
PER_CLASS = 40
MARKERS = ("o", "^", "s", "D", "v")
MAX_POINTS_PER_MODALITY = 2000  # keeps one panel near 20 s of openTSNE here, whatever the number of classes
DISTINCT_COLOURS = len(PALETTE)


@dataclass
class TsnePanel:
    label: str
    seed: int
    coords: np.ndarray
    labels: np.ndarray
    modalities: np.ndarray  # index into the figure's modality list


def subsample(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of at most ``per_class`` items of each class."""
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        keep.append(idx if idx.size <= per_class else rng.choice(idx, per_class, replace=False))
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)


def embed_2d(X: np.ndarray, seed: int = TSNE_SEED) -> np.ndarray:
    perplexity = float(max(2.0, min(30.0, (X.shape[0] - 1) / 3.0)))
    try:
        import openTSNE
    except ImportError:  # the dependency is declared; this keeps a broken install usable, only slower
        from sklearn.manifold import TSNE

        return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(X)
    tsne = openTSNE.TSNE(perplexity=perplexity, initialization="pca", random_state=seed, n_jobs=1, verbose=False)
    return np.asarray(tsne.fit(X))


def panels_for(runs: list[Run], modalities: list[str], per_class: int = PER_CLASS) -> list[TsnePanel]:
    by_label: dict[str, Run] = {}
    for run in sorted(runs, key=lambda r: r.seed):
        if run.label not in by_label and run.embeddings_path is not None:
            by_label[run.label] = run
    panels = []
    for label, run in sorted(by_label.items()):
        sidecar = load_sidecar(run)
        for fit in sorted(sidecar.fits):
            blocks, ys, ms = [], [], []
            rng = np.random.default_rng(TSNE_SEED)
            for i, modality in enumerate(modalities):
                if modality not in sidecar.fits[fit]:
                    continue
                Z, y = sidecar.plot_part(modality, fit)
                keep = subsample(y, per_class, rng)
                Z = Z[keep].astype(np.float64)
                blocks.append(Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12))
                ys.append(y[keep])
                ms.append(np.full(keep.size, i))
            if not blocks or sum(b.shape[0] for b in blocks) < 5 or len({b.shape[1] for b in blocks}) > 1:
                continue  # too few points, or modalities not in one common space
            name = label if len(sidecar.fits) == 1 else f"{label} ({fit})"
            panels.append(TsnePanel(name, run.seed, embed_2d(np.concatenate(blocks)), np.concatenate(ys),
                                    np.concatenate(ms)))
    return panels


def class_colours(classes: np.ndarray) -> dict[int, object]:
    """One colour per class: the distinct palette when it suffices, else hues around the circle."""
    if classes.size <= DISTINCT_COLOURS:
        return {int(c): PALETTE[i] for i, c in enumerate(classes)}
    import matplotlib.colors as mcolors

    hues = (np.arange(classes.size) * 0.618033988749895) % 1.0  # golden-ratio steps: neighbours differ
    values = np.where(np.arange(classes.size) % 2 == 0, 0.85, 0.6)
    return {int(c): mcolors.hsv_to_rgb((h, 0.75, v)) for c, h, v in zip(classes, hues, values, strict=True)}


def plot_tsne(key: GroupKey, runs: list[Run], out_dir: Path, per_class: int = PER_CLASS, claim=None) -> list[Path]:
    """Write ``tsne-<group>.png`` and ``.pdf``; returns their paths (none when no run has a sidecar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    modalities = sorted({m for run in runs for m in _modalities(run)})
    n_classes = max((len(np.unique(_first_labels(run))) for run in runs if run.embeddings_path), default=1)
    per_class = min(per_class, max(10, MAX_POINTS_PER_MODALITY // max(1, n_classes)))
    panels = panels_for(runs, modalities, per_class)
    if not panels:
        return []
    names = class_names_for(key.dataset)
    classes = np.unique(np.concatenate([p.labels for p in panels]))
    colours = class_colours(classes)
    n_cols = min(3, len(panels))
    n_rows = -(-len(panels) // n_cols)
    width = 4.2 * n_cols
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(width, 4.0 * n_rows), squeeze=False)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    for ax, panel in zip(axes.ravel(), panels, strict=False):
        for i in range(len(modalities)):
            sel = panel.modalities == i
            ax.scatter(panel.coords[sel, 0], panel.coords[sel, 1], s=12, marker=MARKERS[i % len(MARKERS)],
                       c=[colours[int(c)] for c in panel.labels[sel]], alpha=0.8, linewidths=0)
        ax.set_title(f"{panel.label} (seed {panel.seed})", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [Line2D([], [], marker=MARKERS[i % len(MARKERS)], linestyle="", color="0.3", label=m, markersize=7)
               for i, m in enumerate(modalities)]
    labelled = classes.size <= DISTINCT_COLOURS
    if labelled:
        handles += [Line2D([], [], marker="o", linestyle="", color=colours[int(c)], markersize=7,
                           label=names.get(int(c), f"class {c}")) for c in classes]
    longest = max(len(h.get_label()) for h in handles)
    n_legend_cols = max(1, min(len(handles), int(width // (0.3 + 0.075 * longest))))
    note = (f"t-SNE (openTSNE, PCA init, seed {TSNE_SEED}) of L2-normalised common-space embeddings of "
            f"unseen-class test items; at most {per_class} items per class and modality; colour = class, "
            f"marker = modality" + ("" if labelled else f"; {classes.size} classes, colours not labelled"))
    fig.suptitle(f"{key.dataset} ({key.source} data, split {key.split})", fontsize=13)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    # below the panels: the legend, then the note; bbox_inches="tight" grows the canvas to hold both
    legend = fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=n_legend_cols,
                        fontsize=9, frameon=False)
    note_text = fig.text(0.5, -0.02, "\n".join(textwrap.wrap(note, width=int(width * 14))), ha="center",
                         va="top", fontsize=8, color="0.25", transform=fig.transFigure)
    _place_note_below(fig, legend, note_text)
    return save_figure(fig, out_dir, f"tsne-{key.slug}", claim, bbox_inches="tight")


def _place_note_below(fig, legend, note) -> None:
    """Move the note just under the legend, whatever the legend's height."""
    fig.canvas.draw()
    box = legend.get_window_extent().transformed(fig.transFigure.inverted())
    note.set_y(box.y0 - 0.01)


def _first_labels(run: Run) -> np.ndarray:
    sidecar = load_sidecar(run)
    if not sidecar or not sidecar.fits:
        return np.zeros(1)
    arrays = next(iter(sidecar.fits.values()))
    return next(iter(next(iter(arrays.values())).values()))[1]


def _modalities(run: Run) -> list[str]:
    return [m for task in run.metrics for m in task.split("->")]
