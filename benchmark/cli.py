"""The ``zsbench`` command: a thin click layer that parses, calls the library and prints with rich."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from benchmark.contract import ZSBenchError
from benchmark.execution.runner import STATUSES

# Long lines are never folded by us (a pipe would get them cut at 80 columns): the terminal wraps them.
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


@click.group()
@click.version_option(package_name="zsbench")
def cli() -> None:
    """Zero-shot cross-modal retrieval benchmark: CFSA beside the field's baselines on frozen splits."""


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


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


@cli.command()
@click.option("--methods", default=None,
              help="Comma-separated method names, module:Class for your own, or 'all' for every registered one.")
@click.option("--dataset", "datasets", default=None, help="Comma-separated dataset names, or 'all'.")
@click.option("--synthetic", is_flag=True, help="Use the synthetic stand-in (real class names and splits).")
@click.option("--split", default=None,
              help="Named zero-shot split (default: the dataset's default), or 'all' for every split.")
@click.option("--scale", type=float, default=None, help="Synthetic stand-in size as a fraction of the real counts.")
@click.option("--seeds", default=None, help="Comma-separated seeds (default 0, or the grid file's).")
@click.option("--param", "params", multiple=True, metavar="METHOD.PARAM=VALUE",
              help="Override one hyper-parameter (repeatable), e.g. --param cfsa.epochs=20.")
@click.option("--results", default=None, help="Folder of run records (default results/runs, or the grid file's).")
@click.option("--force", is_flag=True, help="Rerun existing records (older ones move to superseded/).")
@click.option("--device", default=None, help="cpu, cuda, or auto (default cpu, or the grid file's).")
@click.option("--config", "config", default=None, type=click.Path(dir_okay=False),
              help="A grid file (TOML): methods with hyper-parameters, datasets, seeds; replaces the flags above.")
@click.option("--stage", type=click.Choice(["test", "validation"]), default=None,
              help="test: score the unseen classes (default); validation: train on the seen classes minus the "
                   "split's validation classes and score those (model selection; no test class is used).")
@click.option("--jobs", default=1, show_default=True, type=int, help="Runs at once (local worker processes).")
@click.option("--executor", type=click.Choice(["serial", "processes", "ray"]), default=None,
              help="Where runs execute (default: serial, or processes when --jobs > 1).")
@click.option("--address", default=None, help="Ray cluster address for --executor ray (default: start Ray here).")
@click.option("--threads", default=None, type=int,
              help="torch/BLAS threads per run (default 1, or the grid file's); part of a run's identity, so the "
                   "same seed gives the same numbers on every executor.")
@click.option("--semantics", default=None,
              help="Class semantics: glove (default), minilm, or a file (word2vec text, .npy matrix or dict).")
@click.option("--tuned", is_flag=True, help="Fit each method with the best parameters of its tuning study "
                                           "(zsbench tune) on the same dataset; records say how they were chosen.")
@click.option("--tuning", default=None, help="Folder of the tuning studies (default: the grid file's, else "
                                             "results/tuning).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (one object per run).")
def run(methods, datasets, synthetic, split, scale, seeds, params, results, force, device, config, stage, jobs,
        executor, address, threads, semantics, tuned, tuning, as_json) -> None:
    """Run every (method, dataset, seed) and write one JSON record each; rerunning resumes."""
    from benchmark.execution.executors import run_grid_with
    from benchmark.execution.grid import grid_from_cli

    grid = grid_from_cli(config, methods, datasets, synthetic, split, scale, seeds, device, semantics, threads, stage,
                         params)
    results = results or grid.results or "results/runs"
    executor = executor or ("processes" if jobs > 1 else "serial")
    grid.check()
    for request in grid.datasets:
        _build_embedded([request.name], request.synthetic, request.semantics)
    grid = grid.with_tuned(tuning, every_method=tuned)
    _estimate(grid, results, force, err_console if as_json else console)
    progress = RunProgress(len(grid.tasks()), executor, lines_to=sys.stderr if as_json else sys.stdout)
    try:
        with _sigterm_interrupts(), progress:
            report = run_grid_with(grid, results, executor=executor, jobs=jobs, address=address, force=force,
                                   on_result=progress.finished, on_event=progress.event, on_progress=progress.steps)
    except KeyboardInterrupt:
        _interrupted(results, progress.outcomes, len(grid.tasks()))
    outcomes = _with_records(report.results)
    if as_json:
        print_json([_outcome_json(o) for o in outcomes])
    else:
        _print_outcomes(outcomes)
        console.print(f"{_plural(len(outcomes), 'run')} in {report.wall_s:.1f} s ({executor}, "
                      f"{_plural(jobs, 'job')}, {_plural(grid.threads, 'thread')} each)")
    report.raise_for_failures()


