"""One (method, dataset, seed) -> one run record, with its per-query results and embeddings beside it.

A run is defined by its identity: the method and every hyper-parameter, the dataset (source, split and its
sha256, data provenance), the stage (test, or the validation classes of model selection), the seed, the
thread count, how the configuration was chosen and, for a GPU run, the device class. Its hash names the
record, so rerunning finds what is done. The thread count is fixed (1 unless asked otherwise) whatever
executes the run: floating-point sums split over threads differ in their last bits, and the same seed must
give the same numbers everywhere.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import platform
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.contract import Method, ZSBenchError
from benchmark.core.data import DatasetRequest, ZSDataset  # noqa: F401 - DatasetRequest re-exported
from benchmark.core.protocol import build_train_view, evaluate
from benchmark.core.record import DEFAULTS_SELECTION, RunRecord, device_class
from benchmark.core.store import ResultStore
from benchmark.execution.estimates import this_machine
from benchmark.execution.grid import DEFAULT_THREADS
from benchmark.registry import build_method

#: Embeddings are kept next to a record (for plots and re-scoring) when they take at most this much.
MAX_SIDECAR_BYTES = 64 * 2**20
STATUSES = ("done", "skipped", "busy", "unsupported", "failed")


@dataclass
class RunOutcome:
    """What became of one run: ``status`` is one of :data:`STATUSES`; ``reason`` says why for unsupported and
    failed runs. Small, so outcomes travel cheaply between processes (``record`` is loaded by the driver)."""

    method: str
    dataset: str
    seed: int
    status: str
    path: Path | None = None
    record: RunRecord | None = None
    reason: str | None = None
    wall_s: float = 0.0
    index: int = -1


class PeakRSS:
    """Samples the process's resident memory in a thread; ``peak_mb`` is the peak above the start."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self._stop = threading.Event()

    @staticmethod
    def rss_bytes() -> int:
        try:
            with open("/proc/self/statm") as handle:
                return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = self.rss_bytes()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.rss_bytes())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss_bytes())

    @property
    def peak_mb(self) -> float:
        return (self.peak - self.start) / 2**20


@contextlib.contextmanager
def thread_limit(threads: int | None) -> Iterator[None]:
    """Run with ``threads`` torch and BLAS threads (None: as the process is set up), then restore."""
    if threads is None:
        yield
        return
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(before)


def library_versions() -> dict[str, str]:
    import sklearn
    import torch

    from benchmark import __version__

    return {"zsbench": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "torch": torch.__version__, "scikit-learn": sklearn.__version__}


def git_commit() -> str | None:
    """The project's commit (with ``+dirty`` when the work tree has changes), or None outside a checkout."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def resolve_device(device: str) -> str:
    """The device a run really uses: ``auto`` becomes cuda or cpu; cuda without CUDA is a one-line error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ZSBenchError(f"--device {device}: this torch {torch.__version__} has no usable CUDA (CPU-only build or "
                           f"no GPU); use --device cpu, or install a CUDA build of torch on a GPU machine")
    if device != "cpu" and not device.startswith("cuda"):
        raise ZSBenchError(f"--device must be cpu, cuda[:N] or auto, got {device!r}")
    return device


def run_identity(method_name: str, params: dict[str, Any], ds: ZSDataset, seed: int, threads: int,
                 selection: dict[str, Any], device: str = "cpu") -> dict[str, Any]:
    """Everything that defines a run; its hash names the record. A GPU run is another run than the CPU one of
    the same seed (its numbers differ in rounding, which GAN training amplifies); CPU identities carry no
    device, so records written before the device joined the identity keep their names."""
    identity = {"method": method_name, "config": params, "dataset": ds.name, "source": ds.source,
                "split": ds.split.name, "split_sha256": ds.split.sha256, "stage": ds.stage, "seed": int(seed),
                "data": dict(ds.provenance), "eval_protocol": ds.eval_protocol, "threads": int(threads),
                "selection": selection}
    if (kind := device_class(device)) != "cpu":
        identity["device"] = kind
    return identity


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _validation_monitor(method: Method, part: ZSDataset, every: int) -> Callable[[int, dict], dict | None]:
    """An epoch hook for a validation-stage fit: every ``every`` epochs, the mean mAP@all over the tasks on the
    validation classes of the model as it stands (training health: does transfer to new classes improve?)."""

    def hook(epoch: int, entry: dict) -> dict | None:
        if every < 1 or (epoch + 1) % every:
            return None
        metrics, _ = evaluate(method, part)
        return {"val_mAP@all": float(np.mean([task["mAP@all"] for task in metrics.values()]))}

    return hook


