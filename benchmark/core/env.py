"""The process environment of a run: threads, device, memory and the machine. Imports nothing of the harness
but the contract's error type, so every layer may use it.

Each setting has one home here:
- ``DEFAULT_THREADS``: torch/BLAS threads per run unless a grid asks for more (the same on every executor);
  :func:`thread_limit` applies a run's count around that run and nowhere else;
- :func:`resolve_device`: ``auto``/``cuda``/``cpu`` -> the device a grid runs on, checked once when the grid
  is checked; a method receives the result through :func:`benchmark.contract.fit_context`;
- :func:`init_worker`: what every local worker process of every executor does first (the orphan watchdog);
- :class:`PeakRSS`, :func:`this_machine`, :func:`library_versions`, :func:`git_commit`: what a record says
  about where and with what it ran.
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmark.contract import ZSBenchError

#: torch/BLAS threads per run unless a grid asks for more (the same on every executor).
DEFAULT_THREADS = 1


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


def device_class(device: str | None) -> str:
    """``cpu`` or ``cuda``: the part of a device that changes a run's numbers (GPU kernels sum in another order
    than CPU ones; which GPU of several does not matter)."""
    return "cuda" if str(device or "cpu").startswith("cuda") else "cpu"


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


def init_worker(driver_pid: int) -> None:
    """The first thing every local worker process does, for ``run`` and ``tune`` alike: end when the driver
    dies (killed, SIGKILL included), since orphans would go on computing for nobody. Ending mid-run loses
    only that run in flight; its temporary file is never read as a record. (Each run sets its own thread
    count with :func:`thread_limit`.)"""

    def watch_driver() -> None:
        while os.getppid() == driver_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch_driver, daemon=True, name="zsbench-driver-watch").start()


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


def this_machine() -> dict[str, Any]:
    """Where a run ran, as its record says (estimates use the records of this machine only)."""
    return {"host": platform.node(), "cpus": os.cpu_count(), "processor": platform.machine()}


def library_versions() -> dict[str, str]:
    import numpy as np
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
