"""Progress while a command works: bars on a terminal (rich), one flushed line per finished piece otherwise.

- :class:`RunProgress`: ``zsbench run``'s runs and the current run's optimisation steps;
- :class:`TuneProgress`: ``zsbench tune``'s methods and trials;
- :class:`DataProgress`: one bar per modality while a dataset is built or converted (on stderr).
"""

from __future__ import annotations

import sys
import time

from rich.markup import escape
from rich.progress import ProgressColumn
from rich.text import Text

from benchmark.cli.output import _score, console, err_console
from benchmark.execution.progress import HEARTBEAT_S, GridClock, Heartbeat, rate_left, timing_text


class TimingColumn(ProgressColumn):
    """``elapsed 1:08, about 0:08 left`` from the task's ``elapsed`` and ``left`` fields (callables)."""

    def render(self, task) -> Text:
        left, elapsed = task.fields.get("left"), task.fields.get("elapsed")
        return Text(timing_text(elapsed() if elapsed else (task.elapsed or 0.0), left() if left else None))


class RunProgress:
    """What ``zsbench run`` shows while it works. On a terminal: a bar over the runs (time left from the grid's
    estimate) and one over the current run's optimisation steps, which starts at zero with its own clock for
    every run. Piped: one line per finished run, and a heartbeat line at least every 30 s in between."""

    def __init__(self, total: int, executor: str, lines_to=sys.stdout, estimate=None, jobs: int = 1,
                 clock=time.monotonic, live: bool | None = None, out=None, heartbeat_s: float = HEARTBEAT_S):
        self.total, self.executor, self.lines_to = total, executor, lines_to
        self.out = out or console
        self.live = self.out.is_terminal if live is None else live
        self.clock = GridClock(total, getattr(estimate, "per_run", None), jobs, clock)
        self.heartbeat_s = heartbeat_s
        self.outcomes: list = []

    @property
    def done(self) -> int:
        return self.clock.done

    def __enter__(self) -> RunProgress:
        if not self.live:
            self._heart = Heartbeat(self.beat, self.heartbeat_s).__enter__()
            return self
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimingColumn(), console=self.out, transient=True,
                                 get_time=self.clock.clock)
        self.progress.__enter__()
        self.runs = self.progress.add_task(f"runs ({self.executor})", total=self.total, left=self.clock.left,
                                           elapsed=self.clock.elapsed)
        self.step_task = self.progress.add_task("steps", total=None, visible=False, left=self.clock.run_left,
                                                elapsed=self.clock.run_elapsed)
        return self

    def __exit__(self, *exc) -> None:
        if self.live:
            self.progress.__exit__(*exc)
        else:
            self._heart.__exit__(*exc)

    def beat(self) -> None:
        """A heartbeat line (piped output): where the grid and the current run stand."""
        print(self.clock.status_line(), file=self.lines_to, flush=True)

    def event(self, message: str) -> None:
        """A run (or one fit of it) starts: its bar and clock start at zero."""
        self.clock.started(message)
        if self.live:
            self.progress.reset(self.step_task, total=None, completed=0, description=escape(message[:70]),
                                visible=True)

    def steps(self, done: int, total: int | None) -> None:
        self.clock.steps(done, total)
        if self.live:
            self.progress.update(self.step_task, completed=done, total=total)

    def finished(self, outcome) -> None:
        self.clock.finished(outcome.index, outcome.wall_s, outcome.status)
        self.outcomes.append(outcome)
        if self.live:
            self.progress.advance(self.runs)
            self.progress.update(self.step_task, visible=False)
            return
        reason = f" ({outcome.reason})" if outcome.reason else ""
        print(f"[{self.done}/{self.total}] {outcome.dataset} {outcome.method} seed {outcome.seed}"
              f"{'' if outcome.scenario == 'zero-shot' else f' ({outcome.scenario})'}: {outcome.status}"
              f"{reason} in {outcome.wall_s:.1f} s; {timing_text(self.clock.elapsed(), self.clock.left())}",
              file=self.lines_to, flush=True)


