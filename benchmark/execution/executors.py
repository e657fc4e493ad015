"""Runs a grid's tasks: in this process, in N local worker processes, or on a Ray cluster.

Every executor runs the same task function (:func:`run_task`): the worker loads the task's dataset (kept
for the next task of the same dataset) and calls :func:`benchmark.execution.runner.run_one`, which writes the record
through the atomic store. Nothing is written anywhere else, so killing a grid at any moment loses at
most the runs in flight, and rerunning the command skips the finished records and runs the rest.

A run whose configuration another grid holds (the store's claim lock) is retried until that grid
finishes it (then it is skipped) or dies (then this grid runs it). A run that fails (a method that
raises, NaN embeddings, a full disk) writes nothing; the others go on, and the grid ends with one error
line naming the failures.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.contract import ZSBenchError
from benchmark.core.data import DatasetRequest
from benchmark.core.store import ResultStore
from benchmark.execution.grid import Grid, GridTask
from benchmark.execution.runner import RunOutcome

EXECUTORS = ("serial", "processes", "ray")
#: Seconds between retries of runs another grid holds.
BUSY_POLL_S = 1.0


# --- the worker side -------------------------------------------------------------------------------------

_DATASETS: OrderedDict[tuple, Any] = OrderedDict()
_DATASETS_KEPT = 2  # tasks come dataset-major, so a worker rarely needs an older one again


def _data_version(request: DatasetRequest) -> tuple:
    """What else decides what ``request`` loads: where data and caches live, and when the prepared folder's
    manifest was last written (a re-prepared dataset is loaded again, not served from memory)."""
    from benchmark.datasets import data_root

    folder = Path(request.name) if Path(request.name).is_dir() else data_root() / request.name
    manifest = folder / "manifest.json"
    stamp = manifest.stat().st_mtime_ns if manifest.is_file() else None
    return (str(data_root().resolve()), os.environ.get("ZSBENCH_CACHE"), stamp)


def _dataset(request: DatasetRequest):
    key = (request, _data_version(request))
    if key not in _DATASETS:
        _DATASETS[key] = request.load()
        while len(_DATASETS) > _DATASETS_KEPT:
            _DATASETS.popitem(last=False)
    _DATASETS.move_to_end(key)
    return _DATASETS[key]


def one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    message = text[0] if text else ""
    return message if isinstance(err, ZSBenchError) else f"{type(err).__name__}: {message}"


def run_task(task: GridTask, results: str, force: bool, device: str, threads: int, grid: dict[str, Any] | None,
             stage: str = "test", on_event: Callable[[str], None] | None = None,
             on_progress: Callable[[int, int | None], None] | None = None,
             map_blocks: Callable | None = None) -> RunOutcome:
    """Run one task in this process; any failure becomes a ``failed`` outcome (no record is written)."""
    from benchmark.execution.runner import run_one

    t0 = time.perf_counter()
    try:
        ds = _dataset(task.dataset)
        if stage == "validation":
            ds = ds.selection_view()
        outcome = run_one(task.method, ds, task.seed, ResultStore(results), task.params or None, force, device,
                          threads, on_event, on_progress, grid=grid, map_blocks=map_blocks, selection=task.selection)
    except Exception as err:  # noqa: BLE001 - a failed run must not stop the rest of the grid
        return RunOutcome(task.method, task.dataset.name, task.seed, "failed", reason=one_line(err),
                          wall_s=time.perf_counter() - t0, index=task.index)
    outcome.index, outcome.record = task.index, None  # the driver loads the record it wants to show
    return outcome


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


def _lost(task: GridTask, err: BaseException) -> RunOutcome:
    return RunOutcome(task.method, task.dataset.name, task.seed, "failed", reason=f"worker lost: {one_line(err)}",
                      index=task.index)


# --- the executors ---------------------------------------------------------------------------------------

def _serial() -> Callable[..., Iterator[RunOutcome]]:
    def execute(tasks, results, force, device, threads, grid, stage, on_event, on_progress) -> Iterator[RunOutcome]:
        for task in tasks:
            yield run_task(task, results, force, device, threads, grid, stage, on_event, on_progress)

    return execute


def _processes(jobs: int) -> Callable[..., Iterator[RunOutcome]]:
    def execute(tasks, results, force, device, threads, grid, stage, on_event, on_progress) -> Iterator[RunOutcome]:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawn: a fork of a process that already started torch threads can deadlock.
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(threads, os.getpid()))
        try:
            futures = {pool.submit(run_task, task, results, force, device, threads, grid, stage): task
                       for task in tasks}
            for future in as_completed(futures):
                try:
                    yield future.result()
                except Exception as err:  # noqa: BLE001 - a worker died (killed, out of memory)
                    yield _lost(futures[future], err)
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM, the grid closed early): stop the workers now rather than let them
            # finish runs nobody waits for; their claim locks go with them and the driver sweeps the files.
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)

    return execute


def _ray(jobs: int | None, address: str | None) -> Callable[..., Iterator[RunOutcome]]:
    def execute(tasks, results, force, device, threads, grid, stage, on_event, on_progress) -> Iterator[RunOutcome]:
        with ray_session(address, jobs) as ray:
            remote_task = ray.remote(num_cpus=threads)(run_task)
            refs = {remote_task.remote(task, results, force, device, threads, grid, stage, None, None,
                                       map_blocks_on_ray): task
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


def make_executor(name: str, jobs: int = 1, address: str | None = None) -> Callable[..., Iterator[RunOutcome]]:
    if jobs < 1:
        raise ZSBenchError(f"--jobs must be at least 1, got {jobs}")
    if name == "serial":
        if jobs > 1:
            raise ZSBenchError(f"--jobs {jobs} needs --executor processes or ray; serial runs one at a time")
        return _serial()
    if name == "processes":
        return _processes(jobs)
    if name == "ray":
        return _ray(jobs if jobs > 1 else None, address)
    raise ZSBenchError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")


# --- the driver ------------------------------------------------------------------------------------------

@dataclass
class GridReport:
    results: list[RunOutcome]
    wall_s: float

    @property
    def failures(self) -> list[RunOutcome]:
        return [r for r in self.results if r.status == "failed"]

    def raise_for_failures(self) -> None:
        failed = self.failures
        if failed:
            first = failed[0]
            raise ZSBenchError(
                f"{len(failed)} of {len(self.results)} run{'s' if len(self.results) != 1 else ''} failed and wrote "
                f"no record (the others are kept; rerun to retry); first: {first.method} on {first.dataset} seed "
                f"{first.seed}: {first.reason}"
            )


def run_grid_with(grid: Grid, results: str | Path, executor: str = "serial", jobs: int = 1,
                  address: str | None = None, force: bool = False,
                  on_result: Callable[[RunOutcome], None] | None = None,
                  on_event: Callable[[str], None] | None = None,
                  on_progress: Callable[[int, int | None], None] | None = None) -> GridReport:
    """Run every task of ``grid``; results come back in the grid's order whatever order they finished in."""
    grid.check()
    execute = make_executor(executor, jobs, address)
    store = ResultStore(results)
    store.ensure_folder()  # a read-only or misplaced results folder fails before any run
    store.remove_stale_temps()
    resolved = grid.resolved()
    t0 = time.perf_counter()
    final: dict[int, RunOutcome] = {}
    todo: Sequence[GridTask] = grid.tasks()
    while todo:
        by_index = {task.index: task for task in todo}
        busy = []
        outcomes = execute(todo, str(results), force, grid.device, grid.threads, resolved, grid.stage, on_event,
                           on_progress)
        try:
            for result in outcomes:
                if result.status == "busy":
                    busy.append(by_index[result.index])
                    continue
                final[result.index] = result
                if on_result:
                    on_result(result)
        finally:
            outcomes.close()  # an interrupted grid stops its executor's workers here
        if busy and on_event:
            on_event(f"waiting for {len(busy)} run(s) that another grid holds")
        if busy:
            time.sleep(BUSY_POLL_S)
        todo = sorted(busy, key=lambda t: t.index)
        force = False  # a held run is being forced by the other grid: take its record once it is done
    return GridReport([final[i] for i in sorted(final)], time.perf_counter() - t0)

