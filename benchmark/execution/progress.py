"""The clocks behind a grid's progress display: the whole grid's, and the current run's.

:class:`GridClock` follows a grid through the callbacks of :func:`benchmark.execution.plan.run_plan`: a run
starts (``started``: its clock is set to zero), its optimisation steps advance (``steps``), it finishes
(``finished``). It answers what a display shows: for the current run, its steps, its own elapsed time and
the time left at its step rate; for the grid, the runs done, the elapsed time and the time left from the
estimate of the runs still to do (``benchmark.execution.estimates``), scaled by how the finished runs
compared with their estimates. The clock is injected (``clock``), so a test drives it with a fake one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

#: Piped output prints a heartbeat line at least this often while a grid, a build or a fit works.
HEARTBEAT_S = 30.0


def clock_text(seconds: float | None) -> str:
    """``0:08``, ``1:08``, ``1:02:03``: minutes and seconds, hours when there are any."""
    if seconds is None:
        return "?"
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def timing_text(elapsed: float, left: float | None) -> str:
    """The one layout of time on every bar and heartbeat: ``elapsed 1:08, about 0:08 left``."""
    text = f"elapsed {clock_text(elapsed)}"
    return text if left is None else f"{text}, about {clock_text(left)} left"


def rate_left(done: float, total: float | None, elapsed: float) -> float | None:
    """Time left at the rate so far; None before the first step or without a total."""
    if not total or done <= 0:
        return None
    return elapsed * (total - done) / done


@dataclass
class RunState:
    description: str
    started: float
    done: int = 0
    total: int | None = None


class GridClock:
    """The state of a grid in progress (see the module docstring)."""

    def __init__(self, total: int, estimates: Mapping[int, float] | None = None, jobs: int = 1,
                 clock: Callable[[], float] = time.monotonic):
        self.total, self.jobs, self.clock = total, max(1, jobs), clock
        self.estimates = dict(estimates or {})
        self.t0 = self._mark = clock()  # _mark: when the last run finished (the grid's start before any)
        self.done = 0
        self.run: RunState | None = None
        self._spent = self._expected = 0.0  # finished runs: seconds taken, seconds estimated

    def started(self, description: str) -> None:
        """A run (or one fit of it) starts: its clock and steps start at zero."""
        self.run = RunState(description, self.clock())

    def steps(self, done: int, total: int | None) -> None:
        if self.run is not None:
            self.run.done, self.run.total = done, total

    def finished(self, index: int, wall_s: float, status: str) -> None:
        self.done += 1
        self.run = None
        self._mark = self.clock()
        expected = self.estimates.pop(index, None)
        if expected is not None and status == "done":
            self._spent += wall_s
            self._expected += expected

    def run_elapsed(self) -> float:
        return 0.0 if self.run is None else self.clock() - self.run.started

    def run_left(self) -> float | None:
        return None if self.run is None else rate_left(self.run.done, self.run.total, self.run_elapsed())

    def elapsed(self) -> float:
        return self.clock() - self.t0

    def left(self) -> float | None:
        """The grid's time left: the estimates of the runs not finished (corrected by the finished runs' ratio of
        taken to estimated time), less the time spent since the last run finished (the runs in flight have used
        it, whether this process or worker processes run them); None without an estimate."""
        if not self.estimates:
            return None if self.done < self.total else 0.0
        ratio = self._spent / self._expected if self._expected > 0 else 1.0
        return max(0.0, sum(self.estimates.values()) * ratio / self.jobs - (self.clock() - self._mark))

    def status_line(self) -> str:
        """A heartbeat line: the grid's k/N and times, and the current run's steps and times."""
        line = f"[{self.done}/{self.total} runs done, {timing_text(self.elapsed(), self.left())}]"
        if self.run is not None:
            steps = f" step {self.run.done}/{self.run.total}," if self.run.total else ""
            line += f" {self.run.description}:{steps} {timing_text(self.run_elapsed(), self.run_left())}"
        return line


class Heartbeat:
    """Calls ``beat()`` every ``interval`` seconds on a daemon thread until stopped (a context manager): piped
    output's sign of life while nothing finishes."""

    def __init__(self, beat: Callable[[], None], interval: float = HEARTBEAT_S):
        self.beat, self.interval = beat, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._loop, daemon=True, name="zsbench-heartbeat")
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