class TuneProgress:
    """Trial k/N of the method being tuned, the best validation score so far and the time left (terminal);
    one line per finished method otherwise."""

    def __init__(self, n_methods: int, budget: int, executor: str):
        self.n_methods, self.budget, self.executor = n_methods, budget, executor
        self.live = console.is_terminal

    def __enter__(self) -> TuneProgress:
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("left"), TimeRemainingColumn(), console=console, transient=True)
            self.progress.__enter__()
            self.methods = self.progress.add_task(f"methods ({self.executor})", total=self.n_methods)
            self.trials = self.progress.add_task("trials", total=self.budget)
        return self

    def __exit__(self, *exc) -> None:
        if self.live:
            self.progress.__exit__(*exc)

    def trial(self, method: str, done: int, budget: int, best, spent: float, cap: float) -> None:
        if self.live:
            self.progress.update(self.trials, completed=done, total=budget,
                                 description=f"{method}: trial {done}/{budget}, best {_score(best)}, "
                                             f"{spent:.0f} of {cap:.0f} s")
        else:
            print(f"{method}: trial {done}/{budget}, best so far {_score(best)}, {spent:.0f} s of {cap:.0f} s",
                  flush=True)

    def done(self, result) -> None:
        if self.live:
            self.progress.advance(self.methods)
        print(f"{result.method}: {result.trials} trials ({result.failed} failed), best validation mAP@all "
              f"{_score(result.best_value)} (defaults {_score(result.default_value)}), {result.wall_s:.0f} s",
              flush=True)


def _progress_callback(progress, tasks: dict):
    def update(modality: str, done: int, total: int) -> None:
        if modality not in tasks:
            tasks[modality] = progress.add_task(modality, total=total)
        progress.update(tasks[modality], completed=done, total=total)
    return update


def _data_progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err_console, transient=True)


class DataProgress:
    """The bars of a data build (a context manager): shown from the first progress report (``update``, an
    ``on_progress`` callback) until a message (``message``, an ``on_event`` callback) or the end; a message
    is printed on stderr once the bars before it are gone. Piped (stderr not a terminal): no bars, but a
    heartbeat line at least every 30 s (each modality's k/N, elapsed and time left)."""

    def __init__(self, clock=time.monotonic, live: bool | None = None, heartbeat_s: float = HEARTBEAT_S):
        self.progress = None
        self._update = None
        self.clock, self.t0 = clock, clock()
        self.live = err_console.is_terminal if live is None else live
        self.counts: dict[str, tuple[int, int]] = {}
        self._heart = None if self.live else Heartbeat(self.beat, heartbeat_s)

    def __enter__(self) -> DataProgress:
        if self._heart is not None:
            self._heart.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._heart is not None:
            self._heart.__exit__(*exc)
        self.close()

    def update(self, modality: str, done: int, total: int) -> None:
        if not self.counts:
            self.t0 = self.clock()
        self.counts[modality] = (done, total)
        if not self.live:
            return
        if self.progress is None:
            self.progress = _data_progress()
            self.progress.start()
            self._update = _progress_callback(self.progress, {})
        self._update(modality, done, total)

    def status_line(self) -> str | None:
        if not self.counts:
            return None
        done = sum(d for d, _ in self.counts.values())
        total = sum(t for _, t in self.counts.values())
        parts = ", ".join(f"{m} {d}/{t}" for m, (d, t) in self.counts.items())
        elapsed = self.clock() - self.t0
        return f"building: {parts}; {timing_text(elapsed, rate_left(done, total, elapsed))}"

    def beat(self) -> None:
        line = self.status_line()
        if line:
            err_console.print(line, highlight=False)

    def message(self, text: str) -> None:
        self.close()
        self.counts.clear()
        err_console.print(text)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def _build_embedded(dataset_names, synthetic: bool, semantics: str | None, rebuild: bool = False) -> None:
    """Build an embedded dataset on first use with a progress bar (before the run's own bar starts)."""
    from benchmark.datasets.catalog import build_embedded

    with DataProgress() as bars:
        build_embedded(dataset_names, synthetic, semantics, rebuild, on_progress=bars.update, on_event=bars.message)