@contextlib.contextmanager
def _sigterm_interrupts():
    """SIGTERM ends a command the way Ctrl-C does (finished work listed, locks and temp files removed)."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupted(results: str, outcomes: list, total: int) -> None:
    """After Ctrl-C or SIGTERM: what finished, how to resume, and no lock or temp file left behind."""
    import shlex

    from benchmark.core.store import ResultStore

    store = ResultStore(results)
    store.remove_unheld_locks()
    store.remove_stale_temps(min_age_s=0)
    kept = [o for o in outcomes if o.status in ("done", "skipped")]
    err_console.print(f"interrupted: {len(kept)} of {_plural(total, 'run')} have a record in {results}; the run in "
                      f"progress wrote nothing", highlight=False)
    for o in kept:
        err_console.print(f"  {o.status}: {o.dataset} {o.method} seed {o.seed}", highlight=False)
    err_console.print(f"rerun to finish the rest (finished runs are skipped): {shlex.join(['zsbench', *sys.argv[1:]])}",
                      highlight=False, soft_wrap=True)
    sys.exit(130)


def _estimate(grid, results: str, force: bool, out: Console) -> None:
    """Before a grid starts: the run time of what is left to do, from earlier records of the same
    configurations on this machine, and a warning when that is over an hour."""
    from benchmark.execution.estimates import estimate_grid

    estimate = estimate_grid(grid, results, force)
    if estimate.known == 0:
        return
    recorded = f"{estimate.recorded} already recorded, " if estimate.recorded else ""
    line = (f"estimated {estimate.seconds / 60:.1f} min of run time for {estimate.known} of "
            f"{_plural(estimate.total, 'run')} ({recorded}{estimate.unknown} without an estimate; from earlier "
            f"records on this machine)")
    if estimate.seconds > 3600:
        out.print(f"[yellow]warning:[/yellow] {line}; consider --scale, fewer seeds or --jobs", highlight=False)
    else:
        out.print(line, highlight=False)


class RunProgress:
    """What ``zsbench run`` shows while it works: on a terminal, a bar over the runs and one over the current
    run's optimisation steps (k/N, time left); otherwise one line per finished run, flushed at once."""

    def __init__(self, total: int, executor: str, lines_to=sys.stdout):
        self.total, self.executor, self.done, self.lines_to = total, executor, 0, lines_to
        self.live = console.is_terminal
        self.outcomes: list = []

    def __enter__(self) -> RunProgress:
        if self.live:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                                     console=console, transient=True)
            self.progress.__enter__()
            self.runs = self.progress.add_task(f"runs ({self.executor})", total=self.total)
            self.step_task = self.progress.add_task("steps", total=None, visible=False)
        return self

    def __exit__(self, *exc) -> None:
        if self.live:
            self.progress.__exit__(*exc)

    def event(self, message: str) -> None:
        if self.live:
            self.progress.update(self.step_task, description=escape(message[:70]), completed=0, total=None,
                                 visible=True)

    def steps(self, done: int, total: int | None) -> None:
        if self.live:
            self.progress.update(self.step_task, completed=done, total=total)

    def finished(self, outcome) -> None:
        self.done += 1
        self.outcomes.append(outcome)
        if self.live:
            self.progress.advance(self.runs)
            self.progress.update(self.step_task, visible=False)
            return
        reason = f" ({outcome.reason})" if outcome.reason else ""
        print(f"[{self.done}/{self.total}] {outcome.dataset} {outcome.method} seed {outcome.seed}: {outcome.status}"
              f"{reason} in {outcome.wall_s:.1f} s", file=self.lines_to, flush=True)


