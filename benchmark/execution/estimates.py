"""How long a grid will take, from the records of earlier runs of the same configurations on this machine.

A configuration matches when the method and every hyper-parameter, the dataset, its source, split and
stand-in scale, the stage and the thread count are the same; the seed may differ. Only records written
on this machine (the record's ``machine`` says which) count. Runs without such a record have no estimate.
A run whose own record (same configuration and seed) is already there is skipped by the grid, so it is
left out of the estimate unless the grid reruns it (``--force``).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.core.record import device_class
from benchmark.core.store import ResultStore


def this_machine() -> dict[str, Any]:
    return {"host": platform.node(), "cpus": os.cpu_count(), "processor": platform.machine()}


@dataclass
class GridEstimate:
    total: int
    known: int
    seconds: float
    recorded: int = 0  # runs that already have their record and will be skipped

    @property
    def unknown(self) -> int:
        return self.total - self.recorded - self.known


def _key(method: str, config: dict, dataset: str, source: str, split: str, scale, stage: str, threads,
         device: str) -> str:
    return json.dumps([method, config, dataset, source, split, scale, stage, threads, device_class(device)],
                      sort_keys=True, default=str)


def estimate_grid(grid, results: str | Path, force: bool = False) -> GridEstimate:
    """Seconds for the runs of ``grid`` still to do that have an earlier record of their configuration here
    (median each)."""
    machine = this_machine()
    seconds: dict[str, list[float]] = {}
    recorded: set[tuple[str, int]] = set()
    store = ResultStore(results)
    try:
        for _, record in store.records():
            key = _key(record.method, record.config, record.dataset["name"], record.source, record.split_name,
                       record.dataset.get("scale"), record.stage, record.threads, record.device)
            recorded.add((key, record.seed))
            if record.machine == machine:
                seconds.setdefault(key, []).append(record.total_s)
    except Exception:  # noqa: BLE001 - an estimate must never stop a grid; an unreadable record is reported later
        return GridEstimate(len(grid.tasks()), 0, 0.0)
    if not seconds:
        return GridEstimate(len(grid.tasks()), 0, 0.0)
    resolved = grid.resolved()
    params = {entry["name"]: entry["params"] for entry in resolved["methods"]}
    known, skipped, total_s = 0, 0, 0.0
    for task in grid.tasks():
        di = grid.datasets.index(task.dataset)
        data = resolved["datasets"][di]
        name = task.method
        config = {**params.get(name, {}), **task.params}
        source = "synthetic" if data["synthetic"] else _source(data["name"])
        split = data["split"] if grid.stage == "test" else f"{data['split']}/validation"
        key = _key(name, config, data["name"], source, split, data["scale"], grid.stage, grid.threads, grid.device)
        if not force and (key, task.seed) in recorded:
            skipped += 1
        elif key in seconds:
            known += 1
            total_s += statistics.median(seconds[key])
    return GridEstimate(len(grid.tasks()), known, total_s, skipped)


def _source(name: str) -> str:
    from benchmark.datasets.specs import SPECS

    spec = SPECS.get(name)
    return spec.source if spec is not None else "real"
