"""A parsed grid -> checked, resolved :class:`~benchmark.core.spec.RunSpec`\\ s (the plan), and a plan -> records.

Everything that turns a grid into runs happens here and only here: the device is resolved (once), every
method is built with its full hyper-parameters, every dataset request is described, entries taken from a
tuning study get that study's choice (``benchmark.execution.tuning.tuned_choice``), and the specs are laid
out dataset-major (a worker that loaded a dataset keeps using it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.contract import ZSBenchError
from benchmark.core.data import DEFAULT_SCENARIO, STAGES, DatasetRequest
from benchmark.core.env import resolve_device
from benchmark.core.spec import BUDGETS, DEFAULT_BUDGET, RunSpec, default_budget
from benchmark.core.store import DEFAULT_TUNING
from benchmark.execution.executors import GridReport, execute, make_executor
from benchmark.execution.grid import Grid, check_seeds, coerce_param
from benchmark.execution.runner import RunOutcome, make_spec  # noqa: F401 - make_spec re-exported
from benchmark.registry import build_method


@dataclass
class Plan:
    """The runs of a grid, in order, and the resolved grid each record keeps as provenance."""

    specs: list[RunSpec]
    provenance: dict[str, Any]
    #: Each dataset request described without loading (source, default split and scale spelled out).
    datasets: dict[DatasetRequest, dict[str, Any]]


def check_grid(grid: Grid) -> str:
    """Fail on an unknown method, hyper-parameter, dataset, split, stage or device before anything runs; the
    device the grid runs on (resolved here, once)."""
    from benchmark.datasets import check_available

    device = resolve_device(grid.device)
    if grid.budget is None:  # not asked for: the released lengths on a GPU, the cpu budget on a CPU
        grid.budget = default_budget(device)
    if grid.budget not in BUDGETS:
        raise ZSBenchError(f"--budget must be one of {', '.join(BUDGETS)}, got {grid.budget!r}")
    for i, entry in enumerate(grid.methods):
        where = f"{grid.file or 'the grid'}, methods[{i}] params" if grid.file else "--param"
        params = {k: coerce_param(entry.spec, k, v, where) for k, v in entry.params.items()}
        build_method(entry.spec, params, grid.budget)
    if grid.stage not in STAGES:
        raise ZSBenchError(f"stage must be one of {', '.join(STAGES)}, got {grid.stage!r}")
    if grid.threads < 1:
        raise ZSBenchError(f"--threads must be at least 1, got {grid.threads}")
    if grid.fold < 0 or (grid.fold and grid.stage != "validation"):
        raise ZSBenchError(f"--fold picks a validation fold and needs --stage validation (got fold {grid.fold} on "
                           f"the {grid.stage} stage)")
    if grid.oracle_every and any(scenario != DEFAULT_SCENARIO for scenario in grid.scenarios):
        raise ZSBenchError("--oracle-every scores the zero-shot test classes; run it with --scenario zero-shot")
    if grid.oracle_every < 0 or (grid.oracle_every and grid.stage != "test"):
        raise ZSBenchError(f"--oracle-every must be a positive number of epochs on the test stage, got "
                           f"{grid.oracle_every} on the {grid.stage} stage (it scores test classes: never use it "
                           f"for selection)")
    check_seeds(grid.seeds)
    problems = []
    for request in grid.datasets:
        if request.scale is not None and not 0 < request.scale <= 1:
            raise ZSBenchError(f"dataset {request.name!r}: scale must lie in (0, 1], got {request.scale}")
        try:
            check_available(request.name, request.synthetic, request.split)
        except ZSBenchError as err:
            problems.append(f"{request.name}: {err}")
    if len(problems) == 1:
        raise ZSBenchError(problems[0].partition(": ")[2])
    if problems:  # every missing dataset at once, each with its fix, not one per attempt
        raise ZSBenchError(f"{len(problems)} of the grid's {len(grid.datasets)} datasets cannot be loaded; no run "
                           f"started:\n" + "\n".join(f"  {p}" for p in problems))
    return device


def check_data(plan: Plan, keep: bool = True, on_event: Callable[[str], None] | None = None) -> None:
    """Load every dataset of ``plan`` once (features finite, labels and parts consistent, split hashes right;
    see ``ZSDataset.validate``) and fail with every problem at once, before any run: a data error is a fact of
    the data, reported once, not once per method and seed. Synthetic stand-ins are not loaded here (their
    generator makes finite features; loading would build them twice). ``keep`` leaves the loaded datasets in this
    process's cache (the serial executor runs here and reuses them)."""
    from benchmark.execution.executors import dataset_for, forget_datasets

    problems = []
    for request in plan.datasets:
        if request.synthetic:  # generated here (finite by construction, tested); its split was checked by name
            continue
        if on_event:
            on_event(f"checking the data of {request.name}")
        try:
            ds = dataset_for(request)
            wanted = {(s.scenario, s.fold) for s in plan.specs if s.dataset == request and s.stage == "validation"}
            for scenario, fold in sorted(wanted):
                ds.in_scenario(scenario).selection_view(fold)
        except ZSBenchError as err:
            problems.append(f"{request.name}: {err}")
        if not keep:
            forget_datasets()
    if len(problems) == 1:
        raise ZSBenchError(f"{problems[0]} (no run started)")
    if problems:
        raise ZSBenchError(f"{len(problems)} datasets cannot be used; no run started:\n"
                           + "\n".join(f"  {p}" for p in problems))


