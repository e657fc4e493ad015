"""A small table model and its renderers: console (rich), Markdown, LaTeX (booktabs) and CSV.

A :class:`Table` has columns (optionally grouped under spanning headers) and one or more sections of rows.
Sections keep rows that must not be compared apart (numbers "as reported" by papers and numbers measured
here, default and tuned configurations); the best value per column is marked inside each section, never
across sections. A cell shows its mean with a 95 % interval when per-query results exist (else mean ± sample
std over seeds); :data:`TOP_MARK` marks a row not significantly worse than the best of its column.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field

from benchmark.core.convergence import RULE
from benchmark.report.queries import ceiling_text
from benchmark.report.records import METRICS, GroupKey, Run, Stat, aggregate, methods_of, section_title, sections_of

#: Marks a row that is not significantly worse than the best row of its column (the best is bold).
TOP_MARK = "†"
#: After a row's label: some of its runs' training did not converge by the one rule (docs/training.md).
UNCONVERGED_MARK = "‡"


def number(value: float, digits: int = 3, signed: bool = False) -> str:
    """``value`` rounded, never ``-0.000`` (a value that rounds to zero prints as zero, without a sign)."""
    text = f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
    return f"{0.0:.{digits}f}" if float(text) == 0.0 else text


@dataclass
class Cell:
    mean: float | None = None
    std: float | None = None
    n: int = 0
    best: bool = False
    delta: float | None = None  # a signed difference to a reference, shown after the value
    low: float | None = None  # 95 % interval, when per-query results exist
    high: float | None = None
    top: bool = False  # not significantly worse than the best of its column
    display: str | None = None  # the text to show instead of the number (counts, small p-values)

    @classmethod
    def of(cls, stat: Stat | None) -> Cell:
        return cls() if stat is None else cls(stat.mean, stat.std, stat.n)

    @property
    def empty(self) -> bool:
        return self.mean is None or math.isnan(self.mean)

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    def text(self, digits: int = 3, marks: bool = True) -> str:
        if self.empty:
            return "–"
        if self.display is not None:
            return self.display
        signed = self.delta is None and self.mean < 0 and self.has_interval
        text = number(self.mean, digits, signed)
        if self.has_interval:
            text += f" [{number(self.low, digits)}, {number(self.high, digits)}]"
        elif self.std is not None:
            text += f" ± {number(self.std, digits)}"
        if self.delta is not None:
            text += f" ({number(self.delta, digits, signed=True)})"
        return text + (TOP_MARK if marks and self.top and not self.best else "")


@dataclass
class Row:
    label: str
    cells: list[Cell]
    seeds: str = ""  # number of seeds behind the row ("3", "2-3"; empty for reported numbers)


@dataclass
class Section:
    label: str
    rows: list[Row] = field(default_factory=list)


@dataclass
class Table:
    key: str  # file stem
    title: str
    caption: str
    columns: list[str]
    sections: list[Section]
    column_groups: list[tuple[str, int]] = field(default_factory=list)  # (header, number of columns spanned)
    row_header: str = "method"
    meta: dict[str, str] = field(default_factory=dict)  # written into every CSV line
    higher_is_better: bool = True
    notes: list[str] = field(default_factory=list)
    statistics: list = field(default_factory=list, repr=False)  # (section, TableStats) behind a comparison table
    #: What tables of one dataset section share (said once above them on a page) and the table's own one line.
    heading: str = ""
    line: str = ""

    def mark_best(self) -> Table:
        for section in self.sections:
            for j in range(len(self.columns)):
                cells = [row.cells[j] for row in section.rows if not row.cells[j].empty]
                if len(cells) < 2:
                    continue
                pick = max if self.higher_is_better else min
                best = pick(c.mean for c in cells)
                for c in cells:
                    c.best = c.mean == best
        return self

    @property
    def has_seeds(self) -> bool:
        return any(row.seeds for s in self.sections for row in s.rows)

    def full_columns(self) -> list[str]:
        return [self.row_header] + (["seeds"] if self.has_seeds else []) + self.columns

    def full_groups(self) -> list[tuple[str, int]]:
        if not self.column_groups:
            return []
        return [("", 2 if self.has_seeds else 1)] + self.column_groups


def seed_range(stats: list[Stat | None]) -> str:
    counts = sorted({s.n for s in stats if s is not None})
    if not counts:
        return "0"
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"


def comparison_table(key: GroupKey, runs: list[Run], task: str, metrics: tuple[str, ...] = METRICS,
                     statistics: bool = True, n_resamples: int | None = None) -> Table:
    """Methods x metrics for one task of one comparable group.

    One section per selection (defaults, tuned with a budget). With per-query results a cell shows the mean
    over seeds and its 95 % two-level bootstrap interval, and rows not significantly worse than the best of
    their column (paired randomization test, Holm over every comparison of the table) are marked; without,
    mean ± sample std over seeds. A metric no run of the table has (R-precision in older records) is left out.
    """
    from benchmark.core.stats import N_RESAMPLES

    metrics = tuple(m for m in metrics if any(m in r.metrics.get(task, {}) for r in runs))
    from benchmark.report.queries import adjust_family, table_statistics

    sections, notes, section_stats = [], [], []
    by_selection = sections_of(runs)
    for selection, members in by_selection.items():
        stats = aggregate(members, task, metrics)
        extra = table_statistics(members, task, metrics, n_resamples or N_RESAMPLES) if statistics else None
        rows = []
        for label in methods_of(members):
            if label not in stats:
                continue
            cells = [Cell.of(stats[label][m]) for m in metrics]
            for metric, cell in zip(metrics, cells, strict=True):
                interval = extra.intervals.get(label, {}).get(metric) if extra else None
                if interval is not None and not cell.empty:
                    cell.low, cell.high = interval.low, interval.high
            rows.append(Row(label, cells, seed_range(list(stats[label].values()))))
        title = "" if list(by_selection) == ["defaults"] else section_title(selection)
        sections.append(Section(title, rows))
        if extra is not None:
            section_stats.append((sections[-1], extra))
    n_family = adjust_family([extra for _, extra in section_stats])  # Holm over every comparison of the table
    Table(key="", title="", caption="", columns=list(metrics), sections=sections).mark_best()
    for section, extra in section_stats:
        for j, metric in enumerate(metrics):
            bold = {row.label for row in section.rows if row.cells[j].best}
            if extra.best.get(metric) not in bold:
                continue  # the best row has no per-query results: nothing was tested against it
            top = extra.top(metric)
            for row in section.rows:
                row.cells[j].top = row.label in top
        notes += _significance_notes(section, extra, metrics[0])
    notes += _convergence_notes(sections, by_selection)
    has_intervals = any(c.has_interval for s in sections for r in s.rows for c in r.cells)
    missing = sorted({label for _, extra in section_stats for label in extra.missing})
    if missing:
        notes.append(f"No interval or test for {', '.join(missing)}: {'its' if len(missing) == 1 else 'their'} "
                     "records have no per-query results (written before they were kept); mean ± sample std over "
                     "seeds instead.")
    cell_text = ("mean over seeds [95 % two-level bootstrap interval: seeds, then queries]" if has_intervals else
                 "mean ± sample std over seeds (no per-query results, so no interval can be given)")
    marks = (f"; {TOP_MARK} not significantly worse than the best (paired randomization test over queries, "
             f"Holm-corrected across the table's {n_family} comparisons, alpha 0.05)" if n_family else "")
    heading = f"{key.caption()}. Cells: {cell_text}; best per column in bold{marks}. {selection_text(runs)}"
    line = f"{scale_text(runs, task)}. {ceiling_text(runs, task, metrics)}"
    table = Table(key=f"{key.slug}-{task.replace('->', '2')}", title=f"{key.dataset} ({key.source}) {task}",
                  caption=f"{task} on {line} {heading}", columns=list(metrics), sections=sections,
                  meta={**key.meta(), "task": task}, notes=notes, statistics=section_stats, heading=heading, line=line)
    return table.mark_best()


def _convergence_notes(sections: list[Section], by_selection: dict[str, list[Run]]) -> list[str]:
    """Mark the rows whose training did not converge in some seed (after their label) and say in how many."""
    flagged = []
    for section, members in zip(sections, by_selection.values(), strict=True):
        for row in section.rows:
            verdicts = [run.converged for run in members if run.label == row.label]
            failed = sum(v is False for v in verdicts)
            if failed:
                flagged.append(f"{row.label}: {failed} of {len(verdicts)} runs" + (f" ({section.label})" if section.label else ""))
                row.label += f" {UNCONVERGED_MARK}"
    if not flagged:
        return []
    return [f"{UNCONVERGED_MARK} training did not converge in some seeds ({RULE}; docs/training.md): "
            f"{'; '.join(flagged)}. Such a row reports a method stopped by its budget, not at its optimum."]


def _significance_notes(section: Section, extra, metric: str) -> list[str]:
    best = extra.best.get(metric)
    if best is None:
        return []
    where = f" ({section.label})" if section.label else ""
    bold = sorted(row.label for row in section.rows if row.cells[0].best)  # metric is the table's first column
    if best not in bold:
        return [f"{metric}{where}: the best row ({', '.join(bold)}) has no per-query results, so no row is tested "
                f"against it or marked; among rows with per-query results the best is {best} (see its paired "
                "comparisons)."]
    comparisons = extra.comparisons.get(metric, [])
    same = sorted(c.b for c in comparisons if not c.significant())
    worse = sorted(c.b for c in comparisons if c.significant())
    return [f"{metric}{where}: best {best}; not significantly worse: {', '.join(same) or 'none'}; "
            f"significantly worse: {', '.join(worse) or 'none'}."]


def scale_text(runs: list[Run], task: str) -> str:
    """"N queries, M gallery items, K unseen classes" from the records (a range where records disagree)."""
    def spread(values) -> str:
        values = sorted({int(v) for v in values if v is not None})
        return "?" if not values else str(values[0]) if len(values) == 1 else f"{values[0]}-{values[-1]}"

    infos = [run.info(task) for run in runs if task in run.metrics]
    queries = spread(i.get("n_queries") for i in infos)
    gallery = spread(i.get("n_gallery") for i in infos)
    # the selection view's split names the validation classes as its unseen ones
    classes = spread(run.record.split.get("n_unseen") for run in runs if run.record is not None)
    without = spread(i.get("queries_without_relevant") for i in infos)
    kind = "validation" if runs and runs[0].group.stage == "validation" else "unseen"
    scenario = runs[0].group.scenario if runs else "zero-shot"
    seen = spread(run.record.split.get("n_seen") for run in runs if run.record is not None)
    # the selection view's seen classes are the training classes (its seen classes less the validation ones)
    classes = {"zero-shot": f"{classes} {kind} classes", "standard": f"{seen} seen classes",
               "generalized": f"{seen} seen and {classes} {kind} classes"}[scenario]
    text = f"{queries} queries, {gallery} gallery items, {classes}"
    return text + (f" ({without} queries without relevant items left out)" if without not in ("0", "?") else "")


def selection_text(runs: list[Run]) -> str:
    tuned = sorted({run.selection_label for run in runs if run.protocol != "defaults"})
    budgets = sorted({run.training_budget for run in runs})
    text = ("Every configuration at the method's defaults." if not tuned else
            "Tuned rows were selected on validation classes only (" + "; ".join(tuned) + ") and are ranked apart "
            "from default rows.")
    return text + (f" Training budgets ({', '.join(budgets)}) are ranked in separate sections."
                   if len(budgets) > 1 else "")


PAIRED_EXPLAINED = ("Paired comparisons: Δ is the row minus the best, with its 95 % bootstrap interval (seeds drawn "
                    "per method, queries shared); d_z: mean per-query difference over its standard deviation; wins / "
                    "ties / losses: queries on which the row beats, ties or loses to the best; p: two-sided paired "
                    "randomization test; p (Holm): adjusted over every comparison of the table.")


def significance_table(table: Table, metric: str = "mAP@all") -> Table | None:
    """Per row, the paired comparison against its section's best on ``metric``: difference with its
    interval, paired Cohen's d, wins / ties / losses over queries, p-values (raw and Holm over the table)."""
    family = [c for _, extra in table.statistics for comps in extra.comparisons.values() for c in comps]
    if not family:
        return None
    columns = [f"Δ {metric} vs best", "Cohen's d_z", "wins", "ties", "losses", "p", "p (Holm)"]
    sections = []
    for section, extra in table.statistics:
        if metric not in extra.comparisons:
            continue
        rows = []
        for c in sorted(extra.comparisons[metric], key=lambda c: c.effect.mean_difference):
            # c compares the best (a) with this row (b): show the row's view (negative: worse than the best)
            d = c.difference
            rows.append(Row(c.b, [
                Cell(-d.estimate, low=-d.high, high=-d.low),
                _dz_cell(-c.effect.cohens_dz),
                Cell(float(c.effect.losses), display=str(c.effect.losses)),
                Cell(float(c.effect.ties), display=str(c.effect.ties)),
                Cell(float(c.effect.wins), display=str(c.effect.wins)),
                _p_cell(c.test.p_value), _p_cell(c.p_holm)]))
        label = f"against {extra.best[metric]}" + (f" ({section.label})" if section.label else "")
        sections.append(Section(label, rows))
    caption = (f"Paired comparisons behind '{table.title}': each row against the best row of its section on "
               f"{metric}, over {family[0].test.n_queries} queries (per-query values averaged over seeds), Holm over "
               f"all {len(family)} comparisons of the table (every metric column). {PAIRED_EXPLAINED}")
    line = (f"each row against its section's best on {metric}, {family[0].test.n_queries} queries, Holm over "
            f"{len(family)} comparisons")
    return Table(key=f"{table.key}-significance", title=f"{table.title}: paired comparisons", caption=caption, line=line,
                 columns=columns, sections=sections, meta=dict(table.meta))


