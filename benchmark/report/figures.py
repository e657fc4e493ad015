"""What every figure of the report shares: the colour palette and how a figure is written."""

from __future__ import annotations

from pathlib import Path

from benchmark.core.spec import safe_name

#: Distinct colours on white (after Trubetskoy's "20 distinct colours", the palest ones replaced by darker).
PALETTE = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324", "#469990",
           "#800000", "#000075", "#808000", "#bfef45", "#fabed4", "#ffe119", "#a9a9a9", "#000000", "#dcbeff",
           "#aaffc3", "#ff7f50", "#2f4f4f", "#b8860b")


def save_figure(fig, out_dir: Path, stem: str, claim=None, **options) -> list[Path]:
    """Write ``<stem>.png`` (110 dpi) and ``<stem>.pdf``, each claimed first by the report's folder; closes
    the figure. ``options`` go to ``savefig`` (e.g. ``bbox_inches="tight"``)."""
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = safe_name(stem)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"]
    for path in paths:
        (claim or Path)(path)  # the report's folder records the file before it is written
    fig.savefig(paths[0], dpi=110, **options)
    fig.savefig(paths[1], **options)
    plt.close(fig)
    return paths
