"""The ``zsbench`` command: a thin click layer that parses, calls the library and prints with rich."""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.table import Table

from benchmark.contract import ZSBenchError

console = Console()
err_console = Console(stderr=True)


@click.group()
@click.version_option(package_name="zsbench")
def cli() -> None:
    """Zero-shot cross-modal retrieval benchmark: CFSA beside the field's baselines on frozen splits."""


def _split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@cli.command()
@click.option("--methods", required=True, help="Comma-separated method names, or module:Class for your own.")
@click.option("--dataset", "datasets", required=True, help="Comma-separated dataset names.")
@click.option("--synthetic", is_flag=True, help="Use the synthetic stand-in (real class names and splits).")
@click.option("--split", default=None, help="Named zero-shot split (default: the dataset's default).")
@click.option("--scale", type=float, default=None, help="Synthetic stand-in size as a fraction of the real counts.")
@click.option("--seeds", default="0", show_default=True, help="Comma-separated seeds.")
@click.option("--results", default="results/runs", show_default=True, help="Folder of run records.")
@click.option("--force", is_flag=True, help="Rerun existing records (older ones move to superseded/).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, or auto.")
def run(methods, datasets, synthetic, split, scale, seeds, results, force, device) -> None:
    """Run every (method, dataset, seed) and write one JSON record each."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from benchmark.runner import DatasetRequest, parse_seeds, run_grid

    method_list, dataset_list, seed_list = _split_list(methods), _split_list(datasets), parse_seeds(seeds)
    requests = [DatasetRequest(d, synthetic=synthetic, split=split, scale=scale) for d in dataset_list]
    total = len(method_list) * len(dataset_list) * len(seed_list)
    rows = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("runs", total=total)

        def on_event(message: str) -> None:
            progress.update(task, description=message)

        def on_outcome(outcome) -> None:
            progress.advance(task)
            rows.append(outcome)

        run_grid(method_list, requests, seed_list, results, force=force, device=device,
                 on_outcome=on_outcome, on_event=on_event)
    _print_outcomes(rows)


def _print_outcomes(outcomes) -> None:
    table = Table(title="runs")
    for column in ("dataset", "source", "method", "seed", "status", "task", "mAP@all", "P@100", "time (s)"):
        table.add_column(column)
    for o in outcomes:
        record = o.record
        if record is None:
            from benchmark.store import ResultStore

            record = ResultStore(o.path.parent).load(o.path) or {}
        for task_name, values in record.get("metrics", {}).items():
            table.add_row(o.dataset, record.get("source", "?"), o.method, str(o.seed), o.status, task_name,
                          f"{values['mAP@all']:.4f}", f"{values.get('P@100', float('nan')):.4f}",
                          f"{record.get('timings', {}).get('total_s', 0):.1f}")
    console.print(table)
    console.print(f"records in {outcomes[0].path.parents[2]}" if outcomes else "no runs")


@cli.command("methods")
def methods_cmd() -> None:
    """List the registered methods."""
    from benchmark.registry import available_methods

    table = Table(title="methods")
    table.add_column("name")
    table.add_column("class")
    table.add_column("overrides")
    for name, (cls, overrides) in available_methods().items():
        table.add_row(name, f"{cls.__module__}:{cls.__name__}", ", ".join(f"{k}={v}" for k, v in overrides.items()))
    console.print(table)


@cli.group("datasets", invoke_without_command=True)
@click.pass_context
def datasets_group(ctx) -> None:
    """List the datasets (subcommands: list, info)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(datasets_list)


@datasets_group.command("list")
def datasets_list() -> None:
    """List the registered datasets and their splits."""
    from benchmark.datasets import data_root
    from benchmark.datasets.specs import SPECS

    table = Table(title=f"datasets (prepared real data is looked for in {data_root()}/)")
    for column in ("name", "kind", "modalities", "classes", "splits (default first)", "prepared"):
        table.add_column(column)
    for spec in SPECS.values():
        splits = [spec.default_split] + [s for s in spec.splits if s != spec.default_split]
        prepared = (data_root() / spec.name / "manifest.json").is_file()
        table.add_row(spec.name, spec.kind, ", ".join(f"{m} {d}" for m, d in spec.modalities.items()),
                      str(len(spec.class_names)), ", ".join(splits), "yes" if prepared else "no")
    console.print(table)


