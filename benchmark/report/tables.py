"""A small table model and its renderers: console (rich), Markdown, LaTeX (booktabs) and CSV.

A :class:`Table` has columns (optionally grouped under spanning headers) and one or more sections of rows.
Sections keep rows that must not be compared apart (numbers "as reported" by papers and numbers measured
here); the best value per column is marked inside each section, never across sections.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field

from benchmark.report.records import METRICS, GroupKey, Stat, aggregate, methods_of


@dataclass
class Cell:
    mean: float | None = None
    std: float | None = None
    n: int = 0
    best: bool = False
    delta: float | None = None  # a signed difference to a reference, shown after the value

    @classmethod
    def of(cls, stat: Stat | None) -> Cell:
        return cls() if stat is None else cls(stat.mean, stat.std, stat.n)

    @property
    def empty(self) -> bool:
        return self.mean is None or math.isnan(self.mean)

    def text(self, digits: int = 3) -> str:
        if self.empty:
            return "–"
        text = f"{self.mean:.{digits}f}" if self.std is None else f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"
        return text if self.delta is None else f"{text} ({self.delta:+.{digits}f})"


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


def comparison_table(key: GroupKey, runs, task: str, metrics: tuple[str, ...] = METRICS) -> Table:
    """Methods x metrics for one task of one comparable group, mean ± std over seeds."""
    stats = aggregate(runs, task, metrics)
    rows = [Row(label, [Cell.of(stats[label][m]) for m in metrics], seed_range(list(stats[label].values())))
            for label in methods_of(runs) if label in stats]
    caption = (f"{task} on {key.caption()}. Unseen classes; mean ± sample std over seeds; best per column in bold.")
    return Table(key=f"{key.slug}-{task.replace('->', '2')}", title=f"{key.dataset} ({key.source}) {task}",
                 caption=caption, columns=list(metrics), sections=[Section("", rows)],
                 meta={**key.meta(), "task": task}).mark_best()


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
    text = f"{cell.mean:.3f}" if cell.std is None else f"{cell.mean:.3f} $\\pm$ {cell.std:.3f}"
    if cell.delta is not None:
        text += f" ({cell.delta:+.3f})"
    return f"\\textbf{{{text}}}" if cell.best else text


def to_latex(table: Table) -> str:
    """A booktabs ``table`` float; needs ``\\usepackage{booktabs}`` (and graphicx for wide tables)."""
    cols = table.full_columns()
    spec = "l" + ("r" if table.has_seeds else "") + "c" * len(table.columns)
    wide = len(cols) > 8  # spans both columns of a paper and is scaled to the text width (needs graphicx)
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
                     "delta"] + meta_keys)
    groups = [header for header, width in table.column_groups for _ in range(width)] or [""] * len(table.columns)
    for section in table.sections:
        for row in section.rows:
            for group, column, cell in zip(groups, table.columns, row.cells, strict=True):
                writer.writerow([table.key, section.label, row.label, group, column,
                                 "" if cell.empty else repr(round(cell.mean, 6)),
                                 "" if cell.std is None else repr(round(cell.std, 6)),
                                 cell.n, int(cell.best), "" if cell.delta is None else repr(round(cell.delta, 6))]
                                + [table.meta[k] for k in meta_keys])
    return buffer.getvalue()


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


def to_rich(table: Table):
    """A rich renderable: one rich table per section (its label as title), wide tables cut by column group."""
    from rich.console import Group
    from rich.table import Table as RichTable
    from rich.text import Text

    out = [Text(table.title, style="bold"), Text(table.caption, style="dim")]
    for piece in split_columns(table, max_columns=4):
        groups = piece.full_groups()
        headers = piece.full_columns()
        if groups:  # rich has no spanning headers: prefix each column with its group
            prefixes = [header for header, width in groups for _ in range(width)]
            headers = [f"{p}\n{h}" if p else h for p, h in zip(prefixes, headers, strict=True)]
        for section in piece.sections:
            rows = [row for row in section.rows if not all(c.empty for c in row.cells)]
            if not rows:  # a console has no room for rows of dashes (the files keep them)
                continue
            rich_table = RichTable(title=section.label or None, title_style="italic", title_justify="left")
            for i, header in enumerate(headers):
                rich_table.add_column(header, justify="left" if i == 0 else "right")
            for row in rows:
                cells = [f"[bold green]{c.text()}[/bold green]" if c.best else c.text() for c in row.cells]
                rich_table.add_row(row.label, *([row.seeds] if piece.has_seeds else []), *cells)
            out.append(rich_table)
    return Group(*out)


def to_html(table: Table) -> str:
    from html import escape

    cols = table.full_columns()
    out = [f"<table><caption><b>{escape(table.title)}</b><br>{escape(table.caption)}</caption>", "<thead>"]
    if table.column_groups:
        out.append("<tr>" + "".join(f'<th colspan="{w}">{escape(h)}</th>' for h, w in table.full_groups()) + "</tr>")
    out.append("<tr>" + "".join(f"<th>{escape(c)}</th>" for c in cols) + "</tr></thead>")
    for section in table.sections:
        out.append("<tbody>")
        if section.label:
            out.append(f'<tr class="section"><td colspan="{len(cols)}">{escape(section.label)}</td></tr>')
        for row in section.rows:
            cells = [f'<td class="best">{escape(c.text())}</td>' if c.best else f"<td>{escape(c.text())}</td>"
                     for c in row.cells]
            seeds = [f"<td>{escape(row.seeds)}</td>"] if table.has_seeds else []
            out.append(f"<tr><th>{escape(row.label)}</th>" + "".join(seeds + cells) + "</tr>")
        out.append("</tbody>")
    out.append("</table>")
    out += [f'<p class="note">{escape(note)}</p>' for note in table.notes]
    return "\n".join(out)
