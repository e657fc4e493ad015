"""Estimates before any record (the shipped cost model against docs/scale.md's measurements) and the
progress layer driven by a fake clock."""

from __future__ import annotations

import dataclasses
import io
import re
from pathlib import Path

import pytest

from benchmark.execution.grid import grid_from_cli
from benchmark.execution.plan import plan_grid

ROOT = Path(__file__).resolve().parents[1]


def _scale_md_section(title: str) -> str:
    text = (ROOT / "docs" / "scale.md").read_text()
    start = text.index(title)
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def _duration_s(text: str) -> float:
    """'2 h 34 min' -> 9240; '10:30' -> 630 (read from the document, not from the code under test)."""
    if m := re.fullmatch(r"(\d+) h (\d+) min", text):
        return int(m[1]) * 3600 + int(m[2]) * 60
    minutes, seconds = text.split(":")
    return int(minutes) * 60 + int(seconds)


def test_the_paper_grid_estimate_on_a_fresh_clone_is_within_a_factor_of_two_of_the_measured_time(tmp_path):
    from benchmark.execution.estimates import estimate_plan

    section = _scale_md_section("## The paper grid on the stand-ins")
    measured_wall = _duration_s(re.search(r"All 216 runs took (\d+ h\s+\d+ min)", section)[1].replace("\n", " "))
    assert measured_wall == 2 * 3600 + 34 * 60
    # The grid was measured before it covered the generalized and standard scenarios: its zero-shot runs.
    grid = grid_from_cli(str(ROOT / "configs" / "paper.toml"), None, None, True, None, 0.05, None, None,
                         scenario="zero-shot")
    # The grid was measured with CFSA at its earlier defaults: the length and width that set its cost then.
    then = {"hidden": 256, "epochs": 15, "epoch_steps": 25, "n_critic": 3, "regressor_steps": 2}
    grid.methods = [dataclasses.replace(m, params={**m.params, **then}) if m.spec.startswith("cfsa") else m
                    for m in grid.methods]
    plan = plan_grid(grid)
    estimate = estimate_plan(plan, tmp_path)  # an empty results folder: no record, the cost model only
    assert (estimate.total, estimate.modelled, estimate.measured, estimate.unknown) == (216, 216, 0, 0)
    # The measurement ran two runs at a time on its two cores (--jobs 2).
    assert measured_wall / 2 <= estimate.wall_s(jobs=2) <= measured_wall * 2
    assert estimate.low <= estimate.seconds <= estimate.high
    # Per dataset column of the per-run table (median run seconds, 3 seeds), the model's sum within 2x.
    rows = [line.split("|")[1:-1] for line in section.splitlines() if line.startswith("| ") and "method" not in line]
    columns = ["nus-wide", "xmedianet", "sketchy", "tu-berlin"]
    for j, dataset in enumerate(columns, start=1):
        measured = 3 * sum(float(row[j].split()[0]) for row in rows)
        modelled = sum(s for i, s in estimate.per_run.items() if plan.specs[i].dataset.name == dataset)
        assert measured / 2 <= modelled <= measured * 2, (dataset, measured, modelled)


def test_the_users_tu_berlin_estimate_is_within_a_factor_of_two_of_the_measured_time(tmp_path):
    from benchmark.execution.estimates import estimate_plan

    section = _scale_md_section("## `zsbench run --methods cfsa,dadn --dataset tu-berlin --synthetic`")
    idle_row = next(line for line in section.splitlines() if line.startswith("| main at"))
    measured = _duration_s(idle_row.split("|")[7].strip())
    assert measured == 630
    plan = plan_grid(grid_from_cli(None, "cfsa,dadn", "tu-berlin", True, None, None, None, None))
    estimate = estimate_plan(plan, tmp_path)
    assert estimate.modelled == 2 and measured / 2 <= estimate.wall_s() <= measured * 2