def _with_records(outcomes):
    from benchmark.core.store import ResultStore

    for o in outcomes:
        if o.record is None and o.path is not None and o.status in ("done", "skipped"):
            o.record = ResultStore(o.path.parent).load(o.path)
    return outcomes


def _outcome_json(o) -> dict:
    out = {"dataset": o.dataset, "method": o.method, "seed": o.seed, "status": o.status,
           "record": None if o.path is None else str(o.path), "reason": o.reason, "wall_s": round(o.wall_s, 3)}
    if o.record is not None:
        out.update({"source": o.record.source, "split": o.record.split_name, "stage": o.record.stage,
                    "metrics": o.record.metrics, "total_s": o.record.total_s})
    return out


def _print_outcomes(outcomes) -> None:
    """One row per task of each run; runs without a record (unsupported, failed) show their reason."""
    rows, sources = [], {}
    for o in outcomes:
        if o.record is None:
            rows.append([o.dataset, o.method, str(o.seed), o.status, o.reason or "", "", "", ""])
            continue
        record = o.record
        stage = "" if record.stage == "test" else f", stage {record.stage}"
        sources.setdefault(o.dataset, f"{record.source}, split {record.split_name}{stage}")
        for task_name, values in record.metrics.items():
            rows.append([o.dataset, o.method, str(o.seed), o.status, task_name, f"{values['mAP@all']:.4f}",
                         f"{values['P@100']:.4f}" if "P@100" in values else "", f"{record.total_s:.1f}"])
    caption = "; ".join(f"{name}: {info}" for name, info in sources.items()) or None
    stages = {o.record.stage for o in outcomes if o.record is not None}
    title = "runs (validation classes)" if stages == {"validation"} else "runs (unseen classes)"
    print_table(title, ["dataset", "method", "seed", "status", "task", "mAP@all", "P@100", "s"], rows, caption)
    counts = {status: sum(o.status == status for o in outcomes) for status in STATUSES}
    summary = ", ".join(f"{n} {status}" for status, n in counts.items() if n) or "no runs"
    written = [o for o in outcomes if o.path is not None and o.status in ("done", "skipped")]
    console.print(f"{summary}; records in {written[0].path.parents[2]}" if written else summary)


@cli.command()
@click.option("--methods", required=True, help="Comma-separated method names (or 'all'), as for run.")
@click.option("--dataset", "dataset", required=True, help="One dataset name (or a prepared folder).")
@click.option("--synthetic", is_flag=True, help="Tune on the synthetic stand-in.")
@click.option("--split", default=None, help="Named zero-shot split (default: the dataset's default).")
@click.option("--scale", type=float, default=None, help="Synthetic stand-in size as a fraction of the real counts.")
@click.option("--semantics", default=None, help="Class semantics: glove (default), minilm, or a file.")
@click.option("--budget", type=int, required=True, help="Trials per method (the same for every method).")
@click.option("--timeout", "timeout_s", type=float, default=3600.0, show_default=True,
              help="Wall-time cap per method in seconds, summed over its trials (the same for every method).")
@click.option("--seeds", default="0", show_default=True, help="Seeds each trial is fitted with (scores averaged).")
@click.option("--seed", "sampler_seed", type=int, default=0, show_default=True, help="Seed of the TPE sampler.")
@click.option("--param", "params", multiple=True, metavar="METHOD.PARAM=VALUE",
              help="Fix one hyper-parameter for the whole study (repeatable).")
@click.option("--out", default="results/tuning", show_default=True, help="Folder of the studies and trial records.")
@click.option("--jobs", default=1, show_default=True, type=int, help="Methods tuned at once (worker processes).")
@click.option("--executor", type=click.Choice(["serial", "processes", "ray"]), default=None,
              help="Where tunings execute (default: serial, or processes when --jobs > 1).")
