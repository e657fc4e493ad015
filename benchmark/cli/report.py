"""``zsbench report``, ``compare`` and ``export``: the records turned into tables, figures and TREC files
(the work is in :mod:`benchmark.report`)."""

from __future__ import annotations

import click
from rich.console import Console

from benchmark.cli.options import selectors
from benchmark.cli.output import _p_text, _plural, console, print_json, print_table


@click.command("report")
@selectors()
@click.option("--out", default="results/latest-report", show_default=True,
              help="Folder the report owns (it removes its previous files there, never others). The committed "
                   "report is regenerated only when asked: --out results/report.")
@click.option("--paper", is_flag=True, help="Also lay out the CFSA paper's tables beside the reported numbers.")
@click.option("--include-synthetic", is_flag=True,
              help="Paper tables: add runs on synthetic stand-ins, in their own labelled section.")
@click.option("--reported", default=None, help="Reported-numbers file (.csv or .json); default results/reported.csv.")
@click.option("--no-plots", is_flag=True, help="Skip the t-SNE maps, precision-recall and training curves.")
@click.option("--no-sensitivity", is_flag=True, help="Skip re-scoring under the peers' metric conventions.")
@click.option("--no-stats", is_flag=True, help="Skip intervals and significance tests (cells: mean ± std).")
@click.option("--loss-curves", default="cfsa", show_default=True,
              help="Comma-separated methods whose training log is drawn (one run per group); '' for none.")
@click.option("--per-class", default=40, show_default=True, help="t-SNE: at most this many items per class, modality.")
@click.option("--validation", "validation", default=None, type=click.Path(file_okay=False),
              help="A folder of validation-stage records (zsbench run --stage validation [--fold i]): adds the table "
                   "'does validation rank like the test?' (Kendall tau, per fold and over folds).")
def report_cmd(dataset, synthetic, split, results, out, paper, include_synthetic, reported, no_plots, no_sensitivity,
               no_stats, loss_curves, per_class, validation) -> None:
    """Tables with intervals and significance, paper tables, figures and report.html from the records
    (every record, or those --dataset, --synthetic and --split select)."""
    from benchmark.execution.grid import split_list
    from benchmark.report.build import build_report
    from benchmark.report.records import Selection
    from benchmark.report.render import console_report

    with console.status("building the report") as status:
        result = build_report(results, out, paper=paper, reported=reported, plots=not no_plots,
                              sensitivity=not no_sensitivity, per_class=per_class,
                              on_event=lambda message: status.update(message), include_synthetic=include_synthetic,
                              loss_curves=tuple(split_list(loss_curves)), statistics=not no_stats,
                              selection=Selection.from_flags(dataset, synthetic, split), validation=validation)
    # Piped, a console is 80 columns: give the tables room so that numbers and intervals are not folded.
    out = console if console.is_terminal else Console(soft_wrap=True, width=max(console.width, 160))
    for renderable in console_report(result.paper if paper else result.comparison):
        out.print(renderable, highlight=False)
    console.print(f"{len(result.comparison)} comparison, {len(result.paper)} paper and {len(result.sensitivity)} "
                  f"sensitivity tables, {len(result.figures)} figures ({len(result.files)} files); open {result.html}")


@click.command("compare")
@click.argument("method_a")
@click.argument("method_b")
@selectors(dataset_required=True)
@click.option("--metric", default="mAP@all", show_default=True, help="Per-query metric to compare.")
@click.option("--source", default=None, hidden=True, help="real, embedded or synthetic (older spelling; prefer "
                                                           "--synthetic).")
@click.option("--stage", default="test", show_default=True, type=click.Choice(["test", "validation"]))
@click.option("--resamples", default=10000, show_default=True, help="Bootstrap and randomization resamples.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def compare_cmd(method_a, method_b, dataset, synthetic, split, results, metric, source, stage, resamples,
                as_json) -> None:
    """One paired comparison in full: per task difference, 95 % interval, p-value, wins/ties/losses."""
    from benchmark.report.compare import compare_methods
    from benchmark.report.tables import number

    key, rows = compare_methods(results, method_a, method_b, dataset, metric, source, split, stage, resamples,
                                synthetic=synthetic)
    if as_json:
        print_json([{"task": r.task, "dataset": key.dataset, "source": key.source, "split": key.split,
                     "metric": metric, "a": method_a, "b": method_b, "mean_a": r.mean_a, "mean_b": r.mean_b,
                     "seeds_a": r.seeds_a, "seeds_b": r.seeds_b, "difference": r.comparison.difference.estimate,
                     "ci_low": r.comparison.difference.low, "ci_high": r.comparison.difference.high,
                     "cohens_dz": r.comparison.effect.cohens_dz, "wins": r.comparison.effect.wins,
                     "ties": r.comparison.effect.ties, "losses": r.comparison.effect.losses,
                     "p": r.comparison.test.p_value, "p_holm": r.comparison.p_holm,
                     "n_queries": r.comparison.test.n_queries} for r in rows])
        return
    table_rows = []
    for r in rows:
        c = r.comparison
        table_rows.append([r.task, f"{number(r.mean_a)} ({_plural(r.seeds_a, 'seed')})",
                           f"{number(r.mean_b)} ({_plural(r.seeds_b, 'seed')})",
                           f"{number(c.difference.estimate, signed=True)} [{number(c.difference.low, signed=True)}, "
                           f"{number(c.difference.high, signed=True)}]", number(c.effect.cohens_dz, 2),
                           f"{c.effect.wins}/{c.effect.ties}/{c.effect.losses}", _p_text(c.test.p_value),
                           _p_text(c.p_holm)])
    test = rows[0].comparison.test
    print_table(f"{method_a} vs {method_b}, {metric}, on {key.dataset} ({key.source}, split {key.split})",
                ["task", method_a, method_b, "difference [95 % CI]", "d_z", f"{method_a} wins/ties/losses", "p",
                 "p (Holm)"], table_rows,
                caption=f"{test.n_queries} queries per task; randomization test over queries on per-query values "
                        f"averaged over seeds ({'exact' if test.exact else f'{resamples} sign flips'}); Holm over "
                        f"the {len(rows)} task(s).")


@click.command("export")
@click.option("--format", "fmt", type=click.Choice(["trec"]), default="trec", show_default=True)
@selectors()
@click.option("--out", required=True, help="Folder for <dataset>-<source>/<method>/seed<S>-<hash>/<task>.{run,qrels}.")
@click.option("--methods", default=None, help="Comma-separated methods (default: every run with embeddings).")
@click.option("--keep-ties", is_flag=True, help="Write raw scores (tools then order tied items their own way).")
def export_cmd(fmt, dataset, synthetic, split, results, out, methods, keep_ties) -> None:
    """TREC run and qrels files of every run's rankings (cosine on the stored embeddings), for trec_eval or ranx."""
    from benchmark.execution.grid import split_list
    from benchmark.report.export import export_runs
    from benchmark.report.records import Selection

    done, tied = export_runs(results, out, split_list(methods) if methods else None, None, keep_ties,
                             selection=Selection.from_flags(dataset, synthetic, split))
    console.print(f"wrote {done} run/qrels pair(s) under {out}" + (
        f"; {tied} tied adjacent pair(s) {'kept' if keep_ties else 'broken by gallery position'}" if tied else ""))