def _dz_cell(dz: float) -> Cell:
    if math.isnan(dz):
        return Cell()
    return Cell(dz, display=("∞" if dz > 0 else "-∞") if math.isinf(dz) else number(dz, 2))


def _p_cell(p: float) -> Cell:
    return Cell(p, display="<0.001" if p < 0.001 else number(p))


# --- renderers -------------------------------------------------------------------------------------------

def to_markdown(table: Table) -> str:
    cols = table.full_columns()
    lines = [f"**{table.title}**", "", f"*{table.caption}*", ""]
    if table.column_groups:
        spans = []
        for header, width in table.full_groups():
            spans += [header] + [""] * (width - 1)
        lines += ["| " + " | ".join(spans) + " |", "|" + "---|" * len(cols)]
        lines.append("| " + " | ".join(cols) + " |")
    else:
        lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for section in table.sections:
        if section.label:
            lines.append(f"| *{_md_escape(section.label)}* |" + " |" * (len(cols) - 1))
        for row in section.rows:
            cells = [f"**{c.text()}**" if c.best else c.text() for c in row.cells]
            lines.append("| " + " | ".join([_md_escape(row.label)] + ([row.seeds] if table.has_seeds else [])
                                           + cells) + " |")
    lines += [""] + [f"{note}" for note in table.notes]
    return "\n".join(lines).rstrip() + "\n"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def latex_escape(text: str) -> str:
    text = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text).replace("->", r"$\to$")
    return text.replace("±", r"$\pm$").replace("–", "--")


