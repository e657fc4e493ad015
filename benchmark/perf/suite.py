"""``zsbench perf``: figures a reader can compare between machines, each the median of repeated runs.

- metrics: the metric engine's mAP@all time at TU-Berlin scale (and its speed-up on sklearn's loop);
- training: semantic-regression training throughput (samples per second) on a synthetic stand-in;
- grid: wall time of a small end-to-end grid (load, train, evaluate, write records);
- gallery memory: peak extra resident memory of evaluation on a large random gallery, measured in a fresh
  process (``python -m benchmark.perf.suite gallery Q G``) so that nothing else shares its peak.

:func:`write_markdown` writes the table with the machine (CPU model, cores, memory) and library versions.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import benchmark.datasets  # noqa: F401 - imported before benchmark.core.protocol, which it imports (a cycle)
from benchmark.contract import Method, TrainView

#: Sketchy Extended's zero-shot evaluation size (queries x gallery) and a synthetic larger one.
GALLERY_SCALES = {"sketchy": (15229, 17101), "10k x 100k": (10000, 100000)}


@dataclass
class Figure:
    name: str
    unit: str
    values: list[float]
    note: str = ""
    higher_is_better: bool = False

    @property
    def median(self) -> float:
        return float(statistics.median(self.values))


@dataclass
class PerfReport:
    machine: dict[str, str]
    versions: dict[str, str]
    figures: list[Figure] = field(default_factory=list)


def machine_info() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        pages, page = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        memory = f"{pages * page / 2**30:.1f} GiB"
    except (ValueError, OSError, AttributeError):
        pass
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = {"cpu": cpu, "cores": f"{os.cpu_count()} ({affinity} usable)", "memory": memory,
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version()}
    if hasattr(os, "getloadavg"):  # other work on the machine skews every figure: say how much there was
        info["load average at start (1, 5, 15 min)"] = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return info


def versions() -> dict[str, str]:
    from benchmark.core.env import library_versions

    found = library_versions()
    try:
        import ray

        found["ray"] = ray.__version__
    except ImportError:
        pass
    return found


def _repeat(fn: Callable[[], float], repeats: int) -> list[float]:
    return [fn() for _ in range(repeats)]


# --- the figures -----------------------------------------------------------------------------------------

def metrics_figure(repeats: int, queries: int = 2400, gallery: int = 27989) -> list[Figure]:
    from benchmark.perf.metrics import perf_metrics

    runs = [perf_metrics(queries, gallery, 30, sklearn_queries=100, seed=i) for i in range(repeats)]
    return [Figure(f"metric engine, mAP@all of {queries} x {gallery}", "s", [r.engine_s for r in runs]),
            Figure("  speed-up on sklearn's per-query loop", "x", [r.ratio for r in runs], higher_is_better=True)]


def training_figure(repeats: int, dataset: str = "sketchy", scale: float = 0.02, epochs: int = 3) -> Figure:
    from benchmark.core.protocol import build_train_view
    from benchmark.datasets import load_dataset
    from benchmark.registry import build_method

    view = build_train_view(load_dataset(dataset, synthetic=True, scale=scale))
    samples = epochs * sum(len(view.labels[m]) for m in view.modalities)

    def once() -> float:
        _, method = build_method("semantic-regression", {"epochs": epochs})
        t0 = time.perf_counter()
        method.fit(view, seed=0)
        return samples / (time.perf_counter() - t0)

    return Figure(f"semantic-regression training ({dataset} stand-in, {samples // epochs} samples/epoch)",
                  "samples/s", _repeat(once, repeats), higher_is_better=True)


def grid_figure(repeats: int) -> Figure:
    from benchmark.core.data import DatasetRequest
    from benchmark.execution.grid import Grid, MethodEntry
    from benchmark.execution.plan import run_grid_with

    grid = Grid(methods=[MethodEntry("random"), MethodEntry("semantic-regression", {"epochs": 3})],
                datasets=[DatasetRequest("wikipedia", synthetic=True, scale=0.1)], seeds=[0, 1])

    def once() -> float:
        with tempfile.TemporaryDirectory(prefix="zsbench-perf-") as folder:
            t0 = time.perf_counter()
            report = run_grid_with(grid, folder)
            report.raise_for_failures()
            return time.perf_counter() - t0

    return Figure(f"end-to-end grid, {len(grid.methods) * len(grid.seeds)} runs (2 methods x wikipedia stand-in x 2 seeds)", "s",
                  _repeat(once, repeats))


def gallery_memory_figures(scales: dict[str, tuple[int, int]], repeats: int = 1) -> list[Figure]:
    """Evaluation's peak extra memory and time per scale, each measured in a fresh interpreter."""
    figures = []
    for label, (n_q, n_g) in scales.items():
        runs = [measure_gallery_in_subprocess(n_q, n_g) for _ in range(repeats)]
        figures.append(Figure(f"evaluation peak extra RSS, {label} ({n_q} x {n_g}, dim 64)", "MB",
                              [r["peak_extra_mb"] for r in runs], note="bound: 2048 MB"))
        figures.append(Figure(f"  evaluation time, {label}", "s", [r["eval_s"] for r in runs]))
    return figures


