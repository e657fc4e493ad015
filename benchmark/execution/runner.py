"""One :class:`~benchmark.core.spec.RunSpec` -> one run record, with its per-query results and embeddings beside it.

The spec's identity (see ``benchmark.core.spec``) names the record, so rerunning finds what is done. The
run's thread count is applied here, around the fit and the scoring, and nowhere else; the device reaches
the method through :func:`benchmark.contract.fit_context`.
"""

from __future__ import annotations

import dataclasses
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.contract import Method, ZSBenchError, fit_context
from benchmark.core.convergence import assess
from benchmark.core.data import DEFAULT_SCENARIO, SCENARIOS, DatasetRequest, ZSDataset
from benchmark.core.env import (
    DEFAULT_THREADS,
    PeakRSS,
    git_commit,
    library_versions,
    this_machine,
    thread_limit,
)
from benchmark.core.oracle import ORACLE_NOTE, POST_PROCESSINGS, oracle_hook
from benchmark.core.protocol import build_train_view, evaluate
from benchmark.core.record import RunRecord
from benchmark.core.spec import DEFAULT_BUDGET, RunSpec
from benchmark.core.store import ResultStore
from benchmark.registry import build_method

#: Embeddings are kept next to a record (for plots and re-scoring) when they take at most this much.
MAX_SIDECAR_BYTES = 64 * 2**20
STATUSES = ("done", "skipped", "busy", "unsupported", "failed")
#: Why a run is skipped, and how to run it anyway.
SKIPPED_REASON = "its record exists; --force reruns it"


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
    scenario: str = DEFAULT_SCENARIO


def make_spec(method: str, seed: int, dataset: DatasetRequest | str = "dataset", params: dict[str, Any] | None = None,
              stage: str = "test", threads: int = DEFAULT_THREADS, device: str = "cpu",
              selection: dict[str, Any] | None = None, monitor_every: int = 1, index: int = -1,
              budget: str = DEFAULT_BUDGET, oracle_every: int = 0, fold: int = 0,
              scenario: str = DEFAULT_SCENARIO) -> RunSpec:
    """A spec for ``method`` (a registered name or module:Class) with ``params`` on top of its defaults, every
    hyper-parameter resolved. ``dataset`` may be a bare name when the caller passes the loaded data itself."""
    name, built = build_method(method, params, budget)
    request = dataset if isinstance(dataset, DatasetRequest) else DatasetRequest(dataset)
    if scenario not in SCENARIOS:
        raise ZSBenchError(f"scenario must be one of {', '.join(SCENARIOS)}, got {scenario!r}")
    return RunSpec(name, built.get_params(), request, int(seed), stage, threads, device, selection, monitor_every,
                   index, budget, scenario, oracle_every, fold)


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


def run_one(spec: RunSpec, ds: ZSDataset, store: ResultStore, force: bool = False,
            on_event: Callable[[str], None] | None = None,
            on_progress: Callable[[int, int | None], None] | None = None, grid: dict[str, Any] | None = None,
            map_blocks: Callable | None = None) -> RunOutcome:
    """Fit and score the run ``spec`` on ``ds`` (the dataset of its stage) and write its record, unless a record
    of the same identity exists.

    ``grid`` (the resolved grid configuration that asked for this run) is kept in the record as provenance;
    it is not part of the run's identity, so the same run asked for by two grids is one record.
    ``map_blocks`` is passed to :func:`benchmark.core.protocol.evaluate` (where query blocks are scored).
    ``on_progress(done, total)`` follows the method's optimisation steps (the progress protocol).
    """
    t_start = time.perf_counter()
    if ds.stage != spec.stage:
        raise ZSBenchError(f"run of {spec.method} asks for the {spec.stage} stage but got the {ds.stage} view of "
                           f"{ds.name}")
    if ds.scenario != spec.scenario:
        raise ZSBenchError(f"run of {spec.method} asks for the {spec.scenario} scenario but got {ds.name} in the "
                           f"{ds.scenario} scenario")
    if spec.oracle_every and spec.stage != "test":
        raise ZSBenchError(f"run of {spec.method}: --oracle-every scores the test classes and applies to the test "
                           f"stage only, not to {spec.stage}; drop it for validation runs")
    name, method = build_method(spec.method, dict(spec.params), spec.budget)
    identity = spec.identity(ds)
    path = store.path_for(identity)

    def outcome(status: str, record: RunRecord | None = None, reason: str | None = None) -> RunOutcome:
        return RunOutcome(name, ds.name, spec.seed, status, path, record, reason, time.perf_counter() - t_start,
                          spec.index, spec.scenario)

    if path.exists() and not force:
        store.load(path)  # an unreadable record is an error, not a silent skip
        return outcome("skipped", reason=SKIPPED_REASON)
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
            return outcome("skipped", reason=SKIPPED_REASON)
        with thread_limit(spec.threads), fit_context(spec.device):
            monitor_every = spec.monitor_every if spec.stage == "validation" else 0
            record, sidecars = _fit_and_score(name, method, ds, parts, views, spec.seed, spec.device, on_event,
                                              on_progress, map_blocks, monitor_every, spec.oracle_every)
        record = dataclasses.replace(record, identity=identity, threads=int(spec.threads), selection=spec.chosen_by,
                                     grid=grid, machine=this_machine(),
                                     budget=None if spec.budget == DEFAULT_BUDGET else spec.budget)
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
        except BaseException:  # a failed write, or Ctrl-C / SIGTERM between a sidecar and its record
            for sidecar in written:  # a sidecar without its record would be a partial result
                sidecar.unlink(missing_ok=True)
            raise
    return outcome("done", record)