def run_one(method_spec: str, ds: ZSDataset, seed: int, store: ResultStore, params: dict[str, Any] | None = None,
            force: bool = False, device: str = "cpu", threads: int = DEFAULT_THREADS,
            on_event: Callable[[str], None] | None = None,
            on_progress: Callable[[int, int | None], None] | None = None, grid: dict[str, Any] | None = None,
            map_blocks: Callable | None = None, selection: dict[str, Any] | None = None,
            monitor_every: int = 1) -> RunOutcome:
    """Fit and score one run and write its record (unless a record of the same identity exists).

    ``grid`` (the resolved grid configuration that asked for this run) is kept in the record as provenance;
    it is not part of the run's identity, so the same run asked for by two grids is one record.
    ``map_blocks`` is passed to :func:`benchmark.core.protocol.evaluate` (where query blocks are scored).
    ``selection`` says how the configuration was chosen (default: the method's defaults).
    ``on_progress(done, total)`` follows the method's optimisation steps (the progress protocol).
    """
    t_start = time.perf_counter()
    name, method = build_method(method_spec, params)
    device = resolve_device(device)
    selection = dict(selection or DEFAULTS_SELECTION)
    full_params = method.get_params()
    identity = run_identity(name, full_params, ds, seed, threads, selection, device)
    path = store.path_for(identity)

    def outcome(status: str, record: RunRecord | None = None, reason: str | None = None) -> RunOutcome:
        return RunOutcome(name, ds.name, seed, status, path, record, reason, time.perf_counter() - t_start)

    if path.exists() and not force:
        store.load(path)  # an unreadable record is an error, not a silent skip
        return outcome("skipped")
    groups = ds.modality_groups(type(method).max_modalities)
    parts = [ds if group == ds.modalities else ds.restrict(group) for group in groups]
    views = [build_train_view(part) for part in parts]
    for view in views:
        reason = method.supports(view)
        if reason:
            return dataclasses.replace(outcome("unsupported", reason=reason), path=None)
    with store.claim(path) as claimed:
        if not claimed:
            return outcome("busy")
        if path.exists() and not force:
            return outcome("skipped")
        with thread_limit(threads):
            record, sidecars = _fit_and_score(name, method, ds, parts, views, seed, device, on_event, on_progress,
                                              map_blocks, monitor_every)
        record = dataclasses.replace(record, identity=identity, threads=int(threads), selection=selection, grid=grid,
                                     machine=this_machine())
        if force:
            store.supersede(path)
        written = []
        try:
            for suffix, (field_name, data) in sidecars.items():
                sidecar = path.with_name(path.stem + suffix)
                store.write_atomic(sidecar, data)
                written.append(sidecar)
                record = dataclasses.replace(record, **{field_name: sidecar.name})
            store.save(path, record)
        except ZSBenchError:
            for sidecar in written:  # a sidecar without its record would be a partial result
                sidecar.unlink(missing_ok=True)
            raise
    return outcome("done", record)