@click.option("--address", default=None, help="Ray cluster address for --executor ray.")
@click.option("--threads", default=1, show_default=True, type=int, help="torch/BLAS threads per trial.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, or auto.")
def tune(methods, dataset, synthetic, split, scale, semantics, budget, timeout_s, seeds, sampler_seed, params, out,
         jobs, executor, address, threads, device) -> None:
    """Choose hyper-parameters on the split's validation classes (never a test class), same budget for all."""
    from benchmark.core.data import DatasetRequest
    from benchmark.datasets import check_available
    from benchmark.execution.grid import expand_methods, parse_param, parse_seeds, split_list
    from benchmark.execution.runner import resolve_device
    from benchmark.execution.tuning import tune_all

    # ``all`` tunes the methods, not their variants: an ablation is run with its base method's tuned
    # parameters and its own fixed overrides (see benchmark.execution.tuning.find_study).
    specs = expand_methods(split_list(methods), variants=False)
    fixed: dict[str, dict] = {}
    for text in params:
        target, param, value = parse_param(text)
        if target not in specs:
            raise ZSBenchError(f"--param {text}: no method {target!r} in --methods")
        fixed.setdefault(target, {})[param] = value
    request = DatasetRequest(dataset, synthetic, split, scale, semantics=semantics)
    check_available(dataset, synthetic, split)
    _build_embedded([dataset], synthetic, semantics)
    executor = executor or ("processes" if jobs > 1 else "serial")
    device = resolve_device(device)
    rows = []
    with TuneProgress(len(specs), budget, executor) as progress:
        results = tune_all(specs, request, budget, parse_seeds(seeds), Path(out), timeout_s, threads, device,
                           sampler_seed, fixed, executor, jobs, address, progress.trial, progress.done)
    for r in results:
        rows.append([r.method, f"{r.trials}/{r.budget}", str(r.failed), _score(r.default_value), _score(r.best_value),
                     f"{r.wall_s:.0f}", r.stopped_by, ", ".join(f"{k}={_short(v)}" for k, v in r.best_params.items())])
    print_table(f"tuning on the validation classes of {dataset} (mAP@all, mean over tasks and seeds {seeds})",
                ["method", "trials", "failed", "defaults", "best", "s", "stopped by", "best parameters"], rows,
                caption=f"studies in {out}; run them with `zsbench run --tuned --methods ... --dataset {dataset}`")


def _score(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


class TuneProgress:
    """Trial k/N of the method being tuned, the best validation score so far and the time left (terminal);
    one line per finished method otherwise."""

    def __init__(self, n_methods: int, budget: int, executor: str):
        self.n_methods, self.budget, self.executor = n_methods, budget, executor
        self.live = console.is_terminal

    def __enter__(self) -> TuneProgress:
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("left"), TimeRemainingColumn(), console=console, transient=True)
            self.progress.__enter__()
            self.methods = self.progress.add_task(f"methods ({self.executor})", total=self.n_methods)
            self.trials = self.progress.add_task("trials", total=self.budget)
        return self

    def __exit__(self, *exc) -> None:
        if self.live:
            self.progress.__exit__(*exc)

    def trial(self, method: str, done: int, budget: int, best, spent: float, cap: float) -> None:
        if self.live:
            self.progress.update(self.trials, completed=done, total=budget,
                                 description=f"{method}: trial {done}/{budget}, best {_score(best)}, "
                                             f"{spent:.0f} of {cap:.0f} s")
        else:
            print(f"{method}: trial {done}/{budget}, best so far {_score(best)}, {spent:.0f} s of {cap:.0f} s",
                  flush=True)

    def done(self, result) -> None:
        if self.live:
            self.progress.advance(self.methods)
        print(f"{result.method}: {result.trials} trials ({result.failed} failed), best validation mAP@all "
              f"{_score(result.best_value)} (defaults {_score(result.default_value)}), {result.wall_s:.0f} s",
              flush=True)


