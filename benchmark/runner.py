"""One (method, dataset, seed) -> one run record; a grid runs every combination and resumes."""

from __future__ import annotations

import io
import os
import platform
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.contract import ZSBenchError
from benchmark.data import DatasetRequest, ZSDataset  # noqa: F401 - DatasetRequest re-exported
from benchmark.protocol import build_train_view, evaluate
from benchmark.registry import build_method
from benchmark.store import ResultStore

#: Embeddings are kept next to a record (for plots and re-scoring) when they take at most this much.
MAX_SIDECAR_BYTES = 64 * 2**20


@dataclass
class RunOutcome:
    method: str
    dataset: str
    seed: int
    status: str  # "done", "skipped" (record exists), "busy", "unsupported" or "failed" (extra["reason"] says why)
    path: Path
    record: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


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


def run_identity(method_name: str, params: dict[str, Any], ds: ZSDataset, seed: int) -> dict[str, Any]:
    """Everything that defines a run; its hash names the record."""
    return {"method": method_name, "config": params, "dataset": ds.name, "source": ds.source,
            "split": ds.split.name, "split_sha256": ds.split.sha256, "seed": int(seed),
            "data": {k: v for k, v in ds.provenance.items()}, "eval_protocol": ds.eval_protocol}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_one(method_spec: str, ds: ZSDataset, seed: int, store: ResultStore, params: dict[str, Any] | None = None,
            force: bool = False, device: str = "cpu", on_event: Callable[[str], None] | None = None,
            grid: dict[str, Any] | None = None, map_blocks: Callable | None = None) -> RunOutcome:
    """``grid`` (the resolved grid configuration that asked for this run) is kept in the record as provenance;
    it is not part of the run's identity, so the same run asked for by two grids is one record.
    ``map_blocks`` is passed to :func:`benchmark.protocol.evaluate` (where query blocks are scored)."""
    name, method = build_method(method_spec, params)
    method.device = device
    full_params = method.get_params()
    identity = run_identity(name, full_params, ds, seed)
    path = store.path_for(identity)
    if path.exists() and not force:
        store.load(path)  # an unreadable record is an error, not a silent skip
        return RunOutcome(name, ds.name, seed, "skipped", path)
    groups = ds.modality_groups(type(method).max_modalities)
    parts = [ds if group == ds.modalities else ds.restrict(group) for group in groups]
    for part in parts:
        reason = method.supports(build_train_view(part))
        if reason:
            return RunOutcome(name, ds.name, seed, "unsupported", path, extra={"reason": reason})
    with store.claim(path) as claimed:
        if not claimed:
            return RunOutcome(name, ds.name, seed, "busy", path)
        if path.exists() and not force:
            return RunOutcome(name, ds.name, seed, "skipped", path)
        started = _now()
        t0 = time.perf_counter()
        metrics, details, history = {}, {"tasks": {}}, []
        with PeakRSS() as memory:
            t_fit = 0.0
            for part in parts:
                # One fresh fit per modality group (a single group unless the method takes fewer modalities
                # than the dataset has); each group's tasks are scored with its own fit.
                fitted = method if len(parts) == 1 else build_method(method_spec, params)[1]
                fitted.device = device
                label = "+".join(part.modalities)
                if on_event:
                    on_event(f"{ds.name}: fit {name} seed {seed}")
                    fitted.epoch_hook_ = lambda epoch, losses, label=label: on_event(
                        f"{ds.name}: fit {name} seed {seed}{f' ({label})' if len(parts) > 1 else ''}, "
                        f"epoch {epoch + 1}: " + " ".join(f"{k}={v:.3g}" for k, v in losses.items() if k != "epoch"))
                t_part = time.perf_counter()
                fitted.fit(build_train_view(part), seed)
                fitted.epoch_hook_ = None
                t_fit += time.perf_counter() - t_part
                part_metrics, part_details = evaluate(fitted, part, keep_embeddings=len(parts) == 1,
                                                      map_blocks=map_blocks)
                metrics.update(part_metrics)
                details["tasks"].update(part_details["tasks"])
                details.setdefault("embeddings", {}).update(part_details.get("embeddings", {}))
                history.extend(entry if len(parts) == 1 else {"modalities": label, **entry}
                               for entry in fitted.history_)
            t_eval = time.perf_counter() - t0 - t_fit
        metrics = {f"{q}->{g}": metrics[f"{q}->{g}"] for q, g in ds.tasks}  # the dataset's task order
        record = {
            "method": name,
            "config": full_params,
            "dataset": ds.record(),
            "source": ds.source,
            "split": ds.split.record(),
            "seed": int(seed),
            "metrics": metrics,
            "metrics_info": details["tasks"],
            "training_log": history,
            "fits": ["+".join(part.modalities) for part in parts],
            "timings": {"fit_s": round(t_fit, 3), "eval_s": round(t_eval, 3), "total_s": round(t_fit + t_eval, 3)},
            "peak_memory_mb": round(memory.peak_mb, 1),
            "device": device,
            "versions": library_versions(),
            "git_commit": git_commit(),
            "started": started,
            "finished": _now(),
            "identity": identity,
        }
        if grid is not None:
            record["grid"] = grid
        if force:
            store.supersede(path)
        sidecar = _embeddings_sidecar(details.get("embeddings", {}))
        if sidecar is not None:
            store.write_atomic(path.with_suffix(".npz"), sidecar)
            record["embeddings_file"] = path.with_suffix(".npz").name
        try:
            store.save(path, record)
        except ZSBenchError:
            if sidecar is not None:  # a sidecar without its record would be a partial result
                path.with_suffix(".npz").unlink(missing_ok=True)
            raise
    return RunOutcome(name, ds.name, seed, "done", path, record)


