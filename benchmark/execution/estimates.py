"""How long a grid will take, from the records of earlier runs of the same configurations on this machine.

A configuration matches when the method and every hyper-parameter, the dataset, its source, split and
stand-in scale, the stage and the thread count are the same; the seed may differ. Only records written
on this machine (the record's ``machine`` says which) count. Runs without such a record have no estimate.
A run whose own record (same configuration and seed) is already there is skipped by the grid, so it is
left out of the estimate unless the grid reruns it (``--force``).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from benchmark.core.env import this_machine
from benchmark.core.spec import configuration_key
from benchmark.core.store import ResultStore


@dataclass
class GridEstimate:
    total: int
    known: int
    seconds: float
    recorded: int = 0  # runs that already have their record and will be skipped

    @property
    def unknown(self) -> int:
        return self.total - self.recorded - self.known


def record_configuration(record) -> str:
    """The configuration key (see :meth:`benchmark.core.spec.RunSpec.configuration`) of a written record."""
    return configuration_key(record.method, record.config, record.dataset["name"], record.source, record.split_name,
                             record.dataset.get("scale"), record.stage, record.threads, record.device)


def estimate_plan(plan, results: str | Path, force: bool = False) -> GridEstimate:
    """Seconds for the runs of ``plan`` still to do that have an earlier record of their configuration here
    (median each)."""
    machine = this_machine()
    seconds: dict[str, list[float]] = {}
    recorded: set[tuple[str, int]] = set()
    store = ResultStore(results)
    try:
        for _, record in store.records():
            key = record_configuration(record)
            recorded.add((key, record.seed))
            if record.machine == machine:
                seconds.setdefault(key, []).append(record.total_s)
    except Exception:  # noqa: BLE001 - an estimate must never stop a grid; an unreadable record is reported later
        return GridEstimate(len(plan.specs), 0, 0.0)
    known, skipped, total_s = 0, 0, 0.0
    for spec in plan.specs:
        key = spec.configuration(plan.datasets[spec.dataset])
        if not force and (key, spec.seed) in recorded:
            skipped += 1
        elif key in seconds:
            known += 1
            total_s += statistics.median(seconds[key])
    return GridEstimate(len(plan.specs), known, total_s, skipped)
