"""Tables on a console (rich) and in HTML: each table with its title and one line; what the tables of one
dataset section share (``Table.heading``) is said once above them (:func:`with_headings`)."""

from __future__ import annotations

from benchmark.report.tables import Table, split_columns


def with_headings(tables: list[Table]) -> list[tuple[str | None, Table]]:
    """Each table with the heading to print before it: its section's heading the first time it appears, None
    after (a comparison table's paired-comparison table shares its heading)."""
    out, last = [], None
    for table in tables:
        heading = table.heading or None
        out.append((heading if heading and heading != last else None, table))
        last = heading or last
    return out


def console_report(tables: list[Table]):
    """The renderables of ``tables`` on a console: headings once, then each table."""
    from rich.text import Text

    out = []
    for heading, table in with_headings(tables):
        if heading:
            out.append(Text(heading, style="italic"))
        out.append(to_rich(table))
        out += [Text(f"  {note}", style="dim") for note in table.notes]
    return out


def to_rich(table: Table):
    """A rich renderable: one rich table per section (its label as title), wide tables cut by column group."""
    from rich.console import Group
    from rich.table import Table as RichTable
    from rich.text import Text

    out = [Text(table.title, style="bold"), Text(table.line or table.caption, style="dim")]
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
            # Whole method names, also on a narrow or piped console: the label column never shrinks below them.
            widest = max(len(row.label) for row in rows)
            for i, header in enumerate(headers):
                rich_table.add_column(header, justify="left" if i == 0 else "right", overflow="fold",
                                      min_width=widest if i == 0 else None, no_wrap=i == 0)
            for row in rows:
                cells = [f"[bold green]{c.text()}[/bold green]" if c.best else c.text() for c in row.cells]
                rich_table.add_row(row.label, *([row.seeds] if piece.has_seeds else []), *cells)
            out.append(rich_table)
    return Group(*out)


def to_html(table: Table) -> str:
    from html import escape

    cols = table.full_columns()
    out = [f"<table><caption><b>{escape(table.title)}</b><br>{escape(table.line or table.caption)}</caption>", "<thead>"]
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
