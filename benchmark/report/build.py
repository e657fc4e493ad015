"""``zsbench report``: every run record -> tables, paper tables, t-SNE maps, PR curves, sensitivity, HTML.

Output folder layout::

    tables/<group>-<task>.{md,tex,csv}          methods x metrics per comparable group and task
    tables/paper-*.{md,tex,csv}                  the paper's tables (with --paper)
    tables/sensitivity-<group>-<task>.{md,tex,csv}
    figures/tsne-<group>.{png,pdf}   figures/pr-<group>-<task>.{png,pdf}
    report.md   report.tex   report.csv          every table in one file each
    report.html                                   everything on one self-contained page
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.contract import ZSBenchError
from benchmark.report.html import Figure, Part, render_html
from benchmark.report.records import GroupKey, Run, group_runs, load_runs, tasks_of
from benchmark.report.tables import Table, comparison_table, to_csv, to_latex, to_markdown


@dataclass
class ReportResult:
    out_dir: Path
    groups: dict[GroupKey, list[Run]]
    comparison: list[Table] = field(default_factory=list)
    paper: list[Table] = field(default_factory=list)
    sensitivity: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    html: Path | None = None


def write_table(table: Table, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for fmt, render in (("CSV", to_csv), ("Markdown", to_markdown), ("LaTeX", to_latex)):
        suffix = {"CSV": ".csv", "Markdown": ".md", "LaTeX": ".tex"}[fmt]
        path = folder / f"{table.key}{suffix}"
        path.write_text(render(table))
        files[fmt] = path
    return files


def _combined(tables: list[Table], out_dir: Path) -> None:
    (out_dir / "report.md").write_text("# zsbench report\n\n" + "\n".join(to_markdown(t) for t in tables))
    (out_dir / "report.tex").write_text("% needs \\usepackage{booktabs} and \\usepackage{graphicx}\n"
                                        + "\n".join(to_latex(t) for t in tables))
    csv_parts = [to_csv(t) for t in tables]
    # one CSV: the union of the tables' headers, every table's lines under it (missing fields empty)
    rows, header = [], []
    for part in csv_parts:
        reader = list(csv.DictReader(io.StringIO(part)))
        rows += reader
        for name in (reader[0].keys() if reader else []):
            if name not in header:
                header.append(name)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    (out_dir / "report.csv").write_text(buffer.getvalue())


def build_report(results: str | Path, out: str | Path, paper: bool = False, reported: str | Path | None = None,
                 plots: bool = True, sensitivity: bool = True, per_class: int = 40,
                 on_event: Callable[[str], None] | None = None) -> ReportResult:
    results, out_dir = Path(results), Path(out)
    runs = load_runs(results)
    if not runs:
        raise ZSBenchError(f"no run records under {results}; run `zsbench run ...` first or pass --results DIR")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ZSBenchError(f"cannot create report folder {out_dir}: {err.strerror}; pass --out DIR") from None
    say = on_event or (lambda message: None)
    groups = group_runs(runs)
    result = ReportResult(out_dir, groups)
    tables_dir, figures_dir = out_dir / "tables", out_dir / "figures"
    parts: list[Part] = []

    comparison = Part("Comparison tables", "One table per comparable group (dataset, data source, split and hash, "
                      "evaluation protocol, semantics, features) and task; methods x metrics, mean ± sample std over "
                      "seeds, best per column in bold.")
    for key, members in groups.items():
        for task in tasks_of(members):
            table = comparison_table(key, members, task)
            result.comparison.append(table)
            comparison.tables.append((table, write_table(table, tables_dir)))
    parts.append(comparison)

    if paper:
        from benchmark.report.paper import load_reported, paper_tables

        part = Part("The paper's tables", "The CFSA paper's comparisons: rows as reported by the papers and rows "
                    "measured here are separate, labelled sections and are never ranked together.")
        for table in paper_tables(groups, load_reported(reported)):
            if not table.columns:
                continue
            result.paper.append(table)
            part.tables.append((table, write_table(table, tables_dir)))
        parts.append(part)

    if plots:
        from benchmark.report.curves import method_colours, plot_pr_curves
        from benchmark.report.tsne import plot_tsne

        colours = method_colours(run.label for members in groups.values() for run in members)
        tsne_part = Part("t-SNE maps", "Common-space embeddings of unseen-class test items, all modalities in "
                         "one map per method.")
        pr_part = Part("Precision-recall curves", "Interpolated precision against recall, one curve per method, "
                       "from cosine similarity on the stored embeddings (a method's own similarity is not stored).")
        for key, members in groups.items():
            say(f"t-SNE {key.dataset} ({key.source})")
            paths = plot_tsne(key, members, figures_dir, per_class)
            if paths:
                tsne_part.figures.append(Figure(f"t-SNE, {key.caption()}", paths[0], paths[1]))
            for task in tasks_of(members):
                say(f"PR curves {key.dataset} ({key.source}) {task}")
                paths = plot_pr_curves(key, members, task, figures_dir, colours)
                if paths:
                    pr_part.figures.append(Figure(f"Precision-recall, {task}, {key.caption()}", paths[0], paths[1]))
        parts += [tsne_part, pr_part]
        result.figures = tsne_part.figures + pr_part.figures

    if sensitivity:
        from benchmark.report.sensitivity import sensitivity_table

        part = Part("Metric-convention sensitivity", "The same embeddings scored under the conventions of the "
                    "peer codebases; the bracket is the difference to zsbench's convention.")
        for key, members in groups.items():
            for task in tasks_of(members):
                say(f"re-scoring {key.dataset} ({key.source}) {task}")
                table = sensitivity_table(key, members, task)
                if table is not None:
                    result.sensitivity.append(table)
                    part.tables.append((table, write_table(table, tables_dir)))
        parts.append(part)

    all_tables = result.comparison + result.paper + result.sensitivity
    _combined(all_tables, out_dir)
    summary = f"{len(runs)} run records from {results} in {len(groups)} comparable group(s)."
    combined = {name: out_dir / f"report.{suffix}" for name, suffix in (("Markdown", "md"), ("LaTeX", "tex"),
                                                                         ("CSV", "csv"))}
    result.html = out_dir / "report.html"
    result.html.write_text(render_html(parts, out_dir, "zsbench report", summary, combined))
    return result
