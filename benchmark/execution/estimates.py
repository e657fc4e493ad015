"""How long a grid will take: this machine's own records where it has them, the shipped cost model otherwise.

A configuration matches a record when the method and every hyper-parameter, the dataset, its source, split
and stand-in scale, the stage and the thread count are the same; the seed may differ. Only records written
on this machine (the record's ``machine`` says which) count; their median time replaces the cost model's
(``benchmark.execution.costs``) as they accrue. A run whose own record (same configuration and seed) is
already there is skipped by the grid, so it is left out of the estimate unless the grid reruns it
(``--force``). Runs that neither has (a prepared folder of one's own, a method without a cost entry) are
counted apart, never silently as zero.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.core.env import this_machine
from benchmark.core.spec import config_key, configuration_key
from benchmark.core.store import ResultStore
from benchmark.execution.costs import load_cost_model, spec_seconds

#: The range printed around a cost-model estimate: on the reference grids (docs/scale.md) the model's
#: per-run figures lay between 0.25 and 1.2 times the measured ones, their sums within 0.7-1.5.
MODEL_RANGE = (0.6, 1.5)


@dataclass
class GridEstimate:
    total: int
    measured: int  # runs timed from this machine's records of the same configuration
    seconds: float
    recorded: int = 0  # runs that already have their record and will be skipped
    modelled: int = 0  # runs timed by the cost model
    low: float = 0.0
    high: float = 0.0
    #: The estimated seconds of every run still to do, by its index in the plan (the progress bar's clock).
    per_run: dict[int, float] = field(default_factory=dict)

    @property
    def known(self) -> int:
        return self.measured + self.modelled

    @property
    def unknown(self) -> int:
        return self.total - self.recorded - self.known

    def wall_s(self, jobs: int = 1) -> float:
        """Wall time with ``jobs`` runs at once (runs share nothing but the cores): the run seconds over the jobs,
        but never less than the longest run."""
        return max(self.seconds / max(1, jobs), max(self.per_run.values(), default=0.0))


def record_configuration(record) -> str:
    """The configuration key (see :meth:`benchmark.core.spec.RunSpec.configuration`) of a written record."""
    return configuration_key(record.method, record.config, record.dataset["name"], record.source, record.split_name,
                             record.dataset.get("scale"), record.stage, record.threads, record.device,
                             record.scenario, (record.oracle or {}).get("every", 0))


def _measured(results: str | Path) -> tuple[dict[str, list[float]], set[tuple[str, int, str]]] | None:
    machine = this_machine()
    seconds: dict[str, list[float]] = {}
    recorded: set[tuple[str, int, str]] = set()
    try:
        for _, record in ResultStore(results).records():
            key = record_configuration(record)
            recorded.add((key, record.seed, config_key(record.selection or {})))
            if record.machine == machine:
                seconds.setdefault(key, []).append(record.total_s)
    except Exception:  # noqa: BLE001 - an estimate must never stop a grid; an unreadable record is reported later
        return None
    return seconds, recorded


def estimate_plan(plan, results: str | Path, force: bool = False, use_model: bool = True) -> GridEstimate:
    """Seconds for the runs of ``plan`` still to do: the median of this machine's records of each run's
    configuration, else the cost model's figure (``use_model``)."""
    found = _measured(results)
    seconds, recorded = found if found is not None else ({}, set())
    model = load_cost_model() if use_model else None
    estimate = GridEstimate(len(plan.specs), 0, 0.0)
    for spec in plan.specs:
        described = plan.datasets[spec.dataset]
        key = spec.configuration(described)
        # the same configuration chosen another way (a tuning over other folds) is another run, not this one done
        if not force and (key, spec.seed, config_key(spec.chosen_by)) in recorded:
            estimate.recorded += 1
            continue
        if key in seconds:
            times = seconds[key]
            estimate.measured += 1
            run_s, low, high = statistics.median(times), min(times), max(times)
        elif model is not None and (run_s := _model(spec, described, model)) is not None:
            estimate.modelled += 1
            low, high = run_s * MODEL_RANGE[0], run_s * MODEL_RANGE[1]
        else:
            continue
        estimate.seconds += run_s
        estimate.low += low
        estimate.high += high
        estimate.per_run[spec.index] = run_s
    return estimate


def _model(spec, described, model) -> float | None:
    try:
        return spec_seconds(spec, described, model)
    except Exception:  # noqa: BLE001 - a method of one's own (module:Class) may lack what the model reads
        return None


def duration(seconds: float) -> str:
    """``45 s``, ``10.4 min``, ``2 h 34 min``: one unit a reader cannot mistake."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min"


def estimate_lines(estimate: GridEstimate, jobs: int = 1) -> tuple[str, bool]:
    """What ``zsbench run`` prints before a grid: the estimate of the whole grid (one line) and whether its wall
    time is over an hour (the caller warns)."""
    todo = estimate.total - estimate.recorded
    if todo == 0:
        have = "the one run has" if estimate.total == 1 else f"all {estimate.total} runs have"
        return f"nothing to run: {have} a record (--force reruns them)", False
    if estimate.known == 0:
        return f"no estimate for the {todo} runs to do (no record or cost model covers them)", False
    wall = estimate.wall_s(jobs)
    sources = []
    if estimate.modelled:
        machine = load_cost_model()["reference_machine"]["cpu"]
        sources.append(f"{estimate.modelled} from the shipped cost model ({machine['cpus']}-core "
                       f"{machine['processor']} reference)")
    if estimate.measured:
        sources.append(f"{estimate.measured} from this machine's records")
    if estimate.recorded:
        sources.append(f"{estimate.recorded} already recorded, skipped")
    if estimate.unknown:
        sources.append(f"{estimate.unknown} without an estimate, not counted")
    scope = ("the one run to do" if todo == 1 else f"all {todo} runs to do") if not estimate.unknown else \
        f"{estimate.known} of the {todo} runs to do"
    at_once = "one at a time" if jobs == 1 else f"{jobs} at a time"
    line = (f"estimated wall time {duration(wall)} (range {duration(estimate.low / max(1, jobs))} to "
            f"{duration(estimate.high / max(1, jobs))}) for {scope}, {at_once}; {'; '.join(sources)}")
    cores = this_machine()["cpus"] or 1
    if jobs == 1 and cores > 1 and estimate.known > 1 and wall > 600:
        line += f"; with --jobs {min(cores, 4)}: about {duration(estimate.wall_s(min(cores, 4)))}"
    return line, wall > 3600
