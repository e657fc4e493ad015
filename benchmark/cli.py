"""The ``zsbench`` command: a thin click layer that parses, calls the library and prints with rich."""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.markup import escape
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
@click.option("--methods", default=None,
              help="Comma-separated method names, module:Class for your own, or 'all' for every registered one.")
@click.option("--dataset", "datasets", default=None, help="Comma-separated dataset names, or 'all'.")
@click.option("--synthetic", is_flag=True, help="Use the synthetic stand-in (real class names and splits).")
@click.option("--split", default=None,
              help="Named zero-shot split (default: the dataset's default), or 'all' for every split.")
@click.option("--scale", type=float, default=None, help="Synthetic stand-in size as a fraction of the real counts.")
@click.option("--seeds", default=None, help="Comma-separated seeds (default 0, or the grid file's).")
@click.option("--results", default=None, help="Folder of run records (default results/runs, or the grid file's).")
@click.option("--force", is_flag=True, help="Rerun existing records (older ones move to superseded/).")
@click.option("--device", default=None, help="cpu, cuda, or auto (default cpu, or the grid file's).")
@click.option("--config", "config", default=None, type=click.Path(dir_okay=False),
              help="A grid file (TOML): methods with hyper-parameters, datasets, seeds; replaces the flags above.")
@click.option("--jobs", default=1, show_default=True, type=int, help="Runs at once (local worker processes).")
@click.option("--executor", type=click.Choice(["serial", "processes", "ray"]), default=None,
              help="Where runs execute (default: serial, or processes when --jobs > 1).")
@click.option("--address", default=None, help="Ray cluster address for --executor ray (default: start Ray here).")
@click.option("--threads", default=None, type=int,
              help="torch/BLAS threads per run; the same value gives bit-identical records on every executor.")
@click.option("--semantics", default=None,
              help="Class semantics: glove (default), minilm, or a file (word2vec text, .npy matrix or dict).")
def run(methods, datasets, synthetic, split, scale, seeds, results, force, device, config, jobs, executor,
        address, threads, semantics) -> None:
    """Run every (method, dataset, seed) and write one JSON record each; rerunning resumes."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from benchmark.executors import run_grid_with
    from benchmark.gridconfig import grid_from_cli

    grid = grid_from_cli(config, methods, datasets, synthetic, split, scale, seeds, device, semantics)
    results = results or grid.results or "results/runs"
    executor = executor or ("processes" if jobs > 1 else "serial")
    for request in grid.datasets:
        _build_embedded([request.name], request.synthetic, request.semantics)
    rows = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task(f"runs ({executor})", total=len(grid.tasks()))

        def on_event(message: str) -> None:
            progress.update(task, description=message)

        def on_result(result) -> None:
            progress.advance(task)
            rows.append(result)

        report = run_grid_with(grid, results, executor=executor, jobs=jobs, address=address, force=force,
                               threads=threads, on_result=on_result, on_event=on_event)
    _print_outcomes(report.results)
    console.print(f"{len(report.results)} runs in {report.wall_s:.1f} s ({executor}, {jobs} job(s))")
    report.raise_for_failures()


def _print_outcomes(outcomes) -> None:
    """One row per task of each run; runs without a record (unsupported, failed) show their reason."""
    table = Table(title="runs (unseen classes)")
    for column in ("dataset", "method", "seed", "status", "task", "mAP@all", "P@100", "s"):
        table.add_column(column, overflow="fold")
    sources: dict[str, str] = {}
    for o in outcomes:
        if o.path is None or o.status in ("unsupported", "failed", "busy"):
            table.add_row(o.dataset, o.method, str(o.seed), o.status, o.error or "", "", "", "")
            continue
        record = o.record
        if record is None:
            from benchmark.store import ResultStore

            record = ResultStore(o.path.parent).load(o.path) or {}
        sources.setdefault(o.dataset, f"{record.get('source', '?')}, split {record.get('split', {}).get('name', '?')}")
        for task_name, values in record.get("metrics", {}).items():
            table.add_row(o.dataset, o.method, str(o.seed), o.status, task_name,
                          f"{values['mAP@all']:.4f}", f"{values.get('P@100', float('nan')):.4f}",
                          f"{record.get('timings', {}).get('total_s', 0):.1f}")
    table.caption = "; ".join(f"{name}: {info}" for name, info in sources.items())
    console.print(table)
    statuses = ("done", "skipped", "busy", "unsupported", "failed")
    counts = {status: sum(o.status == status for o in outcomes) for status in statuses}
    summary = ", ".join(f"{n} {status}" for status, n in counts.items() if n) or "no runs"
    written = [o for o in outcomes if o.path is not None and o.status in ("done", "skipped")]
    console.print(f"{summary}; records in {written[0].path.parents[2]}" if written else summary)


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
    """List the datasets (subcommands: list, info, check, prepare)."""
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
        if spec.source == "embedded":
            from benchmark.datasets.emoji import is_built

            prepared = is_built()
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
    console.print(f"prepare: zsbench datasets prepare {spec.name}" + ("" if spec.source == "embedded" else
                  " --from PATH (see docs/data.md)") + f"; check: zsbench datasets check {spec.name}")


@cli.group(invoke_without_command=True)
@click.pass_context
def perf(ctx) -> None:
    """Benchmarks that print figures (no subcommand: the whole suite, as `perf all`)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(perf_all_cmd)


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


