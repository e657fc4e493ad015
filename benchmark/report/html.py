"""One static ``report.html``: every table and figure, no external assets.

Figures are embedded as PNG data URIs, so the page can be mailed as one file; the only links are relative
ones to files of the same output folder (the PDF of each figure, each table's CSV / Markdown / LaTeX),
and the page is written after them.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html import escape
from pathlib import Path

from benchmark.report.render import to_html, with_headings
from benchmark.report.tables import Table

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1, h2, h3 { font-weight: 600; }
table { border-collapse: collapse; margin: 1em 0 0.3em; font-size: 0.9em; }
caption { caption-side: top; text-align: left; padding-bottom: 0.4em; color: #444; }
p.heading { margin: 2em 0 0.5em; padding: 0.4em 0.6em; background: #f6f6f6; border-left: 3px solid #99a; }
li { margin: 0.2em 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
tbody th { text-align: left; font-weight: normal; }
td.best { font-weight: bold; background: #eaf5ea; }
tr.section td { text-align: left; font-style: italic; background: #f4f4f8; }
p.note, p.links { font-size: 0.85em; color: #555; margin: 0.2em 0; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
nav a { margin-right: 1em; }
"""


@dataclass
class Figure:
    caption: str
    png: Path
    pdf: Path | None = None


@dataclass
class Part:
    """A titled part of the page: an introduction, tables and figures."""

    title: str
    intro: str = ""
    tables: list[tuple[Table, dict[str, Path]]] = field(default_factory=list)  # table, format -> file
    figures: list[Figure] = field(default_factory=list)
    items: list[str] = field(default_factory=list)  # shown as a bulleted list after the introduction


def _anchor(title: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in title.lower()).strip("-")


def _link(path: Path, out_dir: Path, text: str) -> str:
    return f'<a href="{escape(path.relative_to(out_dir).as_posix())}">{escape(text)}</a>'


def render_html(parts: list[Part], out_dir: Path, title: str, summary: str,
                files: dict[str, Path] | None = None) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    links = " · ".join(_link(path, out_dir, text) for text, path in (files or {}).items() if path.is_file())
    body = [f"<h1>{escape(title)}</h1>", f"<p>{escape(summary)}</p>",
            f'<p class="note">generated {stamp}' + (f"; every table in one file: {links}" if links else "") + "</p>",
            "<nav>" + "".join(f'<a href="#{_anchor(p.title)}">{escape(p.title)}</a>' for p in parts) + "</nav>"]
    for part in parts:
        body.append(f'<h2 id="{_anchor(part.title)}">{escape(part.title)}</h2>')
        if part.intro:
            body.append(f"<p>{escape(part.intro)}</p>")
        if part.items:
            body.append("<ul>" + "".join(f"<li>{escape(item)}</li>" for item in part.items) + "</ul>")
        headings = with_headings([table for table, _ in part.tables])
        for (heading, _), (table, files) in zip(headings, part.tables, strict=True):
            if heading:
                body.append(f'<p class="heading">{escape(heading)}</p>')
            body.append(to_html(table))
            if files:
                body.append('<p class="links">' + " · ".join(_link(p, out_dir, fmt) for fmt, p in files.items())
                            + "</p>")
        for figure in part.figures:
            data = base64.b64encode(figure.png.read_bytes()).decode("ascii")
            pdf = f" ({_link(figure.pdf, out_dir, 'PDF')})" if figure.pdf else ""
            body.append(f'<figure><img alt="{escape(figure.caption)}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{escape(figure.caption)}{pdf}</figcaption></figure>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")