def test_the_estimate_line_gives_the_whole_grid_with_a_range_and_warns_over_an_hour():
    from benchmark.execution.estimates import GridEstimate, duration, estimate_lines

    assert [duration(s) for s in (45, 624, 9240)] == ["45 s", "10.4 min", "2 h 34 min"]
    long = GridEstimate(total=216, measured=0, seconds=4 * 3600, modelled=216, low=3 * 3600, high=6 * 3600)
    line, warn = estimate_lines(long, jobs=2)
    assert warn and line.startswith("estimated wall time 2 h 00 min (range 1 h 30 min to 3 h 00 min) for all 216 "
                                    "runs to do, 2 at a time; 216 from the shipped cost model")
    some = GridEstimate(total=3, measured=1, seconds=60, recorded=1, low=50, high=70)
    line, warn = estimate_lines(some)
    assert not warn and "for 1 of the 2 runs to do" in line and "1 without an estimate, not counted" in line
    assert estimate_lines(GridEstimate(total=2, measured=0, seconds=0, recorded=2))[0].startswith("nothing to run")


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_every_runs_clock_starts_at_zero_and_the_grid_time_left_comes_from_the_estimate():
    from benchmark.execution.progress import GridClock

    clock = FakeClock()
    grid = GridClock(3, {0: 100.0, 1: 100.0, 2: 100.0}, clock=clock)
    assert grid.left() == 300.0
    for seed in range(3):
        grid.started(f"wikipedia: fit cfsa seed {seed}")
        assert grid.run_elapsed() == 0.0 and grid.run.done == 0  # hand-checked: each run starts at 0
        grid.steps(0, 375)
        clock.now += 38.0
        grid.steps(195, 375)
        assert grid.run_elapsed() == 38.0
        assert grid.run_left() == pytest.approx(38.0 * 180 / 195)
        clock.now += 42.0
        grid.finished(seed, 80.0, "done")
    assert grid.elapsed() == 240.0 and grid.left() == 0.0
    # After one run that took 80 s of its estimated 100 s, the rest are expected to go as fast: 2 x 80 s.
    clock2 = FakeClock()
    grid2 = GridClock(3, {0: 100.0, 1: 100.0, 2: 100.0}, clock=clock2)
    grid2.finished(0, 80.0, "done")
    grid2.started("run 1")
    clock2.now += 10
    assert grid2.left() == pytest.approx(160.0 - 10.0)
    assert "[1/3 runs done, elapsed 0:10, about 2:30 left] run 1: elapsed 0:10" == grid2.status_line()


def test_the_run_bar_shows_each_seed_from_zero_in_one_layout():
    from rich.console import Console

    from benchmark.cli.progress import RunProgress
    from benchmark.execution.estimates import GridEstimate
    from benchmark.execution.runner import RunOutcome

    clock, buffer = FakeClock(), io.StringIO()
    out = Console(file=buffer, force_terminal=True, width=160)
    estimate = GridEstimate(3, 0, 300.0, modelled=3, per_run={0: 100.0, 1: 100.0, 2: 100.0})
    with RunProgress(3, "serial", estimate=estimate, clock=clock, live=True, out=out) as progress:
        for seed in range(3):
            progress.event(f"wikipedia: fit cfsa seed {seed}")
            task = progress.progress.tasks[progress.step_task]
            assert (task.completed, task.elapsed) == (0, 0.0)  # a fresh bar and clock for every seed
            clock.now += 30.0
            progress.steps(100, 200)
            assert progress.progress.tasks[progress.step_task].elapsed == 30.0
            progress.progress.refresh()
            progress.finished(RunOutcome("cfsa", "wikipedia", seed, "done", wall_s=60.0, index=seed))
    rendered = buffer.getvalue()
    assert "elapsed 0:30, about 0:30 left" in rendered  # 100 of 200 steps in 30 s
    assert "left 0:00" not in rendered


def test_piped_output_has_a_heartbeat_with_k_of_n_and_time_left():
    from benchmark.cli.progress import DataProgress, RunProgress

    clock, lines = FakeClock(), io.StringIO()
    with RunProgress(2, "serial", lines_to=lines, clock=clock, live=False, heartbeat_s=3600) as progress:
        progress.event("tu-berlin: fit dadn seed 0")
        progress.steps(100, 500)
        clock.now += 60
        progress.beat()  # what the heartbeat thread does every 30 s
    assert lines.getvalue().strip() == ("[0/2 runs done, elapsed 1:00] tu-berlin: fit dadn seed 0: step 100/500, "
                                        "elapsed 1:00, about 4:00 left")
    data = DataProgress(clock=clock, live=False, heartbeat_s=3600)
    data.update("sketch", 300, 1391)
    clock.now += 45
    # 45 s for 300 of 1391: 45 * 1091 / 300 = 163.7 s left
    assert data.status_line() == "building: sketch 300/1391; elapsed 0:45, about 2:44 left"


def test_the_heartbeat_thread_beats_while_nothing_finishes():
    import threading

    from benchmark.execution.progress import Heartbeat

    beats = threading.Event()
    with Heartbeat(beats.set, interval=0.01):
        assert beats.wait(5.0)


def test_the_grid_time_left_falls_while_worker_processes_run_and_nothing_finishes():
    """Under --jobs the driver sees no run start (the workers run them): time left still counts down."""
    from benchmark.execution.progress import GridClock

    now = [0.0]
    clock = GridClock(4, {0: 100.0, 1: 100.0, 2: 100.0, 3: 100.0}, jobs=2, clock=lambda: now[0])
    assert clock.left() == 200.0  # 400 s of runs, two at a time
    now[0] = 30.0
    assert clock.left() == 170.0
    clock.finished(0, 50.0, "done")  # took half its estimate: the rest is expected at half too
    assert clock.left() == 75.0  # 300 s x 0.5 / 2 jobs, counted from this finish
    now[0] = 40.0
    assert clock.left() == 65.0