def _fit_and_score(name: str, method: Method, ds: ZSDataset, parts: list[ZSDataset], views: list, seed: int,
                   device: str, on_event, on_progress, map_blocks, monitor_every: int, oracle_every: int = 0
                   ) -> tuple[RunRecord, dict[str, tuple[str, bytes]]]:
    started = _now()
    metrics, infos, per_query, embeddings, history, oracle_curve, roles = {}, {}, {}, {}, [], [], {}
    t_fit = t_eval = 0.0
    with PeakRSS() as memory:
        for part, view in zip(parts, views, strict=True):
            # One fresh fit per modality group (a single group unless the method takes fewer modalities than the
            # dataset has); each group's tasks are scored with its own fit.
            fitted = method if part is parts[0] else dataclasses.replace(method)
            label = "+".join(part.modalities)
            if on_event:
                on_event(f"{ds.name}: fit {name} seed {seed}" + (f" ({label})" if len(parts) > 1 else ""))
            fitted.progress_hook_ = on_progress
            fitted.epoch_hook_ = _validation_monitor(fitted, part, monitor_every) if monitor_every else None
            if oracle_every:  # test stage only (run_one checks): no validation monitor to share the hook with
                fitted.epoch_hook_ = oracle_hook(fitted, part, oracle_every, oracle_curve,
                                                 label if len(parts) > 1 else None)
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
            roles.update(details.get("roles", {}))
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
        convergence=assess(history, type(method).convergence_loss),
        oracle={"every": oracle_every, "post_processings": list(POST_PROCESSINGS), "curve": oracle_curve,
                "note": ORACLE_NOTE} if oracle_every else None,
        timings={"fit_s": round(t_fit, 3), "eval_s": round(t_eval, 3), "total_s": round(t_fit + t_eval, 3)},
        peak_memory_mb=round(memory.peak_mb, 1), device=device, versions=library_versions(),
        git_commit=git_commit(), started=started, finished=_now(), identity={}, stage=ds.stage,
        scenario=ds.scenario, heldout=None if ds.scenario == DEFAULT_SCENARIO else ds.heldout_record(),
        metrics_by_role={t: roles[t] for t in tasks} if roles else None)
    seen = ds.seen_classes if ds.scenario == "generalized" else None
    sidecars = {".queries.parquet": ("queries_file", queries_table(per_query, tasks, ds.class_names, seen))}
    npz = embeddings_sidecar(embeddings)
    if npz is not None:
        sidecars[".npz"] = ("embeddings_file", npz)
    return record, sidecars


def queries_table(per_query: dict[str, tuple[str, dict[str, np.ndarray]]], tasks: list[str],
                  class_names: tuple[str, ...], seen_classes: np.ndarray | None = None) -> bytes:
    """Every query's metrics as Parquet: task, fit, query, class_id, class_name, n_relevant, one column per metric;
    with ``seen_classes`` (generalized scenario) also ``seen``, whether the query's class is a seen one.

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
        if seen_classes is not None:
            columns.setdefault("seen", []).append(np.isin(values["class_id"], seen_classes))
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
