"""``zsbench perf``: benchmarks that print figures (metrics, all, memory, train); the measuring is in
:mod:`benchmark.perf`."""

from __future__ import annotations

import click

from benchmark.cli.groups import default_group
from benchmark.cli.output import _plural, console, print_table
from benchmark.contract import ZSBenchError


@default_group("perf", default="all")
def perf() -> None:
    """Benchmarks that print figures (no subcommand: the whole suite, as `perf all`)."""


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
    from benchmark.perf.train import run_perf_train

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


@perf.command("steps")
@click.option("--method", "method_name", required=True, help="A registered method (or module:Class).")
@click.option("--dataset", required=True, help="A dataset name.")
@click.option("--synthetic", is_flag=True, help="Its synthetic stand-in.")
@click.option("--scale", type=float, default=None, help="Stand-in size as a fraction of the real counts.")
@click.option("--budget", type=click.Choice(["cpu", "paper"]), default="cpu", show_default=True)
@click.option("--steps", default=5, show_default=True, help="Steps timed after the first.")
@click.option("--threads", default=1, show_default=True, help="torch/BLAS threads.")
def perf_steps_cmd(method_name, dataset, synthetic, scale, budget, steps, threads) -> None:
    """Seconds per optimisation step and steps of a whole fit: the time of a fit too long to run."""
    from benchmark.core.data import DatasetRequest
    from benchmark.perf.steps import step_rate

    rate = step_rate(method_name, DatasetRequest(dataset, synthetic, scale=scale), budget, steps, threads)
    console.print(rate.line(), highlight=False)
