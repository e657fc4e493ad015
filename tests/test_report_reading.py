"""A report that reads itself: lists as lists, one heading per dataset section, whole method names on a narrow
console, every P@k caption with its ceiling."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from benchmark.report.html import Part, render_html
from benchmark.report.tables import Cell, Row, Section, Table

RECORDS = Path(__file__).resolve().parents[1] / "results" / "records"


def _table(key: str, heading: str, labels=("semantic-regression (tuned on validation classes)", "random")) -> Table:
    rows = [Row(label, [Cell(0.5), Cell(0.25)]) for label in labels]
    return Table(key=key, title=f"emoji {key}", caption=f"long caption of {key}", columns=["mAP@all", "P@100"],
                 sections=[Section("", rows)], heading=heading, line=f"279 queries ({key})")


def test_html_lists_render_as_lists_and_a_sections_heading_is_said_once(tmp_path):
    shared = "emoji, data source: embedded; cells: mean over seeds"
    part = Part("Comparison tables", "intro", tables=[(_table("a", shared), {}), (_table("b", ""), {}),
                                                      (_table("c", shared), {}), (_table("d", "other group"), {})])
    summary = Part("Significance summary", "Per group:", items=["emoji a: best x", "emoji b: best y"])
    html = render_html([summary, part], tmp_path, "zsbench report", "2 runs")
    assert "<ul><li>emoji a: best x</li><li>emoji b: best y</li></ul>" in html
    assert html.count(f'<p class="heading">{shared}</p>') == 1 and html.count('<p class="heading">') == 2
    # each table: its title and one line, not the long caption
    assert "<b>emoji a</b><br>279 queries (a)" in html and "long caption" not in html


def test_a_narrow_piped_console_keeps_whole_method_names():
    from rich.console import Console

    from benchmark.report.render import console_report

    buffer = io.StringIO()
    out = Console(file=buffer, width=60, force_terminal=False)
    for renderable in console_report([_table("a", "heading")]):
        out.print(renderable)
    text = buffer.getvalue()
    assert "semantic-regression (tuned on validation classes)" in text and "…" not in text


@pytest.mark.skipif(not RECORDS.is_dir(), reason="the committed records")
def test_every_p_at_k_caption_gives_its_ceiling_on_that_gallery():
    from benchmark.report.queries import ceiling_text, pk_ceilings
    from benchmark.report.records import METRICS, group_runs, load_runs

    (key, runs), = group_runs([r for r in load_runs(RECORDS)
                               if r.method == "random" and r.group.scenario == "zero-shot"]).items()
    # Hand-computed for emoji's 19 unseen classes (279 gallery items; the figures): a perfect ranking
    # puts the R relevant items first, so P@100 = mean(min(100, R)) / 100 = 0.197, P@200 = 0.098.
    assert pk_ceilings(runs, "image->text", (100, 200)) == {100: pytest.approx(0.197, abs=5e-4),
                                                            200: pytest.approx(0.0985, abs=5e-4)}
    assert ceiling_text(runs, "image->text", METRICS) == ("Best achievable (a perfect ranking): P@100 0.197, "
                                                          "P@200 0.098, R-precision 1.")