@datasets_group.command("info")
@click.argument("name")
def datasets_info(name: str) -> None:
    """Classes, splits, counts and where to get the raw data."""
    from benchmark.datasets.specs import get_spec

    spec = get_spec(name)
    console.print(f"[bold]{spec.title}[/bold] ({spec.name}, {spec.kind})")
    console.print(f"citation: {spec.citation}\nraw data: {spec.homepage}\nformats: {spec.formats}")
    console.print(f"real counts: {spec.counts}; evaluation protocol: {spec.eval_protocol}")
    for split_name, ref in spec.splits.items():
        split = spec.split(split_name)
        console.print(f"split {split_name}: {len(split.seen)} seen / {len(split.unseen)} unseen, "
                      f"sha256 {ref.sha256[:12]}... - {ref.description}")
        console.print(f"  unseen: {', '.join(split.unseen)}")
    if spec.notes:
        console.print(f"notes: {spec.notes}")


@cli.group()
def perf() -> None:
    """Benchmarks that print figures."""


@perf.command("metrics")
@click.option("--queries", default=2400, show_default=True)
@click.option("--gallery", default=27989, show_default=True)
@click.option("--classes", default=30, show_default=True)
@click.option("--sklearn-queries", type=int, default=None, help="Time the sklearn loop on this many queries only.")
def perf_metrics_cmd(queries, gallery, classes, sklearn_queries) -> None:
    """mAP@all of the metric engine against the per-query sklearn loop (TU-Berlin scale by default)."""
    from benchmark.perf import perf_metrics

    r = perf_metrics(queries, gallery, classes, sklearn_queries)
    table = Table(title=f"metric engine, {r.n_queries} queries x {r.n_gallery} gallery, {r.n_classes} classes")
    for column in ("engine (s)", "sklearn loop (s)", "speed-up", "engine peak extra memory (MB)", "max |diff|"):
        table.add_column(column)
    sk = f"{r.sklearn_s:.2f}" + ("" if r.sklearn_queries_timed == r.n_queries else
                                 f" (from {r.sklearn_queries_timed} queries)")
    table.add_row(f"{r.engine_s:.3f}", sk, f"{r.ratio:.1f}x", f"{r.peak_extra_mb:.0f}", f"{r.max_abs_diff:.2e}")
    console.print(table)


# --- report commands ---
@cli.command("report")
@click.option("--results", default="results/runs", show_default=True, help="Folder of run records.")
@click.option("--out", default="results/report", show_default=True, help="Folder the report is written to.")
@click.option("--paper", is_flag=True, help="Also lay out the CFSA paper's tables beside the reported numbers.")
@click.option("--reported", default=None, help="Reported-numbers file (.csv or .json); default results/reported.csv.")
@click.option("--no-plots", is_flag=True, help="Skip the t-SNE maps and precision-recall curves.")
@click.option("--no-sensitivity", is_flag=True, help="Skip re-scoring under the peers' metric conventions.")
@click.option("--per-class", default=40, show_default=True, help="t-SNE: at most this many items per class, modality.")
def report_cmd(results, out, paper, reported, no_plots, no_sensitivity, per_class) -> None:
    """Tables (console, Markdown, LaTeX, CSV), paper tables, t-SNE, PR curves and report.html from the records."""
    from benchmark.report.build import build_report
    from benchmark.report.tables import to_rich

    with console.status("building the report") as status:
        result = build_report(results, out, paper=paper, reported=reported, plots=not no_plots,
                              sensitivity=not no_sensitivity, per_class=per_class,
                              on_event=lambda message: status.update(message))
    for table in result.paper if paper else result.comparison:
        console.print(to_rich(table))
        for note in table.notes:
            console.print(f"  {note}", highlight=False, style="dim")
    console.print(f"{len(result.comparison)} comparison, {len(result.paper)} paper and {len(result.sensitivity)} "
                  f"sensitivity tables, {len(result.figures)} figures; open {result.html}")


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except ZSBenchError as err:
        err_console.print(f"[red]error:[/red] {err}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except ValueError as err:
        err_console.print(f"[red]error:[/red] {err}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
