"""``zsbench report``: every run record -> tables, paper tables, figures, sensitivity, HTML.

Output folder layout::

    tables/<group>-<task>.{md,tex,csv}          methods x metrics per comparable group and task
    tables/<group>-<task>-significance.*         paired comparisons behind that table (per-query results)
    tables/paper-*.{md,tex,csv}                  the paper's tables (with --paper)
    tables/sensitivity-<group>-<task>.{md,tex,csv}
    tables/oracle-<group>.{md,tex,csv}           what test-set selection adds (oracle runs only)
    tables/trust-<dataset>-*.{md,tex,csv}        validation ranking against test ranking (with validation records)
    figures/tsne-<group>.{png,pdf}   figures/pr-<group>-<task>.{png,pdf}   figures/loss-<group>-<run>.{png,pdf}
    report.md   report.tex   report.csv          every table in one file each
    report.html                                   everything on one self-contained page
    .zsbench-report.json                          the manifest: the files above, removed by the next report

The folder is owned through its manifest (:mod:`benchmark.report.folder`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.contract import ZSBenchError
from benchmark.core.data import SCENARIOS
from benchmark.report.folder import ReportFolder
from benchmark.report.html import Figure, Part, render_html
from benchmark.report.records import GroupKey, Run, group_runs, load_runs, tasks_of
from benchmark.report.scenarios import role_table
from benchmark.report.tables import (
    PAIRED_EXPLAINED,
    Table,
    comparison_table,
    significance_table,
    to_csv,
    to_latex,
    to_markdown,
)

TABLE_FORMATS = (("CSV", ".csv", to_csv), ("Markdown", ".md", to_markdown), ("LaTeX", ".tex", to_latex))


@dataclass
class ReportResult:
    out_dir: Path
    groups: dict[GroupKey, list[Run]]
    comparison: list[Table] = field(default_factory=list)
    significance: list[Table] = field(default_factory=list)
    paper: list[Table] = field(default_factory=list)
    sensitivity: list[Table] = field(default_factory=list)
    oracle: list[Table] = field(default_factory=list)  # "What test-set selection adds" (oracle runs only)
    trust: list[Table] = field(default_factory=list)  # validation ranking against test ranking
    figures: list[Figure] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)  # per comparison table: which rows the tests separate
    files: list[str] = field(default_factory=list)  # every file written, relative to out_dir
    html: Path | None = None


def write_table(table: Table, folder: Path, out: ReportFolder | None = None) -> dict[str, Path]:
    files = {}
    for fmt, suffix, render in TABLE_FORMATS:
        path = folder / f"{table.key}{suffix}"
        if out is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render(table))
        else:
            out.write_text(path, render(table))
        files[fmt] = path
    return files


def _combined(tables: list[Table], summary: list[str], out: ReportFolder) -> None:
    lines = ["# zsbench report", ""]
    if summary:
        lines += ["## Significance summary", ""] + [f"- {line}" for line in summary] + [""]
    out.write_text(out.root / "report.md", "\n".join(lines) + "\n" + "\n".join(to_markdown(t) for t in tables))
    out.write_text(out.root / "report.tex", "% needs \\usepackage{booktabs} and \\usepackage{graphicx}\n"
                   + "\n".join(to_latex(t) for t in tables))
    # one CSV: the union of the tables' headers, every table's lines under it (missing fields empty)
    rows, header = [], []
    for part in (to_csv(t) for t in tables):
        reader = list(csv.DictReader(io.StringIO(part)))
        rows += reader
        for name in (reader[0].keys() if reader else []):
            if name not in header:
                header.append(name)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    out.write_text(out.root / "report.csv", buffer.getvalue())


def build_report(results: str | Path, out: str | Path, paper: bool = False, reported: str | Path | None = None,
                 plots: bool = True, sensitivity: bool = True, per_class: int = 40,
                 on_event: Callable[[str], None] | None = None, include_synthetic: bool = False,
                 loss_curves: tuple[str, ...] = ("cfsa",), statistics: bool = True,
                 n_resamples: int | None = None, selection=None, validation: str | Path | None = None) -> ReportResult:
    """Build the report of every record under ``results`` into ``out`` (see the module docstring).

    ``include_synthetic`` adds synthetic stand-ins to the paper tables (in their own section);
    ``loss_curves`` names the methods whose training log is drawn (one run each per group);
    ``statistics`` False skips intervals and tests (cells then show mean ± std); ``selection``
    (:class:`benchmark.report.records.Selection`) keeps only the records it takes; ``validation``, a folder of
    validation-stage records (``zsbench run --stage validation [--fold i]``), adds the table comparing the
    validation ranking with the test ranking (records of that stage under ``results`` count too).
    """
    results = Path(results)
    runs = load_runs(results, selection)
    oracle_runs = load_runs(results, selection, oracle=True)
    if not runs and not oracle_runs:
        raise ZSBenchError(f"no run records under {results}; run `zsbench run ...` first or pass --results DIR")
    folder = ReportFolder(out)
    folder.prepare()
    out_dir = folder.root
    say = on_event or (lambda message: None)
    groups = group_runs(runs)
    result = ReportResult(out_dir, groups)
    tables_dir, figures_dir = out_dir / "tables", out_dir / "figures"
    parts: list[Part] = []

    for scenario in SCENARIOS:
        scenario_groups = {key: members for key, members in groups.items() if key.scenario == scenario}
        if scenario_groups:
            parts.append(_comparison_part(scenario, scenario_groups, statistics, n_resamples, tables_dir, folder,
                                          result, say))
    # Figures, re-scoring and the paper's tables are of the zero-shot scenario: the stored embeddings of the
    # other scenarios are kept under the scenario's name, and the reported numbers are zero-shot ones.
    zero_shot = {key: members for key, members in groups.items() if key.scenario == "zero-shot"}

    from benchmark.report.trust import trust_tables

    def add_part(title: str, text: str, tables: list[Table], kept: list[Table]) -> None:
        if tables:
            kept += tables
            parts.append(Part(title, text, tables=[(t, write_table(t, tables_dir, folder)) for t in tables]))

    add_part("Can selection on validation classes be trusted?", "Kendall's tau between the methods' validation "
             "ranking (fold 0, and the mean over validation folds) and their test ranking, and each method's "
             "validation score across folds.", trust_tables(runs, runs + (load_runs(validation) if validation else [])),
             result.trust)
    if oracle_runs:
        from benchmark.report.oracle import oracle_table

        add_part("What test-set selection adds", "From oracle runs only (zsbench run --oracle-every N), which no "
                 "other table, tuning or default reads: the honest number beside what choosing the epoch and a "
                 "post-processing on the test classes, as some released codes do, would have reported.",
                 [oracle_table(key, members) for key, members in group_runs(oracle_runs).items()], result.oracle)

    if paper:
        from benchmark.report.paper import load_reported, paper_tables

        part = Part("The paper's tables", "The CFSA paper's comparisons: rows as reported by the papers and rows "
                    "measured here are separate, labelled sections and are never ranked together."
                    + ("" if include_synthetic else " Synthetic stand-ins are left out (--include-synthetic)."))
        for table in paper_tables(zero_shot, load_reported(reported), include_synthetic):
            if not table.columns:
                continue
            result.paper.append(table)
            part.tables.append((table, write_table(table, tables_dir, folder)))
        parts.append(part)

    if plots:
        parts += _figures(zero_shot, figures_dir, per_class, loss_curves, folder, result, say)

    if sensitivity:
        from benchmark.report.sensitivity import sensitivity_table

        part = Part("Metric-convention sensitivity", "The same embeddings scored under the conventions of the "
                    "peer codebases (docs/reference.md); the bracket is the difference to zsbench's convention.")
        for key, members in zero_shot.items():
            for task in tasks_of(members):
                say(f"re-scoring {key.dataset} ({key.source}) {task}")
                table = sensitivity_table(key, members, task)
                if table is not None:
                    result.sensitivity.append(table)
                    part.tables.append((table, write_table(table, tables_dir, folder)))
        parts.append(part)

    all_tables = (result.comparison + result.significance + result.trust + result.oracle + result.paper
                  + result.sensitivity)
    _combined(all_tables, result.summary, folder)
    summary = f"{len(runs)} run records from {results} in {len(groups)} comparable group(s)."
    if result.summary:
        parts.insert(0, Part("Significance summary", "Per group and task, on mAP@all:", items=list(result.summary)))
    combined = {name: out_dir / f"report.{suffix}" for name, suffix in (("Markdown", "md"), ("LaTeX", "tex"),
                                                                         ("CSV", "csv"))}
    result.html = folder.claim(out_dir / "report.html")
    result.html.write_text(render_html(parts, out_dir, "zsbench report", summary, combined))
    result.files = list(folder.written)
    return result


SCENARIO_PARTS = {
    "zero-shot": ("Comparison tables", ""),
    "generalized": ("Comparison tables: generalized zero-shot", " Generalized zero-shot: queries and gallery hold the "
                    "seen classes' test items and the unseen classes together; each comparison table is followed by "
                    "the seen-query / unseen-query / harmonic-mean table."),
    "standard": ("Comparison tables: standard retrieval (seen classes)", " Standard retrieval: queries and gallery "
                 "are the seen classes' test items, which training never saw."),
}


def _comparison_part(scenario: str, groups, statistics: bool, n_resamples, tables_dir: Path, folder: ReportFolder,
                     result: ReportResult, say) -> Part:
    """One part of comparison tables per scenario: records of different scenarios never share a table."""
    title, extra = SCENARIO_PARTS[scenario]
    part = Part(title, "One table per comparable group (dataset, data source, split and hash, evaluation protocol, "
                "semantics, features, stage, scenario) and task; methods x metrics. With per-query results a cell is "
                "the mean over seeds with its 95 % two-level bootstrap interval, and † marks rows not significantly "
                "worse than the best (paired randomization test, Holm over the table); each is followed by its "
                "paired comparisons. Best per column in bold. Each dataset section starts with what its tables "
                "share; every P@k caption gives the best P@k a perfect ranking reaches on that gallery "
                "(R-precision's is 1). " + PAIRED_EXPLAINED + extra)
    tag = "" if scenario == "zero-shot" else f", {scenario}"
    for key, members in groups.items():
        for task in tasks_of(members):
            say(f"statistics {key.dataset} ({key.source}{tag}) {task}")
            table = comparison_table(key, members, task, statistics=statistics, n_resamples=n_resamples)
            result.comparison.append(table)
            part.tables.append((table, write_table(table, tables_dir, folder)))
            result.summary += [f"{key.dataset} ({key.source}{'' if key.stage == 'test' else ', ' + key.stage}{tag}) "
                               f"{task}: {note}" for note in table.notes if note.startswith("mAP@all")]
            detail = significance_table(table)
            if detail is not None:
                result.significance.append(detail)
                part.tables.append((detail, write_table(detail, tables_dir, folder)))
            roles = role_table(key, members, task, statistics, n_resamples) if scenario == "generalized" else None
            if roles is not None:
                result.comparison.append(roles)
                part.tables.append((roles, write_table(roles, tables_dir, folder)))
    return part


def _figures(groups, figures_dir: Path, per_class: int, loss_curves, folder: ReportFolder, result: ReportResult,
             say) -> list[Part]:
    from benchmark.report.curves import method_colours, plot_pr_curves
    from benchmark.report.training import pick_runs, plot_training_log
    from benchmark.report.tsne import plot_tsne

    colours = method_colours(run.label for members in groups.values() for run in members)
    tsne_part = Part("t-SNE maps", "Common-space embeddings of unseen-class test items, all modalities in "
                     "one map per method (one per fit for methods fitted once per modality pair).")
    pr_part = Part("Precision-recall curves", "Interpolated precision against recall, one curve per method, "
                   "from cosine similarity on the stored embeddings (a method's own similarity is not stored).")
    loss_part = Part("Training curves", "Every logged loss of one run against the epoch (the lowest seed at "
                     "default settings), one panel per loss family; validation mAP@all where the run logged it.")
    for key, members in groups.items():
        say(f"t-SNE {key.dataset} ({key.source})")
        paths = plot_tsne(key, members, figures_dir, per_class, claim=folder.claim)
        if paths:
            tsne_part.figures.append(Figure(f"t-SNE, {key.caption()}", paths[0], paths[1]))
        for task in tasks_of(members):
            say(f"PR curves {key.dataset} ({key.source}) {task}")
            paths = plot_pr_curves(key, members, task, figures_dir, colours, claim=folder.claim)
            if paths:
                pr_part.figures.append(Figure(f"Precision-recall, {task}, {key.caption()}", paths[0], paths[1]))
        for run in pick_runs(members, tuple(loss_curves)):
            paths = plot_training_log(key, run, figures_dir, claim=folder.claim)
            if paths:
                loss_part.figures.append(Figure(f"Training log of {run.label} (seed {run.seed}, record "
                                                f"{run.path.name}), {key.caption()}", paths[0], paths[1]))
    parts = [p for p in (tsne_part, pr_part, loss_part) if p.figures]
    result.figures = tsne_part.figures + pr_part.figures + loss_part.figures
    return parts