@pytest.mark.parametrize("run_s, jobs, warned, shown", [
    (1900.0, 1, True, "1 h 03 min"),  # two runs of 1900 s one after the other: 3800 s
    (1900.0, 2, False, "31.7 min"),  # the same two at once: 1900 s
    (1700.0, 1, False, "56.7 min"),  # 3400 s
])
def test_run_warns_before_a_grid_the_cost_model_puts_over_an_hour(tmp_path, monkeypatch, run_s, jobs, warned, shown):
    """A fake cost model where a run of `random` costs exactly ``run_s`` (no step or pair cost): the CLI's estimate
    step warns when the wall time (runs over --jobs) is over 3600 s, and only then."""
    from rich.console import Console

    import benchmark.execution.estimates as estimates
    from benchmark.cli.run import _estimate
    from benchmark.execution.costs import load_cost_model

    model = load_cost_model()
    fake = {**model, "devices": {name: {**device, "run_s": run_s, "pair_s": 0.0}
                                 for name, device in model["devices"].items()}}
    assert fake["methods"]["random"]["cpu"]["cpu"]["step_s"] == 0.0
    monkeypatch.setattr(estimates, "load_cost_model", lambda *a, **k: fake)
    plan = plan_grid(grid_from_cli(None, "random", "wikipedia", True, None, 0.05, "0,1", None))
    out = io.StringIO()
    estimate = _estimate(plan, str(tmp_path), False, jobs, Console(file=out, width=400))
    assert (estimate.modelled, estimate.seconds) == (2, 2 * run_s)
    text = " ".join(out.getvalue().split())
    assert f"estimated wall time {shown}" in text
    assert ("warning: this grid runs for over an hour" in text) is warned


def test_a_record_does_not_count_as_done_for_another_scenario_an_oracle_run_or_another_selection(tmp_path):
    from benchmark.execution.estimates import estimate_plan
    from benchmark.execution.plan import run_plan

    def plan(**kw):
        return plan_grid(grid_from_cli(None, "random", "wikipedia", True, None, 0.05, "0", None, **kw))

    run_plan(plan(), tmp_path)  # the zero-shot record only
    assert estimate_plan(plan(), tmp_path).recorded == 1
    assert estimate_plan(plan(scenario="generalized"), tmp_path).recorded == 0
    assert estimate_plan(plan(oracle_every=1), tmp_path).recorded == 0
    assert estimate_plan(plan(stage="validation", fold=1), tmp_path).recorded == 0
    # the same parameters chosen another way (a tuning over other folds) are another run
    tuned = plan()
    tuned.specs[:] = [dataclasses.replace(spec, selection={"protocol": "tuned on validation classes",
                                                           "folds": [0, 1]}) for spec in tuned.specs]
    assert estimate_plan(tuned, tmp_path).recorded == 0


def test_a_cfsa_epoch_of_zero_steps_is_one_pass_over_the_largest_modality():
    from benchmark.execution.costs import Fit, planned_steps

    fit = Fit(dims=2560, rows={"sketch": 1000.0, "image": 130.0}, pairs=1000.0)
    # 500 epochs of ceil(1000 / 64) = 16 batches; a fixed epoch_steps is taken as given
    assert planned_steps("epochs_x_epoch_steps", {"epochs": 500, "epoch_steps": 0, "batch_size": 64}, fit) == 8000
    assert planned_steps("epochs_x_epoch_steps", {"epochs": 40, "epoch_steps": 25, "batch_size": 64,
                                                  "regressor_epochs": 2}, fit) == 1050


@pytest.mark.parametrize("dataset", [
    {"name": "emoji", "synthetic": False, "split": "emoji-v1", "scale": None},
    {"name": "tu-berlin", "synthetic": True, "split": "sake-30", "scale": 0.05},
])
def test_every_budget_a_method_declares_has_a_cpu_estimate(dataset):
    """A fresh clone estimates a run at either budget on the CPU, the variants through their base method."""
    from benchmark.execution.costs import model_seconds
    from benchmark.registry import available_methods, build_method

    for name, (cls, _) in available_methods().items():
        for budget in cls.budgets:
            params = build_method(name, {}, budget=budget)[1].get_params()
            assert model_seconds(name, params, dataset, budget=budget) is not None, (name, budget)


def test_the_shipped_cost_model_is_what_its_derivation_gives_from_the_committed_records():
    import json

    from benchmark.execution.costs import COST_MODEL
    from benchmark.perf.cost_model import derive

    assert derive(ROOT / "results" / "records" / "emoji-embedded") == json.loads(COST_MODEL.read_text())