# --- scale and reliability commands ---

@perf.command("all")
@click.option("--repeats", default=3, show_default=True, help="Runs per figure (the table shows the median).")
@click.option("--out", default="results/perf.md", show_default=True, help="Markdown file for the figures.")
@click.option("--gallery/--no-gallery", default=True, show_default=True,
              help="Measure evaluation memory on large galleries (Sketchy scale and 10k x 100k; about a minute).")
def perf_all_cmd(repeats, out, gallery) -> None:
    """Metric engine, training throughput, an end-to-end grid and large-gallery memory; writes results/perf.md."""
    from benchmark.perf_suite import GALLERY_SCALES, run_suite, write_markdown

    if repeats < 1:
        raise ZSBenchError(f"--repeats must be at least 1, got {repeats}")
    with console.status("measuring") as status:
        report = run_suite(repeats, GALLERY_SCALES if gallery else None,
                           on_figure=lambda f: status.update(f"measured: {f.name.strip()}"))
    _print_perf(report)
    console.print(f"written to {write_markdown(report, out)}")


@perf.command("memory")
@click.option("--queries", default=15229, show_default=True)
@click.option("--gallery", default=17101, show_default=True)
def perf_memory_cmd(queries, gallery) -> None:
    """Peak extra resident memory of evaluation on a random gallery (dim 64), in a fresh process."""
    from benchmark.perf_suite import PerfReport, gallery_memory_figures

    figures = gallery_memory_figures({f"{queries} x {gallery}": (queries, gallery)})
    _print_perf(PerfReport({}, {}, figures))


def _print_perf(report) -> None:
    table = Table(title="zsbench perf (median of runs)")
    for column in ("figure", "median", "unit", "runs"):
        table.add_column(column)
    for f in report.figures:
        table.add_row(f.name, f"{f.median:.4g}", f.unit, ", ".join(f"{v:.4g}" for v in f.values))
    console.print(table)
    if report.machine:
        console.print(", ".join(f"{k}: {v}" for k, v in report.machine.items()))


# --- data commands ---
def _progress_callback(progress, tasks: dict):
    def update(modality: str, done: int, total: int) -> None:
        if modality not in tasks:
            tasks[modality] = progress.add_task(modality, total=total)
        progress.update(tasks[modality], completed=done, total=total)
    return update


def _data_progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err_console, transient=True)


