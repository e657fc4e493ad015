"""Seconds per optimisation step of a registered method at a training budget on a dataset, and the steps of one
whole fit: the time of a fit too long to run (``zsbench perf steps``). The clock starts after the first step
(set-up, standardisation and the first step's allocations are left out) and stops after ``steps`` more; the fit
is then abandoned. The method counts its own steps through the progress protocol (``Method.set_total_steps``)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from benchmark.core.data import DatasetRequest


class _Enough(Exception):
    pass


@dataclass
class StepRate:
    method: str
    budget: str
    steps_timed: int
    seconds_per_step: float
    steps_per_fit: int

    @property
    def fit_hours(self) -> float:
        return self.seconds_per_step * self.steps_per_fit / 3600

    def line(self) -> str:
        return (f"{self.method} at --budget {self.budget}: {self.seconds_per_step:.3f} s/step over {self.steps_timed} "
                f"steps; {self.steps_per_fit:,} steps a fit -> about {self.fit_hours:.2f} h a fit")


def step_rate(method: str, request: DatasetRequest, budget: str = "cpu", steps: int = 5, threads: int = 1,
              seed: int = 0) -> StepRate:
    """Time ``steps`` optimisation steps of ``method``'s first fit on ``request`` (its first modality group)."""
    from benchmark.contract import ZSBenchError
    from benchmark.core.env import thread_limit
    from benchmark.core.protocol import build_train_view
    from benchmark.datasets.requests import load_request
    from benchmark.registry import build_method

    if steps < 1:
        raise ZSBenchError(f"--steps must be at least 1, got {steps}")
    ds = load_request(request)
    name, fitted = build_method(method, None, budget)
    groups = ds.modality_groups(type(fitted).max_modalities)
    part = ds if groups[0] == ds.modalities else ds.restrict(groups[0])
    marks: list[tuple[float, int, int | None]] = []

    def hook(done: int, total: int | None) -> None:
        marks.append((time.perf_counter(), done, total))
        if len(marks) > steps + 1:
            raise _Enough

    fitted.progress_hook_ = hook
    with thread_limit(threads):
        try:
            fitted.fit(build_train_view(part), seed)
        except _Enough:
            pass
    timed = [m for m in marks if m[1] > 0]
    if len(timed) < 2 or timed[0][2] is None:
        raise ZSBenchError(f"{name} reported fewer than two optimisation steps (or no total); nothing to time")
    (t0, d0, total), (t1, d1, _) = timed[0], timed[-1]
    return StepRate(name, budget, d1 - d0, (t1 - t0) / (d1 - d0), int(total))
