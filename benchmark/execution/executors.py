"""Runs lists of :class:`~benchmark.core.spec.RunSpec`: in this process, in N local worker processes, or on Ray.

One execution layer serves ``zsbench run`` (a grid's specs, all submitted at once) and ``zsbench tune`` (each
study submits its next trial's specs when the last one has been scored). Every executor runs the same task
function (:func:`run_task`) after the same worker initialisation (:func:`benchmark.core.env.init_worker`):
the worker loads the spec's dataset (kept for the next spec of the same dataset), takes the view of its
stage and calls :func:`benchmark.execution.runner.run_one`, which writes the record through the atomic
store. Nothing is written anywhere else, so killing a grid at any moment loses at most the runs in flight,
and rerunning the command skips the finished records and runs the rest.

A run whose configuration another grid holds (the store's claim lock) is retried until that grid
finishes it (then it is skipped) or dies (then this grid runs it). A run that fails (a method that
raises, NaN embeddings, a full disk) writes nothing; the others go on, and the grid ends with one error
line naming the failures.
"""

from __future__ import annotations

import collections
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.contract import ZSBenchError
from benchmark.core.data import DatasetRequest
from benchmark.core.env import init_worker
from benchmark.core.spec import RunSpec
from benchmark.core.store import ResultStore
from benchmark.execution.runner import RunOutcome

EXECUTORS = ("serial", "processes", "ray")
#: Seconds between retries of runs another grid holds.
BUSY_POLL_S = 1.0


# --- the worker side -------------------------------------------------------------------------------------

_DATASETS: OrderedDict[tuple, Any] = OrderedDict()
_DATASETS_KEPT = 2  # specs come dataset-major, so a worker rarely needs an older one again


def _data_version(request: DatasetRequest) -> tuple:
    """What else decides what ``request`` loads: where data and caches live, and when the prepared folder's
    manifest was last written (a re-prepared dataset is loaded again, not served from memory)."""
    from benchmark.datasets import data_root

    folder = Path(request.name) if Path(request.name).is_dir() else data_root() / request.name
    manifest = folder / "manifest.json"
    stamp = manifest.stat().st_mtime_ns if manifest.is_file() else None
    return (str(data_root().resolve()), os.environ.get("ZSBENCH_CACHE"), stamp)


def dataset_for(request: DatasetRequest):
    """The dataset of ``request``, loaded once per process (the last two are kept)."""
    from benchmark.datasets.requests import load_request

    key = (request, _data_version(request))
    if key not in _DATASETS:
        _DATASETS[key] = load_request(request)
        while len(_DATASETS) > _DATASETS_KEPT:
            _DATASETS.popitem(last=False)
    _DATASETS.move_to_end(key)
    return _DATASETS[key]


def forget_datasets() -> None:
    """Drop the datasets this process holds (the driver checked them; its workers load their own)."""
    _DATASETS.clear()


def one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    message = text[0] if text else ""
    return message if isinstance(err, ZSBenchError) else f"{type(err).__name__}: {message}"


def run_task(spec: RunSpec, results: str, force: bool = False, grid: dict[str, Any] | None = None,
             on_event: Callable[[str], None] | None = None,
             on_progress: Callable[[int, int | None], None] | None = None,
             map_blocks: Callable | None = None) -> RunOutcome:
    """Run one spec in this process; any failure becomes a ``failed`` outcome (no record is written)."""
    from benchmark.execution.runner import run_one

    t0 = time.perf_counter()
    try:
        ds = dataset_for(spec.dataset).in_scenario(spec.scenario)
        if spec.stage == "validation":
            ds = ds.selection_view(spec.fold)
        outcome = run_one(spec, ds, ResultStore(results), force, on_event, on_progress, grid=grid,
                          map_blocks=map_blocks)
    except Exception as err:  # noqa: BLE001 - a failed run must not stop the rest of the grid
        return RunOutcome(spec.method, spec.dataset.name, spec.seed, "failed", reason=one_line(err),
                          wall_s=time.perf_counter() - t0, index=spec.index, scenario=spec.scenario)
    outcome.record = None  # small outcomes travel cheaply; the driver loads the record it wants to show
    return outcome


def _lost(spec: RunSpec, err: BaseException) -> RunOutcome:
    return RunOutcome(spec.method, spec.dataset.name, spec.seed, "failed", reason=f"worker lost: {one_line(err)}",
                      index=spec.index, scenario=spec.scenario)


# --- the executors ---------------------------------------------------------------------------------------

@dataclass
class Job:
    """One spec to run, with where its record goes (``force``: rerun an existing record) and the grid
    provenance kept in it; ``tag`` is the submitter's, returned with the outcome."""

    spec: RunSpec
    results: str
    force: bool = False
    grid: dict[str, Any] | None = None
    tag: Any = None


