"""``zsbench run`` and ``zsbench tune``: a grid of runs, and the tuning studies of its methods.

The commands call :mod:`benchmark.execution` and print what it reports: the time estimate, progress, the
table of outcomes and, after Ctrl-C or SIGTERM, what finished and how to resume.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from pathlib import Path

import click
from rich.console import Console

from benchmark.cli.output import _plural, _score, _short, console, err_console, print_json, print_table
from benchmark.cli.progress import RunProgress, TuneProgress, _build_embedded
from benchmark.contract import ZSBenchError
from benchmark.core.data import SCENARIOS
from benchmark.core.env import DEFAULT_THREADS
from benchmark.core.spec import BUDGETS
from benchmark.core.store import DEFAULT_RESULTS, DEFAULT_TUNING


@click.command("run")
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
@click.option("--results", default=None,
              help=f"Folder of run records (default {DEFAULT_RESULTS}, or the grid file's).")
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
@click.option("--tuning", default=None, help=f"Folder of the tuning studies (default: the grid file's, else "
                                             f"{DEFAULT_TUNING}).")
@click.option("--budget", type=click.Choice(BUDGETS), default=None,
              help="Training budget: cpu (lengths and widths a CPU affords; the default on a CPU) or paper (the "
                   "authors' released ones; the default on a GPU); part of a run's identity.")
@click.option("--scenario", type=click.Choice([*SCENARIOS, "all"]), default=None,
              help="zero-shot: score the unseen classes (default); standard: the seen classes' held-out test items; "
                   "generalized: both together, with seen, unseen and harmonic-mean scores; all: the three (one "
                   "record each). Held-out seen items never reach training in standard and generalized.")
@click.option("--oracle-every", "oracle_every", type=int, default=None,
              help="Also score the TEST classes every N epochs (raw and test-statistics z-scored) into the record's "
                   "oracle field, for the report's 'What test-set selection adds' table only; a separate run "
                   "(part of its identity) whose own metrics are unchanged; never a result.")
@click.option("--tuning-folds", "tuning_folds", type=int, default=None,
              help="With --tuned: read the studies tuned over K validation folds (zsbench tune --folds K; default 1).")
@click.option("--fold", type=int, default=None,
              help="With --stage validation: the validation fold scored (default 0, the split's validation "
                   "classes; `zsbench datasets info NAME` lists the folds).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (one object per run).")
def run(methods, datasets, synthetic, split, scale, seeds, params, results, force, device, config, stage, jobs,
        executor, address, threads, semantics, tuned, tuning, budget, scenario, oracle_every, tuning_folds, fold,
        as_json) -> None:
    """Run every (method, dataset, seed) and write one JSON record each; rerunning resumes."""
    from benchmark.execution.grid import grid_from_cli
    from benchmark.execution.plan import check_data, plan_grid, run_plan

    grid = grid_from_cli(config, methods, datasets, synthetic, split, scale, seeds, device, semantics, threads, stage,
                         params, budget, oracle_every, fold, tuning_folds, scenario)
    results = results or grid.results or DEFAULT_RESULTS
    executor = executor or ("processes" if jobs > 1 else "serial")
    plan = plan_grid(grid, tuning, every_method_tuned=tuned)  # every mistake in the grid, before any data is built
    out = err_console if as_json else console
    estimate = _estimate(plan, results, force, jobs, out)
    for request in grid.datasets:
        _build_embedded([request.name], request.synthetic, request.semantics)
    check_data(plan, keep=executor == "serial")  # a data error once, before any run
    progress = RunProgress(len(plan.specs), executor, lines_to=sys.stderr if as_json else sys.stdout,
                           estimate=estimate, jobs=jobs)
    try:
        with _sigterm_interrupts(), progress:
            report = run_plan(plan, results, executor=executor, jobs=jobs, address=address, force=force,
                              on_result=progress.finished, on_event=progress.event, on_progress=progress.steps)
    except KeyboardInterrupt:
        _interrupted(results, progress.outcomes, len(plan.specs))
    outcomes = report.with_records()
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

    ResultStore(results).clean_after_interrupt()
    kept = [o for o in outcomes if o.status in ("done", "skipped")]
    err_console.print(f"interrupted: {len(kept)} of {_plural(total, 'run')} have a record in {results}; the run in "
                      f"progress wrote nothing", highlight=False)
    for o in kept:
        err_console.print(f"  {o.status}: {o.dataset} {o.method} seed {o.seed}", highlight=False)
    err_console.print(f"rerun to finish the rest (finished runs are skipped): {shlex.join(['zsbench', *sys.argv[1:]])}",
                      highlight=False, soft_wrap=True)
    sys.exit(130)


def _estimate(plan, results: str, force: bool, jobs: int, out: Console):
    """Before a grid starts: its estimated time (this machine's records, else the shipped cost model), and a
    warning when that is over an hour. Returns the estimate (the progress bar's clock)."""
    from benchmark.execution.estimates import estimate_lines, estimate_plan

    estimate = estimate_plan(plan, results, force)
    line, long = estimate_lines(estimate, jobs)
    out.print(line, highlight=False)
    if long:
        out.print("[yellow]warning:[/yellow] this grid runs for over an hour; consider --scale, fewer seeds or "
                  "--jobs N (Ctrl-C stops it cleanly, and rerunning resumes)", highlight=False)
    return estimate


def _outcome_json(o) -> dict:
    out = {"dataset": o.dataset, "method": o.method, "seed": o.seed, "status": o.status,
           "record": None if o.path is None else str(o.path), "reason": o.reason, "wall_s": round(o.wall_s, 3)}
    if o.record is not None:
        out.update({"source": o.record.source, "split": o.record.split_name, "stage": o.record.stage,
                    "scenario": o.record.scenario, "metrics": o.record.metrics, "total_s": o.record.total_s})
        if o.record.metrics_by_role:
            out["metrics_by_role"] = o.record.metrics_by_role
    return out


def _print_outcomes(outcomes) -> None:
    """One row per task of each run that has a record; runs without one (unsupported, failed) in a table of
    their own with their reasons; a summary that says why runs were skipped."""
    from benchmark.execution.runner import SKIPPED_REASON, STATUSES

    rows, sources, missing = [], {}, []
    for o in outcomes:
        if o.record is None:
            missing.append([o.dataset, o.method, str(o.seed), o.status, o.reason or ""])
            continue
        record = o.record
        stage = "" if record.stage == "test" else f", stage {record.stage}"
        sources.setdefault(o.dataset, f"{record.source}, split {record.split_name}{stage}")
        for task_name, values in record.metrics.items():
            roles = (record.metrics_by_role or {}).get(task_name)
            rows.append([o.dataset, o.method, str(o.seed), record.scenario, o.status, task_name,
                         f"{values['mAP@all']:.4f}", f"{roles['harmonic']['mAP@all']:.4f}" if roles else "",
                         f"{values['P@100']:.4f}" if "P@100" in values else "", f"{record.total_s:.1f}"])
    caption = "; ".join(f"{name}: {info}" for name, info in sources.items()) or None
    stages = {o.record.stage for o in outcomes if o.record is not None}
    scenarios = {o.record.scenario for o in outcomes if o.record is not None}
    title = ("runs (validation classes)" if stages == {"validation"} else
             "runs (unseen classes)" if scenarios == {"zero-shot"} else "runs")
    if rows:
        print_table(title, ["dataset", "method", "seed", "scenario", "status", "task", "mAP@all", "H mAP@all",
                            "P@100", "s"], rows, caption)
    if missing:
        print_table("runs without a record", ["dataset", "method", "seed", "status", "reason"], missing)
    counts = {status: sum(o.status == status for o in outcomes) for status in STATUSES}
    summary = ", ".join(f"{n} {status}" + (f" ({SKIPPED_REASON})" if status == "skipped" else "")
                        for status, n in counts.items() if n) or "no runs"
    written = [o for o in outcomes if o.path is not None and o.status in ("done", "skipped")]
    console.print(f"{summary}; records in {written[0].path.parents[2]}" if written else summary, highlight=False)


@click.command("tune")
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
@click.option("--out", "--results", "out", default=DEFAULT_TUNING, show_default=True,
              help="Folder of the studies and trial records (--results, as for run, says the same).")
@click.option("--jobs", default=1, show_default=True, type=int, help="Methods tuned at once (worker processes).")
@click.option("--executor", type=click.Choice(["serial", "processes", "ray"]), default=None,
              help="Where tunings execute (default: serial, or processes when --jobs > 1).")
@click.option("--address", default=None, help="Ray cluster address for --executor ray.")
@click.option("--threads", default=DEFAULT_THREADS, show_default=True, type=int,
              help="torch/BLAS threads per trial run (part of its identity, as for run).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, or auto.")
@click.option("--training-budget", "training", type=click.Choice(BUDGETS), default=None,
              help="The training budget every trial runs at (as run --budget; default paper on a GPU, cpu on a "
                   "CPU); its studies are kept apart.")
@click.option("--folds", type=int, default=1, show_default=True,
              help="Score every trial on the split's first K class-disjoint validation folds (objective: the mean "
                   "over folds and seeds); K-fold studies are kept apart (run --tuned --tuning-folds K reads them).")
@click.option("--scenario", type=click.Choice(SCENARIOS), default="zero-shot", show_default=True,
              help="Tune for this scenario: the validation classes play the unseen role, a held-out share of the "
                   "other training classes' items the seen role (its studies are kept apart).")
def tune(methods, dataset, synthetic, split, scale, semantics, budget, timeout_s, seeds, sampler_seed, params, out,
         jobs, executor, address, threads, device, training, folds, scenario) -> None:
    """Choose hyper-parameters on the split's validation classes (never a test class), same budget for all."""
    from benchmark.core.data import DatasetRequest
    from benchmark.datasets import check_available
    from benchmark.execution.grid import expand_methods, parse_param, parse_seeds, split_list
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
    rows = []
    with TuneProgress(len(specs), budget, executor) as progress:
        results = tune_all(specs, request, budget, parse_seeds(seeds), Path(out), timeout_s, threads, device,
                           sampler_seed, fixed, executor, jobs, address, progress.trial, progress.done, training,
                           folds, scenario)
    for r in results:
        rows.append([r.method, f"{r.trials}/{r.budget}", str(r.failed), _score(r.default_value), _score(r.best_value),
                     f"{r.wall_s:.0f}", r.stopped_by, ", ".join(f"{k}={_short(v)}" for k, v in r.best_params.items())])
    where = "" if scenario == "zero-shot" else f", {scenario} scenario"
    print_table(f"tuning on the validation classes of {dataset}{where} (mAP@all, mean over tasks and seeds {seeds})",
                ["method", "trials", "failed", "defaults", "best", "s", "stopped by", "best parameters"], rows,
                caption=f"studies in {out}; run them with `zsbench run --tuned --methods ... --dataset {dataset}"
                        f"{'' if scenario == 'zero-shot' else f' --scenario {scenario}'}`")