def _build_embedded(dataset_names, synthetic: bool, semantics: str | None, rebuild: bool = False) -> None:
    """Build an embedded dataset on first use with a progress bar (before the run's own bar starts)."""
    from benchmark.datasets.specs import SPECS

    for name in dataset_names:
        spec = SPECS.get(name)
        if synthetic or spec is None or spec.source != "embedded":
            continue
        from benchmark.datasets.emoji import cache_folder, ensure_emoji, is_built, text_encoder_for

        if is_built(semantics) and not rebuild:
            continue
        err_console.print(f"{name}: first use, building it in {cache_folder(text_encoder_for(semantics))}")
        with _data_progress() as progress:
            folder, _ = ensure_emoji(semantics, _progress_callback(progress, {}), rebuild=rebuild)
        err_console.print(f"{name}: built in {folder}")


def _print_check(summary: dict) -> None:
    split = summary["split"]
    table = Table(title=f"{summary['name']} ({summary['source']}): {summary['classes']} classes, split "
                        f"{split['name']} {split['n_seen']} seen / {split['n_unseen']} unseen, "
                        f"sha256 {split['sha256'][:12]}...")
    for column in ("modality", "items", "dim", "seen items", "unseen items", "empty classes"):
        table.add_column(column)
    for m, info in summary["modalities"].items():
        table.add_row(m, str(info["items"]), str(info["dim"]), str(info["seen_items"]), str(info["unseen_items"]),
                      ", ".join(info["empty_classes"]) or "-")
    console.print(table)
    console.print(f"semantics: {summary['semantics']}")
    if summary.get("dedup"):
        console.print(f"duplicates removed: {summary['dedup']}")


@datasets_group.command("check")
@click.argument("name")
@click.option("--split", default=None, help="Named zero-shot split (default: the dataset's default).")
def datasets_check(name: str, split) -> None:
    """Validate a prepared dataset (a registered name or a folder): shapes, dtypes, values, labels, split hash."""
    from pathlib import Path

    from benchmark.datasets import data_root
    from benchmark.datasets.prepared import MANIFEST, check_prepared
    from benchmark.datasets.specs import SPECS, get_spec

    if name not in SPECS and Path(name).is_dir():
        summary = check_prepared(Path(name), None, split)
    else:
        spec = get_spec(name)
        if spec.source == "embedded":
            from benchmark.datasets.emoji import ensure_emoji

            _build_embedded([name], False, None)
            folder, _ = ensure_emoji()
        else:
            folder = data_root() / name
            if not (folder / MANIFEST).is_file():
                raise ZSBenchError(f"no prepared {name} data in {folder}/; run `zsbench datasets prepare {name} "
                                   f"--from PATH` first")
        summary = check_prepared(folder, spec, split)
    _print_check(summary)
    console.print("[green]ok[/green]")


@datasets_group.command("prepare")
@click.argument("name")
@click.option("--from", "source", default=None, help="Folder holding the dataset in one public layout.")
@click.option("--format", "fmt", default=None,
              help="Raw releases: sketchy-raw, tu-berlin-raw, wikipedia-raw, pascal-sentences-raw, folders; feature "
                   "files: sake-lists, cvae-npy, dscmr-mat, acmr-pkl, dadn-txt (default: detected).")
@click.option("--out", default=None, help="Output folder (default: $ZSBENCH_DATA/NAME, else ./data/NAME).")
@click.option("--semantics", default=None, help="Class semantics: glove (default), minilm, or a file of class vectors.")
@click.option("--label-base", type=click.Choice(["0", "1"]), default=None,
              help="Integer labels start at 0 or 1 (default: detected).")
@click.option("--classes", "classes_file", default=None, help="Class names in integer-label order, one a line.")
@click.option("--backbone", default="efficientnet-lite0", show_default=True,
              help="Image features: efficientnet-lite0, vgg11|13|16|19, resnet18|34|50|101|152 (with --weights), or "
                   "clip:MODEL (an open_clip config name or JSON file, with --weights).")
@click.option("--weights", default=None,
              help="Weights file for torchvision and clip backbones, or an open_clip pretrained tag.")