def _latex_cell(cell: Cell) -> str:
    if cell.empty:
        return "--"
    text = latex_escape(cell.text(marks=False))
    if cell.best:
        return f"\\textbf{{{text}}}"
    return text + ("$^\\dagger$" if cell.top else "")


def to_latex(table: Table) -> str:
    """A booktabs ``table`` float; needs ``\\usepackage{booktabs}`` (and graphicx for wide tables)."""
    cols = table.full_columns()
    spec = "l" + ("r" if table.has_seeds else "") + "c" * len(table.columns)
    # spans both columns of a paper and is scaled to the text width (needs graphicx)
    wide = len(cols) > 8 or any(c.has_interval for s in table.sections for r in s.rows for c in r.cells)
    float_env = "table*" if wide else "table"
    out = [f"\\begin{{{float_env}}}[t]", "\\centering", "\\small",
           f"\\caption{{{latex_escape(table.caption)}}}", f"\\label{{tab:{table.key}}}"]
    if wide:
        out.append("\\resizebox{\\textwidth}{!}{%")
    out += [f"\\begin{{tabular}}{{{spec}}}", "\\toprule"]
    if table.column_groups:
        heads, rules, start = [], [], 1
        for header, width in table.full_groups():
            heads.append(f"\\multicolumn{{{width}}}{{c}}{{{latex_escape(header)}}}" if header else
                         " & ".join([""] * width))
            if header:
                rules.append(f"\\cmidrule(lr){{{start}-{start + width - 1}}}")
            start += width
        out += [" & ".join(heads) + " \\\\", " ".join(rules)]
    out.append(" & ".join(latex_escape(c) for c in cols) + " \\\\")
    for section in table.sections:
        out.append("\\midrule")
        if section.label:
            out.append(f"\\multicolumn{{{len(cols)}}}{{l}}{{\\textit{{{latex_escape(section.label)}}}}} \\\\")
        for row in section.rows:
            cells = [latex_escape(row.label)] + ([row.seeds] if table.has_seeds else []) + [
                _latex_cell(c) for c in row.cells]
            out.append(" & ".join(cells) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}" + ("}" if wide else "")]
    for note in table.notes:
        out.append(f"\\par\\smallskip\\footnotesize {latex_escape(note)}")
    out += [f"\\end{{{float_env}}}", ""]
    return "\n".join(out)