def _fit_and_score(name: str, method: Method, ds: ZSDataset, parts: list[ZSDataset], views: list, seed: int,
                   device: str, on_event, on_progress, map_blocks, monitor_every: int
                   ) -> tuple[RunRecord, dict[str, tuple[str, bytes]]]:
    started = _now()
    metrics, infos, per_query, embeddings, history = {}, {}, {}, {}, []
    t_fit = t_eval = 0.0
    with PeakRSS() as memory:
        for part, view in zip(parts, views, strict=True):
            # One fresh fit per modality group (a single group unless the method takes fewer modalities than the
            # dataset has); each group's tasks are scored with its own fit.
            fitted = method if part is parts[0] else dataclasses.replace(method)
            fitted.device = device
            label = "+".join(part.modalities)
            if on_event:
                on_event(f"{ds.name}: fit {name} seed {seed}" + (f" ({label})" if len(parts) > 1 else ""))
            fitted.progress_hook_ = on_progress
            fitted.epoch_hook_ = _validation_monitor(fitted, part, monitor_every) if ds.stage == "validation" else None
            t0 = time.perf_counter()
            try:
                fitted.fit(view, seed)
            finally:
                fitted.progress_hook_ = fitted.epoch_hook_ = None
            t_fit += time.perf_counter() - t0
            t0 = time.perf_counter()
            part_metrics, details = evaluate(fitted, part, keep_embeddings=True, map_blocks=map_blocks)
            t_eval += time.perf_counter() - t0
            metrics.update(part_metrics)
            infos.update(details["tasks"])
            for task, values in details["per_query"].items():
                per_query[task] = (label, values)
            for key, value in details["embeddings"].items():
                embeddings[f"{label}/{key}"] = value
            history.extend(entry if len(parts) == 1 else {"modalities": label, **entry} for entry in fitted.history_)
    tasks = [f"{q}->{g}" for q, g in ds.tasks]
    record = RunRecord(
        method=name, config=method.get_params(), dataset=ds.record(), source=ds.source, split=ds.split.record(),
        seed=int(seed), metrics={t: metrics[t] for t in tasks}, metrics_info={t: infos[t] for t in tasks},
        training_log=history, fits=["+".join(part.modalities) for part in parts],
        timings={"fit_s": round(t_fit, 3), "eval_s": round(t_eval, 3), "total_s": round(t_fit + t_eval, 3)},
        peak_memory_mb=round(memory.peak_mb, 1), device=device, versions=library_versions(),
        git_commit=git_commit(), started=started, finished=_now(), identity={}, stage=ds.stage)
    sidecars = {".queries.parquet": ("queries_file", queries_table(per_query, tasks, ds.class_names))}
    npz = embeddings_sidecar(embeddings)
    if npz is not None:
        sidecars[".npz"] = ("embeddings_file", npz)
    return record, sidecars


def queries_table(per_query: dict[str, tuple[str, dict[str, np.ndarray]]], tasks: list[str],
                  class_names: tuple[str, ...]) -> bytes:
    """Every query's metrics as Parquet: task, fit, query, class_id, class_name, n_relevant, one column per metric.

    Values are the float64 the record's means were taken from, so the mean of a column over the rows with
    a relevant item equals the record's value exactly.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, list] = {"task": [], "fit": [], "query": [], "class_id": [], "class_name": [], "n_relevant": []}
    metric_names = [k for k in per_query[tasks[0]][1] if k not in ("class_id", "n_relevant")]
    columns.update({k: [] for k in metric_names})
    for task in tasks:
        fit, values = per_query[task]
        n = len(values["class_id"])
        columns["task"].append(np.full(n, task, dtype=object))
        columns["fit"].append(np.full(n, fit, dtype=object))
        columns["query"].append(np.arange(n, dtype=np.int64))
        columns["class_id"].append(np.asarray(values["class_id"], dtype=np.int64))
        columns["class_name"].append(np.asarray(class_names, dtype=object)[values["class_id"]])
        columns["n_relevant"].append(np.asarray(values["n_relevant"], dtype=np.int64))
        for k in metric_names:
            columns[k].append(np.asarray(values[k], dtype=np.float64))
    table = pa.table({k: pa.array(np.concatenate(v)) for k, v in columns.items()})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def embeddings_sidecar(embeddings: dict[str, tuple[np.ndarray, np.ndarray]]) -> bytes | None:
    """Keys ``{fit}/{modality}/{part}/embeddings`` and ``.../labels``; None when over :data:`MAX_SIDECAR_BYTES`."""
    arrays = {}
    for key, (Z, y) in embeddings.items():
        arrays[f"{key}/embeddings"] = Z.astype(np.float32)
        arrays[f"{key}/labels"] = y.astype(np.int32)
    if not arrays or sum(a.nbytes for a in arrays.values()) > MAX_SIDECAR_BYTES:
        return None
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()