@cli.command("methods")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def methods_cmd(as_json) -> None:
    """List the registered methods."""
    from benchmark.registry import available_methods

    rows = [{"name": name, "class": f"{cls.__module__}:{cls.__name__}", "overrides": overrides,
             "quick_params": dict(cls.quick_params), "search_space": sorted(cls.search_space)}
            for name, (cls, overrides) in available_methods().items()]
    if as_json:
        print_json(rows)
        return
    print_table("methods", ["name", "class", "overrides"],
                [[r["name"], r["class"], ", ".join(f"{k}={v}" for k, v in r["overrides"].items())] for r in rows])


@cli.group("datasets", invoke_without_command=True)
@click.pass_context
def datasets_group(ctx) -> None:
    """List the datasets (subcommands: list, info, check, prepare)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(datasets_list)


@datasets_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def datasets_list(as_json=False) -> None:
    """List the registered datasets and their splits."""
    from benchmark.datasets import data_root
    from benchmark.datasets.specs import SPECS

    rows = []
    for spec in SPECS.values():
        splits = [spec.default_split] + [s for s in spec.splits if s != spec.default_split]
        prepared = (data_root() / spec.name / "manifest.json").is_file()
        if spec.source == "embedded":
            from benchmark.datasets.emoji import is_built

            prepared = is_built()
        rows.append({"name": spec.name, "kind": spec.kind, "modalities": spec.modalities,
                     "classes": len(spec.class_names), "splits": splits, "prepared": prepared})
    if as_json:
        print_json(rows)
        return
    print_table(f"datasets (prepared real data is looked for in {data_root()}/)",
                ["name", "kind", "modalities", "classes", "splits (default first)", "prepared"],
                [[r["name"], r["kind"], ", ".join(f"{m} {d}" for m, d in r["modalities"].items()), str(r["classes"]),
                  ", ".join(r["splits"]), "yes" if r["prepared"] else "no"] for r in rows])


@datasets_group.command("info")
@click.argument("name")
def datasets_info(name: str) -> None:
    """Classes, splits, counts and where to get the raw data."""
    from benchmark.datasets.specs import get_spec

    spec = get_spec(name)
    console.print(f"[bold]{spec.title}[/bold]")
    console.print(f"name: {spec.name}; kind: {spec.kind}\ncitation: {spec.citation}\nraw data: {spec.homepage}\nformats: {spec.formats}")
    console.print(f"real counts: {spec.counts}; evaluation protocol: {spec.eval_protocol}")
    for split_name, ref in spec.splits.items():
        split = spec.split(split_name)
        console.print(f"split {split_name}: {len(split.seen)} seen / {len(split.unseen)} unseen, "
                      f"sha256 {ref.sha256[:12]}... - {ref.description}")
        console.print(f"  unseen: {', '.join(split.unseen)}")
        if split.validation is not None:
            console.print(f"  validation classes (model selection, part of the seen ones): "
                          f"{', '.join(split.validation.classes)}")
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
    from benchmark.perf.metrics import perf_metrics

    r = perf_metrics(queries, gallery, classes, sklearn_queries)
    sk = f"{r.sklearn_s:.2f}" + ("" if r.sklearn_queries_timed == r.n_queries else
                                 f" (from {r.sklearn_queries_timed} queries)")
    print_table(f"metric engine, {r.n_queries} queries x {r.n_gallery} gallery, {r.n_classes} classes",
                ["engine (s)", "sklearn loop (s)", "speed-up", "engine peak extra memory (MB)", "max |diff|"],
                [[f"{r.engine_s:.3f}", sk, f"{r.ratio:.1f}x", f"{r.peak_extra_mb:.0f}", f"{r.max_abs_diff:.2e}"]])


@perf.command("all")
@click.option("--repeats", default=3, show_default=True, help="Runs per figure (the table shows the median).")
@click.option("--out", default="results/perf.md", show_default=True, help="Markdown file for the figures.")
@click.option("--gallery/--no-gallery", default=True, show_default=True,
              help="Measure evaluation memory on large galleries (Sketchy scale and 10k x 100k; about a minute).")
def perf_all_cmd(repeats, out, gallery) -> None:
    """Metric engine, training throughput, an end-to-end grid and large-gallery memory; writes results/perf.md."""
    from benchmark.perf.suite import GALLERY_SCALES, run_suite, write_markdown

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
    from benchmark.perf.suite import PerfReport, gallery_memory_figures

    figures = gallery_memory_figures({f"{queries} x {gallery}": (queries, gallery)})
    _print_perf(PerfReport({}, {}, figures))


def _print_perf(report) -> None:
    print_table("zsbench perf (median of runs)", ["figure", "median", "unit", "runs"],
                [[f.name, f"{f.median:.4g}", f.unit, ", ".join(f"{v:.4g}" for v in f.values)] for f in report.figures])
    if report.machine:
        console.print(", ".join(f"{k}: {v}" for k, v in report.machine.items()))


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
    print_table(f"{summary['name']} ({summary['source']}): {summary['classes']} classes, split "
                f"{split['name']} {split['n_seen']} seen / {split['n_unseen']} unseen, sha256 {split['sha256'][:12]}...",
                ["modality", "items", "dim", "seen items", "unseen items", "empty classes"],
                [[m, str(info["items"]), str(info["dim"]), str(info["seen_items"]), str(info["unseen_items"]),
                  ", ".join(info["empty_classes"]) or "-"] for m, info in summary["modalities"].items()])
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
    from benchmark.execution.grid import split_list

    extractor = FeatureExtractor(make_backbone(backbone, image_size, weights), batch_size=batch_size, device=device,
                                 workers=workers)
    raw = RawOptions(text_encoder=text_encoder, split=split, limit_per_class=limit_per_class, skip_broken=skip_broken,
                     variants=tuple(split_list(variants or "")), unseen=unseen, tasks=tasks, paired=paired)
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


@perf.command("train")
@click.option("--method", "method_name", default="cfsa", show_default=True,
              help="A registered CFSA variant; its step configuration is timed.")
@click.option("--hidden", type=int, default=None, help="Hidden width (default: the method's).")
@click.option("--batch-size", type=int, default=None, help="Batch size (default: the method's).")
@click.option("--dims", default="4096,4096", show_default=True, help="Feature sizes of the two modalities.")
@click.option("--embedding-dim", default=50, show_default=True, help="Class-embedding (and noise) size.")
@click.option("--steps", default=5, show_default=True,
              help="Timed training steps per round (after one warm-up step).")
@click.option("--rounds", default=5, show_default=True,
              help="Rounds of steps, each against a peak measured beside it; the median round is reported.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, or auto.")
@click.option("--threads", type=int, default=None,
              help="torch CPU threads (default: 1, as zsbench run trains each run).")
@click.option("--peak-size", default=2048, show_default=True, help="Side of the square matmul timed for the peak.")
def perf_train_cmd(method_name, hidden, batch_size, dims, embedding_dim, steps, rounds, device, threads,
                   peak_size) -> None:
    """Samples/s and GFLOP/s of a CFSA training step against the measured float32 matmul peak."""
    from cfsa.perf import run_perf_train

    r = run_perf_train(method_name, hidden, batch_size, dims, embedding_dim, steps, device, threads, peak_size,
                       rounds)
    spread = f"{100 * r.fractions[0]:.0f}-{100 * r.fractions[-1]:.0f}%"
    rounds_of_steps = f"median of {_plural(len(r.fractions), 'round')} of {_plural(r.steps, 'step')}"
    print_table(f"{method_name} training step on {r.device} ({_plural(r.threads, 'thread')}), width {r.hidden}, "
                f"batch {r.batch_size}, features {list(r.feature_dims.values())}; {rounds_of_steps}",
                ["s/step", "samples/s", "GFLOP/step", "achieved GFLOP/s", "matmul peak GFLOP/s", "of peak",
                 "rounds' range"],
                [[f"{r.seconds_per_step:.4f}", f"{r.samples_per_s:.0f}", f"{r.gflop_per_step:.1f}",
                  f"{r.achieved_gflops:.1f}", f"{r.peak_gflops:.1f}", f"{100 * r.fraction_of_peak:.0f}%", spread]])


# --- report, compare and export commands (benchmark.report) ---
@cli.command("report")
@click.option("--results", default="results/runs", show_default=True, help="Folder of run records.")
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
def report_cmd(results, out, paper, include_synthetic, reported, no_plots, no_sensitivity, no_stats, loss_curves,
               per_class) -> None:
    """Tables with intervals and significance, paper tables, figures and report.html from the records."""
    from benchmark.execution.grid import split_list
    from benchmark.report.build import build_report
    from benchmark.report.tables import to_rich

    with console.status("building the report") as status:
        result = build_report(results, out, paper=paper, reported=reported, plots=not no_plots,
                              sensitivity=not no_sensitivity, per_class=per_class,
                              on_event=lambda message: status.update(message), include_synthetic=include_synthetic,
                              loss_curves=tuple(split_list(loss_curves)), statistics=not no_stats)
    for table in result.paper if paper else result.comparison:
        console.print(to_rich(table))
        for note in table.notes:
            console.print(f"  {note}", highlight=False, style="dim")
    console.print(f"{len(result.comparison)} comparison, {len(result.paper)} paper and {len(result.sensitivity)} "
                  f"sensitivity tables, {len(result.figures)} figures ({len(result.files)} files); open {result.html}")


@cli.command("compare")
@click.argument("method_a")
@click.argument("method_b")
@click.option("--dataset", required=True, help="Dataset name as in the records (e.g. emoji, wikipedia).")
@click.option("--results", default="results/runs", show_default=True, help="Folder of run records.")
@click.option("--metric", default="mAP@all", show_default=True, help="Per-query metric to compare.")
@click.option("--source", default=None, help="real, embedded or synthetic, when several groups hold both methods.")
@click.option("--split", default=None, help="Split name, when several groups hold both methods.")
@click.option("--stage", default="test", show_default=True, type=click.Choice(["test", "validation"]))
@click.option("--resamples", default=10000, show_default=True, help="Bootstrap and randomization resamples.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def compare_cmd(method_a, method_b, dataset, results, metric, source, split, stage, resamples, as_json) -> None:
    """One paired comparison in full: per task difference, 95 % interval, p-value, wins/ties/losses."""
    from benchmark.report.compare import compare_methods
    from benchmark.report.tables import number

    key, rows = compare_methods(results, method_a, method_b, dataset, metric, source, split, stage, resamples)
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


def _p_text(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


@cli.command("export")
@click.option("--format", "fmt", type=click.Choice(["trec"]), default="trec", show_default=True)
@click.option("--results", default="results/runs", show_default=True, help="Folder of run records.")
@click.option("--out", required=True, help="Folder for <dataset>-<source>/<method>/seed<S>-<hash>/<task>.{run,qrels}.")
@click.option("--methods", default=None, help="Comma-separated methods (default: every run with embeddings).")
@click.option("--dataset", default=None, help="Only this dataset.")
@click.option("--keep-ties", is_flag=True, help="Write raw scores (tools then order tied items their own way).")
def export_cmd(fmt, results, out, methods, dataset, keep_ties) -> None:
    """TREC run and qrels files of every run's rankings (cosine on the stored embeddings), for trec_eval or ranx."""

    from benchmark.execution.grid import split_list
    from benchmark.report.export import export_run
    from benchmark.report.records import group_runs, load_runs

    wanted = set(split_list(methods)) if methods else None
    done, tied = 0, 0
    for members in group_runs(load_runs(results)).values():
        for run in members:
            if (wanted and run.method not in wanted) or (dataset and run.group.dataset != dataset) or \
                    run.embeddings_path is None:
                continue
            folder = Path(out) / f"{run.group.dataset}-{run.group.source}" / run.method / run.path.stem
            for task in export_run(run, folder, break_ties=not keep_ties):
                done += 1
                tied += task.tied_pairs
    if not done:
        raise ZSBenchError(f"no run with an embedding sidecar matched under {results}; nothing exported")
    console.print(f"wrote {done} run/qrels pair(s) under {out}" + (
        f"; {tied} tied adjacent pair(s) {'kept' if keep_ties else 'broken by gallery position'}" if tied else ""))


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except ZSBenchError as err:
        err_console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (click.exceptions.Abort, KeyboardInterrupt):
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