def to_csv(table: Table) -> str:
    """Long format: one line per cell, with the table's provenance fields on every line."""
    buffer = io.StringIO()
    meta_keys = list(table.meta)
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["table", "section", table.row_header, "column_group", "column", "mean", "std", "n_seeds", "best",
                     "delta", "ci_low", "ci_high", "not_worse_than_best"] + meta_keys)
    groups = [header for header, width in table.column_groups for _ in range(width)] or [""] * len(table.columns)
    for section in table.sections:
        for row in section.rows:
            for group, column, cell in zip(groups, table.columns, row.cells, strict=True):
                writer.writerow([table.key, section.label, row.label, group, column,
                                 "" if cell.empty else _csv_number(cell.mean), _csv_number(cell.std),
                                 cell.n, int(cell.best), _csv_number(cell.delta), _csv_number(cell.low),
                                 _csv_number(cell.high), int(cell.top or cell.best) if cell.has_interval else ""]
                                + [table.meta[k] for k in meta_keys])
    return buffer.getvalue()


def _csv_number(value: float | None) -> str:
    return "" if value is None or math.isnan(value) else repr(round(value, 6) + 0.0)  # + 0.0: no "-0.0"


def split_columns(table: Table, max_columns: int = 6) -> list[Table]:
    """The table cut into tables of whole column groups with at most ``max_columns`` columns (for a console)."""
    if len(table.columns) <= max_columns or not table.column_groups:
        return [table]
    pieces, start, chunk = [], 0, []
    for header, width in table.column_groups + [("", 0)]:
        if width == 0 or (chunk and sum(w for _, w in chunk) + width > max_columns):
            stop = start + sum(w for _, w in chunk)
            sections = [Section(s.label, [Row(r.label, r.cells[start:stop], r.seeds) for r in s.rows])
                        for s in table.sections]
            pieces.append(Table(table.key, table.title, table.caption, table.columns[start:stop], sections,
                                list(chunk), table.row_header, table.meta, table.higher_is_better))
            start, chunk = stop, []
        if width:
            chunk.append((header, width))
    return pieces
