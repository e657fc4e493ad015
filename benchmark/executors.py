"""Runs a grid's tasks: in this process, in N local worker processes, or on a Ray cluster.

Every executor runs the same task function (:func:`run_task`): the worker loads the task's dataset (kept
for the next task of the same dataset) and calls :func:`benchmark.runner.run_one`, which writes the record
through the atomic store. Nothing is written anywhere else, so killing a grid at any moment loses at
most the runs in flight, and rerunning the command skips the finished records and runs the rest.

A run whose configuration another grid holds (the store's claim lock) is retried until that grid
finishes it (then it is skipped) or dies (then this grid runs it). A run that fails (a method that
raises, NaN embeddings, a full disk) writes nothing; the others go on, and the grid ends with one error
line naming the failures.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.contract import ZSBenchError
from benchmark.data import DatasetRequest
from benchmark.gridconfig import Grid, GridTask
from benchmark.store import ResultStore

EXECUTORS = ("serial", "processes", "ray")
#: Seconds between retries of runs another grid holds.
BUSY_POLL_S = 1.0
#: A temporary record file older than this whose writer no longer holds its lock is a killed writer's.
STALE_TEMP_AGE_S = 60.0


@dataclass
class TaskResult:
    """What a worker sends back: small, so results travel cheaply between processes."""

    index: int
    method: str
    dataset: str
    seed: int
    status: str  # done, skipped, busy, unsupported, failed (error says why)
    path: Path | None
    error: str | None = None
    wall_s: float = 0.0
    record: dict[str, Any] | None = None  # the driver loads it for display; never sent by workers


# --- the worker side -------------------------------------------------------------------------------------

_DATASETS: OrderedDict[DatasetRequest, Any] = OrderedDict()
_DATASETS_KEPT = 2  # tasks come dataset-major, so a worker rarely needs an older one again


def _dataset(request: DatasetRequest):
    if request not in _DATASETS:
        _DATASETS[request] = request.load()
        while len(_DATASETS) > _DATASETS_KEPT:
            _DATASETS.popitem(last=False)
    _DATASETS.move_to_end(request)
    return _DATASETS[request]


def one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    message = text[0] if text else ""
    return message if isinstance(err, ZSBenchError) else f"{type(err).__name__}: {message}"


@contextlib.contextmanager
def thread_limit(threads: int | None) -> Iterator[None]:
    """Run with ``threads`` torch and BLAS threads (None: as the process is set up).

    Floating-point sums split over threads can differ in the last bits with the thread count, so runs
    that must match bit for bit across executors (serial uses every core, each of N workers its share,
    a Ray task one) are given the same count.
    """
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


def run_task(task: GridTask, results: str, force: bool, device: str, grid: dict[str, Any] | None,
             on_event: Callable[[str], None] | None = None, threads: int | None = None,
             map_blocks: Callable | None = None) -> TaskResult:
    """Run one task in this process; any failure becomes a ``failed`` result (no record is written)."""
    from benchmark.runner import run_one

    t0 = time.perf_counter()
    try:
        ds = _dataset(task.dataset)
        with thread_limit(threads):
            outcome = run_one(task.method, ds, task.seed, ResultStore(results), task.params or None, force, device,
                              on_event, grid=grid, map_blocks=map_blocks)
    except Exception as err:  # noqa: BLE001 - a failed run must not stop the rest of the grid
        return TaskResult(task.index, task.method, task.dataset.name, task.seed, "failed", None, one_line(err),
                          time.perf_counter() - t0)
    if outcome.status == "unsupported":  # no record: the method cannot run this dataset, and says why
        return TaskResult(task.index, outcome.method, outcome.dataset, outcome.seed, outcome.status, None,
                          outcome.extra.get("reason"), time.perf_counter() - t0)
    return TaskResult(task.index, outcome.method, outcome.dataset, outcome.seed, outcome.status, outcome.path,
                      wall_s=time.perf_counter() - t0)


def _init_worker(threads: int, driver_pid: int) -> None:
    """Give each local worker its share of the cores (N workers x all cores would oversubscribe them), and
    end it when the driver dies (killed, SIGKILL included): orphans would go on computing for nobody.
    Ending mid-run loses only that run in flight; its temporary file is never read as a record."""
    import threading

    import torch

    torch.set_num_threads(threads)

    def watch_driver() -> None:
        while os.getppid() == driver_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch_driver, daemon=True, name="zsbench-driver-watch").start()


def _lost(task: GridTask, err: BaseException) -> TaskResult:
    return TaskResult(task.index, task.method, task.dataset.name, task.seed, "failed", None,
                      f"worker lost: {one_line(err)}")


# --- the executors ---------------------------------------------------------------------------------------

def _serial(threads: int | None) -> Callable[..., Iterator[TaskResult]]:
    def execute(tasks, results, force, device, grid, on_event) -> Iterator[TaskResult]:
        for task in tasks:
            yield run_task(task, results, force, device, grid, on_event, threads)

    return execute


def _processes(jobs: int, threads: int | None) -> Callable[..., Iterator[TaskResult]]:
    def execute(tasks, results, force, device, grid, on_event) -> Iterator[TaskResult]:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        share = max(1, (os.cpu_count() or 1) // jobs)
        # spawn: a fork of a process that already started torch threads can deadlock.
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_init_worker, initargs=(threads or share, os.getpid())) as pool:
            futures = {pool.submit(run_task, task, results, force, device, grid, None, threads): task
                       for task in tasks}
            for future in as_completed(futures):
                try:
                    yield future.result()
                except Exception as err:  # noqa: BLE001 - a worker died (killed, out of memory)
                    yield _lost(futures[future], err)

    return execute


def _ray(jobs: int | None, address: str | None, threads: int | None) -> Callable[..., Iterator[TaskResult]]:
    def execute(tasks, results, force, device, grid, on_event) -> Iterator[TaskResult]:
        with ray_session(address, jobs) as ray:
            remote_task = ray.remote(num_cpus=threads or 1)(run_task)
            refs = {remote_task.remote(task, results, force, device, grid, None, threads, map_blocks_on_ray): task
                    for task in tasks}
            pending = list(refs)
            while pending:
                finished, pending = ray.wait(pending, num_returns=1)
                try:
                    yield ray.get(finished[0])
                except Exception as err:  # noqa: BLE001 - a worker died (killed, out of memory)
                    yield _lost(refs[finished[0]], err)

    return execute


def _score_block(score_block, Zq, yq, Zg, yg):
    return score_block(Zq, yq, Zg, yg)


def map_blocks_on_ray(score_block, Zq, yq, Zg, yg, rows: int) -> list:
    """Spread an evaluation's query blocks over Ray workers (see :func:`benchmark.protocol.evaluate`).

    The gallery and the scoring function go to the object store once; each worker holds one block of
    scores at a time, so the memory bound per worker is the serial one. A single block is scored here.
    """
    from benchmark.protocol import map_blocks_here

    starts = range(0, Zq.shape[0], rows)
    if len(starts) < 2:
        return map_blocks_here(score_block, Zq, yq, Zg, yg, rows)
    import ray

    remote = ray.remote(num_cpus=1)(_score_block)
    fn_ref, gallery_ref, labels_ref = ray.put(score_block), ray.put(Zg), ray.put(yg)
    return ray.get([remote.remote(fn_ref, Zq[s:s + rows], yq[s:s + rows], gallery_ref, labels_ref) for s in starts])


@contextlib.contextmanager
def ray_session(address: str | None, num_cpus: int | None = None):
    """Ray, connected to ``address`` or to a local instance started here (and stopped at the end)."""
    try:
        import ray
    except ImportError:
        raise ZSBenchError("--executor ray needs Ray: pip install 'zsbench[ray]'") from None
    if ray.is_initialized():
        yield ray
        return
    import logging

    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR,
                               "configure_logging": True}
    if address is None:
        # Local workers must import this tree's code (it may not be the installed one).
        root = str(Path(__file__).resolve().parents[1])
        paths = [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        options["runtime_env"] = {"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}}
        if num_cpus:
            options["num_cpus"] = num_cpus
    try:
        ray.init(address=address, **options)
    except Exception as err:  # noqa: BLE001 - Ray raises many kinds (ConnectionError, RuntimeError, ...)
        raise ZSBenchError(f"cannot start or reach Ray{f' at {address}' if address else ''}: {one_line(err)}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def make_executor(name: str, jobs: int = 1, address: str | None = None,
                  threads: int | None = None) -> Callable[..., Iterator[TaskResult]]:
    if jobs < 1:
        raise ZSBenchError(f"--jobs must be at least 1, got {jobs}")
    if threads is not None and threads < 1:
        raise ZSBenchError(f"--threads must be at least 1, got {threads}")
    if name == "serial":
        if jobs > 1:
            raise ZSBenchError(f"--jobs {jobs} needs --executor processes or ray; serial runs one at a time")
        return _serial(threads)
    if name == "processes":
        return _processes(jobs, threads)
    if name == "ray":
        return _ray(jobs if jobs > 1 else None, address, threads)
    raise ZSBenchError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")


# --- the driver ------------------------------------------------------------------------------------------

@dataclass
class GridReport:
    results: list[TaskResult]
    wall_s: float

    @property
    def failures(self) -> list[TaskResult]:
        return [r for r in self.results if r.status == "failed"]

    def raise_for_failures(self) -> None:
        failed = self.failures
        if failed:
            first = failed[0]
            raise ZSBenchError(
                f"{len(failed)} of {len(self.results)} runs failed and wrote no record (the others are kept; "
                f"rerun to retry); first: {first.method} on {first.dataset} seed {first.seed}: {first.error}"
            )


def remove_stale_temps(root: str | Path, min_age_s: float = STALE_TEMP_AGE_S) -> list[Path]:
    """Delete temporary record files left by killed writers (never read as records in any case).

    A live writer holds an exclusive lock on its temporary file; a killed one's lock went with it.
    """
    removed = []
    root = Path(root)
    if not root.is_dir():
        return removed
    now = time.time()
    for tmp in root.rglob(".*.tmp"):
        try:
            if now - tmp.stat().st_mtime < min_age_s:
                continue
            with open(tmp, "rb") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                tmp.unlink()
                removed.append(tmp)
        except (BlockingIOError, FileNotFoundError):
            continue
        except OSError:
            continue  # a read-only folder: leave it, the store reports that when it writes
    return removed


def run_grid_with(grid: Grid, results: str | Path, executor: str = "serial", jobs: int = 1,
                  address: str | None = None, force: bool = False, threads: int | None = None,
                  on_result: Callable[[TaskResult], None] | None = None,
                  on_event: Callable[[str], None] | None = None) -> GridReport:
    """Run every task of ``grid``; results come back in the grid's order whatever order they finished in."""
    grid.check()
    execute = make_executor(executor, jobs, address, threads)
    store = ResultStore(results)
    store._writable_folder(store.root)  # a read-only or misplaced results folder fails before any run
    remove_stale_temps(store.root)
    resolved = grid.resolved()
    t0 = time.perf_counter()
    final: dict[int, TaskResult] = {}
    todo: Sequence[GridTask] = grid.tasks()
    while todo:
        by_index = {task.index: task for task in todo}
        busy = []
        for result in execute(todo, str(results), force, grid.device, resolved, on_event):
            if result.status == "busy":
                busy.append(by_index[result.index])
                continue
            final[result.index] = result
            if on_result:
                on_result(result)
        if busy and on_event:
            on_event(f"waiting for {len(busy)} run(s) that another grid holds")
        if busy:
            time.sleep(BUSY_POLL_S)
        todo = sorted(busy, key=lambda t: t.index)
        force = False  # a held run is being forced by the other grid: take its record once it is done
    return GridReport([final[i] for i in sorted(final)], time.perf_counter() - t0)

