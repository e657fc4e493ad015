"""What every ``zsbench`` command prints with: the two consoles, tables, JSON and small number formats."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

# Long lines are never folded by us (a pipe would get them cut at 80 columns): the terminal wraps them.
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _score(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _p_text(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def print_table(title: str, columns: list[str], rows: list[list[str]], caption: str | None = None) -> None:
    """A table on the terminal (rich, cells folded, never cut); plain aligned text when piped, so that
    ``grep`` finds whole names."""
    if console.is_terminal:
        table = Table(title=title, caption=caption)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]

    def line(cells) -> str:
        return "  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip()

    lines = [title, line(columns), *(line(r) for r in rows)] + ([caption] if caption else [])
    print("\n".join(lines), flush=True)


def print_json(data) -> None:
    print(json.dumps(data, indent=1, default=str), flush=True)