def plan_grid(grid: Grid, tuning: str | Path | None = None, every_method_tuned: bool = False) -> Plan:
    """The checked grid as specs. Entries marked ``tuned`` (every entry with ``every_method_tuned``, as
    ``zsbench run --tuned`` asks) take the choice of their tuning study under ``tuning`` (default: the grid's
    ``tuning`` folder, else results/tuning) on each dataset."""
    from benchmark.datasets.requests import describe_request
    from benchmark.execution.tuning import tuned_choice

    device = check_grid(grid)
    entries = [(entry.spec, entry.params, entry.tuned or every_method_tuned) for entry in grid.methods]
    if any(params for _, params, tuned in entries if tuned):
        raise ZSBenchError("--tuned takes the parameters from the tuning studies; drop --param and grid params")
    folder = Path(tuning or grid.tuning or DEFAULT_TUNING)
    described = [describe_request(request) for request in grid.datasets]
    specs: list[RunSpec] = []
    for request in grid.datasets:
        for method, params, tuned in entries:
            chosen = {scenario: tuned_choice(folder, method, request, grid.budget, grid.tuning_folds, scenario)
                      if tuned else (params, None) for scenario in grid.scenarios}
            for seed in grid.seeds:
                for scenario in grid.scenarios:
                    specs.append(make_spec(method, seed, request, chosen[scenario][0], grid.stage, grid.threads, device,
                                           chosen[scenario][1], index=len(specs), budget=grid.budget,
                                           oracle_every=grid.oracle_every, fold=grid.fold, scenario=scenario))
    methods = []
    for method, params, tuned in entries:
        name, built = build_method(method, params if not tuned else {}, grid.budget)
        methods.append({"name": name, "overrides": dict(params if not tuned else {}), "params": built.get_params(),
                        **({"tuned": True} if tuned else {})})
    provenance = {"file": grid.file, "file_sha256": grid.file_sha256, "methods": methods,
                  "datasets": [{k: v for k, v in d.items() if k != "source"} for d in described],
                  "seeds": list(grid.seeds), "device": device, "threads": grid.threads, "stage": grid.stage,
                  **({"budget": grid.budget} if grid.budget != DEFAULT_BUDGET else {}),
                  **({"scenarios": list(grid.scenarios)} if grid.scenarios != [DEFAULT_SCENARIO] else {}),
                  **({"oracle_every": grid.oracle_every} if grid.oracle_every else {}),
                  **({"fold": grid.fold} if grid.fold else {})}
    return Plan(specs, provenance, dict(zip(grid.datasets, described, strict=True)))


def run_plan(plan: Plan, results: str | Path, executor: str = "serial", jobs: int = 1, address: str | None = None,
             force: bool = False, on_result: Callable[[RunOutcome], None] | None = None,
             on_event: Callable[[str], None] | None = None,
             on_progress: Callable[[int, int | None], None] | None = None) -> GridReport:
    """Run every spec of ``plan``; results come back in the plan's order whatever order they finished in."""
    runner = make_executor(executor, jobs, address, on_event, on_progress)
    return execute(plan.specs, results, runner, force, plan.provenance, on_result, on_event)


def run_grid_with(grid: Grid, results: str | Path, executor: str = "serial", jobs: int = 1,
                  address: str | None = None, force: bool = False, tuning: str | Path | None = None,
                  **callbacks: Any) -> GridReport:
    """Plan ``grid`` and run it (what ``zsbench run`` does, without the printing)."""
    return run_plan(plan_grid(grid, tuning), results, executor, jobs, address, force, **callbacks)