@click.option("--image-size", type=int, default=None, help="Input size for feature extraction (default 224).")
@click.option("--text-encoder", type=click.Choice(["glove", "minilm", "tfidf-svd", "clip"]), default=None,
              help="Raw texts: glove (default), minilm, tfidf-svd (fitted on seen-class training texts), clip "
                   "(default with a clip backbone).")
@click.option("--split", default=None, help="Registered dataset: the split whose seen classes tfidf-svd is fitted "
                                            "on (default: the dataset's default split).")
@click.option("--limit-per-class", type=int, default=None, help="Raw releases: the first N items of each class "
                                                               "(a quick first look).")
@click.option("--skip-broken", is_flag=True, help="Leave out images that cannot be decoded (listed in the manifest) "
                                                  "instead of stopping.")
@click.option("--variants", default=None, help="Sketchy: augmentation folders to read besides tx_000000000000, "
                                               "comma-separated, or 'all'.")
@click.option("--unseen", default=None, help="A dataset of your own: unseen class names, comma-separated, or a file "
                                             "(default: a seeded draw of a quarter of the classes).")
@click.option("--tasks", default=None, help="A dataset of your own: 'query->gallery,...' (default: every pair).")
@click.option("--paired", is_flag=True, help="A dataset of your own: items pair across modalities by class and "
                                             "file name.")
@click.option("--device", default="cpu", show_default=True, help="Where feature extraction runs: cpu or cuda.")
@click.option("--workers", type=int, default=1, show_default=True, help="Threads that read and decode images.")
@click.option("--batch-size", type=int, default=64, show_default=True, help="Images per forward pass.")
@click.option("--rebuild", is_flag=True, help="Embedded datasets: build again even when cached.")
def datasets_prepare(name, source, fmt, out, semantics, label_base, classes_file, backbone, weights, image_size,
                     text_encoder, split, limit_per_class, skip_broken, variants, unseen, tasks, paired, device,
                     workers, batch_size, rebuild) -> None:
    """Convert a dataset from a raw release or a paper's feature files (or build an embedded one) and check it.

    A NAME the registry does not know prepares a dataset of your own (folders layout, its own split file).
    """
    from benchmark.datasets.specs import SPECS

    spec = SPECS.get(name)
    if spec is not None and spec.source == "embedded":
        from benchmark.datasets.emoji import ensure_emoji
        from benchmark.datasets.prepared import check_prepared

        _build_embedded([name], False, semantics, rebuild=rebuild)
        _print_check(check_prepared(ensure_emoji(semantics)[0], spec))
        console.print("[green]ok[/green]")
        return
    if source is None:
        where = f"the downloaded data: {spec.homepage}; formats: {spec.formats}" if spec is not None else \
            "a folder <modality>/<class>/<file> of your own data"
        raise ZSBenchError(f"prepare {name} needs --from PATH ({where})")
    from benchmark.datasets.features import FeatureExtractor, make_backbone
    from benchmark.datasets.prepare import RawOptions, prepare_dataset

    extractor = FeatureExtractor(make_backbone(backbone, image_size, weights), batch_size=batch_size, device=device,
                                 workers=workers)
    raw = RawOptions(text_encoder=text_encoder, split=split, limit_per_class=limit_per_class, skip_broken=skip_broken,
                     variants=tuple(_split_list(variants or "")), unseen=unseen, tasks=tasks, paired=paired)
    with _data_progress() as progress:
        summary = prepare_dataset(name, source, out, fmt, semantics, None if label_base is None else int(label_base),
                                  classes_file, extractor, _progress_callback(progress, {}), raw)
    console.print(f"prepared {name} from {source} ({summary['format']}) into {summary['folder']}")
    _print_check(summary)
    if summary.get("skipped_broken"):
        console.print(f"left out {len(summary['skipped_broken'])} broken image(s), e.g. "
                      f"{summary['skipped_broken'][0]} (listed in the manifest)")
    if summary.get("registered") is False:
        console.print(f"run it with: zsbench run --methods semantic-regression --dataset {summary['folder']}",
                      soft_wrap=True)
    console.print("[green]ok[/green]")


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
        err_console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except ValueError as err:
        err_console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