class Executor:
    """Runs submitted jobs and hands back ``(job, outcome)`` as they finish. Use it as a context manager: on
    leaving (Ctrl-C, SIGTERM, an error, the caller done early) its workers are stopped, so no run goes on
    that nobody waits for. ``submit`` may be called at any time, also between ``next_finished`` calls."""

    def __init__(self) -> None:
        self.pending = 0

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def submit(self, job: Job) -> None:
        raise NotImplementedError

    def next_finished(self) -> tuple[Job, RunOutcome]:
        raise NotImplementedError


class SerialExecutor(Executor):
    """In this process, one job at a time in submission order; the only executor that reports the steps and
    events of the run in progress (``on_event``, ``on_progress``)."""

    def __init__(self, on_event=None, on_progress=None) -> None:
        super().__init__()
        self.queue: collections.deque[Job] = collections.deque()
        self.on_event, self.on_progress = on_event, on_progress

    def submit(self, job: Job) -> None:
        self.queue.append(job)
        self.pending += 1

    def next_finished(self) -> tuple[Job, RunOutcome]:
        job = self.queue.popleft()
        self.pending -= 1
        return job, run_task(job.spec, job.results, job.force, job.grid, self.on_event, self.on_progress)


class ProcessExecutor(Executor):
    """N local worker processes (spawned: a fork of a process that already started torch threads can
    deadlock), each started by :func:`benchmark.core.env.init_worker`."""

    def __init__(self, jobs: int) -> None:
        super().__init__()
        self.jobs = jobs
        self.futures: dict[Any, Job] = {}

    def __enter__(self) -> ProcessExecutor:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.pool = ProcessPoolExecutor(max_workers=self.jobs, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=init_worker, initargs=(os.getpid(),))
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is not None or self.futures:
            # Interrupted (Ctrl-C, SIGTERM, the caller closed early): stop the workers now rather than let them
            # finish runs nobody waits for; their claim locks go with them and the driver sweeps the files.
            for process in list(getattr(self.pool, "_processes", {}).values()):
                process.terminate()
            self.pool.shutdown(wait=True, cancel_futures=True)
            return
        self.pool.shutdown(wait=True)

    def submit(self, job: Job) -> None:
        self.futures[self.pool.submit(run_task, job.spec, job.results, job.force, job.grid)] = job
        self.pending += 1

    def next_finished(self) -> tuple[Job, RunOutcome]:
        from concurrent.futures import FIRST_COMPLETED, wait

        done, _ = wait(list(self.futures), return_when=FIRST_COMPLETED)
        future = min(done, key=lambda f: self.futures[f].spec.index)
        job = self.futures.pop(future)
        self.pending -= 1
        try:
            return job, future.result()
        except Exception as err:  # noqa: BLE001 - a worker died (killed, out of memory)
            return job, _lost(job.spec, err)


class RayExecutor(Executor):
    """Ray tasks (one per spec, ``threads`` CPUs each) on a cluster at ``address`` or a local Ray started here;
    query blocks of an evaluation are spread over Ray workers too (:func:`map_blocks_on_ray`)."""

    def __init__(self, jobs: int | None, address: str | None) -> None:
        super().__init__()
        self.jobs, self.address = jobs, address
        self.refs: dict[Any, Job] = {}

    def __enter__(self) -> RayExecutor:
        self._session = ray_session(self.address, self.jobs)
        self.ray = self._session.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        for ref in self.refs:
            self.ray.cancel(ref, force=True)
        self._session.__exit__(*exc)

    def submit(self, job: Job) -> None:
        remote = self.ray.remote(num_cpus=job.spec.threads)(run_task)
        # Ray workers may start in another folder: the store is given by its absolute path.
        ref = remote.remote(job.spec, str(Path(job.results).resolve()), job.force, job.grid, None, None,
                            map_blocks_on_ray)
        self.refs[ref] = job
        self.pending += 1

    def next_finished(self) -> tuple[Job, RunOutcome]:
        finished, _ = self.ray.wait(list(self.refs), num_returns=1)
        job = self.refs.pop(finished[0])
        self.pending -= 1
        try:
            outcome = self.ray.get(finished[0])
        except Exception as err:  # noqa: BLE001 - a worker died (killed, out of memory)
            return job, _lost(job.spec, err)
        if outcome.path is not None and not Path(job.results).is_absolute():
            outcome.path = Path(job.results) / outcome.path.relative_to(Path(job.results).resolve())
        return job, outcome


def _score_block(score_block, Zq, yq, Zg, yg):
    return score_block(Zq, yq, Zg, yg)


def map_blocks_on_ray(score_block, Zq, yq, Zg, yg, rows: int) -> list:
    """Spread an evaluation's query blocks over Ray workers (see :func:`benchmark.core.protocol.evaluate`).

    The gallery and the scoring function go to the object store once; each worker holds one block of
    scores at a time, so the memory bound per worker is the serial one. A single block is scored here.
    """
    from benchmark.core.protocol import map_blocks_here

    starts = range(0, Zq.shape[0], rows)
    if len(starts) < 2:
        return map_blocks_here(score_block, Zq, yq, Zg, yg, rows)
    import ray

    remote = ray.remote(num_cpus=1)(_score_block)
    fn_ref, gallery_ref, labels_ref = ray.put(score_block), ray.put(Zg), ray.put(yg)
    return ray.get([remote.remote(fn_ref, Zq[s:s + rows], yq[s:s + rows], gallery_ref, labels_ref) for s in starts])