def measure_gallery_in_subprocess(n_queries: int, n_gallery: int) -> dict[str, float]:
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "benchmark.perf.suite", "gallery", str(n_queries), str(n_gallery)],
                          capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- large-gallery evaluation ------------------------------------------------------------------------------

class Precomputed(Method):
    """Features are already embeddings: ``embed`` returns them (evaluation is all that is measured)."""

    name = "precomputed"

    def fit(self, train: TrainView, seed: int) -> Precomputed:
        return self

    def embed(self, modality: str, X: np.ndarray) -> np.ndarray:
        return X


def gallery_dataset(n_queries: int, n_gallery: int, dim: int = 64, n_unseen: int = 25, seed: int = 0):
    """Random unit-free embeddings as features: ``n_queries`` sketches against ``n_gallery`` images of
    ``n_unseen`` unseen classes (plus one small seen class, which the protocol needs)."""
    from benchmark.core.data import Split, ZSDataset

    rng = np.random.default_rng(seed)
    names = tuple(f"class{i:03d}" for i in range(n_unseen + 1))
    features, labels = {}, {}
    for modality, n in (("sketch", n_queries), ("image", n_gallery)):
        y = np.concatenate([np.arange(n_unseen + 1), rng.integers(1, n_unseen + 1, n - n_unseen - 1)])
        features[modality] = rng.standard_normal((n, dim), dtype=np.float32)
        labels[modality] = y
    split = Split(dataset="gallery", name="perf", seen=names[:1], unseen=names[1:], holdout_fraction=0.0,
                  holdout_seed=0, sha256="", path="")
    return ZSDataset(name="gallery", source="synthetic", modalities=("sketch", "image"), features=features,
                     labels=labels, class_names=names, class_embeddings=rng.standard_normal((len(names), 8)),
                     split=split, tasks=(("sketch", "image"),))


def measure_gallery(n_queries: int, n_gallery: int) -> dict[str, float]:
    """Peak resident memory of :func:`benchmark.core.protocol.evaluate` above the memory before it."""
    from benchmark.core.env import PeakRSS
    from benchmark.core.protocol import evaluate

    ds = gallery_dataset(n_queries, n_gallery)
    method = Precomputed()
    before_mb = PeakRSS.rss_bytes() / 2**20
    max_before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    with PeakRSS(interval=0.01) as sampled:
        metrics, _ = evaluate(method, ds)
    eval_s = time.perf_counter() - t0
    # ru_maxrss is the exact high-water mark (the sampler may miss a short spike), but of the process's
    # whole life: it speaks for the evaluation only when the evaluation raised it.
    max_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_extra = max(max_mb - before_mb, sampled.peak_mb) if max_mb > max_before_mb else sampled.peak_mb
    return {"n_queries": n_queries, "n_gallery": n_gallery, "eval_s": round(eval_s, 2),
            "rss_before_mb": round(before_mb, 1), "peak_extra_mb": round(peak_extra, 1),
            "sampled_peak_extra_mb": round(sampled.peak_mb, 1), "mAP@all": metrics["sketch->image"]["mAP@all"]}


# --- the suite -------------------------------------------------------------------------------------------

def run_suite(repeats: int = 3, gallery_scales: dict[str, tuple[int, int]] | None = None,
              on_figure: Callable[[Figure], None] | None = None) -> PerfReport:
    report = PerfReport(machine_info(), versions())
    steps: list[Callable[[], list[Figure]]] = [
        lambda: metrics_figure(repeats),
        lambda: [training_figure(repeats)],
        lambda: [grid_figure(repeats)],
    ]
    if gallery_scales:
        steps.append(lambda: gallery_memory_figures(gallery_scales))
    for step in steps:
        for figure in step():
            report.figures.append(figure)
            if on_figure:
                on_figure(figure)
    return report


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def write_markdown(report: PerfReport, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = ["# zsbench perf", "", f"Generated by `zsbench perf` on {when}.",
             "Each figure is the median of its runs (all runs listed); compare machines by the median.", "",
             "## Machine", ""]
    lines += [f"- {key}: {value}" for key, value in report.machine.items()]
    lines += ["", "## Library versions", ""]
    lines += [f"- {key}: {value}" for key, value in report.versions.items()]
    lines += ["", "## Figures", "", "| figure | median | unit | runs | note |", "|---|---:|---|---|---|"]
    for f in report.figures:
        better = "higher is better" if f.higher_is_better else "lower is better"
        note = "; ".join(x for x in (better, f.note) if x)
        lines.append(f"| {f.name.strip()} | {_fmt(f.median)} | {f.unit} | {', '.join(_fmt(v) for v in f.values)} "
                     f"| {note} |")
    path.write_text("\n".join(lines) + "\n")
    return path


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "gallery":
        print(json.dumps(measure_gallery(int(sys.argv[2]), int(sys.argv[3]))))
    else:
        sys.exit("usage: python -m benchmark.perf.suite gallery N_QUERIES N_GALLERY")
