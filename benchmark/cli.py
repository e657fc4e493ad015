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


# --- cfsa commands ---
@perf.command("train")
@click.option("--method", "method_name", default="cfsa", show_default=True,
              help="A registered CFSA variant; its step configuration is timed.")
@click.option("--hidden", type=int, default=None, help="Hidden width (default: the method's).")
@click.option("--batch-size", type=int, default=None, help="Batch size (default: the method's).")
@click.option("--dims", default="4096,4096", show_default=True, help="Feature sizes of the two modalities.")
@click.option("--embedding-dim", default=50, show_default=True, help="Class-embedding (and noise) size.")
@click.option("--steps", default=5, show_default=True, help="Timed training steps (after one warm-up step).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, or auto.")
@click.option("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
@click.option("--peak-size", default=2048, show_default=True, help="Side of the square matmul timed for the peak.")
def perf_train_cmd(method_name, hidden, batch_size, dims, embedding_dim, steps, device, threads, peak_size) -> None:
    """Samples/s and GFLOP/s of a CFSA training step against the measured float32 matmul peak."""
    from cfsa.perf import run_perf_train

    r = run_perf_train(method_name, hidden, batch_size, dims, embedding_dim, steps, device, threads, peak_size)
    table = Table(title=f"{method_name} training step on {r.device} ({r.threads} threads), width {r.hidden}, "
                        f"batch {r.batch_size}, features {list(r.feature_dims.values())}")
    for column in ("s/step", "samples/s", "GFLOP/step", "achieved GFLOP/s", "matmul peak GFLOP/s", "of peak"):
        table.add_column(column)
    table.add_row(f"{r.seconds_per_step:.4f}", f"{r.samples_per_s:.0f}", f"{r.gflop_per_step:.1f}",
                  f"{r.achieved_gflops:.1f}", f"{r.peak_gflops:.1f}", f"{100 * r.fraction_of_peak:.0f}%")
    console.print(table)


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