class ray_session:  # noqa: N801 - used as a context manager like a function
    """Ray, connected to ``address`` or to a local instance started here (and stopped at the end)."""

    def __init__(self, address: str | None, num_cpus: int | None = None):
        self.address, self.num_cpus, self.started = address, num_cpus, False

    def __enter__(self):
        try:
            import ray
        except ImportError:
            raise ZSBenchError("--executor ray needs Ray: pip install 'zsbench[ray]'") from None
        if ray.is_initialized():
            return ray
        import logging

        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                   "logging_level": logging.ERROR, "configure_logging": True}
        if self.address is None:
            # Local workers must import this tree's code (it may not be the installed one).
            root = str(Path(__file__).resolve().parents[2])
            paths = [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
            options["runtime_env"] = {"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}}
            if self.num_cpus:
                options["num_cpus"] = self.num_cpus
        try:
            ray.init(address=self.address, **options)
        except Exception as err:  # noqa: BLE001 - Ray raises many kinds (ConnectionError, RuntimeError, ...)
            where = f" at {self.address}" if self.address else ""
            raise ZSBenchError(f"cannot start or reach Ray{where}: {one_line(err)}") from None
        self.started = True
        return ray

    def __exit__(self, *exc) -> None:
        if self.started:
            import ray

            ray.shutdown()


def make_executor(name: str, jobs: int = 1, address: str | None = None, on_event=None,
                  on_progress=None) -> Executor:
    """The executor ``name`` (serial, processes, ray) with ``jobs`` runs at once."""
    if jobs < 1:
        raise ZSBenchError(f"--jobs must be at least 1, got {jobs}")
    if name == "serial":
        if jobs > 1:
            raise ZSBenchError(f"--jobs {jobs} needs --executor processes or ray; serial runs one at a time")
        return SerialExecutor(on_event, on_progress)
    if name == "processes":
        return ProcessExecutor(jobs)
    if name == "ray":
        return RayExecutor(jobs if jobs > 1 else None, address)
    raise ZSBenchError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")


# --- the driver of a list of specs -----------------------------------------------------------------------

@dataclass
class GridReport:
    results: list[RunOutcome]
    wall_s: float

    @property
    def failures(self) -> list[RunOutcome]:
        return [r for r in self.results if r.status == "failed"]

    def with_records(self) -> list[RunOutcome]:
        """The outcomes, each run that has a record (done or skipped) with that record loaded."""
        for o in self.results:
            if o.record is None and o.path is not None and o.status in ("done", "skipped"):
                o.record = ResultStore(o.path.parent).load(o.path)
        return self.results

    def raise_for_failures(self) -> None:
        failed = self.failures
        if failed:
            first = failed[0]
            raise ZSBenchError(
                f"{len(failed)} of {len(self.results)} run{'s' if len(self.results) != 1 else ''} failed and wrote "
                f"no record (the others are kept; rerun to retry); first: {first.method} on {first.dataset} seed "
                f"{first.seed}: {first.reason}"
            )


def execute(specs: Sequence[RunSpec], results: str | Path, executor: Executor, force: bool = False,
            grid: dict[str, Any] | None = None,
            on_result: Callable[[RunOutcome], None] | None = None,
            on_event: Callable[[str], None] | None = None) -> GridReport:
    """Run every spec on ``executor`` (entered here); outcomes come back in the specs' order whatever order
    they finished in. ``grid`` (the resolved grid) is kept in each record as provenance."""
    store = ResultStore(results)
    store.ensure_folder()  # a read-only or misplaced results folder fails before any run
    store.remove_stale_temps()
    t0 = time.perf_counter()
    final: dict[int, RunOutcome] = {}
    todo = list(specs)
    with executor:
        while todo:
            for spec in todo:
                executor.submit(Job(spec, str(results), force, grid))
            busy = []
            while executor.pending:
                job, result = executor.next_finished()
                if result.status == "busy":
                    busy.append(job.spec)
                    continue
                final[job.spec.index] = result
                if on_result:
                    on_result(result)
            if busy:
                if on_event:
                    on_event(f"waiting for {len(busy)} run(s) that another grid holds")
                time.sleep(BUSY_POLL_S)
            todo = sorted(busy, key=lambda s: s.index)
            force = False  # a held run is being forced by the other grid: take its record once it is done
    return GridReport([final[i] for i in sorted(final)], time.perf_counter() - t0)


def iter_finished(executor: Executor) -> Iterator[tuple[Job, RunOutcome]]:
    """The executor's outcomes until nothing is pending (submitting more on the way is allowed)."""
    while executor.pending:
        yield executor.next_finished()