def _embeddings_sidecar(embeddings: dict[str, tuple[np.ndarray, np.ndarray]]) -> bytes | None:
    arrays = {}
    for key, (Z, y) in embeddings.items():
        arrays[f"{key}/embeddings"] = Z.astype(np.float32)
        arrays[f"{key}/labels"] = y.astype(np.int32)
    if not arrays or sum(a.nbytes for a in arrays.values()) > MAX_SIDECAR_BYTES:
        return None
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


#: The word that expands to every registered method, dataset or split.
ALL = "all"


def expand_methods(specs: Sequence[str]) -> list[str]:
    """``all`` becomes every registered method (sorted); other names are kept, in order, once each."""
    from benchmark.registry import available_methods

    expanded: list[str] = []
    for spec in specs:
        for name in (available_methods() if spec == ALL else [spec]):
            if name not in expanded:
                expanded.append(name)
    return expanded


def dataset_requests(names: Sequence[str], synthetic: bool = False, split: str | None = None,
                     scale: float | None = None, semantics: str | None = None) -> list[DatasetRequest]:
    """``all`` becomes every registered dataset; split ``all`` runs each dataset on every one of its splits.

    With several datasets a named split must exist in each of them (split names are per dataset).
    """
    from benchmark.datasets.specs import SPECS, get_spec

    expanded: list[str] = []
    for name in names:
        for dataset in (list(SPECS) if name == ALL else [name]):
            if dataset not in expanded:
                expanded.append(dataset)
    requests = []
    for dataset in expanded:
        if dataset not in SPECS and Path(dataset).is_dir():  # a prepared folder of the user's own
            requests.append(DatasetRequest(dataset, synthetic, split, scale, semantics=semantics))
            continue
        spec = get_spec(dataset)
        if split == ALL:
            requests.extend(DatasetRequest(dataset, synthetic, s, scale, semantics=semantics) for s in spec.splits)
            continue
        if split is not None and split not in spec.splits and len(expanded) > 1:
            raise ZSBenchError(f"dataset {dataset!r} has no split {split!r} (its splits: {', '.join(spec.splits)}); "
                               f"leave --split out for each dataset's default, or pass --split all")
        requests.append(DatasetRequest(dataset, synthetic, split, scale, semantics=semantics))
    return requests


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ZSBenchError(f"--seeds must be comma-separated integers, got {text!r}") from None
    if not seeds:
        raise ZSBenchError("--seeds is empty")
    return seeds
