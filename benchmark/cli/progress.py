"""Progress while a command works: bars on a terminal (rich), one flushed line per finished piece otherwise.

- :class:`RunProgress`: ``zsbench run``'s runs and the current run's optimisation steps;
- :class:`TuneProgress`: ``zsbench tune``'s methods and trials;
- :class:`DataProgress`: one bar per modality while a dataset is built or converted (on stderr).
"""

from __future__ import annotations

import sys

from rich.markup import escape

from benchmark.cli.output import _score, console, err_console


class RunProgress:
    """What ``zsbench run`` shows while it works: on a terminal, a bar over the runs and one over the current
    run's optimisation steps (k/N, time left); otherwise one line per finished run, flushed at once."""

    def __init__(self, total: int, executor: str, lines_to=sys.stdout):
        self.total, self.executor, self.done, self.lines_to = total, executor, 0, lines_to
        self.live = console.is_terminal
        self.outcomes: list = []

    def __enter__(self) -> RunProgress:
        if self.live:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                                     console=console, transient=True)
            self.progress.__enter__()
            self.runs = self.progress.add_task(f"runs ({self.executor})", total=self.total)
            self.step_task = self.progress.add_task("steps", total=None, visible=False)
        return self

    def __exit__(self, *exc) -> None:
        if self.live:
            self.progress.__exit__(*exc)

    def event(self, message: str) -> None:
        if self.live:
            self.progress.update(self.step_task, description=escape(message[:70]), completed=0, total=None,
                                 visible=True)

    def steps(self, done: int, total: int | None) -> None:
        if self.live:
            self.progress.update(self.step_task, completed=done, total=total)

    def finished(self, outcome) -> None:
        self.done += 1
        self.outcomes.append(outcome)
        if self.live:
            self.progress.advance(self.runs)
            self.progress.update(self.step_task, visible=False)
            return
        reason = f" ({outcome.reason})" if outcome.reason else ""
        print(f"[{self.done}/{self.total}] {outcome.dataset} {outcome.method} seed {outcome.seed}: {outcome.status}"
              f"{reason} in {outcome.wall_s:.1f} s", file=self.lines_to, flush=True)


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
    is printed on stderr once the bars before it are gone."""

    def __init__(self):
        self.progress = None
        self._update = None

    def __enter__(self) -> DataProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, modality: str, done: int, total: int) -> None:
        if self.progress is None:
            self.progress = _data_progress()
            self.progress.start()
            self._update = _progress_callback(self.progress, {})
        self._update(modality, done, total)

    def message(self, text: str) -> None:
        self.close()
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
